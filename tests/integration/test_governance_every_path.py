"""One governance gate for every schema write: a policy-breaking schema (a field with no doc,
marked PII, in an `internal` product) sent with a domain token through each write path --
raw Confluent HTTP, confluent-kafka's SchemaRegistryClient and AvroSerializer with
auto-register, our SDK's open_publisher, `mesh products apply` -- is refused with the
policies named, and nothing is stored (versions and schema ids unchanged). Real broker,
real registry (the session fixtures)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import SecretStr

from mesh_stream.errors import SchemaRejectedError
from mesh_stream.producer import open_publisher
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.test_domain_workflow import Outcome, _mesh

DOMAIN = "orders"
POLICIES = {"documentation", "pii-classification"}

GOOD = {
    "type": "record",
    "name": "Gated",
    "namespace": "com.example.orders",
    "doc": "An event of the governance gate test.",
    "fields": [
        {"name": "order_id", "type": "string", "doc": "Order id; the Kafka key."},
        {"name": "amount", "type": "long", "doc": "Amount in cents."},
    ],
}
# No doc, marked PII, in an `internal` product: two schema-level policies broken at once.
BAD = {
    **GOOD,
    "fields": [
        *GOOD["fields"],
        {"name": "email", "type": ["null", "string"], "default": None, "pii": True},
    ],
}

DESCRIPTOR = """\
name: {name}
domain: orders
kind: source-aligned
description: A product of the governance gate test.
owner: {{team: orders-team, contact: orders-team@example.com}}
schema: schemas/orders/{local}.avsc
key_field: order_id
partitions: 1
retention: {{ms: 604800000, cleanup_policy: delete}}
slos: {{freshness_seconds: 60, availability: 99.5}}
classification: internal
tags: [orders]
"""

# The team switched the two policies off locally; the registry still holds it to them.
LAX_POLICIES = """\
policies:
  documentation: {severity: "off"}
  pii-classification: {severity: "off"}
