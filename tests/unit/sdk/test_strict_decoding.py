"""Strict decoding and the consumer's registry waits, without a broker.

Bytes after the Avro body, a schema id of a non-record schema and a foreign schema id (not
registered under the product's subject) are refused by both read paths (the compiled
decoder and fastavro's reader); a registry outage makes a record's partition wait instead
of losing its place.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message

from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import (
    DeserializationError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
)
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder
from mesh_stream.schema.wire import frame
from tests.fixtures.sdk.helpers import SCHEMA_V1, decoded, new_product
from tests.unit.sdk.conftest import MemorySchemas, make_order

SUBJECT = "orders.strict.v1-value"


def with_trailing_byte(framed: bytes) -> bytes:
    return framed + b"\x00"


def test_the_compiled_decoder_refuses_bytes_after_the_body(order_v1: dict[str, Any]) -> None:
    decoder = RecordDecoder(MemorySchemas({1: order_v1}))
    framed = RecordEncoder(order_v1, 1).encode(make_order(3))
    compiled = decoder.plan_for(1)[3]
    assert compiled is not None
    assert compiled(framed) == decoded(make_order(3))
    with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal sends it to fastavro
        compiled(with_trailing_byte(framed))
    with pytest.raises(DeserializationError) as caught:
        decoder.decode(with_trailing_byte(framed))
    assert str(caught.value) == (
        "1 byte(s) left after the Avro body of writer schema id 1 "
        "(sdktest.orders.OrderPlaced): the record was not written with this schema (or was "
        "damaged)"
    )


def test_the_fastavro_path_refuses_bytes_after_the_body(
    order_v1: dict[str, Any], order_v2: dict[str, Any]
) -> None:
    decoder = RecordDecoder(MemorySchemas({1: order_v1}), order_v2)  # a reader: no compiled path
    assert decoder.plan_for(1)[3] is None
    framed = RecordEncoder(order_v1, 1).encode(make_order(3))
    assert decoder.decode(framed)["channel"] == "web"
    with pytest.raises(DeserializationError, match=r"^3 byte\(s\) left after the Avro body"):
        decoder.decode(framed + b"abc")


def test_a_body_cut_short_says_so(order_v1: dict[str, Any]) -> None:
    """fastavro's EOFError has no words; the error says where the body ends."""
    decoder = RecordDecoder(MemorySchemas({1: order_v1}))
    framed = RecordEncoder(order_v1, 1).encode(make_order(3))
    with pytest.raises(DeserializationError) as caught:
        decoder.decode(framed[:5])  # the header alone
    assert str(caught.value).endswith(
        "order_id: the body ends before this value (at byte 0 of the body); the body is "
        "damaged, or was written with another schema"
    )


def test_a_non_record_schema_id_is_a_deserialization_error_asked_once() -> None:
    source = MemorySchemas({6: '"string"'}, {6: ["other.thing.v1-value"]})
    decoder = RecordDecoder(source)
    for _ in range(3):
        with pytest.raises(DeserializationError) as caught:
            decoder.decode(frame(6, b"\x02a"))
        assert str(caught.value) == (
            "schema id 6 cannot decode a product record: a product schema must be an Avro "
            "record (a JSON object)"
        )
        assert isinstance(caught.value.__cause__, SchemaError)
    assert source.calls == 1


def test_a_foreign_schema_id_is_refused_and_checked_once_per_id(
    order_v1: dict[str, Any],
) -> None:
    source = MemorySchemas({1: order_v1, 2: order_v1}, {1: [SUBJECT], 2: ["b.x.v1-value"]})
    decoder = RecordDecoder(source, subject=SUBJECT)
    own, foreign = RecordEncoder(order_v1, 1), RecordEncoder(order_v1, 2)
    for index in range(20):
        assert decoder.decode(own.encode(make_order(index))) == decoded(make_order(index))
        with pytest.raises(DeserializationError) as caught:
            decoder.decode(foreign.encode(make_order(index)))
        assert str(caught.value) == (
            f"foreign schema id 2: it is registered under b.x.v1-value, not under {SUBJECT}; "
            f"the record was written for another product"
        )
    assert (source.calls, source.subject_calls) == (2, 2)


