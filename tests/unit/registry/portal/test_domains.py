"""The portal's domains view: each domain with its teams, products, health counts and worst
status, over the same in-memory registry as the search tests."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from mesh_stream.health import Status, health_key
from mesh_stream.registry.portal.domains import domain_overview
from mesh_stream.registry.portal.search_index import HealthSummary, index_of, worst_status
from tests.unit.registry.conftest import ADMIN, descriptor
from tests.unit.registry.portal.test_search import PRODUCTS, healthy, make_portal


@pytest.fixture(scope="module")
def portal() -> TestClient:
    return make_portal()[0]


def domain_block(page: str, name: str) -> str:
    found = re.search(rf'data-domain="{re.escape(name)}">(.*?)</li>', page, flags=re.S)
    assert found is not None, name
    return found.group(1)


def test_every_domain_is_listed_with_its_products_teams_and_health(portal: TestClient) -> None:
    response = portal.get("/ui/domains")
    assert response.status_code == 200
    page = response.text
    domains = re.findall(r'data-domain="([^"]+)"', page)
    assert domains == sorted({name.split(".")[0] for name in PRODUCTS})
    assert "4 domains,\n  4 products." in page
    orders = domain_block(page, "orders")
    assert '<a href="/ui/products?domain=orders">orders</a>' in orders
    assert "Owner team: checkout" in orders
    assert '<a href="/ui/products/orders.order-placed">orders.order-placed</a>' in orders
    assert "<td>source-aligned</td>" in orders
    assert '<span class="badge ok" title="">ok</span>' in orders
    assert '<span class="badge ok">1 ok</span>' in orders
    payments = domain_block(page, "payments")
    assert "Owner team: treasury" in payments
    assert '<span class="badge breached">1 breached</span>' in payments
    analytics = domain_block(page, "analytics")
    assert "<td>aggregate</td>" in analytics
    assert '<span class="badge no-data">1 no data</span>' in analytics
    assert "<td>—</td>" in analytics  # no measurement: no last record time


def test_a_domains_worst_status_and_counts_cover_all_its_products() -> None:
    client, feed = make_portal()
    second = "orders.order-status-changed"
    text = '{"type":"record","name":"S","fields":[{"name":"id","type":"string","doc":"Id."}]}'
    assert (
        client.post(
            f"/subjects/{second}.v1-value/versions", json={"schema": text}, auth=ADMIN
        ).status_code
        == 200
    )
    document = descriptor(second, owner={"team": "fulfilment", "contact": "f@example.com"})
    assert client.put(f"/products/{second}", json=document, auth=ADMIN).status_code == 200
    record = healthy(second, Status.DEGRADED)
    feed.push(record, key=health_key(record.product, record.measured_at_ms))
    orders = domain_block(client.get("/ui/domains").text, "orders")
    assert "Owner teams: checkout, fulfilment" in orders
    title = re.search(r'<h2 class="domain-title">(.*?)</h2>', orders, flags=re.S)
    assert title is not None
    assert '<span class="badge degraded"' in title.group(1)
    counts = re.search(r'<p class="meta status-counts">(.*?)</p>', orders, flags=re.S)
    assert counts is not None
    assert re.findall(r">(\d+ [a-z]+)</span>", counts.group(1)) == ["1 ok", "1 degraded"]


def test_the_overview_groups_by_domain_and_ranks_unknown_lowest(portal: TestClient) -> None:
    catalog = portal.app.state.services.products  # type: ignore[attr-defined]
    overview = domain_overview(
        index_of(catalog),
        {
            "orders.order-placed": HealthSummary("breached"),
            "payments.payment-captured": HealthSummary("ok"),
        },
    )
    by_name = {d.name: d for d in overview}
    assert [d.name for d in overview] == ["analytics", "customers", "orders", "payments"]
    assert by_name["orders"].worst == "breached"
    assert by_name["customers"].worst == "no data"
    assert by_name["customers"].search_url == "/ui/products?domain=customers"
    assert worst_status(["no data", "ok"]) == "ok"
    assert worst_status(["ok", "degraded", "no data"]) == "degraded"
    assert worst_status([]) == "no data"


def test_an_empty_registry_says_so() -> None:
    from mesh_stream.registry.service import InMemoryStore, create_app

    client = TestClient(create_app(InMemoryStore()))
    page = client.get("/ui/domains").text
    assert "No product is registered yet." in page
    assert "0 domains" in page
