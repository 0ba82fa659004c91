"""The registry enforces the governance policies: a descriptor breaking an error-level
policy is refused with HTTP 422 and the violations in the body, against the real registry
service (Kafka store on the real broker)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mesh_stream.descriptor import DataProduct
from mesh_stream.governance.policies import BUILTIN_POLICIES, PartitionBounds
from tests.conftest import RegistryAddress


@pytest.fixture
def admin(registry: RegistryAddress) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, auth=("admin", registry.admin_token)) as client:
        yield client


def _schema(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "doc": f"{name} records.", "fields": fields}


def _descriptor(name: str, **changes: Any) -> dict[str, Any]:
    domain, local = name.split(".")
    document: dict[str, Any] = {
        "name": name,
        "domain": domain,
        "kind": "source-aligned",
        "description": "A product of the governance test.",
        "owner": {"team": "governance-test", "contact": "governance@mesh.example"},
        "schema": f"schemas/{domain}/{local}.avsc",
        "key_field": "id",
        "partitions": 3,
        "slos": {"freshness_seconds": 60, "availability": 99.5},
        "classification": "internal",
    }
    document.update(changes)
    return document


def _register(admin: httpx.Client, descriptor: dict[str, Any], schema: dict[str, Any]) -> None:
    subject = DataProduct.model_validate(descriptor).value_subject
    answer = admin.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(schema)})
    assert answer.status_code == 200, answer.text


def _expected(policy: str, message: str, field: str) -> dict[str, Any]:
    return {
        "policy": policy,
        "severity": "error",
        "message": f"{message} (fix: {BUILTIN_POLICIES[policy].fix})",
        "field": field,
    }


def test_registry_refuses_descriptor_breaking_policies(
    admin: httpx.Client, registry: RegistryAddress
) -> None:
    name = f"orders.governed-{uuid.uuid4().hex[:8]}"
    undocumented = {"name": "amount", "type": "long"}
    schema = _schema("Governed", [{"name": "id", "type": "string", "doc": "Key."}, undocumented])
    partitions = PartitionBounds().max + 1
    bad = _descriptor(name, partitions=partitions)
    subject = DataProduct.model_validate(bad).value_subject

    # the schema is judged when it is registered, before any descriptor points at it
    refused = admin.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(schema)})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error_code"] == 42218
    assert refused.json()["violations"] == [
        _expected(
            "documentation",
            f"field {schema['name']}.{undocumented['name']} has no doc",
            f"{schema['name']}.{undocumented['name']}",
        )
    ]
    assert admin.get(f"/subjects/{subject}/versions").status_code == 404

    undocumented["doc"] = "Amount in cents."
    _register(admin, bad, schema)
    answer = admin.put(f"/products/{name}", json=bad)

    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error_code"] == 42211
    assert body["violations"] == [
        _expected(
            "partition-bounds",
            f"partitions {partitions} is outside the platform bounds "
            f"{PartitionBounds().min}..{PartitionBounds().max}",
            "partitions",
        ),
    ]
    assert admin.get(f"/products/{name}").status_code == 404

    # the same product within the rules is accepted
    good = _descriptor(name)
    accepted = admin.put(f"/products/{name}", json=good)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["registry"]["warnings"] == []


def test_registry_checks_lineage_against_its_catalog(admin: httpx.Client) -> None:
    """PII flowing downstream and compatibility NONE under consumers need the catalog."""
    tag = uuid.uuid4().hex[:8]
    profile_name, digest_name = f"customers.profile-{tag}", f"analytics.digest-{tag}"
    profile_schema = _schema(
        "Profile",
        [
            {"name": "id", "type": "string", "doc": "Key."},
            {"name": "email", "type": "string", "doc": "E-mail.", "pii": True},
        ],
    )
    # analytics may read it: only the PII's flow downstream is judged here
    profile = _descriptor(profile_name, classification="pii", readers=["analytics"])
    _register(admin, profile, profile_schema)
    assert admin.put(f"/products/{profile_name}", json=profile).status_code == 200

    digest_schema = _schema("Digest", [{"name": "id", "type": "string", "doc": "Key."}])
    digest = _descriptor(digest_name, kind="aggregate", inputs=[profile_name])
    _register(admin, digest, digest_schema)
    refused = admin.put(f"/products/{digest_name}", json=digest)
    assert refused.status_code == 422, refused.text
    assert refused.json()["violations"] == [
        _expected(
            "pii-lineage",
            f"input {profile_name!r} carries PII (email) and {digest_name!r} is classified "
            f"'internal' without field_lineage showing the PII is dropped",
            "inputs[0]",
        )
    ]

    # with field lineage proving only the key flows, the digest is accepted
    digest["field_lineage"] = {"id": [f"{profile_name}:id"]}
    assert admin.put(f"/products/{digest_name}", json=digest).status_code == 200

    # now that the digest consumes the profile, compatibility NONE is refused
    loose = {**profile, "compatibility": "NONE"}
    refused = admin.put(f"/products/{profile_name}", json=loose)
    assert refused.status_code == 422, refused.text
    assert refused.json()["violations"] == [
        _expected(
            "compatibility-with-consumers",
            f"compatibility NONE is weaker than FULL_TRANSITIVE but {profile_name!r} is read by "
            f"{digest_name}, and no compatibility_reason says why",
            "compatibility",
        )
    ]


def test_a_pii_input_the_domain_may_not_read_is_refused(admin: httpx.Client) -> None:
    """h39: a domain not among a pii product's readers listed it as an input (a warning),
    and so held the owner's product: no delete, every schema change checked against it."""
    tag = uuid.uuid4().hex[:8]
    secret_name, built_name = f"customers.secret-{tag}", f"payments.built-{tag}"
    secret = _descriptor(secret_name, classification="pii", readers=[])
    _register(admin, secret, _schema("Secret", [{"name": "id", "type": "string", "doc": "K."}]))
    assert admin.put(f"/products/{secret_name}", json=secret).status_code == 200
    built = _descriptor(built_name, kind="aggregate", inputs=[secret_name], classification="pii")
    _register(admin, built, _schema("Built", [{"name": "id", "type": "string", "doc": "K."}]))
    refused = admin.put(f"/products/{built_name}", json=built)
    assert refused.status_code == 422, refused.text
    assert refused.json()["violations"] == [
        _expected(
            "pii-input-readers",
            f"input {secret_name!r} is classified pii and domain 'payments' is not among its "
            "readers (none): on a secured cluster the broker refuses this product's processor "
            "its records",
            "inputs[0]",
        )
    ]
    assert admin.delete(f"/products/{secret_name}").status_code in (200, 204)  # not held
