"""The lineage graph's document and pages over the in-process registry with the sample mesh:
nodes, columns, field lineage, PII flow, the text equivalent, CSP-safe markup, 404s."""

from __future__ import annotations

import html
import json
import re
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.context import Services
from tests.unit.registry.conftest import TOKENS
from tests.unit.registry.portal.test_sample_masking import register_sample_mesh

C360 = "analytics.customer-360"
PROFILE = "customers.customer-profile"
CONTACTS_SCHEMA = {
    "type": "record",
    "name": "Contact",
    "doc": "Whom to call.",
    "fields": [
        {"name": "customer_id", "type": "string", "doc": "Customer."},
        {"name": "email", "type": "string", "pii": True, "doc": "Copied from the profile."},
    ],
}


def _add_contacts(services: Services) -> None:
    """A pii product built from the profile's email: an edge that carries PII."""
    services.schemas.register("analytics.contacts.v1-value", json.dumps(CONTACTS_SCHEMA))
    services.products.put(
        {
            "name": "analytics.contacts",
            "domain": "analytics",
            "kind": "consumer-aligned",
            "description": "Contact addresses of customers.",
            "owner": {"team": "crm", "contact": "crm@example.org"},
            "schema": "schemas/analytics/contacts.avsc",
            "slos": {"freshness_seconds": 60, "availability": 99.0},
            "classification": "pii",
            "inputs": [PROFILE],
            "field_lineage": {
                "customer_id": [f"{PROFILE}:customer_id"],
                "email": [f"{PROFILE}:email"],
            },
        },
        principal="admin",
    )


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(InMemoryStore())
    register_sample_mesh(app.state.services)
    _add_contacts(app.state.services)
    return TestClient(app, raise_server_exceptions=False)


def _graph(client: TestClient, name: str) -> dict[str, Any]:
    answer = client.get(f"/ui/api/products/{name}/lineage")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_the_document_has_inputs_left_with_domain_kind_classification_and_health(
    client: TestClient,
) -> None:
    graph = _graph(client, C360)
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert set(nodes) == {C360, PROFILE, "customers.engagement-event", "orders.order-placed"}
    assert nodes[C360]["role"] == "focus"
    assert nodes[C360]["level"] == 0
    assert {nodes[n]["level"] for n in nodes if n != C360} == {-1}
    profile = nodes[PROFILE]
    assert profile["role"] == "upstream"
    assert profile["domain"] == "customers"
    assert profile["kind"] == "source-aligned"
    assert profile["classification"] == "pii"
    assert profile["health"] == "no data"
    assert profile["pii"] is True
    assert profile["pii_fields"] == ["email", "full_name", "phone"]
    assert profile["url"] == f"/ui/products/{PROFILE}"
    assert nodes["orders.order-placed"]["pii"] is False
    assert nodes[C360]["pii"] is False


def test_edges_carry_the_declared_field_lineage(client: TestClient) -> None:
    graph = _graph(client, C360)
    edges = {edge["id"]: edge for edge in graph["edges"]}
    profile = edges[f"{PROFILE}->{C360}"]
    assert sorted((f["output"], f["input"]) for f in profile["fields"]) == [
        ("customer_id", "customer_id"),
        ("region", "region"),
        ("segment", "segment"),
    ]
    assert profile["label"] == "customer_id, region, segment"
    assert profile["pii"] is False  # the profile's PII fields do not flow into customer-360
    assert profile["pii_undeclared"] is False
    rows = [(r["output"], r["input_product"], r["input"]) for r in graph["field_lineage"]]
    assert ("lifetime_spend", "orders.order-placed", "total_amount") in rows
    assert len(rows) == 10