class Flaky(MemorySchemas):
    """A schema source whose registry can be switched off."""

    down = False

    def get_schema(self, schema_id: int) -> str:
        if self.down:
            raise RegistryUnavailableError("registry is down", status=503, error_code=50302)
        return super().get_schema(schema_id)

    def get_schema_subjects(self, schema_id: int) -> list[str]:
        if self.down:
            raise RegistryUnavailableError("registry is down", status=503, error_code=50302)
        return super().get_schema_subjects(schema_id)


def test_a_foreign_id_is_asked_again_later_and_the_old_answer_stands_while_it_is_down(
    order_v1: dict[str, Any],
) -> None:
    source = Flaky({2: order_v1}, {2: ["b.x.v1-value"]})
    decoder = RecordDecoder(source, subject=SUBJECT, recheck_seconds=0)
    data = RecordEncoder(order_v1, 2).encode(make_order(1))
    with pytest.raises(DeserializationError, match="foreign schema id 2"):
        decoder.decode(data)
    source.down = True
    with pytest.raises(DeserializationError, match="foreign schema id 2"):
        decoder.decode(data)
    source.down = False
    source.subjects[2].append(SUBJECT)  # the product registered the same schema since
    assert decoder.decode(data) == decoded(make_order(1))
    assert source.subject_calls == 2


# -- the consumer ----------------------------------------------------------------------


@pytest.fixture
def flaky(order_v1: dict[str, Any]) -> Iterator[tuple[ProductConsumer, Flaky, str]]:
    product = new_product("strict", schema=SCHEMA_V1)
    source = Flaky(
        {4: order_v1, 5: order_v1}, {4: [product.value_subject], 5: [product.value_subject]}
    )
    consumer = ProductConsumer(
        [product],
        group_id="unit",
        bootstrap_servers="127.0.0.1:9",  # never contacted: messages are handed in directly
        registry=source,  # type: ignore[arg-type]
        dead_letters=False,
        from_beginning=True,
        registry_wait_seconds=0.3,
        config={"log_level": 0},
        root=None,
    )
    yield consumer, source, product.topic
    consumer.close()


def message(topic: str, partition: int, offset: int, value: bytes) -> Message:
    return Message(topic=topic, partition=partition, offset=offset, value=value, timestamp=(1, 1))


def test_the_consumer_refuses_bytes_after_the_body_on_both_paths(
    flaky: tuple[ProductConsumer, Flaky, str], order_v1: dict[str, Any], order_v2: dict[str, Any]
) -> None:
    consumer, _source, topic = flaky
    framed = with_trailing_byte(RecordEncoder(order_v1, 4).encode(make_order(0)))
    with pytest.raises(DeserializationError, match=rf"^{topic}\[0\]@7: 1 byte\(s\) left after"):
        consumer._decode([message(topic, 0, 7, framed)])
    fastavro_path = consumer._sources[topic].decoder.plans[4]
    consumer._sources[topic].plans[4] = (*fastavro_path[:3], None)  # as with a reader schema
    with pytest.raises(DeserializationError, match=rf"^{topic}\[0\]@8: 1 byte\(s\) left after"):
        consumer._decode([message(topic, 0, 8, framed)])
    assert consumer._positions == {(topic, 0): 9}  # dead_letters=False: moved past them


