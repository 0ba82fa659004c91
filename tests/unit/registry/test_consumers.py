"""Registered consumers over the in-process registry: the routes, who may change what, bad
input, and the 409 that names a consumer group whose fields a new version would break."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, descriptor, make_client, schema

PRODUCT = "orders.order-placed"
SUBJECT = f"{PRODUCT}.v1-value"
CONSUMERS = f"/products/{PRODUCT}/consumers"
PAYMENTS = ("payments", TOKENS["payments"])
#: payments' application: a domain registers groups named after it
BILLING = "payments.billing-app"


def _register(client: TestClient, text: str, auth: Any = ORDERS) -> Any:
    return client.post(f"/subjects/{SUBJECT}/versions", json={"schema": text}, auth=auth)


def _with_required(*names: str) -> str:
    """order_id plus required (no default) double fields ``names``."""
    fields: list[dict[str, Any]] = [{"name": "order_id", "type": "string", "doc": "Order id."}]
    fields += [{"name": n, "type": "double", "doc": f"The {n}."} for n in names]
    return json.dumps({"type": "record", "name": "Placed", "doc": "An order.", "fields": fields})


@pytest.fixture
def orders(client: TestClient) -> TestClient:
    """A registry holding orders.order-placed (order_id, coupon_code, channel)."""
    assert _register(client, schema("coupon_code", "channel")).status_code == 200
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS).status_code == 200
    return client


def test_a_group_is_registered_listed_shown_on_the_product_and_unregistered(
    orders: TestClient,
) -> None:
    body = {"reads": ["order_id", "coupon_code", "order_id"], "contact": "billing@example.com"}
    answer = orders.put(f"{CONSUMERS}/{BILLING}", json=body, auth=PAYMENTS)
    assert answer.status_code == 200, answer.text
    registration = answer.json()
    assert registration == {
        "product": PRODUCT,
        "group": "payments.billing-app",
        "owner": "payments",
        "reads": ["coupon_code", "order_id"],
        "contact": "billing@example.com",
        "description": None,
        "registered_by": "payments",
        "registered_at": registration["registered_at"],
    }
    assert orders.put(f"{CONSUMERS}/orders-audit", auth=ORDERS).json()["reads"] == []  # no body
    assert [c["group"] for c in orders.get(CONSUMERS).json()] == [
        "orders-audit",
        "payments.billing-app",
    ]
    shown = orders.get(f"/products/{PRODUCT}").json()["registry"]["consumers"]
    assert shown == orders.get(CONSUMERS).json()

    assert orders.delete(f"{CONSUMERS}/{BILLING}", auth=PAYMENTS).status_code == 204
    assert [c["group"] for c in orders.get(CONSUMERS).json()] == ["orders-audit"]
    gone = orders.delete(f"{CONSUMERS}/{BILLING}", auth=PAYMENTS)
    assert (gone.status_code, gone.json()["error_code"]) == (404, 40410)
    assert gone.json()["message"] == (
        "no consumer group 'payments.billing-app' is registered on product 'orders.order-placed' "
        "(registered: orders-audit; GET /products/orders.order-placed/consumers lists them)"
    )


def test_only_the_owner_domain_or_admin_changes_a_registration(orders: TestClient) -> None:
    assert orders.put(f"{CONSUMERS}/{BILLING}", json={}, auth=PAYMENTS).status_code == 200
    assert orders.put(f"{CONSUMERS}/orders-audit", json={}, auth=ORDERS).status_code == 200
    for answer in (
        orders.put(f"{CONSUMERS}/{BILLING}", json={"reads": []}, auth=ORDERS),
        orders.put(f"{CONSUMERS}/orders-audit", json={"reads": []}, auth=PAYMENTS),
        orders.delete(f"{CONSUMERS}/orders-audit", auth=PAYMENTS),
    ):
        assert (answer.status_code, answer.json()["error_code"]) == (403, 40301)
    assert orders.put(f"{CONSUMERS}/{BILLING}", json={}, auth=ORDERS).json()["message"] == (
        "principal 'orders' may not register consumer group 'payments.billing-app': a domain "
        "registers only groups named after it, so no domain can take another's name; name your "
        "group `orders.…` or `orders-…` without a dot (or, for a processor of your product P, "
        "`mesh-P` / "
        "`mesh-P-rekey`)"
    )
    assert orders.delete(f"{CONSUMERS}/orders-audit", auth=PAYMENTS).json()["message"] == (
        "principal 'payments' may not unregister consumer group 'orders-audit' on product "
        "'orders.order-placed': it was registered by domain 'orders', and only that domain, "
        "the product's domain 'orders' or admin may change it; register your application under "
        "a group of its own"
    )
    by_admin = orders.put(f"{CONSUMERS}/{BILLING}", json={"reads": ["channel"]}, auth=ADMIN)
    assert by_admin.json()["owner"] == "payments"  # admin acts for the owner
    assert by_admin.json()["registered_by"] == "admin"
    assert orders.put(f"{CONSUMERS}/ops", auth=ADMIN).json()["owner"] == "admin"
    anonymous = orders.put(f"{CONSUMERS}/sneaky", json={})
    assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101)
    assert orders.delete(f"{CONSUMERS}/{BILLING}").status_code == 401
    assert orders.delete(f"{CONSUMERS}/{BILLING}", auth=ADMIN).status_code == 204
    assert orders.delete(f"{CONSUMERS}/orders-audit", auth=ORDERS).status_code == 204
    assert [c["group"] for c in orders.get(CONSUMERS).json()] == ["ops"]


def test_bad_registrations_are_refused_naming_the_field(orders: TestClient) -> None:
    cases: list[tuple[str, Any, int, int, str]] = [
        (
            "/products/orders.nope/consumers/g",
            {},
            404,
            40404,
            "Product 'orders.nope' not found; consumers register on a registered product",
        ),
        (
            f"{CONSUMERS}/g",
            {"reads": ["order_id", "total"]},
            422,
            42219,
            "reads[1]: 'total' is not a top-level field of the latest schema of product "
            "'orders.order-placed' (subject 'orders.order-placed.v1-value'); its fields are "
            "order_id, coupon_code, channel",
        ),
        (
            f"{CONSUMERS}/g",
            {"reads": "order_id"},
            422,
            42219,
            'reads: must be a list of top-level field names, e.g. ["order_id", "total"]',
        ),
        (
            f"{CONSUMERS}/g",
            {"reeds": ["order_id"]},
            422,
            42219,
            "reeds: not a field of a consumer registration; the fields are reads, contact, "
            "description",
        ),
        (
            f"{CONSUMERS}/g",
            ["order_id"],
            422,
            42219,
            "the body must be a JSON object with any of reads, contact, description",
        ),
        (f"{CONSUMERS}/g", {"contact": 5}, 422, 42219, "contact: must be text, not int"),
        (  # an escape sequence would reach the terminal of whoever lists the groups
            f"{CONSUMERS}/g",
            {"contact": "\x1b[31mred\x1b[0m"},
            422,
            42219,
            "contact: contains the control character '\\x1b' at offset 0; give plain text",
        ),
        (
            f"{CONSUMERS}/g",
            {"description": "line one\nline two\x07\x9b"},
            422,
            42219,
            "description: contains the control character '\\x07' at offset 17",
        ),
        (
            f"{CONSUMERS}/billing%20app",
            {},
            422,
            42219,
            "group: 'billing app' cannot be registered: a consumer group name is 1 to 249 "
            "letters, digits, '.', '_' or '-'",
        ),
        (f"{CONSUMERS}/%2E%2E", {}, 422, 42219, "group: '..' cannot be registered"),
    ]
    for path, body, status, code, message in cases:
        answer = orders.put(path, json=body, auth=ORDERS)
        assert (answer.status_code, answer.json()["error_code"]) == (status, code), path
        assert message in answer.json()["message"], answer.json()["message"]
    assert orders.get(CONSUMERS).json() == []  # nothing was stored
    unknown = orders.get("/products/orders.nope/consumers")
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, 40404)


def test_a_version_that_drops_a_field_a_group_reads_is_refused_naming_it(
    orders: TestClient,
) -> None:
    body = {"reads": ["coupon_code"]}
    assert orders.put(f"{CONSUMERS}/{BILLING}", json=body, auth=PAYMENTS).status_code == 200
    dropped = _register(orders, schema("channel"))
    assert (dropped.status_code, dropped.json()["error_code"]) == (409, 409)
    assert dropped.json()["message"] == (
        "schema for subject 'orders.order-placed.v1-value' would break consumer group "
        "'payments.billing-app' (owner payments) (downstream of 'orders.order-placed', checked "
        "at FULL_TRANSITIVE, consumer protection): consumer group 'payments.billing-app' (owner "
        "payments) reads field coupon_code (registered reads), which the new version removes; "
        "fix: keep the field and its type (deprecate it in its doc); or, once that group no "
        "longer reads it, its owner registers it again without coupon_code in reads (`mesh "
        "products consumers PRODUCT --register GROUP --reads ...`) or unregisters it; or "
        "publish a new major version orders.order-placed.v2 (`version: 2` in the descriptor)"
    )
    retyped = json.loads(schema("coupon_code", "channel"))
    retyped["fields"][1]["type"] = ["null", "int"]
    answer = _register(orders, json.dumps(retyped))
    assert answer.status_code == 409
    assert (
        "consumer group 'payments.billing-app' (owner payments) reads field coupon_code "
        '(registered reads), which the new version retypes from ["null", "string"] to '
        '["null", "int"]; fix:'
    ) in answer.json()["message"]
    # admin is held to it too; nothing was stored
    assert _register(orders, schema("channel"), auth=ADMIN).status_code == 409
    assert orders.get(f"/subjects/{SUBJECT}/versions").json() == [1]
    # a field nobody reads may go (optional, so FULL_TRANSITIVE holds); one may be added
    assert _register(orders, schema("coupon_code")).status_code == 200
    assert _register(orders, schema("coupon_code", "note")).status_code == 200
    # once the group re-registers without the field, it may go too
    assert orders.put(f"{CONSUMERS}/{BILLING}", json={}, auth=PAYMENTS).status_code == 200
    assert _register(orders, schema("note")).status_code == 200


def test_the_compatibility_check_says_what_consumer_protection_would_refuse(
    orders: TestClient,
) -> None:
    """POST /compatibility answered is_compatible true for a version registration then
    refused under consumer protection, so a CI check on it passed a doomed release (a
    campaign)."""
    body = {"reads": ["coupon_code"]}
    assert orders.put(f"{CONSUMERS}/{BILLING}", json=body, auth=PAYMENTS).status_code == 200
    for target in ("versions/latest", "versions"):
        checked = orders.post(
            f"/compatibility/subjects/{SUBJECT}/{target}?verbose=true",
            json={"schema": schema("channel")},
            auth=ORDERS,
        )
        assert checked.status_code == 200, checked.text
        assert checked.json()["is_compatible"] is False
        [message] = checked.json()["messages"]
        assert message.startswith(
            "schema for subject 'orders.order-placed.v1-value' would break consumer group "
            "'payments.billing-app'"
        ), message
    fine = orders.post(
        f"/compatibility/subjects/{SUBJECT}/versions/latest",
        json={"schema": schema("coupon_code", "note")},
        auth=ORDERS,
    )
    assert fine.json() == {"is_compatible": True}
    assert _register(orders, schema("channel")).status_code == 409  # as the check said


def test_a_registered_group_raises_the_level_to_full_transitive(client: TestClient) -> None:
    assert _register(client, _with_required("total", "tax")).status_code == 200
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS).status_code == 200
    # BACKWARD (the default) lets a required field go; a registered group forbids it
    assert client.put(f"{CONSUMERS}/orders-audit", auth=ORDERS).status_code == 200
    refused = _register(client, _with_required("total"))
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert message.startswith(
        "schema for subject 'orders.order-placed.v1-value' would break consumer group "
        "'orders-audit' (owner orders) (downstream of 'orders.order-placed', checked at "
        "FULL_TRANSITIVE"
    )
    assert "tax" in message
    # the domain may declare a weaker level with a reason
    relaxed = descriptor(compatibility="BACKWARD", compatibility_reason="replays are rebuilt")
    assert client.put(f"/products/{PRODUCT}", json=relaxed, auth=ORDERS).status_code == 200
    assert _register(client, _with_required("total")).status_code == 200
    # without a registered group the default level is BACKWARD again
    assert client.delete(f"{CONSUMERS}/orders-audit", auth=ORDERS).status_code == 204
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS).status_code == 200
    assert _register(client, _with_required()).status_code == 200


def test_registrations_survive_a_restart_and_hold_the_product(store: InMemoryStore) -> None:
    client = make_client(store)
    assert _register(client, schema("coupon_code")).status_code == 200
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS).status_code == 200
    body = {"reads": ["coupon_code"], "description": "Bills orders."}
    assert client.put(f"{CONSUMERS}/{BILLING}", json=body, auth=PAYMENTS).status_code == 200
    assert client.put(f"{CONSUMERS}/payments.gone", auth=PAYMENTS).status_code == 200
    assert client.delete(f"{CONSUMERS}/payments.gone", auth=PAYMENTS).status_code == 204

    restarted = make_client(InMemoryStore(store.records))
    assert restarted.get(CONSUMERS).json() == client.get(CONSUMERS).json()
    assert [c["group"] for c in restarted.get(CONSUMERS).json()] == ["payments.billing-app"]
    assert _register(restarted, schema()).status_code == 409  # still protected
    held = restarted.delete(f"/products/{PRODUCT}", auth=ADMIN)
    assert (held.status_code, held.json()["error_code"]) == (409, 40910)
    assert held.json()["message"] == (
        "product 'orders.order-placed' cannot be deleted: consumer groups payments.billing-app "
        "are registered on it; unregister them first (DELETE "
        "/products/orders.order-placed/consumers/<group>)"
    )


def test_without_authentication_registrations_are_owned_by_anonymous() -> None:
    client = TestClient(create_app(InMemoryStore()), raise_server_exceptions=False)
    assert _register(client, schema("coupon_code"), auth=None).status_code == 200
    assert client.put(f"/products/{PRODUCT}", json=descriptor()).status_code == 200
    answer = client.put(f"{CONSUMERS}/{BILLING}", json={"reads": ["coupon_code"]})
    assert (answer.json()["owner"], answer.json()["registered_by"]) == ("anonymous", "admin")


def test_the_state_folds_registrations_and_tombstones() -> None:
    from mesh_stream.registry.service.state import Record, RegistryState

    state = RegistryState()
    state.apply(Record(("consumer", PRODUCT, "a"), {"owner": "payments", "reads": ["x"]}))
    held = state.consumers[PRODUCT]
    state.apply(Record(("consumer", PRODUCT, "b"), {"owner": "orders", "reads": []}))
    assert sorted(held) == ["a"]  # a reader's snapshot is replaced, never mutated
    assert sorted(state.consumers[PRODUCT]) == ["a", "b"]
    state.apply(Record(("consumer", PRODUCT, "a"), None))
    state.apply(Record(("consumer", PRODUCT, "b"), None))
    assert state.consumers == {}


def test_a_group_name_with_a_slash_is_a_422_naming_it(orders: TestClient) -> None:
    for path in (f"{CONSUMERS}/team%2Fapp", f"{CONSUMERS}/team/app", f"{CONSUMERS}/"):
        for method in ("PUT", "DELETE"):
            answer = orders.request(method, path, auth=ORDERS)
            assert (answer.status_code, answer.json()["error_code"]) == (422, 42219), path
            assert answer.json()["message"].startswith("group: "), answer.text


def test_a_weaker_compatibility_without_a_reason_is_refused_once_a_group_reads_the_product() -> (
    None
):
    """The compatibility-with-consumers policy counts registered groups as well as downstream
    products, on PUT /products too (not only on the next schema version)."""
    from mesh_stream.governance import registry_validator

    governed = make_client(InMemoryStore(), validators=(registry_validator(),))
    assert _register(governed, schema("coupon_code", "channel")).status_code == 200
    weaker = descriptor(compatibility="BACKWARD")
    assert governed.put(f"/products/{PRODUCT}", json=weaker, auth=ORDERS).status_code == 200
    assert governed.put(f"{CONSUMERS}/{BILLING}", json={}, auth=PAYMENTS).status_code == 200

    refused = governed.put(f"/products/{PRODUCT}", json=weaker, auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42211), refused.text
    assert "read by consumer group payments.billing-app (payments)" in refused.json()["message"]
    reasoned = descriptor(compatibility="BACKWARD", compatibility_reason="retiring channel")
    assert governed.put(f"/products/{PRODUCT}", json=reasoned, auth=ORDERS).status_code == 200


def test_a_version_a_registered_group_reads_is_not_deleted_permanently(
    orders: TestClient,
) -> None:
    """The producing domain deleted version 1 for good while a group read it, and the
    group's next consumer dead-lettered every record written with it (a campaign). A soft
    delete keeps ids readable and goes through; the permanent one waits for the readers."""
    assert orders.put(f"{CONSUMERS}/{BILLING}", json={}, auth=PAYMENTS).status_code == 200
    schema_id = orders.get(f"/subjects/{SUBJECT}/versions/1").json()["id"]
    assert orders.delete(f"/subjects/{SUBJECT}/versions/1", auth=ORDERS).status_code == 200
    for path in (f"/subjects/{SUBJECT}/versions/1", f"/subjects/{SUBJECT}"):
        held = orders.delete(path, params={"permanent": "true"}, auth=ORDERS)
        assert (held.status_code, held.json()["error_code"]) == (409, 40910), held.text
        assert f"product {PRODUCT} is read by consumer group {BILLING}" in held.json()["message"]
        assert (
            f"written with schema id(s) {schema_id} would become unreadable"
            in (held.json()["message"])
        )
    assert orders.get(f"/schemas/ids/{schema_id}").status_code == 200
    # without readers the permanent delete goes through, as Confluent's does
    assert orders.delete(f"{CONSUMERS}/{BILLING}", auth=PAYMENTS).status_code == 204
    gone = orders.delete(
        f"/subjects/{SUBJECT}/versions/1", params={"permanent": "true"}, auth=ORDERS
    )
    assert gone.status_code == 200, gone.text


def test_a_permanent_delete_is_refused_only_when_ids_would_stop_resolving(
    orders: TestClient,
) -> None:
    """A review: an id another version still uses resolves after the delete; downstream
    products count as readers, of an old major's subject too."""
    value = "orders.order-value"
    assert (
        orders.post(
            f"/subjects/{value}.v1-value/versions", json={"schema": schema(name="V")}, auth=ORDERS
        ).status_code
        == 200
    )
    downstream = descriptor(value, kind="aggregate", inputs=[PRODUCT])
    assert orders.put(f"/products/{value}", json=downstream, auth=ORDERS).status_code == 200
    # read by a downstream product: version 1's id would stop resolving
    assert orders.delete(f"/subjects/{SUBJECT}/versions/1", auth=ORDERS).status_code == 200
    held = orders.delete(f"/subjects/{SUBJECT}/versions/1?permanent=true", auth=ORDERS)
    assert (held.status_code, held.json()["error_code"]) == (409, 40910), held.text
    assert f"product {PRODUCT} is read by {value}," in held.json()["message"]
    # the same schema again (a rollback) is version 2 with the same id: nothing is lost
    again = _register(orders, schema("coupon_code", "channel"))
    assert again.status_code == 200, again.text
    assert (
        orders.delete(f"/subjects/{SUBJECT}/versions/1?permanent=true", auth=ORDERS).status_code
        == 200
    )
    # an old major (the product now at version 2) is still read by readers that have not
    # moved, or processors held at it: its ids stay too (h44: every record of the major being
    # drained went to the readers' DLQs), until the product has no readers
    assert _register(orders, schema("coupon_code")).status_code == 200  # a new id, v3
    moved = descriptor(version=2)
    v2 = f"{PRODUCT}.v2-value"
    assert (
        orders.post(f"/subjects/{v2}/versions", json={"schema": schema()}, auth=ORDERS).status_code
        == 200
    )
    assert orders.put(f"/products/{PRODUCT}", json=moved, auth=ORDERS).status_code == 200
    assert orders.delete(f"/subjects/{SUBJECT}", auth=ORDERS).status_code == 200
    held = orders.delete(f"/subjects/{SUBJECT}?permanent=true", auth=ORDERS)
    assert (held.status_code, held.json()["error_code"]) == (409, 40910), held.text
    assert (
        f"product {PRODUCT} is read by {value}, and records on its topic (its major 1, which "
        f"readers that have not moved to major 2, or processors held at major 1, still read) "
        f"written with schema id(s) "
    ) in held.json()["message"]
    assert held.json()["message"].endswith(
        "The registry cannot tell which major a reader reads, so this waits until the product "
        "has no readers; retire the major by deleting its topic instead"
    )
    assert orders.delete(f"/products/{value}", auth=ORDERS).status_code == 204
    assert orders.delete(f"/subjects/{SUBJECT}?permanent=true", auth=ORDERS).status_code == 200


def test_a_domain_registers_on_a_pii_product_only_as_one_of_its_readers(
    orders: TestClient,
) -> None:
    """A domain the broker refuses on a pii product registered a group on it with `reads`
    naming its personal fields, and so held the owner to keeping them (h32)."""
    closed = descriptor(classification="pii")
    assert orders.put(f"/products/{PRODUCT}", json=closed, auth=ORDERS).status_code == 200
    refused = orders.put(f"{CONSUMERS}/{BILLING}", json={"reads": ["order_id"]}, auth=PAYMENTS)
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"] == (
        f"principal 'payments' may not register a consumer group on product '{PRODUCT}': it is "
        f"classified pii, and only domain 'orders' and its readers (none) may read it, at the "
        f"broker too; ask its owners to add 'payments' to `readers` in its descriptor"
    )
    opened = descriptor(classification="pii", readers=["payments"])
    assert orders.put(f"/products/{PRODUCT}", json=opened, auth=ORDERS).status_code == 200
    allowed = orders.put(f"{CONSUMERS}/{BILLING}", json={"reads": ["order_id"]}, auth=PAYMENTS)
    assert allowed.status_code == 200, allowed.text
