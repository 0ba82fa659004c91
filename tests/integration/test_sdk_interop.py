"""Interoperability: confluent-kafka's own Avro serde reads what we write, and vice versa."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import DeserializingConsumer, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import StringDeserializer, StringSerializer

from mesh_stream.consumer import ProductConsumer
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, decoded, load_schema, make_order, new_product

COUNT = 50


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


@pytest.fixture
def confluent_registry(registry: RegistryAddress) -> SchemaRegistryClient:
    return SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": f"orders:{registry.tokens['orders']}"}
    )


def test_confluent_avro_deserializer_reads_what_we_publish(
    kafka: KafkaAddress, client: RegistryClient, confluent_registry: SchemaRegistryClient
) -> None:
    product = new_product("to-confluent")
    with ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    ) as publisher:
        for i in range(COUNT):
            publisher.publish(make_order(i))

    consumer = DeserializingConsumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"confluent-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "key.deserializer": StringDeserializer("utf_8"),
            "value.deserializer": AvroDeserializer(confluent_registry),
        }
    )
    consumer.subscribe([product.topic])
    received: dict[str, Any] = {}
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                received[message.key()] = message.value()
            if len(received) == COUNT:
                break
    finally:
        consumer.close()
    assert received == {make_order(i)["order_id"]: decoded(make_order(i)) for i in range(COUNT)}


def test_our_consumer_reads_what_confluent_avro_serializer_writes(
    kafka: KafkaAddress, client: RegistryClient, confluent_registry: SchemaRegistryClient
) -> None:
    product = new_product("from-confluent")
    # The topic as the platform sets it up; then a plain confluent-kafka producer writes.
    ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    ).close()
    producer = SerializingProducer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": AvroSerializer(
                confluent_registry,
                json.dumps(load_schema("order_v1.avsc")),
                conf={"auto.register.schemas": True},
            ),
        }
    )
    for i in range(COUNT):
        record = make_order(i)
        producer.produce(product.topic, key=record["order_id"], value=record)
    assert producer.flush(30) == 0
    schema_id = confluent_registry.get_latest_version(product.value_subject).schema_id

    with ProductConsumer(
        [product],
        group_id=f"ours-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        from_beginning=True,
    ) as consumer:
        records = []
        for _ in range(30):
            records += consumer.consume(COUNT - len(records), 1.0)
            if len(records) == COUNT:
                break
    assert {r.key: r.value for r in records} == {
        make_order(i)["order_id"]: decoded(make_order(i)) for i in range(COUNT)
    }
    assert {r.schema_id for r in records} == {schema_id}