def test_pii_flowing_along_an_edge_is_marked(client: TestClient) -> None:
    graph = _graph(client, PROFILE)
    edges = {edge["id"]: edge for edge in graph["edges"]}
    contacts = edges[f"{PROFILE}->analytics.contacts"]
    assert contacts["pii"] is True
    assert [f for f in contacts["fields"] if f["pii"]] == [
        {"output": "email", "input": "email", "pii": True}
    ]
    assert edges[f"{PROFILE}->{C360}"]["pii"] is False
    downstream = {n["id"]: n["level"] for n in graph["nodes"] if n["role"] == "downstream"}
    assert downstream == {C360: 1, "analytics.contacts": 1}

    page = client.get(f"/ui/products/{PROFILE}/lineage")
    assert page.status_code == 200
    assert "Personal data flow" in page.text
    flow = page.text.split("Personal data flow", 1)[1].split("</ul>", 1)[0]
    assert "analytics.contacts" in flow
    assert "customer-360" not in flow
    assert 'class="pii-row"' in page.text


def test_levels_put_an_input_of_an_input_further_left(client: TestClient) -> None:
    graph = _graph(client, "orders.order-placed")
    levels = {n["id"]: n["level"] for n in graph["nodes"]}
    assert levels["orders.order-placed"] == 0
    assert levels[C360] == 1
    assert levels["analytics.revenue-by-region"] == 1
    assert all(level >= 0 for level in levels.values())


def test_the_page_draws_from_a_data_attribute_and_lists_the_same_links(
    client: TestClient,
) -> None:
    answer = client.get(f"/ui/products/{C360}/lineage")
    assert answer.status_code == 200
    text = answer.text
    graph_div = re.search(r'<div id="lineage-graph"[^>]*>', text)
    assert graph_div is not None
    tag = graph_div.group(0)
    assert 'role="img"' in tag
    label = re.search(r'aria-label="([^"]+)"', tag)
    assert label is not None
    assert "3 upstream and 0 downstream" in html.unescape(label.group(1))
    data = re.search(r'data-graph="([^"]+)"', tag)
    assert data is not None
    assert json.loads(html.unescape(data.group(1))) == _graph(client, C360)
    lists = text.split('class="lineage-lists"', 1)[1].split("</nav>", 1)[0]
    for name in (PROFILE, "customers.engagement-event", "orders.order-placed"):
        assert f'<a href="/ui/products/{name}">{name}</a>' in lists
    assert "⚠ PII" in lists  # the profile, marked in text, not by colour alone
    assert '<script src="/ui/static/lineage.js" defer></script>' in text
    assert '<script src="/ui/static/vendor/cytoscape.min.js" defer></script>' in text
    # CSP: no inline script, style attribute or event handler
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
    assert " style=" not in text
    assert not re.search(r"\son[a-z]+=", text)
    assert "Field lineage" in text
    assert "lifetime_spend" in text
    headers = answer.headers
    assert "script-src 'self'" in headers["content-security-policy"]


@pytest.mark.parametrize(
    "name",
    [
        "nope.nothing",
        "<img src=x onerror=alert(1)>",
        "x" * 5000,
        "ünï.cødé",
        "orders.order-placed' OR '1'='1",
        "%00",
    ],
)
def test_unknown_or_hostile_names_are_a_friendly_404(client: TestClient, name: str) -> None:
    page = client.get(f"/ui/products/{name}/lineage")
    assert page.status_code == 404
    assert "Product not found" in page.text
    assert "<img src=x" not in page.text
    api = client.get(f"/ui/api/products/{name}/lineage")
    assert api.status_code == 404
    assert "is registered" in api.json()["error"]


def test_a_source_without_consumers_says_so(client: TestClient) -> None:
    page = client.get("/ui/products/payments.payment-authorized/lineage")
    assert page.status_code == 200
    assert "no inputs and no product is built from it" in page.text
    assert "data-lineage-graph" not in page.text


def test_read_auth_guards_the_page_and_the_document() -> None:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True)
    register_sample_mesh(app.state.services)
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    page = client.get(f"/ui/products/{C360}/lineage")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/ui/login?next=")
    api = client.get(f"/ui/api/products/{C360}/lineage")
    assert api.status_code == 401
    signed = client.get(
        f"/ui/api/products/{C360}/lineage", headers={"Authorization": "Bearer orders-secret"}
    )
    assert signed.status_code == 200
    assert signed.json()["product"] == C360
