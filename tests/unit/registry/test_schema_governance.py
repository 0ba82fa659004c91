"""The governance gate on the Confluent register path (POST /subjects/{s}/versions).

Each schema-level policy refuses a new version of a product's subject with 422/42218, the
policy named and nothing stored; reads (lookup, compatibility) are not gated.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from mesh_stream.errors import SchemaRejectedError
from mesh_stream.governance import GovernanceConfig, parse_global_policies, registry_validator
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


def test_a_pii_mark_is_not_dropped_within_a_major_version() -> None:
    """Dropping `"pii": true` from one field of a pii product's next version was accepted
    without a word, and a public downstream product could then copy the field (h32): the
    records written before still hold personal data under it."""
    client = governed()
    placed_product(client, classification="pii")
    marked = record("Placed", field("order_id"), optional("email", pii=True))
    assert register(client, PLACED, marked).status_code == 200
    unmarked = record("Placed", field("order_id"), optional("email"))
    body = assert_refused(register(client, PLACED, unmarked), "pii-classification", "Placed.email")
    assert any(
        "field Placed.email was marked PII in the subject's latest version and this version "
        "drops the mark" in v["message"]
        for v in body["violations"]
    )
    assert_nothing_stored(client, PLACED, [1, 2])
    # removing the field itself is no laundering: nothing carries it on
    without = record("Placed", field("order_id"), optional("note"))
    assert register(client, PLACED, without).status_code == 200


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
            readers=["orders"],  # orders may build on it (policy pii-input-readers)
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


# -- consumer protection: products others read (issue 14 point 4) ----------------------------

TOTALS = "payments.order-totals"
TOTALS_SUBJECT = "payments.order-totals.v1-value"


def number(name: str, type_: str = "double") -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"The {name}."}


PLACED_V1 = record("Placed", field("order_id"), number("total_amount"), field("channel"))


def upstream_and_reader(client: TestClient, **upstream: Any) -> None:
    """orders.order-placed (order_id, total_amount, channel) read by payments.order-totals,
    whose field_lineage reads order_id and total_amount."""
    assert register(client, PLACED, PLACED_V1).status_code == 200
    put_product(client, descriptor(key_field="order_id", **upstream))
    schema = record("Totals", field("order_id"), number("total"))
    assert register(client, TOTALS_SUBJECT, schema, PAYMENTS).status_code == 200
    put_product(
        client,
        descriptor(
            TOTALS,
            kind="aggregate",
            inputs=["orders.order-placed"],
            schema="schemas/payments/order-totals.avsc",
            field_lineage={
                "order_id": ["orders.order-placed:order_id"],
                "total": ["orders.order-placed:total_amount"],
            },
        ),
        PAYMENTS,
    )


def assert_breaks(answer: Any, *needles: str) -> str:
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["error_code"] == 409
    message = str(body["message"])
    assert TOTALS in message
    for needle in needles:
        assert needle in message, message
    return message


def test_removing_a_field_a_downstream_product_reads_is_refused_naming_it_and_the_field() -> None:
    for client in (governed(), make_client(InMemoryStore())):  # with and without governance
        upstream_and_reader(client)
        answer = register(client, PLACED, record("Placed", field("order_id"), field("channel")))
        message = assert_breaks(
            answer,
            "payments.order-totals reads field total_amount (field_lineage), which the new "
            "version removes",
            "checked at FULL_TRANSITIVE, consumer protection",
            "field total_amount: removed",
            "old consumers (reading with version 1) cannot read new records",
            "keep the field and deprecate it in its doc, or publish a new major version "
            "orders.order-placed.v2",
        )
        assert "Traceback" not in message
        assert_nothing_stored(client, PLACED, [1])


def test_retyping_a_field_a_downstream_product_reads_is_refused() -> None:
    client = governed()
    upstream_and_reader(client)
    retyped = record("Placed", field("order_id"), field("total_amount"), field("channel"))
    assert_breaks(
        register(client, PLACED, retyped),
        "reads field total_amount (field_lineage), which the new version retypes from double "
        "to string",
        "field total_amount: type changed from double to string",
        "Avro promotes only",
    )
    assert_nothing_stored(client, PLACED, [1])


def test_a_compatible_change_to_a_read_product_is_accepted() -> None:
    client = governed()
    upstream_and_reader(client)
    added = record(
        "Placed", field("order_id"), number("total_amount"), field("channel"), optional("coupon")
    )
    answer = register(client, PLACED, added)
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2


def test_a_read_product_evolves_under_full_transitive_even_where_backward_allows() -> None:
    client = governed()
    upstream_and_reader(client)
    # channel: nobody's field_lineage reads it, BACKWARD (the subject's level) allows
    # removing it, FULL_TRANSITIVE does not: old readers need it
    dropped = record("Placed", field("order_id"), number("total_amount"))
    message = assert_breaks(register(client, PLACED, dropped), "field channel: removed")
    assert "field_lineage" not in message
    # the same change on a product nobody reads is BACKWARD-compatible and accepted
    alone = governed()
    assert register(alone, PLACED, PLACED_V1).status_code == 200
    put_product(alone, descriptor(key_field="order_id"))
    assert register(alone, PLACED, dropped).status_code == 200


def test_a_weaker_level_with_a_reason_is_honoured_but_read_fields_stay_protected() -> None:
    client = governed()
    reason = "channel is being retired; readers were told"
    upstream_and_reader(client, compatibility="BACKWARD", compatibility_reason=reason)
    dropped = record("Placed", field("order_id"), number("total_amount"))
    assert register(client, PLACED, dropped).status_code == 200
    gone = record("Placed", field("order_id"))
    message = assert_breaks(
        register(client, PLACED, gone),
        "reads field total_amount (field_lineage), which the new version removes",
        f"checked at BACKWARD, declared BACKWARD: {reason}",
    )
    assert "field total_amount: removed" not in message  # BACKWARD allows it; lineage does not
    assert_nothing_stored(client, PLACED, [1, 2])


def test_a_weaker_level_without_a_reason_is_refused_on_put_and_not_honoured_on_register() -> None:
    client = governed()
    upstream_and_reader(client)
    loose = descriptor(key_field="order_id", compatibility="BACKWARD")
    refused = client.put("/products/orders.order-placed", json=loose, auth=ADMIN)
    assert refused.status_code == 422, refused.text
    [violation] = [v for v in refused.json()["violations"] if v["severity"] == "error"]
    assert violation["policy"] == "compatibility-with-consumers"
    assert violation["message"].startswith(
        "compatibility BACKWARD is weaker than FULL_TRANSITIVE but 'orders.order-placed' is "
        "read by payments.order-totals, and no compatibility_reason says why"
    )
    reasoned = {**loose, "compatibility_reason": "retiring channel"}
    accepted = client.put("/products/orders.order-placed", json=reasoned, auth=ADMIN)
    assert accepted.status_code == 200, accepted.text
    [warning] = accepted.json()["registry"]["warnings"]
    assert warning["policy"] == "compatibility-with-consumers"
    assert "accepted for the declared reason: 'retiring channel'" in warning["message"]


def test_a_product_registered_before_its_reader_declared_a_weak_level_gets_full_transitive() -> (
    None
):
    """The upstream declared BACKWARD (no reason) while nobody read it; once a reader exists
    the registry checks FULL_TRANSITIVE anyway, without refusing the reader's descriptor."""
    client = make_client(InMemoryStore())
    upstream_and_reader(client, compatibility="BACKWARD")
    dropped = record("Placed", field("order_id"), number("total_amount"))
    assert_breaks(register(client, PLACED, dropped), "checked at FULL_TRANSITIVE")


