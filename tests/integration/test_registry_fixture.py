"""The session `registry` fixture serves the real registry, with the sample credentials."""

from __future__ import annotations

import json

import httpx

from tests.conftest import RegistryAddress


def test_registry_fixture_registers_and_serves_a_schema(registry: RegistryAddress) -> None:
    schema = {
        "type": "record",
        "name": "Probe",
        "doc": "A probe.",
        "fields": [{"name": "n", "type": "long", "doc": "A number."}],
    }
    subject = "orders.fixture-probe.v1-value"
    response = httpx.post(
        f"{registry.url}/subjects/{subject}/versions",
        json={"schema": json.dumps(schema)},
        auth=("orders", registry.tokens["orders"]),
    )
    assert response.status_code == 200, response.text
    schema_id = response.json()["id"]
    fetched = httpx.get(f"{registry.url}/schemas/ids/{schema_id}").json()
    assert json.loads(fetched["schema"]) == schema
    assert set(registry.tokens) == {
        "admin",
        "orders",
        "payments",
        "shipping",
        "customers",
        "analytics",
    }
