"""Ownership on the running registry: a domain writes only its own subjects and products."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.conftest import RegistryAddress

SCHEMA = {
    "type": "record",
    "name": "Paid",
    "namespace": "payments",
    "doc": "A settled payment.",
    "fields": [{"name": "amount", "type": "double", "doc": "Amount paid in EUR."}],
}


def _descriptor(name: str) -> dict[str, object]:
    return {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": "Payments settled",
        "owner": {"team": "payments-core", "contact": "pay@example.com"},
        "schema": "schemas/payments/paid.avsc",
        "slos": {"freshness_seconds": 10, "availability": 99.5},
        "classification": "confidential",
        "tags": ["money"],
    }


def test_domain_credential_is_refused_on_another_domains_subject_and_product(
    registry: RegistryAddress,
) -> None:
    name = f"payments.paid-{uuid.uuid4().hex[:6]}"
    subject = f"{name}.v1-value"
    payments = ("payments", registry.tokens["payments"])
    orders = ("orders", registry.tokens["orders"])
    body = {"schema": json.dumps(SCHEMA)}

    refused = httpx.post(f"{registry.url}/subjects/{subject}/versions", json=body, auth=orders)
    assert refused.status_code == 403
    assert refused.json() == {
        "error_code": 40301,
        "message": f"principal 'orders' may not register schemas under subject '{subject}': "
        f"a domain writes only subjects named 'orders.…'",
    }
    anonymous = httpx.post(f"{registry.url}/subjects/{subject}/versions", json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == 40101
    wrong = httpx.post(
        f"{registry.url}/subjects/{subject}/versions", json=body, auth=("payments", "nope")
    )
    assert wrong.status_code == 401

    owned = httpx.post(
        f"{registry.url}/subjects/{subject}/versions",
        json=body,
        headers={"Authorization": f"Bearer {registry.tokens['payments']}"},
    )
    assert owned.status_code == 200, owned.text

    product = httpx.put(f"{registry.url}/products/{name}", json=_descriptor(name), auth=orders)
    assert product.status_code == 403
    assert product.json()["error_code"] == 40301
    assert f"product '{name}': it belongs to domain 'payments'" in product.json()["message"]
    assert httpx.get(f"{registry.url}/products/{name}").json()["error_code"] == 40404

    created = httpx.put(f"{registry.url}/products/{name}", json=_descriptor(name), auth=payments)
    assert created.status_code == 200, created.text
    assert created.json()["registry"]["schema_id"] == owned.json()["id"]
    assert httpx.delete(f"{registry.url}/products/{name}", auth=orders).status_code == 403
    config = httpx.put(
        f"{registry.url}/config/{subject}", json={"compatibility": "NONE"}, auth=orders
    )
    assert config.status_code == 403
    assert (
        httpx.put(
            f"{registry.url}/config", json={"compatibility": "NONE"}, auth=payments
        ).status_code
        == 403
    )
    # Reads are open by default; admin may write anything.
    assert httpx.get(f"{registry.url}/products/{name}").status_code == 200
    admin = ("admin", registry.admin_token)
    assert httpx.delete(f"{registry.url}/products/{name}", auth=admin).status_code == 204
