"""Names a domain may not take: consumer groups named after another domain (squatting),
the ``anonymous`` owner of registrations made without authentication, and the platform's
own names as principals of issued tokens (the rule ``mesh init`` applies to domains)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mesh_stream.cli.main import cli
from mesh_stream.processing.names import processor_app_id, sources_group
from mesh_stream.project import domain_name_problem
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.consumers import group_name_problem
from mesh_stream.registry.service.credentials import issue_problem, principal_problem
from mesh_stream.registry.service.state import Record
from mesh_stream.scaffold import domain_problem
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, descriptor, make_client, schema

PRODUCT = "orders.order-placed"
SUBJECT = f"{PRODUCT}.v1-value"
CONSUMERS = f"/products/{PRODUCT}/consumers"
PAYMENTS = ("payments", TOKENS["payments"])


def _with_product(client: TestClient, auth: Any = ORDERS) -> TestClient:
    body = {"schema": schema("coupon_code")}
    assert client.post(f"/subjects/{SUBJECT}/versions", json=body, auth=auth).status_code == 200
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=auth).status_code == 200
    return client


# -- 1. consumer-group names -----------------------------------------------------------------


def test_a_domain_cannot_register_a_group_named_after_another_domain() -> None:
    client = _with_product(make_client())
    squat = client.put(f"{CONSUMERS}/orders.g9", json={"reads": ["order_id"]}, auth=PAYMENTS)
    assert (squat.status_code, squat.json()["error_code"]) == (403, 40301)
    assert squat.json()["message"] == (
        "principal 'payments' may not register consumer group 'orders.g9': a domain registers "
        "only groups named after it, so no domain can take another's name; name your group "
        "`payments.…` or `payments-…` without a dot (or, for a processor of your product P, "
        "`mesh-P` / `mesh-P-rekey`)"
    )
    assert client.get(CONSUMERS).json() == []  # nothing stored
    # the owner of the name registers it, unregisters it, and deletes its product
    assert client.put(f"{CONSUMERS}/orders.g9", json={}, auth=ORDERS).json()["owner"] == "orders"
    assert client.delete(f"{CONSUMERS}/orders.g9", auth=ORDERS).status_code == 204
    assert client.delete(f"/products/{PRODUCT}", auth=ORDERS).status_code == 204


@pytest.mark.parametrize(
    ("group", "allowed"),
    [
        ("payments.billing", True),
        ("payments-billing", True),
        ("payments.billing.v2", True),
        # the processor of payments' product payments.ledger: its app id and its re-key stage
        (processor_app_id("payments.ledger"), True),
        (sources_group(processor_app_id("payments.ledger")), True),
        ("orders.g9", False),
        ("orders-g9", False),
        ("billing", False),
        ("payments", False),  # not `payments.…`: a prefix of another domain's names too
        ("paymentsx.g", False),
        ("mesh-orders.order-placed", False),  # orders' processor's group
        ("mesh-orders.order-placed-rekey", False),
        ("mesh-payments", False),
        ("mesh-tail-payments", False),
        ("mesh-registry-x", False),
    ],
)
def test_the_group_names_a_domain_owns(group: str, allowed: bool) -> None:
    assert (group_name_problem(group, "payments") is None) is allowed
    assert group_name_problem(group, "admin") is None  # admin registers any name
    client = _with_product(make_client())
    answer = client.put(f"{CONSUMERS}/{group}", json={}, auth=PAYMENTS)
    assert answer.status_code == (200 if allowed else 403), answer.text
    assert client.put(f"{CONSUMERS}/{group}", json={}, auth=ADMIN).status_code == 200


def test_a_processor_registers_its_rekey_group_on_another_domains_input() -> None:
    """What :func:`mesh_stream.processing.app.build_spec` sends for payments' processor of
    payments.ledger reading orders.order-placed (``register_reader`` with its re-key group)."""
    client = _with_product(make_client())
    group = sources_group(processor_app_id("payments.ledger"))
    assert group == "mesh-payments.ledger-rekey"
    body = {"reads": ["order_id"], "description": "the re-key stage of the processor"}
    answer = client.put(f"{CONSUMERS}/{group}", json=body, auth=PAYMENTS)
    assert (answer.status_code, answer.json()["owner"]) == (200, "payments"), answer.text
    again = client.put(f"{CONSUMERS}/{group}", json=body, auth=PAYMENTS)  # restarts re-register
    assert again.status_code == 200
    taken = client.put(f"{CONSUMERS}/{group}", json={}, auth=ORDERS)
    assert (taken.status_code, taken.json()["error_code"]) == (403, 40301)
    assert "name your group `orders.…`" in taken.json()["message"]


def test_the_product_owner_deletes_any_registration_on_its_product() -> None:
    """A group squatted before the rule (or admin's) never blocks the product's deletion."""
    client = _with_product(make_client())
    store: InMemoryStore = client.app.state.services.schemas.store  # type: ignore[attr-defined]
    squatted = {"owner": "payments", "reads": ["order_id"], "registered_by": "payments"}
    store.append([Record(("consumer", PRODUCT, "orders.g9"), squatted)])
    assert client.put(f"{CONSUMERS}/ops", json={}, auth=ADMIN).status_code == 200
    # orders still may not change payments' registration, only remove it
    refused = client.put(f"{CONSUMERS}/orders.g9", json={}, auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    assert "registered by domain 'payments'" in refused.json()["message"]
    held = client.delete(f"/products/{PRODUCT}", auth=ORDERS)
    assert (held.status_code, held.json()["error_code"]) == (409, 40910)
    assert client.delete(f"{CONSUMERS}/orders.g9", auth=ORDERS).status_code == 204
    assert client.delete(f"{CONSUMERS}/ops", auth=ORDERS).status_code == 204
    assert client.delete(f"/products/{PRODUCT}", auth=ORDERS).status_code == 204


def test_another_domain_still_may_not_delete_a_registration_on_a_product_it_does_not_own() -> None:
    client = _with_product(make_client())
    assert client.put(f"{CONSUMERS}/orders-audit", json={}, auth=ORDERS).status_code == 200
    refused = client.delete(f"{CONSUMERS}/orders-audit", auth=PAYMENTS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    assert [c["group"] for c in client.get(CONSUMERS).json()] == ["orders-audit"]


def test_without_authentication_any_group_name_is_registered_as_before() -> None:
    client = _with_product(
        TestClient(create_app(InMemoryStore()), raise_server_exceptions=False), auth=None
    )
    for group in ("orders.g9", "billing", "mesh-payments.ledger-rekey"):
        answer = client.put(f"{CONSUMERS}/{group}", json={})
        assert (answer.status_code, answer.json()["owner"]) == (200, "anonymous"), answer.text
    assert client.delete(f"{CONSUMERS}/billing").status_code == 204


# -- 2. the anonymous owner ------------------------------------------------------------------


def test_anonymous_is_no_domain_and_no_principal_of_an_issued_token(tmp_path: Path) -> None:
    rule = domain_name_problem("anonymous") or ""
    assert rule.startswith("'anonymous' is the owner the registry records")
    assert domain_problem("anonymous") == domain_name_problem("anonymous")  # mesh init's rule
    init = CliRunner().invoke(cli, ["init", "anonymous", str(tmp_path / "anonymous")])
    assert init.exit_code != 0
    assert "'anonymous' is the owner the registry records" in init.output
    client = make_client()
    refused = client.post("/admin/credentials/anonymous", auth=ADMIN)
    assert (refused.status_code, refused.json()["error_code"]) == (422, 42217)
    assert refused.json()["message"].startswith(
        "no token is issued to principal 'anonymous', the rule for domain names: 'anonymous' "
        "is the owner the registry records for what was registered while it ran without "
        "authentication"
    )
    assert not (tmp_path / "anonymous").exists()


def test_a_registration_made_without_authentication_is_changed_by_admin_only() -> None:
    store = InMemoryStore()
    _with_product(TestClient(create_app(store), raise_server_exceptions=False), auth=None)
    opened = TestClient(create_app(store), raise_server_exceptions=False)
    assert opened.put(f"{CONSUMERS}/orders-audit", json={}).json()["owner"] == "anonymous"
    assert opened.put(f"{CONSUMERS}/payments-app", json={}).json()["owner"] == "anonymous"

    secured = make_client(InMemoryStore(store.records))  # restarted with credentials
    for answer, action in (
        (secured.put(f"{CONSUMERS}/orders-audit", json={}, auth=ORDERS), "overwrite"),
        (secured.delete(f"{CONSUMERS}/payments-app", auth=PAYMENTS), "unregister"),
    ):
        assert (answer.status_code, answer.json()["error_code"]) == (403, 40301)
        message = answer.json()["message"]
        assert "registered by domain 'anonymous'" not in message
        assert "registered while the registry ran without authentication" in message
        assert "an admin token" in message, action
    assert secured.put(f"{CONSUMERS}/orders-audit", json={}, auth=ADMIN).status_code == 200
    assert secured.delete(f"{CONSUMERS}/payments-app", auth=ORDERS).status_code == 204  # owner


# -- 3. the platform's own names as principals -----------------------------------------------


@pytest.mark.parametrize("name", ["mesh", "mesh-x", "mesh-registry", "registry", "anonymous"])
def test_no_token_is_issued_to_a_name_mesh_init_refuses(name: str) -> None:
    client = make_client()
    rule = domain_name_problem(name)
    assert rule is not None
    assert domain_problem(name) == rule
    for path in (f"/admin/credentials/{name}", f"/admin/credentials/{name}/rotate"):
        refused = client.post(path, auth=ADMIN)
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42217), path
        assert refused.json()["message"] == (
            f"no token is issued to principal {name!r}, the rule for domain names: {rule}"
        )
    assert issue_problem(name) is not None
    assert principal_problem(name) is None  # a well-formed name: revoke still takes it
    assert client.delete(f"/admin/credentials/{name}", auth=ADMIN).status_code == 404


def test_the_monitor_and_domains_are_still_issued_tokens() -> None:
    client = make_client()
    for name in ("monitor", "inventory", "click-stream", "meshy", "messaging"):
        assert issue_problem(name) is None, name
        added = client.post(f"/admin/credentials/{name}", auth=ADMIN)
        assert added.status_code == 201, added.text
    monitor = client.post("/admin/credentials/monitor/rotate", auth=ADMIN).json()["token"]
    reads = client.get("/subjects", headers={"Authorization": f"Bearer {monitor}"})
    assert reads.status_code == 200
    admin = client.post("/admin/credentials/admin", auth=ADMIN)  # refused as before
    assert (admin.status_code, admin.json()["error_code"]) == (422, 42217)
    assert "bootstrap principal" in admin.json()["message"]


def test_a_dashed_prefix_does_not_reach_another_domains_dotted_names() -> None:
    """orders could register orders-eu's `orders-eu.…` groups through its `orders-…` names
    (a review of the session's diff)."""
    from mesh_stream.registry.service.consumers import group_name_problem

    assert group_name_problem("orders-billing", "orders") is None
    assert group_name_problem("orders-eu.billing", "orders-eu") is None
    refused = group_name_problem("orders-eu.billing", "orders")
    assert refused is not None
    assert "name your group `orders.…` or `orders-…`" in refused


def test_a_registration_the_domain_owns_from_before_the_rule_stays_its_own() -> None:
    """`orders-app.v2` registered by orders before the name rule: orders still updates it
    (its consumer re-registers its reads at every start; a review)."""
    client = _with_product(make_client())
    store: InMemoryStore = client.app.state.services.schemas.store  # type: ignore[attr-defined]
    owned = {"owner": "orders", "reads": ["order_id"], "registered_by": "orders"}
    store.append([Record(("consumer", PRODUCT, "orders-app.v2"), owned)])
    again = client.put(f"{CONSUMERS}/orders-app.v2", json={"reads": ["order_id"]}, auth=ORDERS)
    assert again.status_code == 200, again.text
    new = client.put(f"{CONSUMERS}/orders-app.v3", json={}, auth=ORDERS)
    assert (new.status_code, new.json()["error_code"]) == (403, 40301)
