"""Evolution that protects consumers, on the real registry over the real broker.

An upstream product (orders) is read by a downstream product (analytics) whose field_lineage
reads ``order_id`` and ``total_amount``. Removing or retyping those fields is refused with
409 naming the downstream product and the field on every write path -- raw Confluent
register with the domain token, our SDK's first use, `mesh products apply` -- and a weaker
declared level without a reason is refused on ``PUT /products``; nothing is stored. A
compatible change (an optional field with a default) is still accepted.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from mesh_stream.errors import IncompatibleSchemaError
from mesh_stream.producer import open_publisher
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.test_domain_workflow import _mesh

UPSTREAM_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Placed",
    "namespace": "com.example.orders",
    "doc": "An order as placed.",
    "fields": [
        {"name": "order_id", "type": "string", "doc": "Order id; the Kafka key."},
        {"name": "total_amount", "type": "double", "doc": "Order total."},
        {"name": "channel", "type": "string", "doc": "Where it was placed."},
    ],
}
READER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "OrderValue",
    "namespace": "com.example.analytics",
    "doc": "The value of an order.",
    "fields": [
        {"name": "order_id", "type": "string", "doc": "Order id; the Kafka key."},
        {"name": "value", "type": "double", "doc": "Order total."},
    ],
}
DESCRIPTOR = """\
name: {name}
domain: {domain}
kind: {kind}
description: A product of the consumer-protection test.
owner: {{team: {domain}-team, contact: {domain}-team@example.com}}
schema: schemas/{domain}/{local}.avsc
key_field: order_id
partitions: 1
retention: {{ms: 604800000, cleanup_policy: delete}}
slos: {{freshness_seconds: 60, availability: 99.5}}
classification: internal
"""


def _without(field: str) -> dict[str, Any]:
    schema = copy.deepcopy(UPSTREAM_SCHEMA)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    return schema


def _retyped(field: str, type_: str) -> dict[str, Any]:
    schema = copy.deepcopy(UPSTREAM_SCHEMA)
    for item in schema["fields"]:
        if item["name"] == field:
            item["type"] = type_
    return schema


@dataclass
class Mesh:
    """The upstream product, its reader, and the orders domain's project folder."""

    registry: RegistryAddress
    kafka: KafkaAddress
    root: Path
    upstream: str
    reader: str

    @property
    def subject(self) -> str:
        return f"{self.upstream}.v1-value"

    @property
    def local(self) -> str:
        return self.upstream.partition(".")[2]

    def auth(self, domain: str) -> tuple[str, str]:
        return domain, self.registry.tokens[domain]

    def register(self, schema: dict[str, Any], domain: str = "orders", subject: str = "") -> Any:
        return httpx.post(
            f"{self.registry.url}/subjects/{subject or self.subject}/versions",
            json={"schema": json.dumps(schema)},
            auth=self.auth(domain),
            timeout=10,
        )

    def versions(self) -> list[int]:
        answer = httpx.get(f"{self.registry.url}/subjects/{self.subject}/versions", timeout=10)
        answer.raise_for_status()
        return [int(v) for v in answer.json()]

    def write_schema(self, schema: dict[str, Any]) -> None:
        path = self.root / "schemas" / "orders" / f"{self.local}.avsc"
        path.write_text(json.dumps(schema, indent=2))

    @property
    def env(self) -> dict[str, str]:
        return {
            "MESH_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MESH_REGISTRY_URL": self.registry.url,
            "MESH_REGISTRY_PRINCIPAL": "orders",
            "MESH_REGISTRY_TOKEN": self.registry.tokens["orders"],
            "MESH_PROJECT_ROOT": "",
        }


def _descriptor(name: str, kind: str) -> str:
    domain, _, local = name.partition(".")
    return DESCRIPTOR.format(name=name, domain=domain, kind=kind, local=local)


@pytest.fixture(scope="module")
def mesh(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path_factory: pytest.TempPathFactory
) -> Mesh:
    tag = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("orders-project")
    found = Mesh(registry, kafka, root, f"orders.placed-{tag}", f"analytics.value-{tag}")
    (root / "mesh.yaml").write_text("name: orders\ndomains: [orders]\n")
    (root / "domains" / "orders" / "products").mkdir(parents=True)
    (root / "domains" / "orders" / "products" / f"{found.local}.yaml").write_text(
        _descriptor(found.upstream, "source-aligned")
    )
    (root / "schemas" / "orders").mkdir(parents=True)
    found.write_schema(UPSTREAM_SCHEMA)
    # the upstream, as its domain registers it
    assert found.register(UPSTREAM_SCHEMA).status_code == 200
    assert httpx.put(
        f"{registry.url}/products/{found.upstream}",
        json=_document(found.upstream, "source-aligned"),
        auth=found.auth("orders"),
        timeout=10,
    ).is_success
    # the reader, as the analytics domain registers it
    reader_subject = f"{found.reader}.v1-value"
    assert found.register(READER_SCHEMA, "analytics", reader_subject).status_code == 200
    reader = _document(found.reader, "aggregate")
    reader["inputs"] = [found.upstream]
    reader["field_lineage"] = {
        "order_id": [f"{found.upstream}:order_id"],
        "value": [f"{found.upstream}:total_amount"],
    }
    answer = httpx.put(
        f"{registry.url}/products/{found.reader}",
        json=reader,
        auth=found.auth("analytics"),
        timeout=10,
    )
    assert answer.is_success, answer.text
    return found


