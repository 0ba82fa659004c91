"""A consumer's own configuration mistake stops it; it loses nothing (real broker, registry).

A record its writer schema decodes is valid per the product's contract. When the consumer's
reader schema cannot read that writer schema, or its pydantic model refuses the record, the
consumer is wrong: it raises ConfigurationError naming the record, dead-letters nothing and
commits nothing past it, so the same group reads every record once the mistake is fixed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel, Field

from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, decoded, load_schema, make_order, new_product
from tests.integration.test_consumer_at_least_once import committed_offsets


class FewItems(BaseModel):
    """Stricter than the contract, which allows any int quantity."""

    order_id: uuid.UUID
    quantity: int = Field(le=3)


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


def publish(product: DataProduct, kafka: KafkaAddress, client: RegistryClient, count: int) -> int:
    with ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in range(count)])
        return publisher.schema_id


def consumer_of(
    product: DataProduct, kafka: KafkaAddress, client: RegistryClient, group: str, **options: Any
) -> ProductConsumer:
    return ProductConsumer(
        [product],
        group_id=group,
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        from_beginning=True,
        **options,
    )


def read_all(consumer: ProductConsumer, count: int) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    for _ in range(60):
        records += consumer.consume(count - len(records), 0.5)
        if len(records) >= count:
            break
    return records


def assert_no_dead_letters(kafka: KafkaAddress, product: DataProduct) -> None:
    """The product's dead-letter topic (its publisher created it) holds no record."""
    topics = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=15)
    found = topics.topics.get(product.dlq_topic)
    if found is None:
        return
    watcher = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "dlq-check"})
    try:
        for partition in found.partitions:
            low, high = watcher.get_watermark_offsets(
                TopicPartition(product.dlq_topic, partition), timeout=15
            )
            assert high == low == 0, f"{product.dlq_topic}[{partition}] holds {high - low}"
    finally:
        watcher.close()


def test_a_reader_schema_that_cannot_read_the_writer_stops_without_losing_a_record(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("cfg-reader", partitions=1)
    schema_id = publish(product, kafka, client, 5)
    v1 = load_schema("order_v1.avsc")
    reader = {**v1, "fields": [*v1["fields"], {"name": "region", "type": "string"}]}
    group = f"cfg-reader-{uuid.uuid4().hex[:8]}"

    errors: list[str] = []
    with consumer_of(product, kafka, client, group, reader_schemas={product.name: reader}) as c:
        for _ in range(40):
            try:
                assert c.consume(10, 0.5) == []
            except ConfigurationError as exc:
                errors.append(str(exc))
                if len(errors) == 3:  # it keeps stopping at the same record
                    break
    assert len(errors) == 3
    assert errors[0] == errors[-1]
    assert errors[0].startswith(
        f"{product.name}: the reader schema reader_schemas[{product.name!r}] (record "
        f"sdktest.orders.OrderPlaced) cannot read the product's writer schema id {schema_id}, "
        f"version 1 of {product.value_subject} (met at {product.topic}[0]@0): field region: "
        f"added without a default"
    )
    assert committed_offsets(kafka.bootstrap_servers, group, product.topic, 1) == {}
    assert_no_dead_letters(kafka, product)

    with consumer_of(product, kafka, client, group) as fixed:  # the same group, fixed
        records = read_all(fixed, 5)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert [r.value for r in records] == [decoded(make_order(i)) for i in range(5)]


def test_a_model_refusing_a_valid_record_stops_at_it_without_losing_a_record(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("cfg-model", partitions=1)
    schema_id = publish(product, kafka, client, 6)  # quantity i % 5 + 1: 4 at offset 3
    group = f"cfg-model-{uuid.uuid4().hex[:8]}"

    delivered: list[ConsumedRecord] = []
    errors: list[str] = []
    with consumer_of(product, kafka, client, group, models={product.name: FewItems}) as c:
        for _ in range(40):
            try:
                delivered += c.consume(10, 0.5)
                c.commit()
            except ConfigurationError as exc:
                errors.append(str(exc))
                if len(errors) == 2:
                    break
    assert [r.offset for r in delivered] == [0, 1, 2]
    assert len(errors) == 2
    assert errors[0] == errors[1]
    assert errors[0].startswith(
        f"{product.topic}[0]@3: the record does not fit model FewItems "
        f"(models[{product.name!r}]): quantity: Input should be less than or equal to 3; it "
        f"decoded with its writer schema id {schema_id}, so it is valid per the product's "
        f"contract and the model is wrong"
    )
    assert committed_offsets(kafka.bootstrap_servers, group, product.topic, 1) == {0: 3}
    assert_no_dead_letters(kafka, product)

    with consumer_of(product, kafka, client, group) as fixed:
        records = read_all(fixed, 3)
    assert [r.offset for r in records] == [3, 4, 5]
    assert [r.value for r in records] == [decoded(make_order(i)) for i in range(3, 6)]