def test_registry_down_the_partition_waits_from_its_first_undecodable_record(
    flaky: tuple[ProductConsumer, Flaky, str], order_v1: dict[str, Any]
) -> None:
    consumer, source, topic = flaky
    four, five = RecordEncoder(order_v1, 4), RecordEncoder(order_v1, 5)
    consumer._decode([message(topic, 0, 0, four.encode(make_order(0)))])  # id 4 now cached
    source.down = True
    batch = [
        message(topic, 0, 1, four.encode(make_order(1))),
        message(topic, 0, 2, five.encode(make_order(2))),  # new id, registry down
        message(topic, 1, 0, four.encode(make_order(3))),  # another partition goes on
        message(topic, 0, 3, four.encode(make_order(4))),  # after the waiting one: not yet
        message(topic, 1, 1, five.encode(make_order(5))),  # new id: this partition waits too
    ]
    records = consumer._decode(batch, until=0.0)
    assert [(r.partition, r.offset) for r in records] == [(0, 1), (1, 0)]
    assert consumer._positions == {(topic, 0): 2, (topic, 1): 1}


def test_registry_down_beyond_the_deadline_raises_naming_the_record(
    flaky: tuple[ProductConsumer, Flaky, str], order_v1: dict[str, Any]
) -> None:
    consumer, source, topic = flaky
    source.down = True
    data = RecordEncoder(order_v1, 5).encode(make_order(2))
    started = time.monotonic()
    assert consumer._decode([message(topic, 0, 9, data)], until=started + 0.1) == []
    with pytest.raises(RegistryUnavailableError) as caught:
        consumer._decode([message(topic, 0, 9, data)], until=started + 5)
    assert 0.3 <= time.monotonic() - started < 1.5  # retried with back-off up to the deadline
    assert str(caught.value).startswith(
        f"{topic}[0]@9: writer schema id 5 is not cached and the registry has failed for "
    )
    assert "beyond registry_wait_seconds=0.3 (registry is down); nothing from this record on " in (
        str(caught.value)
    )
    assert consumer._positions == {}
    source.down = False  # back: the record is delivered, in order
    records = consumer._decode([message(topic, 0, 9, data)], until=time.monotonic() + 1)
    assert [(r.offset, r.value) for r in records] == [(9, decoded(make_order(2)))]


def test_a_writer_the_reader_cannot_read_is_refused_without_asking_again(
    order_v1: dict[str, Any],
) -> None:
    reader = {**order_v1, "fields": [*order_v1["fields"], {"name": "region", "type": "string"}]}
    source = MemorySchemas({1: order_v1}, {1: [SUBJECT]})
    decoder = RecordDecoder(source, reader, subject=SUBJECT)
    data = RecordEncoder(order_v1, 1).encode(make_order(1))
    for _ in range(3):
        with pytest.raises(
            DeserializationError, match="cannot read records written with schema id 1"
        ):
            decoder.decode(data)
    assert (source.calls, source.subject_calls) == (1, 1)


def test_a_schema_deleted_between_the_two_lookups_counts_as_foreign(
    order_v1: dict[str, Any],
) -> None:
    class Deleted(MemorySchemas):
        def get_schema_subjects(self, schema_id: int) -> list[str]:
            raise SchemaNotFoundError(f"Schema {schema_id} not found", status=404, error_code=40403)

    decoder = RecordDecoder(Deleted({1: order_v1}), subject=SUBJECT)
    with pytest.raises(DeserializationError) as caught:
        decoder.decode(RecordEncoder(order_v1, 1).encode(make_order(1)))
    assert str(caught.value) == (
        f"foreign schema id 1: it is registered under no subject, not under {SUBJECT}; the "
        f"record was written for another product"
    )


def test_a_subject_check_without_a_source_of_subjects_is_refused_at_construction(
    order_v1: dict[str, Any],
) -> None:
    class IdsOnly:
        def get_schema(self, schema_id: int) -> str:
            return str(order_v1) if schema_id == 1 else ""

    with pytest.raises(TypeError, match=r"subject 'orders\.strict\.v1-value'.*IdsOnly has none"):
        RecordDecoder(IdsOnly(), subject=SUBJECT)
    RecordDecoder(IdsOnly())  # without a subject to check, ids alone are enough
