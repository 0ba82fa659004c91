"""The consumer's decode loop on hand-made Kafka messages (no broker needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message

from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.errors import DeserializationError
from mesh_stream.schema.codec import RecordEncoder
from tests.fixtures.sdk.helpers import SCHEMA_V1, decoded, new_product
from tests.unit.sdk.conftest import MemorySchemas, make_order, offline_consumer


@pytest.fixture
def consumer(order_v1: dict[str, Any]) -> Iterator[tuple[ProductConsumer, str]]:
    product = new_product("unit", schema=SCHEMA_V1)
    consumer = offline_consumer(product, MemorySchemas({4: order_v1}, {4: [product.value_subject]}))
    yield consumer, product.topic
    consumer.close()


def message(topic: str, offset: int, value: bytes, key: bytes | None = None) -> Message:
    return Message(
        topic=topic, partition=0, offset=offset, key=key, value=value, timestamp=(1, 1000 + offset)
    )


def test_records_are_frozen_consumed_records_with_every_coordinate(
    consumer: tuple[ProductConsumer, str], order_v1: dict[str, Any]
) -> None:
    reader, topic = consumer
    encoder = RecordEncoder(order_v1, 4)
    messages = [
        message(topic, i, encoder.encode(make_order(i)), make_order(i)["order_id"].encode())
        for i in range(3)
    ]
    records = reader._decode(messages)
    assert records == [
        ConsumedRecord(
            reader.products[0].name,
            topic,
            0,
            i,
            make_order(i)["order_id"],
            decoded(make_order(i)),
            1000 + i,
            {},
            4,
        )
        for i in range(3)
    ]
    assert all(type(r) is ConsumedRecord for r in records)
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].offset = 7  # type: ignore[misc]
    assert reader._positions == {(topic, 0): 3}


def test_a_poison_pill_without_dead_letters_comes_after_the_good_records_before_it(
    consumer: tuple[ProductConsumer, str], order_v1: dict[str, Any]
) -> None:
    reader, topic = consumer
    encoder = RecordEncoder(order_v1, 4)
    good = [encoder.encode(make_order(i)) for i in range(5)]
    messages = [message(topic, i, good[i]) for i in range(3)]
    messages += [message(topic, 3, b"\x07oops")]
    messages += [message(topic, 4 + i, good[3 + i]) for i in range(2)]

    first = reader._decode(messages)
    assert [r.offset for r in first] == [0, 1, 2]
    with pytest.raises(DeserializationError) as caught:
        reader.consume(100, 0.1)
    assert str(caught.value).startswith(f"{topic}[0]@3: unknown magic byte 7 (expected 0)")
    rest = reader.consume(100, 0.1)
    assert [r.offset for r in rest] == [4, 5]
    assert [r.value for r in rest] == [decoded(make_order(3)), decoded(make_order(4))]
    assert reader._positions == {(topic, 0): 6}


def test_repeated_headers_are_all_in_header_list(
    consumer: tuple[ProductConsumer, str], order_v1: dict[str, Any]
) -> None:
    """The publisher keeps repeated names (a list of pairs); the dict `headers` keeps only
    the last of them (an SDK campaign), `header_list` has them all, in order."""
    reader, topic = consumer
    sent = [("trace", b"a"), ("trace", b"b"), ("empty", None), ("trace", b"c")]
    value = RecordEncoder(order_v1, 4).encode(make_order(1))
    incoming = Message(topic=topic, partition=0, offset=0, value=value, headers=sent)
    [record] = reader._decode([incoming])
    assert record.headers == {"trace": b"c", "empty": None}
    assert record.header_list == sent


def test_a_corrupt_body_says_what_in_it_does_not_fit_not_only_a_python_error(
    consumer: tuple[ProductConsumer, str],
) -> None:
    """A framed record whose first string's length never ends (h30: it read as
    `IndexError: string index out of range` alone)."""
    reader, topic = consumer
    with pytest.raises(DeserializationError) as caught:
        reader._decode([message(topic, 0, b"\x00\x00\x00\x00\x04\xff\xff")])
    said = str(caught.value)
    assert said.startswith(f"{topic}[0]@0: cannot decode the Avro body with writer schema id 4")
    assert (
        "order_id: the body ends inside a number (at byte 0 of the body); the body is "
        "damaged, or was written with another schema" in said
    ), said


def test_a_model_whose_schema_cannot_read_the_writer_names_the_model_not_reader_schemas(
    order_v1: dict[str, Any],
) -> None:
    """A model made from a schema renamed from the writer's reads with that schema, and Avro
    refuses a renamed record: the error names models[...] and model_from_schema (the user
    gave no reader_schemas) and says what would read it."""
    from mesh_stream.errors import ConfigurationError
    from mesh_stream.schema.models import model_from_schema

    product = new_product("unit-model", schema=SCHEMA_V1)
    renamed = {**order_v1, "name": "Order", "namespace": "elsewhere"}
    registry = MemorySchemas({4: order_v1}, {4: [product.value_subject]})
    reader = ProductConsumer(
        [product],
        group_id="unit",
        bootstrap_servers="127.0.0.1:9",
        registry=registry,
        from_beginning=True,
        config={"log_level": 0},
        models={product.name: model_from_schema(renamed)},
        root=None,
    )
    try:
        encoded = RecordEncoder(order_v1, 4).encode(make_order(0))
        with pytest.raises(ConfigurationError) as caught:
            reader._decode([message(product.topic, 0, encoded)])
    finally:
        reader.close()
    said = str(caught.value)
    assert f"the schema models[{product.name!r}] was made from (model_from_schema" in said
    assert f"or give reader_schemas[{product.name!r}] a schema that reads it" in said
    assert "consume without reader_schemas" not in said
