"""confluent-kafka's own SchemaRegistryClient, AvroSerializer and AvroDeserializer against
our registry and the real broker."""

from __future__ import annotations

import json
import struct
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.conftest import KafkaAddress, RegistryAddress

# Documented: the registry's governance refuses undocumented fields on product subjects.
V1 = {
    "type": "record",
    "name": "Shipment",
    "namespace": "shipping",
    "doc": "A shipment.",
    "fields": [
        {"name": "id", "type": "string", "doc": "Shipment id."},
        {"name": "weight_kg", "type": "double", "doc": "Weight in kilograms."},
    ],
}
# Adds a field without a default: new readers cannot read old data -> not BACKWARD.
V2_BREAKING = {
    **V1,
    "fields": [*V1["fields"], {"name": "carrier", "type": "string", "doc": "Carrier."}],
}


@pytest.fixture
def sr(registry: RegistryAddress) -> SchemaRegistryClient:
    return SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": f"shipping:{registry.tokens['shipping']}"}
    )


def test_serialize_produce_consume_deserialize(
    kafka: KafkaAddress, registry: RegistryAddress, sr: SchemaRegistryClient
) -> None:
    topic = f"shipping.parcel-{uuid.uuid4().hex[:8]}.v1"
    serializer = AvroSerializer(sr, json.dumps(V1), conf={"auto.register.schemas": True})
    records = [{"id": f"s-{n}", "weight_kg": n * 1.5} for n in range(5)]
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    for record in records:
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, value)
    assert producer.flush(30) == 0

    registered = sr.get_latest_version(f"{topic}-value")
    assert registered.version == 1
    assert json.loads(registered.schema.schema_str) == V1

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    deserializer = AvroDeserializer(
        SchemaRegistryClient({"url": registry.url})  # reads are open
    )
    got = []
    raw_ids = set()
    try:
        while len(got) < len(records):
            message = consumer.poll(10)
            assert message is not None, f"only {len(got)} of {len(records)} records arrived"
            assert message.error() is None
            payload = message.value()
            assert payload is not None
            raw_ids.add(struct.unpack(">bI", payload[:5]))
            got.append(deserializer(payload, SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    assert got == records
    assert raw_ids == {(0, registered.schema_id)}


def test_incompatible_change_refused_then_allowed_by_level_change(
    sr: SchemaRegistryClient,
) -> None:
    subject = f"shipping.route-{uuid.uuid4().hex[:8]}.v1-value"
    first_id = sr.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(json.dumps(V2_BREAKING), "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert "carrier" in refused.value.error_message
    assert sr.get_versions(subject) == [1]
    assert not sr.test_compatibility(subject, Schema(json.dumps(V2_BREAKING), "AVRO"))

    sr.set_compatibility(subject, "NONE")
    assert sr.get_compatibility(subject) == "NONE"
    assert sr.test_compatibility(subject, Schema(json.dumps(V2_BREAKING), "AVRO"))
    second_id = sr.register_schema(subject, Schema(json.dumps(V2_BREAKING), "AVRO"))
    assert second_id != first_id
    assert sr.get_versions(subject) == [1, 2]
    latest = sr.get_latest_version(subject)
    assert (latest.version, latest.schema_id) == (2, second_id)
    # Re-registering re-formatted v1 is idempotent: same id, no new version.
    again = sr.register_schema(subject, Schema(json.dumps(V1, indent=4), "AVRO"))
    assert again == first_id
    assert sr.get_versions(subject) == [1, 2]
    assert sr.lookup_schema(subject, Schema(json.dumps(V1), "AVRO")).version == 1


def test_confluent_client_soft_and_hard_delete(sr: SchemaRegistryClient) -> None:
    subject = f"shipping.tmp-{uuid.uuid4().hex[:8]}.v1-value"
    sr.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    assert sr.delete_subject(subject) == [1]
    assert subject not in sr.get_subjects()
    with pytest.raises(SchemaRegistryError) as gone:
        sr.get_latest_version(subject)
    assert gone.value.error_code == 40401
    assert sr.delete_subject(subject, permanent=True) == [1]
    with pytest.raises(SchemaRegistryError) as hard:
        sr.delete_subject(subject, permanent=True)
    assert hard.value.error_code == 40401
