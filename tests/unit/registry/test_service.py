"""The registry's rules over the in-memory store: Confluent semantics, products, the hook."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient

from mesh_stream.descriptor import DataProduct
from mesh_stream.registry.problems import CatalogView, DescriptorProblem
from mesh_stream.registry.service import InMemoryStore
from tests.unit.registry.conftest import ADMIN, ORDERS, descriptor, make_client, schema

SUBJECT = "orders.order-placed.v1-value"


def register(client: TestClient, subject: str, text: str, auth: Any = ORDERS) -> Any:
    return client.post(f"/subjects/{subject}/versions", json={"schema": text}, auth=auth)


def test_register_is_idempotent_and_ids_are_global(client: TestClient) -> None:
    first = register(client, SUBJECT, schema()).json()
    pretty = json.dumps(json.loads(schema()), indent=4, sort_keys=True)
    assert register(client, SUBJECT, pretty).json() == first
    other = register(client, "orders.copy.v1-value", schema()).json()
    assert other == {
        "id": first["id"],
        "version": 1,
        "subject": "orders.copy.v1-value",
        "guid": first["guid"],  # the guid names the schema, like its id
    }
    second = register(client, SUBJECT, schema("note")).json()
    assert second == {"id": first["id"] + 1, "version": 2, "subject": SUBJECT, "guid": ANY}
    assert second["guid"] != first["guid"]
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]
    assert client.get(f"/subjects/{SUBJECT}/versions/latest").json()["version"] == 2
    assert client.get(f"/subjects/{SUBJECT}/versions/-1").json()["version"] == 2
    assert client.get(f"/schemas/ids/{first['id']}/versions").json() == [
        {"subject": "orders.copy.v1-value", "version": 1},
        {"subject": SUBJECT, "version": 1},
    ]
    looked = client.post(f"/subjects/{SUBJECT}", json={"schema": pretty}).json()
    assert (looked["id"], looked["version"]) == (first["id"], 1)


def test_soft_then_hard_delete_follow_confluents_rules(client: TestClient) -> None:
    ids = [register(client, SUBJECT, schema(*extra)).json()["id"] for extra in ([], ["a"])]
    hard_first = client.delete(f"/subjects/{SUBJECT}/versions/1?permanent=true", auth=ORDERS)
    assert hard_first.json()["error_code"] == 40407
    assert client.delete(f"/subjects/{SUBJECT}/versions/1", auth=ORDERS).json() == 1
    assert client.delete(f"/subjects/{SUBJECT}/versions/1", auth=ORDERS).json()["error_code"] == (
        40406
    )
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [2]
    assert client.get(f"/subjects/{SUBJECT}/versions?deleted=true").json() == [1, 2]
    assert client.get(f"/subjects/{SUBJECT}/versions/1").json()["error_code"] == 40402
    assert client.get(f"/schemas/ids/{ids[0]}").status_code == 200  # soft-deleted still readable
    assert (
        client.delete(f"/subjects/{SUBJECT}?permanent=true", auth=ORDERS).json()["error_code"]
        == 40405
    )
    assert client.delete(f"/subjects/{SUBJECT}", auth=ORDERS).json() == [2]
    assert client.delete(f"/subjects/{SUBJECT}", auth=ORDERS).json()["error_code"] == 40404
    assert client.get("/subjects").json() == []
    assert client.get("/subjects?deleted=true").json() == [SUBJECT]
    assert client.delete(f"/subjects/{SUBJECT}?permanent=true", auth=ORDERS).json() == [1, 2]
    assert client.get(f"/schemas/ids/{ids[0]}").json()["error_code"] == 40403
    # Ids are never reused: a new schema gets a fresh one.
    assert register(client, SUBJECT, schema("z")).json()["id"] == max(ids) + 1


@pytest.mark.parametrize("path", ["/schemas/ids/abc", "/schemas/ids/1.5/versions"])
def test_a_schema_id_that_is_no_number_names_no_schema_404_as_confluents(
    client: TestClient, path: str
) -> None:
    """Confluent's registry answers 404 where a path's id is no number; a 422 reads to its
    clients as a schema refused."""
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json() == {
        "error_code": 404,
        "message": "HTTP 404 Not Found: path.schema_id: an id is a whole number",
    }


def test_config_levels(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    register(client, SUBJECT, schema())
    assert client.get(f"/config/{SUBJECT}").json()["error_code"] == 40408
    assert client.get(f"/config/{SUBJECT}?defaultToGlobal=true").json() == {
        "compatibilityLevel": "BACKWARD"
    }
    bad = client.put(f"/config/{SUBJECT}", json={"compatibility": "SIDEWAYS"}, auth=ORDERS)
    assert bad.status_code == 422
    assert bad.json()["error_code"] == 42203
    assert "SIDEWAYS" in bad.json()["message"]
    breaking = json.dumps(
        {"type": "record", "name": "Placed", "fields": [{"name": "total", "type": "double"}]}
    )
    assert register(client, SUBJECT, breaking).status_code == 409
    check = client.post(
        f"/compatibility/subjects/{SUBJECT}/versions/latest?verbose=true",
        json={"schema": breaking},
    ).json()
    assert check["is_compatible"] is False
    assert any("total" in m for m in check["messages"])
    ok = client.put(f"/config/{SUBJECT}", json={"compatibility": "none"}, auth=ORDERS)
    assert ok.json() == {"compatibility": "NONE"}
    assert register(client, SUBJECT, breaking).json()["version"] == 2
    assert client.delete(f"/config/{SUBJECT}", auth=ORDERS).json() == {"compatibilityLevel": "NONE"}
    assert client.put("/config", json={"compatibility": "FULL"}, auth=ORDERS).status_code == 403
    assert client.put("/config", json={"compatibility": "FULL"}, auth=ADMIN).json() == {
        "compatibility": "FULL"
    }


def test_state_survives_replay_into_a_new_service(store: InMemoryStore) -> None:
    client = make_client(store)
    register(client, SUBJECT, schema())
    client.put(f"/config/{SUBJECT}", json={"compatibility": "FULL"}, auth=ORDERS)
    client.put("/products/orders.order-placed", json=descriptor(), auth=ORDERS)
    paths = [
        "/subjects",
        f"/subjects/{SUBJECT}/versions/1",
        f"/config/{SUBJECT}",
        "/products",
    ]
    before = [client.get(p).json() for p in paths]
    restarted = make_client(InMemoryStore(store.records))
    assert [restarted.get(p).json() for p in paths] == before


def _setup_products(client: TestClient) -> None:
    register(client, SUBJECT, schema("coupon_code"))
    register(
        client,
        "payments.payment-settled.v1-value",
        schema(name="Paid"),
        auth=("payments", "payments-secret"),
    )
    register(client, "orders.order-value.v1-value", schema(name="Value"), auth=ADMIN)
    assert (
        client.put("/products/orders.order-placed", json=descriptor(), auth=ORDERS).status_code
        == 200
    )
    paid = descriptor("payments.payment-settled", classification="confidential", tags=["money"])
    assert (
        client.put(
            "/products/payments.payment-settled", json=paid, auth=("payments", "payments-secret")
        ).status_code
        == 200
    )
    value = descriptor(
        "orders.order-value",
        kind="aggregate",
        description="Order value joined with settled payments.",
        inputs=["orders.order-placed", "payments.payment-settled"],
    )
    assert client.put("/products/orders.order-value", json=value, auth=ORDERS).status_code == 200
    # an input listed twice is stored once (h39)
    twice = {**value, "inputs": [*value["inputs"], "payments.payment-settled"]}
    stored = client.put("/products/orders.order-value", json=twice, auth=ORDERS).json()
    assert stored["inputs"] == ["orders.order-placed", "payments.payment-settled"]


def test_product_refusals_name_the_problem(client: TestClient) -> None:
    missing = client.put("/products/orders.order-placed", json=descriptor(), auth=ORDERS).json()
    assert missing["error_code"] == 42212
    assert SUBJECT in missing["message"]
    register(client, SUBJECT, schema())
    unknown = client.put(
        "/products/orders.order-placed", json=descriptor(inputs=["shipping.parcel"]), auth=ORDERS
    ).json()
    assert unknown["error_code"] == 42213
    assert "shipping.parcel" in unknown["message"]
    mismatch = client.put("/products/orders.other", json=descriptor(), auth=ORDERS).json()
    assert mismatch["error_code"] == 42214
    invalid = client.put(
        "/products/orders.order-placed", json=descriptor(partitions=0), auth=ORDERS
    ).json()
    assert invalid["error_code"] == 42210
    assert "partitions" in invalid["message"]
    # readers lint refuses, the registry refuses too: they would be granted it (h32)
    for reader in ("registry", "monitor", "anonymous", "mesh-x"):
        refused = client.put(
            "/products/orders.order-placed", json=descriptor(readers=[reader]), auth=ORDERS
        ).json()
        assert refused["error_code"] == 42210, refused
        assert refused["message"].startswith("invalid descriptor: readers.0: ")
    assert client.get("/products/orders.nope").json()["error_code"] == 40404


def test_search_lineage_history_and_delete(client: TestClient) -> None:
    _setup_products(client)
    names = lambda answer: [p["name"] for p in answer.json()]  # noqa: E731
    assert names(client.get("/products?domain=orders")) == [
        "orders.order-placed",
        "orders.order-value",
    ]
    assert names(client.get("/products?tag=money")) == ["payments.payment-settled"]
    assert names(client.get("/products?classification=confidential")) == [
        "payments.payment-settled"
    ]
    assert names(client.get("/products?kind=aggregate")) == ["orders.order-value"]
    # an unknown value or a repeated filter matched nothing or the last one, silently
    for bad in ("classification=bogus", "kind=bogus"):
        refused = client.get(f"/products?{bad}")
        assert refused.status_code == 422, refused.text
        assert "Input should be" in refused.json()["message"]
    twice = client.get("/products?domain=orders&domain=payments")
    assert (twice.status_code, twice.json()["error_code"]) == (400, 40001)
    assert twice.json()["message"].startswith("?domain= is given 2 times")
    # a filter the search does not have answered every product (h30)
    unknown = client.get("/products?owner=orders&limit=2&domain=orders")
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, 40001)
    assert unknown.json()["message"] == (
        "unknown query parameter(s) ?limit=, ?owner=: products are searched by ?domain=, "
        "?tag=, ?classification=, ?kind=, ?q= (every one given must match), and every match "
        "is answered (no paging)"
    )
    assert names(client.get("/products?q=COUPON")) == ["orders.order-placed"]  # field name
    assert names(client.get("/products?q=the%20coupon_code")) == ["orders.order-placed"]
    assert names(client.get("/products?q=joined")) == ["orders.order-value"]  # description
    lineage = client.get("/products/orders.order-value/lineage").json()
    assert lineage["upstream"] == ["orders.order-placed", "payments.payment-settled"]
    assert lineage["downstream"] == []
    down = client.get("/products/orders.order-placed/lineage?direction=downstream").json()
    assert down["downstream"] == ["orders.order-value"]
    assert down["edges"] == [{"from": "orders.order-placed", "to": "orders.order-value"}]
    register(client, SUBJECT, schema("coupon_code", "note"))
    history = client.get("/products/orders.order-placed/schemas").json()
    assert [h["version"] for h in history] == [1, 2]
    shown = client.get("/products/orders.order-placed").json()
    assert shown["registry"]["schema_version"] == 2
    assert shown["registry"]["downstream"] == ["orders.order-value"]
    assert DataProduct.model_validate({k: v for k, v in shown.items() if k != "registry"})
    # a new major: the history keeps the earlier one's versions, which its topic still holds
    register(client, "orders.order-placed.v2-value", schema("coupon_code"))
    moved = client.put("/products/orders.order-placed", json=descriptor(version=2), auth=ORDERS)
    assert moved.status_code == 200, moved.text
    history = client.get("/products/orders.order-placed/schemas").json()
    assert [(h["subject"], h["version"]) for h in history] == [
        (SUBJECT, 1),
        (SUBJECT, 2),
        ("orders.order-placed.v2-value", 1),
    ]
    in_use = client.delete("/products/orders.order-placed", auth=ORDERS)
    assert in_use.status_code == 409
    assert in_use.json()["error_code"] == 40910
    assert client.delete("/products/orders.order-value", auth=ORDERS).status_code == 204
    assert client.delete("/products/orders.order-placed", auth=ORDERS).status_code == 204


def test_governance_hook_refuses_with_violations() -> None:
    seen: list[tuple[str, list[str]]] = []

    def needs_owner_tag(
        product: DataProduct, latest: Mapping[str, Any], catalog: CatalogView
    ) -> list[DescriptorProblem]:
        seen.append((product.name, [f["name"] for f in latest["fields"]]))
        problems = [DescriptorProblem("tags", "warning", "few tags", "tags")]
        if "team" not in product.tags:
            problems.append(DescriptorProblem("tags", "error", "needs tag 'team'", "tags"))
        return problems

    client = make_client(validators=(needs_owner_tag,))
    register(client, SUBJECT, schema())
    refused = client.put("/products/orders.order-placed", json=descriptor(), auth=ORDERS)
    assert refused.status_code == 422
    assert refused.json() == {
        "error_code": 42211,
        "message": "product 'orders.order-placed' violates governance policies: "
        "tags: needs tag 'team'",
        "violations": [
            {"policy": "tags", "severity": "warning", "message": "few tags", "field": "tags"},
            {"policy": "tags", "severity": "error", "message": "needs tag 'team'", "field": "tags"},
        ],
    }
    accepted = client.put(
        "/products/orders.order-placed", json=descriptor(tags=["team"]), auth=ORDERS
    ).json()
    assert accepted["registry"]["warnings"] == [
        {"policy": "tags", "severity": "warning", "message": "few tags", "field": "tags"}
    ]
    assert seen == [("orders.order-placed", ["order_id"])] * 2


def test_openapi_is_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/subjects/{subject}/versions" in spec["paths"]
    assert "/products/{name}/lineage" in spec["paths"]


def test_lookup_in_a_soft_deleted_subject(client: TestClient) -> None:
    register(client, SUBJECT, schema())
    client.delete(f"/subjects/{SUBJECT}", auth=ORDERS)
    gone = client.post(f"/subjects/{SUBJECT}", json={"schema": schema()})
    assert (gone.status_code, gone.json()["error_code"]) == (404, 40401)
    found = client.post(f"/subjects/{SUBJECT}?deleted=true", json={"schema": schema()})
    assert found.json()["version"] == 1


def test_lineage_cycles_are_refused(client: TestClient) -> None:
    _setup_products(client)
    looped = descriptor(inputs=["orders.order-value"])
    refused = client.put("/products/orders.order-placed", json=looped, auth=ORDERS).json()
    assert refused["error_code"] == 42210
    assert refused["message"] == (
        "product 'orders.order-placed': inputs would make a lineage cycle "
        "orders.order-placed -> orders.order-value -> orders.order-placed"
    )
    itself = client.put(
        "/products/orders.order-placed",
        json=descriptor(inputs=["orders.order-placed"]),
        auth=ORDERS,
    ).json()
    assert itself["message"] == "product 'orders.order-placed' lists itself in inputs"


class _Replaying(InMemoryStore):
    """An in-memory store that says it is still replaying (as the Kafka store does)."""

    reason: str | None = "replaying the registry log: 5 of 9 records of t"

    def starting(self) -> str | None:
        return self.reason

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.reason is not None:
            return False, {"reason": self.reason}
        return super().readiness()


def test_health_answers_without_a_credential_even_with_read_auth() -> None:
    from mesh_stream.registry.service import create_app
    from mesh_stream.registry.service.auth import Credentials
    from tests.unit.registry.conftest import TOKENS

    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True)
    client = TestClient(app)
    assert client.get("/subjects").status_code == 401
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "records": 0})


def test_during_replay_only_health_answers_and_readiness_says_why() -> None:
    from mesh_stream.registry.service import create_app

    store = _Replaying()
    client = TestClient(create_app(store, wait_for_replay=False))
    ready = client.get("/health/ready")
    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "not ready", "reason": "replaying the registry log: 5 of 9 records of t"},
    )
    assert client.get("/health").status_code == 200
    blocked = client.get("/subjects")
    assert blocked.status_code == 503
    assert blocked.headers["retry-after"] == "1"
    assert blocked.json() == {
        "error_code": 50302,
        "message": "the registry is starting (replaying the registry log: 5 of 9 records of "
        "t); retry when GET /health/ready answers 200",
    }
    store.reason = None
    assert client.get("/subjects").json() == []
    assert client.get("/health/ready").json() == {"status": "ready", "records": 0}


def test_head_answers_as_get_without_a_body(client: TestClient) -> None:
    """Uptime checks and `curl -I` use HEAD; FastAPI alone answers it with 405."""
    client.post(
        "/subjects/orders.order-placed-value/versions",
        json={"schema": schema()},
        auth=ADMIN,
    )
    for path in ("/subjects", "/subjects/orders.order-placed-value/versions/latest", "/"):
        got, head = client.get(path, auth=ADMIN), client.head(path, auth=ADMIN)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == str(len(got.content)), path
    missing = client.head("/subjects/nope/versions", auth=ADMIN)
    assert missing.status_code == client.get("/subjects/nope/versions", auth=ADMIN).status_code
    assert missing.content == b""
    assert client.head("/subjects").status_code == client.get("/subjects").status_code


def test_a_new_subject_is_compatible_with_its_latest_version_as_confluent_says(
    client: TestClient,
) -> None:
    """Confluent answers `versions/latest` of a subject with no version yet with
    is_compatible true (so CI checks of a brand-new product pass); the registry said 40401
    (h44). A version number of such a subject is still 40401, and a bad body still 422."""
    new = "orders.brand-new.v1-value"
    for version in ("latest", "-1"):
        answer = client.post(
            f"/compatibility/subjects/{new}/versions/{version}", json={"schema": schema()}
        )
        assert (answer.status_code, answer.json()) == (200, {"is_compatible": True})
    numbered = client.post(f"/compatibility/subjects/{new}/versions/1", json={"schema": schema()})
    assert (numbered.status_code, numbered.json()["error_code"]) == (404, 40401)
    broken = client.post(
        f"/compatibility/subjects/{new}/versions/latest", json={"schema": '{"type": "nope"}'}
    )
    assert broken.status_code == 422
