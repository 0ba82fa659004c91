"""The governance gate on the Confluent register path (POST /subjects/{s}/versions).

Each schema-level policy refuses a new version of a product's subject with 422/42218, the
policy named and nothing stored; reads (lookup, compatibility) are not gated.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from mesh_stream.errors import SchemaRejectedError
from mesh_stream.governance import registry_validator
from mesh_stream.registry.error_codes import error_for
from mesh_stream.registry.service import InMemoryStore
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, descriptor, make_client

PLACED = "orders.order-placed.v1-value"
PAYMENTS = ("payments", TOKENS["payments"])


def record(name: str, *fields: dict[str, Any], doc: str | None = "A record.") -> str:
    document: dict[str, Any] = {"type": "record", "name": name, "fields": list(fields)}
    if doc is not None:
        document["doc"] = doc
    return json.dumps(document)


def field(name: str, doc: str | None = "Documented.", **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "type": "string", **extra}
    if doc is not None:
        found["doc"] = doc
    return found


def optional(name: str, doc: str | None = "Documented.", **extra: Any) -> dict[str, Any]:
    return field(name, doc, **extra) | {"type": ["null", "string"], "default": None}


def governed() -> TestClient:
    return make_client(InMemoryStore(), validators=(registry_validator(),))


def register(client: TestClient, subject: str, schema: str, auth: Any = ORDERS) -> Any:
    return client.post(f"/subjects/{subject}/versions", json={"schema": schema}, auth=auth)


def put_product(client: TestClient, document: dict[str, Any], auth: Any = ADMIN) -> None:
    answer = client.put(f"/products/{document['name']}", json=document, auth=auth)
    assert answer.status_code == 200, answer.text


def placed_product(client: TestClient, **changes: Any) -> dict[str, Any]:
    """orders.order-placed (internal, keyed by order_id) with a documented first version."""
    first = register(client, PLACED, record("Placed", field("order_id")))
    assert first.status_code == 200, first.text
    document = descriptor(key_field="order_id", **changes)
    put_product(client, document)
    return dict(first.json())


def assert_refused(answer: Any, policy: str, field_path: str | None = None) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error_code"] == 42218
    assert "refused by governance" in body["message"]
    assert policy in body["message"]
    errors = [v for v in body["violations"] if v["severity"] == "error"]
    assert policy in {v["policy"] for v in errors}
    if field_path is not None:
        assert field_path in {v["field"] for v in errors if v["policy"] == policy}
    assert all("(fix: " in v["message"] for v in errors)
    return dict(body)


def assert_nothing_stored(client: TestClient, subject: str, versions: list[int]) -> None:
    answer = client.get(f"/subjects/{subject}/versions", auth=ADMIN)
    if versions:
        assert answer.json() == versions
    else:
        assert answer.status_code == 404


def test_an_undocumented_field_is_refused_on_the_confluent_path() -> None:
    client = governed()
    first = placed_product(client)
    answer = register(client, PLACED, record("Placed", field("order_id"), optional("note", None)))
    assert_refused(answer, "documentation", "Placed.note")
    assert_nothing_stored(client, PLACED, [1])
    # no id was consumed: the next accepted schema takes the next id
    fixed = register(client, PLACED, record("Placed", field("order_id"), optional("note")))
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["id"] == first["id"] + 1
    assert fixed.json()["version"] == 2


def test_a_pii_field_in_an_internal_product_is_refused() -> None:
    client = governed()
    placed_product(client)
    answer = register(
        client, PLACED, record("Placed", field("order_id"), optional("email", pii=True))
    )
    assert_refused(answer, "pii-classification", "Placed.email")
    assert_nothing_stored(client, PLACED, [1])
    assert client.get("/products/orders.order-placed", auth=ADMIN).json()["registry"]


def test_the_same_pii_field_is_accepted_in_a_pii_product() -> None:
    client = governed()
    placed_product(client, classification="pii")
    answer = register(
        client, PLACED, record("Placed", field("order_id"), optional("email", pii=True))
    )
    assert answer.status_code == 200, answer.text


def test_admin_is_held_to_the_same_schema_policies() -> None:
    client = governed()
    placed_product(client)
    answer = register(
        client, PLACED, record("Placed", field("order_id"), optional("email", pii=True)), ADMIN
    )
    assert_refused(answer, "pii-classification")
    assert_nothing_stored(client, PLACED, [1])


def test_dropping_the_key_field_is_refused() -> None:
    client = governed()
    placed_product(client)
    # BACKWARD allows removing a field; the descriptor's key_field does not
    answer = register(client, PLACED, record("Placed", optional("customer_id")))
    assert_refused(answer, "key-field", "key_field")
    assert_nothing_stored(client, PLACED, [1])


def _pii_source_and_summary(client: TestClient) -> str:
    """payments.card-holder (pii, email marked) feeding orders.order-summary (internal)."""
    holder = "payments.card-holder.v1-value"
    schema = record("Holder", field("holder_id"), field("email", pii=True))
    assert register(client, holder, schema, PAYMENTS).status_code == 200
    put_product(
        client,
        descriptor(
            "payments.card-holder",
            classification="pii",
            schema="schemas/payments/card-holder.avsc",
        ),
    )
    summary = "orders.order-summary.v1-value"
    assert register(client, summary, record("Summary", field("holder_id"))).status_code == 200
    put_product(
        client,
        descriptor(
            "orders.order-summary",
            kind="aggregate",
            inputs=["payments.card-holder"],
            field_lineage={"holder_id": ["payments.card-holder:holder_id"]},
            schema="schemas/orders/order-summary.avsc",
        ),
    )
    return summary


def test_an_output_field_of_unknown_origin_next_to_pii_inputs_is_refused() -> None:
    client = governed()
    summary = _pii_source_and_summary(client)
    answer = register(client, summary, record("Summary", field("holder_id"), optional("email")))
    assert_refused(answer, "pii-lineage", "field_lineage")
    assert_nothing_stored(client, summary, [1])


def test_dropping_a_field_the_field_lineage_names_is_refused() -> None:
    client = governed()
    summary = _pii_source_and_summary(client)
    answer = register(client, summary, record("Summary", optional("total")))
    assert_refused(answer, "field-lineage-resolves", "field_lineage.holder_id")
    assert_nothing_stored(client, summary, [1])


def test_a_subject_without_product_gets_the_documentation_policy_only() -> None:
    client = governed()
    undocumented = record("Placed", field("order_id", None), doc=None)
    answer = register(client, PLACED, undocumented)
    body = assert_refused(answer, "documentation", "Placed.order_id")
    assert "no product yet" in body["message"]
    assert_nothing_stored(client, PLACED, [])
    # PII marks wait for the descriptor (its classification decides); PUT /products checks
    marked = record("Placed", field("order_id"), field("email", pii=True))
    assert register(client, PLACED, marked).status_code == 200
    refused = client.put(
        "/products/orders.order-placed", json=descriptor(key_field="order_id"), auth=ADMIN
    )
    assert refused.status_code == 422
    assert refused.json()["error_code"] == 42211


def test_subjects_that_are_no_product_contract_are_not_gated() -> None:
    client = governed()
    undocumented = record("Key", field("order_id", None), doc=None)
    for subject in ("orders.order-placed.v1-key", "orders.scratch", "orders.x.v1-value.old"):
        assert register(client, subject, undocumented).status_code == 200, subject
    assert register(client, "plain-value", undocumented, ADMIN).status_code == 200


def test_reads_are_not_gated() -> None:
    client = governed()
    placed_product(client)
    bad = record("Placed", field("order_id"), optional("email", pii=True))
    lookup = client.post(f"/subjects/{PLACED}", json={"schema": bad}, auth=ORDERS)
    assert lookup.status_code == 404
    assert lookup.json()["error_code"] == 40403
    check = client.post(
        f"/compatibility/subjects/{PLACED}/versions/latest", json={"schema": bad}, auth=ORDERS
    )
    assert check.status_code == 200
    assert check.json()["is_compatible"] is True


def test_registering_an_existing_version_again_answers_it() -> None:
    client = governed()
    first = placed_product(client)
    again = register(client, PLACED, record("Placed", field("order_id")))
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


def test_without_governance_validators_nothing_is_gated() -> None:
    client = make_client(InMemoryStore())
    undocumented = record("Placed", field("order_id", None), optional("email", None, pii=True))
    assert register(client, PLACED, undocumented).status_code == 200


def test_a_refused_schema_comes_back_to_clients_as_its_own_error() -> None:
    error = error_for(422, 42218, "schema refused by governance for subject 's'")
    assert isinstance(error, SchemaRejectedError)
    assert error.error_code == 42218


def test_the_gate_finds_the_product_of_a_later_major_version() -> None:
    client = governed()
    subject = "orders.order-placed.v2-value"
    assert register(client, subject, record("Placed", field("order_id"))).status_code == 200
    put_product(client, descriptor(key_field="order_id", version=2))
    answer = register(
        client, subject, record("Placed", field("order_id"), optional("email", pii=True))
    )
    body = assert_refused(answer, "pii-classification", "Placed.email")
    assert "product 'orders.order-placed'" in body["message"]
    assert_nothing_stored(client, subject, [1])


def test_a_bare_type_on_a_product_subject_is_judged_without_crashing() -> None:
    client = governed()
    assert register(client, PLACED, json.dumps("string")).status_code == 200
    keyed = governed()
    placed_product(keyed)
    # a bare string drops the key field (BACKWARD refuses it first; NONE lets governance speak)
    assert keyed.put(f"/config/{PLACED}", json={"compatibility": "NONE"}, auth=ADMIN).is_success
    assert_refused(register(keyed, PLACED, json.dumps("string")), "key-field")
