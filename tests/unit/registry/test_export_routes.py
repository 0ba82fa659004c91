"""``/products/{name}/asyncapi`` and ``/odcs`` on the in-process registry: generated from the
registry's own state (latest live version, its id, the effective compatibility), JSON or
YAML, the API's errors for unknown products and products without a live schema."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.unit.registry.conftest import ADMIN, descriptor

SUBJECT = "orders.order-placed.v1-value"


def avro(*extra: dict[str, Any]) -> str:
    fields: list[dict[str, Any]] = [
        {"name": "order_id", "type": "string", "doc": "Order id; the key."},
        {"name": "email", "type": "string", "pii": True, "doc": "Where the receipt goes."},
        *extra,
    ]
    return json.dumps({"type": "record", "name": "Placed", "doc": "An order.", "fields": fields})


def register(client: TestClient, text: str) -> int:
    answer = client.post(f"/subjects/{SUBJECT}/versions", json={"schema": text}, auth=ADMIN)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def put_product(client: TestClient) -> None:
    document = descriptor(key_field="order_id", compatibility="FULL")
    answer = client.put("/products/orders.order-placed", json=document, auth=ADMIN)
    assert answer.status_code == 200, answer.text


def test_asyncapi_of_a_product_follows_its_latest_live_version(client: TestClient) -> None:
    register(client, avro())
    put_product(client)
    level = client.put(f"/config/{SUBJECT}", json={"compatibility": "FULL"}, auth=ADMIN)
    assert level.status_code == 200, level.text
    second = register(
        client,
        avro({"name": "channel", "type": ["null", "string"], "default": None, "doc": "Web/app."}),
    )
    answer = client.get("/products/orders.order-placed/asyncapi")
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "orders.order-placed"
    assert document["info"]["version"] == "1.2.0"
    assert "servers" not in document  # the in-memory registry runs on no Kafka cluster
    message = document["components"]["messages"]["orders.order-placed"]
    assert message["x-mesh-schema-id"] == second
    assert message["x-mesh-schema-version"] == 2
    assert message["x-mesh-compatibility"] == "FULL"  # the subject's level, as enforced
    fields = {f["name"]: f for f in message["payload"]["schema"]["fields"]}
    assert fields["email"]["pii"] is True
    assert fields["channel"]["doc"] == "Web/app."
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    channel = document["channels"]["orders.order-placed"]
    assert channel["address"] == "orders.order-placed.v1"
    assert channel["x-mesh-owner"]["team"] == "checkout"

    as_yaml = client.get("/products/orders.order-placed/asyncapi", params={"format": "yaml"})
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == document
    odd = client.get("/products/orders.order-placed/asyncapi", params={"format": "xml"})
    assert odd.status_code == 422
    assert "error_code" in odd.json()


def test_odcs_endpoint_answers_the_contract(client: TestClient) -> None:
    register(client, avro())
    put_product(client)
    answer = client.get("/products/orders.order-placed/odcs")
    assert answer.status_code == 200, answer.text
    contract = answer.json()
    assert contract["kind"] == "DataContract"
    assert contract["id"] == "orders.order-placed"
    assert contract["version"] == "1.0.0"
    as_yaml = client.get("/products/orders.order-placed/odcs", params={"format": "yaml"})
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == contract


def test_unknown_product_and_hostile_names_are_the_apis_404(client: TestClient) -> None:
    for route in ("asyncapi", "odcs"):
        answer = client.get(f"/products/orders.nothing-here/{route}")
        assert answer.status_code == 404
        assert answer.json() == {
            "error_code": 40404,
            "message": "Product 'orders.nothing-here' not found.",
        }
    for hostile in ("%00x", "x%27%20OR%201=1", "%E2%98%83" * 200, "..%2F..%2Fetc"):
        answer = client.get(f"/products/{hostile}/asyncapi")
        assert answer.status_code == 404, (hostile, answer.text)
        assert answer.json()["error_code"] in (40404, 404)


def test_a_product_without_a_live_schema_is_404_naming_its_subject(client: TestClient) -> None:
    register(client, avro())
    put_product(client)
    deleted = client.delete(f"/subjects/{SUBJECT}/versions/1", auth=ADMIN)
    assert deleted.status_code == 200, deleted.text
    answer = client.get("/products/orders.order-placed/asyncapi")
    assert answer.status_code == 404
    assert answer.json()["error_code"] == 40401
    assert SUBJECT in answer.json()["message"]
    assert "orders.order-placed" in answer.json()["message"]
