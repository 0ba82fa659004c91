"""The Confluent API additions on the Kafka-backed registry: contracts, references, modes and
contexts survive a replay of the log, and a registry migrated in IMPORT mode decodes records
framed with the old registry's ids (confluent-kafka's own client and serde, real broker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import (
    Metadata,
    MetadataProperties,
    Rule,
    RuleKind,
    RuleMode,
    RuleSet,
    Schema,
    SchemaReference,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import SecretStr

from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "shipping",
    "doc": "A postal address.",
    "fields": [{"name": "city", "type": "string", "doc": "The city."}],
}
PARCEL = {
    "type": "record",
    "name": "Parcel",
    "namespace": "shipping",
    "doc": "A parcel on its way.",
    "fields": [
        {"name": "id", "type": "string", "doc": "Parcel id."},
        {"name": "to", "type": "shipping.Address", "doc": "Where it goes."},
    ],
}
ADMIN = ("admin", "import-secret")
RULE = Rule(
    "has_id",
    "Every parcel has an id.",
    RuleKind.CONDITION,
    RuleMode.WRITE,
    "CEL",
    None,
    None,
    "message.id != ''",
    None,
    "ERROR",
    True,  # stored and served here; executing CEL is the SDK's test (test_contract_rules)
)


@contextmanager
def fresh_registry(kafka: KafkaAddress, topic: str, admin: str) -> Iterator[str]:
    """A registry on its own log topic (the same topic again = a restart that replays it)."""
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(f"admin:{admin}"),
        registry_credentials_file=None,
        registry_topic=topic,
        registry_writer_id=f"writer-{topic}",
    )
    app, store = build_registry(settings, validators=())
    server = RegistryServer(app)
    try:
        yield server.start()
    finally:
        server.stop()
        store.close()


def test_a_registry_migrated_in_import_mode_keeps_ids_contracts_and_references(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    session = uuid.uuid4().hex[:8]
    address_subject = f"shipping.address-{session}.v1-value"
    parcel_subject = f"shipping.parcel-{session}.v1-value"
    topic = f"shipping.parcel-{session}.v1"
    old = SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": f"shipping:{registry.tokens['shipping']}"}
    )
    old.register_schema(address_subject, Schema(json.dumps(ADDRESS), "AVRO"))
    reference = SchemaReference("shipping.Address", address_subject, 1)
    metadata = Metadata(None, MetadataProperties({"owner": "logistics"}), None)
    parcel = Schema(json.dumps(PARCEL), "AVRO", [reference], metadata, RuleSet(None, [RULE]))
    old_parcel = old.register_schema_full_response(parcel_subject, parcel)
    serializer = AvroSerializer(old, parcel, conf={"auto.register.schemas": False})
    context = SerializationContext(topic, MessageField.VALUE)
    record = {"id": "p-1", "to": {"city": "Lyon"}}
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    producer.produce(topic, serializer(record, context))
    assert producer.flush(30) == 0

    log_topic = f"_mesh_registry-import-{session}"
    admin = {"basic.auth.user.info": "admin:import-secret"}
    with fresh_registry(kafka, log_topic, "import-secret") as url:
        new = SchemaRegistryClient({"url": url, **admin})
        assert new.update_global_mode("IMPORT") == "IMPORT"
        for subject in (address_subject, parcel_subject):  # referenced subjects first
            for version in old.get_versions(subject):
                found = old.get_version(subject, version)
                body = {
                    **found.schema.to_dict(),
                    "id": found.schema_id,
                    "version": found.version,
                }
                answer = httpx.post(  # confluent-kafka has no call that sends an id
                    f"{url}/subjects/{subject}/versions", json=body, auth=ADMIN
                ).json()
                assert (answer["id"], answer["version"]) == (found.schema_id, found.version)
        # ids come in any order: a free id below one already imported is taken (h39: a 503
        # "the view moved ... retry", on every retry); a taken one is a 422
        top = old_parcel.schema_id + 1_000
        for n, schema_id in enumerate((top, top - 500)):
            answer = httpx.post(
                f"{url}/subjects/shipping.extra{n}-{session}.v1-value/versions",
                json={"schema": '"string"', "id": schema_id, "version": 1},
                auth=ADMIN,
            )
            assert (answer.status_code, answer.json()["id"]) == (200, schema_id), answer.text
        taken = httpx.post(
            f"{url}/subjects/shipping.extra2-{session}.v1-value/versions",
            json={"schema": '"long"', "id": top - 500, "version": 1},
            auth=ADMIN,
        )
        assert (taken.status_code, taken.json()["error_code"]) == (422, 42205), taken.text
        assert new.update_mode(parcel_subject, "READONLY") == "READONLY"
        assert new.update_global_mode("READWRITE") == "READWRITE"

    with fresh_registry(kafka, log_topic, "import-secret") as url:  # a restart: the log replays
        replayed = SchemaRegistryClient({"url": url, **admin})
        assert replayed.get_global_mode() == "READWRITE"
        assert replayed.get_mode(parcel_subject) == "READONLY"
        latest = replayed.get_latest_version(parcel_subject)
        assert latest.schema_id == old_parcel.schema_id
        assert latest.guid == old_parcel.guid
        assert latest.schema.references == [reference]
        assert latest.schema.metadata is not None
        assert latest.schema.metadata.properties == metadata.properties
        assert latest.schema.rule_set is not None
        assert latest.schema.rule_set.domain_rules == [RULE]
        assert replayed.get_referenced_by(address_subject, 1) == [old_parcel.schema_id]

        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": f"import-{session}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        try:
            message = None
            for _ in range(60):
                message = consumer.poll(1.0)
                if message is not None and message.error() is None:
                    break
            assert message is not None
            assert message.error() is None
            deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
            assert deserializer(message.value(), context) == record
        finally:
            consumer.close()