"""


class Gated:
    """A registered product (v1 = GOOD, through `mesh products apply`) and its project."""

    def __init__(self, kafka: KafkaAddress, registry: RegistryAddress, root: Path) -> None:
        self.local = f"gated-{uuid.uuid4().hex[:8]}"
        self.name = f"{DOMAIN}.{self.local}"
        self.topic = f"{self.name}.v1"
        self.subject = f"{self.topic}-value"
        self.registry = registry
        self.root = root
        self.env = {
            "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MESH_REGISTRY_URL": registry.url,
            "MESH_REGISTRY_PRINCIPAL": DOMAIN,
            "MESH_REGISTRY_TOKEN": registry.tokens[DOMAIN],
            "MESH_PROJECT_ROOT": "",
        }
        self.settings = MeshSettings(
            bootstrap_servers=kafka.bootstrap_servers,
            registry_url=registry.url,
            registry_principal=DOMAIN,
            registry_token=SecretStr(registry.tokens[DOMAIN]),
        )
        (root / "mesh.yaml").write_text(
            f"name: {DOMAIN}\ndomains: [{DOMAIN}]\nproducts: domains\nschemas: schemas\n"
        )
        (root / "mesh-policies.yaml").write_text(LAX_POLICIES)
        products = root / "domains" / DOMAIN / "products"
        products.mkdir(parents=True)
        (products / f"{self.local}.yaml").write_text(
            DESCRIPTOR.format(name=self.name, local=self.local)
        )
        (root / "schemas" / DOMAIN).mkdir(parents=True)
        self.write_schema(GOOD)

    def write_schema(self, schema: dict[str, Any]) -> None:
        (self.root / "schemas" / DOMAIN / f"{self.local}.avsc").write_text(json.dumps(schema))

    def apply(self) -> Outcome:
        return _mesh(["products", "apply"], self.root, self.env)

    def versions(self) -> list[int]:
        answer = httpx.get(f"{self.registry.url}/subjects/{self.subject}/versions", timeout=10)
        answer.raise_for_status()
        return [int(v) for v in answer.json()]

    def new_id(self) -> int:
        """The id the registry gives a schema it has never seen (registered as admin under a
        scratch subject): proves no id was consumed in between."""
        unique = uuid.uuid4().hex
        probe = {"type": "record", "name": f"Probe{unique}", "doc": "An id probe.", "fields": []}
        answer = httpx.post(
            f"{self.registry.url}/subjects/{DOMAIN}.probe-{unique}/versions",
            json={"schema": json.dumps(probe)},
            auth=("admin", self.registry.admin_token),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return int(answer.json()["id"])


@pytest.fixture
def gated(kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path) -> Gated:
    product = Gated(kafka, registry, tmp_path)
    applied = product.apply()
    assert applied.exit_code == 0, applied.stderr
    assert product.versions() == [1]
    product.write_schema(BAD)
    return product


def _policies_named(message: str) -> None:
    for policy in POLICIES:
        assert policy in message, message


def _nothing_stored(gated: Gated, before: int) -> None:
    assert gated.versions() == [1]
    lookup = httpx.post(
        f"{gated.registry.url}/subjects/{gated.subject}",
        json={"schema": json.dumps(BAD)},
        timeout=10,
    )
    assert lookup.status_code == 404
    assert lookup.json()["error_code"] == 40403
    assert gated.new_id() == before + 1  # the refused schema took no id
    product = httpx.get(f"{gated.registry.url}/products/{gated.name}", timeout=10).json()
    assert product["registry"]["schema_version"] == 1


def test_raw_confluent_http_is_refused(gated: Gated) -> None:
    before = gated.new_id()
    answer = httpx.post(
        f"{gated.registry.url}/subjects/{gated.subject}/versions",
        json={"schema": json.dumps(BAD)},
        auth=(DOMAIN, gated.registry.tokens[DOMAIN]),
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error_code"] == 42218
    _policies_named(body["message"])
    assert {(v["policy"], v["field"]) for v in body["violations"]} == {
        ("documentation", "Gated.email"),
        ("pii-classification", "Gated.email"),
    }
    _nothing_stored(gated, before)


def test_confluent_schema_registry_client_is_refused(gated: Gated) -> None:
    client = SchemaRegistryClient(
        {
            "url": gated.registry.url,
            "basic.auth.user.info": f"{DOMAIN}:{gated.registry.tokens[DOMAIN]}",
        }
    )
    before = gated.new_id()
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(gated.subject, Schema(json.dumps(BAD), "AVRO"))
    assert refused.value.http_status_code == 422
    assert refused.value.error_code == 42218
    _policies_named(refused.value.error_message)
    _nothing_stored(gated, before)


def test_confluent_avro_serializer_auto_register_is_refused(gated: Gated) -> None:
    client = SchemaRegistryClient(
        {
            "url": gated.registry.url,
            "basic.auth.user.info": f"{DOMAIN}:{gated.registry.tokens[DOMAIN]}",
        }
    )
    serializer = AvroSerializer(client, json.dumps(BAD), conf={"auto.register.schemas": True})
    before = gated.new_id()
    with pytest.raises(SchemaRegistryError) as refused:
        serializer(
            {"order_id": "o-1", "amount": 5, "email": "a@example.com"},
            SerializationContext(gated.topic, MessageField.VALUE),
        )
    assert refused.value.error_code == 42218
    _policies_named(refused.value.error_message)
    _nothing_stored(gated, before)


def test_sdk_open_publisher_is_refused(gated: Gated) -> None:
    before = gated.new_id()
    with pytest.raises(SchemaRejectedError) as refused:
        open_publisher(gated.name, settings=gated.settings, root=gated.root)
    assert refused.value.error_code == 42218
    assert {v["policy"] for v in refused.value.violations} == POLICIES
    _policies_named(str(refused.value))
    _nothing_stored(gated, before)


def test_mesh_products_apply_is_refused(gated: Gated) -> None:
    before = gated.new_id()
    refused = gated.apply()
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    _policies_named(refused.stderr)
    # the plan asked the registry (POST /products/{name}/check) before writing anything
    assert "nothing applied" in refused.stderr
    _nothing_stored(gated, before)