def test_pii_appearing_upstream_is_refused_for_a_downstream_product_below_pii() -> None:
    client = governed()
    _pii_source_and_summary(client)
    holder = "payments.card-holder.v1-value"
    # holder_id, which orders.order-summary (internal) reads, becomes PII upstream
    marked = record("Holder", field("holder_id", pii=True), field("email", pii=True))
    answer = register(client, holder, marked, PAYMENTS)
    body = assert_refused(answer, "pii-lineage")
    assert "downstream product 'orders.order-summary' would receive PII" in body["message"]
    assert "'payments.card-holder:holder_id', which is PII (holder_id)" in body["message"]
    assert_nothing_stored(client, holder, [1])
    # a new PII field nobody downstream reads is fine
    more = record(
        "Holder", field("holder_id"), field("email", pii=True), optional("phone", pii=True)
    )
    assert register(client, holder, more, PAYMENTS).status_code == 200


def test_schema_warnings_are_shown_on_the_product() -> None:
    client = governed()
    upstream_and_reader(client)
    answer = client.get(f"/products/{TOTALS}", auth=ADMIN)
    assert answer.json()["registry"]["schema_warnings"] == []
    shop = InMemoryStore()
    config = load_governance_with("key-field", "warning")
    warned = make_client(shop, validators=(registry_validator(config),))
    assert register(warned, PLACED, PLACED_V1).status_code == 200
    put_product(warned, descriptor(key_field="order_id"))
    dropped_key = record("Placed", number("total_amount"), field("channel"))
    assert warned.put(f"/config/{PLACED}", json={"compatibility": "NONE"}, auth=ADMIN).is_success
    assert register(warned, PLACED, dropped_key).status_code == 200
    [warning] = warned.get("/products/orders.order-placed", auth=ADMIN).json()["registry"][
        "schema_warnings"
    ]
    assert (warning["policy"], warning["severity"]) == ("key-field", "warning")


def load_governance_with(policy: str, severity: str) -> GovernanceConfig:
    """The built-in policy set with ``policy`` at ``severity``."""
    text = f"policies:\n  {policy}:\n    severity: {severity}\n"
    return GovernanceConfig(global_rules=parse_global_policies(text))


def test_lowering_the_subject_level_does_not_lower_consumer_protection() -> None:
    client = governed()
    upstream_and_reader(client)
    assert client.put(f"/config/{PLACED}", json={"compatibility": "NONE"}, auth=ADMIN).is_success
    dropped = record("Placed", field("order_id"), number("total_amount"))
    assert_breaks(register(client, PLACED, dropped), "field channel: removed")
    assert_nothing_stored(client, PLACED, [1])