def _document(name: str, kind: str) -> dict[str, Any]:
    document = yaml.safe_load(_descriptor(name, kind))
    assert isinstance(document, dict)
    return document


def _names_reader_and_field(mesh: Mesh, message: str, field: str) -> None:
    assert mesh.reader in message, message
    assert f"reads field {field} (field_lineage)" in message, message
    assert "fix:" in message, message


@pytest.mark.parametrize(
    ("schema", "field", "change"),
    [
        (_without("total_amount"), "total_amount", "which the new version removes"),
        (_without("order_id"), "order_id", "which the new version removes"),
        (
            _retyped("total_amount", "string"),
            "total_amount",
            "which the new version retypes from double to string",
        ),
    ],
    ids=["remove-total_amount", "remove-order_id", "retype-total_amount"],
)
def test_raw_confluent_register_is_refused(
    mesh: Mesh, schema: dict[str, Any], field: str, change: str
) -> None:
    before = mesh.versions()
    answer = mesh.register(schema)
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["error_code"] == 409
    _names_reader_and_field(mesh, body["message"], field)
    assert change in body["message"]
    assert mesh.versions() == before


def test_the_sdk_first_use_is_refused(mesh: Mesh) -> None:
    before = mesh.versions()
    mesh.write_schema(_retyped("total_amount", "string"))
    settings = MeshSettings(
        bootstrap_servers=mesh.kafka.bootstrap_servers,
        registry_url=mesh.registry.url,
        registry_principal="orders",
        registry_token=SecretStr(mesh.registry.tokens["orders"]),
    )
    try:
        with pytest.raises(IncompatibleSchemaError) as refused:
            open_publisher(mesh.upstream, settings=settings, root=mesh.root)
    finally:
        mesh.write_schema(UPSTREAM_SCHEMA)
    assert refused.value.status == 409
    _names_reader_and_field(mesh, str(refused.value), "total_amount")
    assert mesh.versions() == before


def test_mesh_products_apply_is_refused(mesh: Mesh) -> None:
    before = mesh.versions()
    mesh.write_schema(_without("total_amount"))
    try:
        refused = _mesh(["products", "apply"], mesh.root, mesh.env)
    finally:
        mesh.write_schema(UPSTREAM_SCHEMA)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert "[compatibility-with-consumers]" in refused.stderr
    _names_reader_and_field(mesh, refused.stderr, "total_amount")
    assert mesh.versions() == before
    # said once: the subject's own level (BACKWARD) lets a removal through, so the readers'
    # refusal is not repeated as a schema-compatibility one under that level (h28)
    assert "[schema-compatibility]" not in refused.stderr
    assert "error: nothing applied: 1 refusal(s) above" in refused.stderr


def test_put_products_refuses_a_weaker_level_without_a_reason(mesh: Mesh) -> None:
    loose = {**_document(mesh.upstream, "source-aligned"), "compatibility": "BACKWARD"}
    answer = httpx.put(
        f"{mesh.registry.url}/products/{mesh.upstream}",
        json=loose,
        auth=mesh.auth("orders"),
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    [violation] = [v for v in answer.json()["violations"] if v["severity"] == "error"]
    assert violation["policy"] == "compatibility-with-consumers"
    assert f"is read by {mesh.reader}" in violation["message"]
    assert "compatibility_reason" in violation["message"]
    stored = httpx.get(f"{mesh.registry.url}/products/{mesh.upstream}", timeout=10).json()
    assert "compatibility" not in stored


def test_a_compatible_change_is_accepted(mesh: Mesh) -> None:
    before = mesh.versions()
    added = copy.deepcopy(UPSTREAM_SCHEMA)
    added["fields"].append(
        {
            "name": f"coupon_{len(before)}",
            "type": ["null", "string"],
            "default": None,
            "doc": "Coupon code, if any.",
        }
    )
    answer = mesh.register(added)
    assert answer.status_code == 200, answer.text
    assert mesh.versions() == [*before, before[-1] + 1]
