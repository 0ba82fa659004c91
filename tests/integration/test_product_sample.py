"""The live sample on the real broker: records published with the SDK into a product with PII
fields (top-level and nested) come back through ``GET /products/{name}/sample`` decoded, with
their exact partitions and offsets; the owning domain sees the values, another domain and an
anonymous reader see masks; a record that is not Avro is an error line, not a failure."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct
from mesh_stream.kafka.clients import make_admin, make_producer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.sample import MASK
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress

TOKENS = {"admin": "admin-secret", "customers": "customers-secret", "orders": "orders-secret"}

SCHEMA = {
    "type": "record",
    "name": "Member",
    "namespace": "io.meshstream.test",
    "doc": "A loyalty member.",
    "fields": [
        {"name": "member_id", "type": "string", "doc": "Id; the Kafka key."},
        {"name": "email", "type": "string", "pii": True, "doc": "Contact address."},
        {
            "name": "address",
            "doc": "Postal address.",
            "type": {
                "type": "record",
                "name": "Address",
                "doc": "Where the member lives.",
                "fields": [
                    {"name": "street", "type": "string", "pii": True, "doc": "Street, number."},
                    {"name": "city", "type": "string", "doc": "City."},
                ],
            },
        },
        {"name": "points", "type": "long", "doc": "Loyalty points."},
    ],
}


def _member(i: int) -> dict[str, Any]:
    return {
        "member_id": f"m-{i:02d}",
        "email": f"member{i}@example.org",
        "address": {"street": f"{i} Canal Street", "city": ("Leeds", "Lyon", "Linz")[i % 3]},
        "points": 100 * i,
    }


def test_sample_is_decoded_exact_and_masked_for_other_domains(kafka: KafkaAddress) -> None:
    session = uuid.uuid4().hex[:8]
    name = f"customers.members-{session}"
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in TOKENS.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-sample-{session}",
        registry_writer_id=f"mesh-registry-sample-{session}",
    )
    app, store = build_registry(settings, validators=())
    running = RegistryServer(app)
    product = DataProduct.model_validate(
        {
            "name": name,
            "domain": "customers",
            "kind": "source-aligned",
            "description": "Loyalty members, with their contact details.",
            "owner": {"team": "loyalty", "contact": "loyalty@example.org"},
            "schema": "schemas/customers/members.avsc",
            "key_field": "member_id",
            "partitions": 3,
            "slos": {"freshness_seconds": 60, "availability": 99.0},
            "classification": "pii",
        }
    )
    connection = KafkaConnection.create(kafka.bootstrap_servers, client_id="sample-test")
    try:
        url = running.start()
        with RegistryClient(url, principal="customers", token=TOKENS["customers"]) as client:
            empty_before = None
            with ProductPublisher(
                product, connection=connection, registry=client, schema=SCHEMA
            ) as publisher:
                client.put_product(product.to_document())
                empty_before = httpx.get(
                    f"{url}/products/{name}/sample", auth=("customers", TOKENS["customers"])
                )
                for i in range(9):
                    publisher.publish(_member(i))
                publisher.flush()
        # a record that is not Avro at all, newest of them all, on partition 0
        raw = make_producer(connection)
        raw.produce(
            product.topic,
            key=b"m-xx",
            value=b"plain text",
            partition=0,
            timestamp=int(time.time() * 1000) + 60_000,
        )
        assert raw.flush(10) == 0

        assert empty_before is not None
        assert empty_before.status_code == 200
        assert empty_before.json()["records"] == []
        assert empty_before.json()["note"] == f"topic {product.topic} holds no records yet"

        started = time.monotonic()
        owner = httpx.get(
            f"{url}/products/{name}/sample",
            params={"limit": 100},
            auth=("customers", TOKENS["customers"]),
            timeout=10,
        )
        assert time.monotonic() - started < 5
        assert owner.status_code == 200, owner.text
        body = owner.json()
        assert body["complete"] is True
        assert body["masked"] == []
        assert body["fields"] == ["member_id", "email", "address", "points"]
        records = body["records"]
        assert len(records) == 10
        bad, good = records[0], records[1:]
        assert bad["value"] is None
        assert bad["key"] == "m-xx"
        assert bad["partition"] == 0
        assert bad["error"].startswith(f"{product.topic}[0]@")
        assert "magic byte" in bad["error"]
        assert all(r["error"] is None for r in good)
        by_key = {r["key"]: r for r in good}
        assert sorted(by_key) == [f"m-{i:02d}" for i in range(9)]
        for i in range(9):
            assert by_key[f"m-{i:02d}"]["value"] == _member(i)
        # each partition's offsets are exactly 0..n-1 (an idempotent producer, no gaps), and
        # the error line's offset follows its partition's last record
        offsets: dict[int, list[int]] = {}
        for record in good:
            offsets.setdefault(record["partition"], []).append(record["offset"])
        for found in offsets.values():
            assert sorted(found) == list(range(len(found)))
        assert bad["offset"] == len(offsets.get(0, []))
        assert sum(len(v) for v in offsets.values()) == 9

        other = httpx.get(
            f"{url}/products/{name}/sample",
            params={"limit": 100},
            auth=("orders", TOKENS["orders"]),
            timeout=10,
        ).json()
        assert other["masked"] == ["address.street", "email"]
        masked = {r["key"]: r["value"] for r in other["records"][1:]}
        for i in range(9):
            assert masked[f"m-{i:02d}"] == {
                "member_id": f"m-{i:02d}",
                "email": MASK,
                "address": {"street": MASK, "city": ("Leeds", "Lyon", "Linz")[i % 3]},
                "points": 100 * i,
            }
        assert "example.org" not in json.dumps(other)
        assert "Canal Street" not in json.dumps(other)

        anonymous = httpx.get(f"{url}/products/{name}/sample", params={"limit": 3}, timeout=10)
        assert anonymous.status_code == 200
        newest = anonymous.json()["records"]
        assert len(newest) == 3
        assert [r["offset"] for r in newest[:1]] == [bad["offset"]]
        assert all(r["value"]["email"] == MASK for r in newest[1:])

        admin = httpx.get(
            f"{url}/products/{name}/sample", params={"limit": 2}, auth=("admin", TOKENS["admin"])
        ).json()
        assert admin["masked"] == []
        assert "@example.org" in admin["records"][1]["value"]["email"]

        # a registered product nobody published to: a note, and reading creates no topic
        unpublished = product.model_copy(update={"name": f"customers.quiet-{session}"})
        with RegistryClient(url, principal="customers", token=TOKENS["customers"]) as client:
            client.register_schema(unpublished.value_subject, SCHEMA)
            client.put_product(unpublished.to_document())
        quiet = httpx.get(
            f"{url}/products/{unpublished.name}/sample", auth=("customers", TOKENS["customers"])
        )
        assert quiet.status_code == 200, quiet.text
        assert quiet.json()["records"] == []
        assert quiet.json()["note"] == (
            f"topic {unpublished.topic} does not exist yet: nothing published"
        )
        topics = make_admin(connection).list_topics(timeout=10).topics
        assert unpublished.topic not in topics
    finally:
        running.stop()
        store.close()
