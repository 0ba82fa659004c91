"""The portal's search page over an in-memory registry: free text over names, owners, field
names and docs; facets counted given the other filters; htmx fragments; hostile queries."""

from __future__ import annotations

import html
import json
import re
import time
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.health import Figure, FigureName, ProductHealth, Status, health_key
from mesh_stream.registry.portal.search_index import (
    MAX_QUERY_CHARS,
    PAGE_SIZE,
    IndexedProduct,
    SearchIndex,
    SearchQuery,
    index_of,
    summarize,
)
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.product_health import InMemoryHealthFeed
from tests.unit.registry.conftest import ADMIN, TOKENS, descriptor

FRESHNESS = 3.0


def _schema(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "doc": f"{name}.", "fields": fields})


ORDER_FIELDS = [
    {"name": "order_id", "type": "string", "doc": "Order id."},
    {
        "name": "shipping_address",
        "doc": "Where the order goes.",
        "type": {
            "type": "record",
            "name": "Address",
            "fields": [
                {"name": "postcode", "type": "string", "doc": "Postal code the parcel goes to."}
            ],
        },
    },
]
REVENUE_FIELDS = [
    {"name": "region", "type": "string", "doc": "Sales region."},
    {"name": "average_order_value", "type": "double", "doc": "Rounded half-even to cents."},
]
PAYMENT_FIELDS = [{"name": "payment_id", "type": "string", "doc": "Payment id."}]
PROFILE_FIELDS = [{"name": "email", "type": "string", "doc": "Where we write to them."}]

#: name -> (schema fields, descriptor changes)
PRODUCTS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "orders.order-placed": (ORDER_FIELDS, {"tags": ["orders", "sales"]}),
    "payments.payment-captured": (
        PAYMENT_FIELDS,
        {
            "description": "Payments the bank captured.",
            "owner": {"team": "treasury", "contact": "money@example.com"},
            "classification": "confidential",
            "tags": ["payments", "sales"],
        },
    ),
    "analytics.revenue-by-region": (
        REVENUE_FIELDS,
        {
            "kind": "aggregate",
            "description": "Revenue per sales region and minute.",
            "owner": {"team": "analytics-platform", "contact": "bi@example.com"},
            "inputs": ["orders.order-placed"],
            "tags": ["analytics", "revenue"],
        },
    ),
    "customers.customer-profile": (
        PROFILE_FIELDS,
        {
            "description": "Who our customers are.",
            "owner": {"team": "crm", "contact": "crm@example.com"},
            "classification": "pii",
            "tags": ["customers"],
        },
    ),
}


def register_product(client: TestClient, name: str) -> None:
    fields, changes = PRODUCTS[name]
    subject = f"{name}.v1-value"
    text = _schema(name.split(".")[1].replace("-", "_"), fields)
    done = client.post(f"/subjects/{subject}/versions", json={"schema": text}, auth=ADMIN)
    assert done.status_code == 200, done.text
    document = descriptor(name, **changes)
    document["schema"] = f"schemas/{name.split('.', maxsplit=1)[0]}/{name.split('.')[1]}.avsc"
    put = client.put(f"/products/{name}", json=document, auth=ADMIN)
    assert put.status_code == 200, put.text


def healthy(product: str, status: Status, *, freshness: float | None = FRESHNESS) -> ProductHealth:
    now = int(time.time() * 1000)
    return ProductHealth(
        product=product,
        measured_at_ms=now,
        status=status,
        reason="" if status is Status.OK else "freshness over its SLO",
        since_ms=now - 60_000,
        figures=(
            Figure(name=FigureName.FRESHNESS_SECONDS, value=freshness, slo=5.0, status=status),
        ),
    )


def make_portal(*, read_requires_auth: bool = False) -> tuple[TestClient, InMemoryHealthFeed]:
    """A registry holding :data:`PRODUCTS`; orders is ``ok``, payments ``breached``, the others
    have no health record (``no data``)."""
    feed = InMemoryHealthFeed()
    app = create_app(
        InMemoryStore(),
        credentials=Credentials(TOKENS),
        health_feed=feed,
        read_requires_auth=read_requires_auth,
    )
    client = TestClient(app, raise_server_exceptions=False)
    for name in PRODUCTS:
        register_product(client, name)
    for record in (
        healthy("orders.order-placed", Status.OK),
        healthy("payments.payment-captured", Status.BREACHED),
    ):
        feed.push(record, key=health_key(record.product, record.measured_at_ms))
    return client, feed


@pytest.fixture(scope="module")
def portal() -> TestClient:
    return make_portal()[0]


def card_names(page: str) -> list[str]:
    return re.findall(r'<li class="card product-card" data-product="([^"]+)"', page)


def facet_counts(page: str, facet: str) -> dict[str, int]:
    """``value -> count`` of one facet, as the page lists it."""
    found = re.findall(
        rf'data-facet="{facet}" data-value="([^"]*)">.*?<span class="count"> \((\d+)\)',
        page,
        flags=re.S,
    )
    return {html.unescape(value): int(count) for value, count in found}


def facet_link(page: str, facet: str, value: str) -> str:
    """The ``<a ...>`` tag of one facet value."""
    for tag in re.findall(r"<a [^>]*>", page, flags=re.S):
        if f'data-facet="{facet}"' in tag and f'data-value="{value}"' in tag:
            return tag
    raise AssertionError(f"no link for {facet}={value}")


def href(tag: str) -> str:
    found = re.search(r'href="([^"]*)"', tag)
    assert found is not None
    return html.unescape(found.group(1))


def search(client: TestClient, **params: str) -> str:
    response = client.get("/ui/products", params=params)
    assert response.status_code == 200, response.text
    return response.text


# -- free text -----------------------------------------------------------------------------


def test_a_word_only_in_a_field_doc_finds_its_product(portal: TestClient) -> None:
    page = search(portal, q="cents")
    assert card_names(page) == ["analytics.revenue-by-region"]
    assert "1 product matching" in page


def test_a_word_in_a_nested_fields_doc_and_a_nested_field_path_find_it(
    portal: TestClient,
) -> None:
    assert card_names(search(portal, q="parcel")) == ["orders.order-placed"]
    assert card_names(search(portal, q="shipping_address.postcode")) == ["orders.order-placed"]


def test_owner_team_and_contact_are_searched(portal: TestClient) -> None:
    assert card_names(search(portal, q="treasury")) == ["payments.payment-captured"]
    assert card_names(search(portal, q="crm@example.com")) == ["customers.customer-profile"]


def test_words_are_anded_and_case_insensitive(portal: TestClient) -> None:
    assert card_names(search(portal, q="SALES Region")) == ["analytics.revenue-by-region"]
    assert card_names(search(portal, q="sales")) == [
        "analytics.revenue-by-region",  # a field doc
        "orders.order-placed",  # a tag
        "payments.payment-captured",
    ]
    page = search(portal, q="cents parcel")
    assert card_names(page) == []
    assert "0 products matching" in page


def test_name_matches_rank_first(portal: TestClient) -> None:
    assert card_names(search(portal, q="order"))[0] == "orders.order-placed"


def test_no_query_lists_every_product_with_a_plural_count(portal: TestClient) -> None:
    page = search(portal)
    assert sorted(card_names(page)) == sorted(PRODUCTS)
    assert "4 products" in page


# -- cards ---------------------------------------------------------------------------------


def card(page: str, name: str) -> str:
    found = re.search(rf'data-product="{re.escape(name)}">(.*?)</li>', page, flags=re.S)
    assert found is not None, name
    return found.group(1)


def test_cards_show_owner_badges_health_and_last_record_time(portal: TestClient) -> None:
    page = search(portal)
    orders = card(page, "orders.order-placed")
    assert 'href="/ui/products/orders.order-placed"' in orders
    assert "Owner checkout" in orders
    assert '<span class="badge internal"' in orders
    assert '<span class="badge ok"' in orders
    assert "health: ok" in orders
    stamp = re.search(r'<time datetime="([^"]+)">', orders)
    assert stamp is not None
    assert abs(time.time() - FRESHNESS - _epoch(stamp.group(1))) < 30
    payments = card(page, "payments.payment-captured")
    assert "health: breached" in payments
    assert '<span class="badge confidential"' in payments
    revenue = card(page, "analytics.revenue-by-region")
    assert "health: no data" in revenue
    assert "Last record:\n    —" in revenue
    assert "analytics-platform" in revenue


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_long_descriptions_are_trimmed_on_cards() -> None:
    client, _ = make_portal()
    long = "word " * 200
    document = descriptor("orders.order-placed", description=long.strip(), tags=["orders"])
    assert client.put("/products/orders.order-placed", json=document, auth=ADMIN).status_code == 200
    shown = card(search(client, q="order-placed"), "orders.order-placed")
    text = re.search(r'<p class="description">(.*?)</p>', shown, flags=re.S)
    assert text is not None
    assert text.group(1).endswith("…")
    assert len(text.group(1)) <= 221


# -- facets --------------------------------------------------------------------------------


def test_facets_count_given_the_other_filters(portal: TestClient) -> None:
    page = search(portal, q="sales", domain="orders")
    assert card_names(page) == ["orders.order-placed"]
    # the domain facet ignores its own filter: every domain "sales" matches, with counts
    assert facet_counts(page, "domain") == {"analytics": 1, "orders": 1, "payments": 1}
    # the others count within domain=orders
    assert facet_counts(page, "kind") == {"source-aligned": 1}
    assert facet_counts(page, "classification") == {"internal": 1}
    assert facet_counts(page, "tag") == {"orders": 1, "sales": 1}
    assert facet_counts(page, "health") == {"ok": 1}


def test_health_facet_filters_on_the_monitors_status(portal: TestClient) -> None:
    page = search(portal)
    assert facet_counts(page, "health") == {"ok": 1, "breached": 1, "no data": 2}
    assert card_names(search(portal, health="breached")) == ["payments.payment-captured"]
    assert sorted(card_names(search(portal, health="no data"))) == [
        "analytics.revenue-by-region",
        "customers.customer-profile",
    ]


def test_a_facet_link_toggles_its_value_keeping_the_query_and_other_facets(
    portal: TestClient,
) -> None:
    page = search(portal, q="sales", tag="sales")
    link = facet_link(page, "domain", "payments")
    assert "aria-current" not in link
    target = href(link)
    assert target.startswith("/ui/products?")
    assert "q=sales" in target
    assert "tag=sales" in target
    assert "domain=payments" in target
    narrowed = portal.get(target).text
    assert card_names(narrowed) == ["payments.payment-captured"]
    selected = facet_link(narrowed, "domain", "payments")
    assert 'aria-current="true"' in selected
    # the selected value's link clears it again, keeping the rest
    cleared = href(selected)
    assert "domain=" not in cleared
    assert "q=sales" in cleared
    assert "tag=sales" in cleared
    assert len(card_names(portal.get(cleared).text)) == 2  # orders, payments (tag sales)
    # and so does the facet's "clear" link
    clear = re.search(r'<a class="clear-facet" href="([^"]*)">Clear domain</a>', narrowed)
    assert clear is not None
    assert html.unescape(clear.group(1)) == cleared


def test_choosing_another_value_of_an_active_facet_replaces_it(portal: TestClient) -> None:
    page = search(portal, domain="orders")
    target = href(facet_link(page, "domain", "analytics"))
    assert "domain=analytics" in target
    assert "domain=orders" not in target


def test_an_unknown_facet_value_gives_no_result_not_an_error(portal: TestClient) -> None:
    for facet in ("domain", "kind", "classification", "tag", "health"):
        page = search(portal, **{facet: "no-such-value"})
        assert card_names(page) == [], facet
        assert "0 products" in page
        # shown as selected with 0, so it can be cleared
        assert facet_counts(page, facet)["no-such-value"] == 0
        assert 'aria-current="true"' in facet_link(page, facet, "no-such-value")


def test_the_form_carries_the_active_facets_so_typing_keeps_them(portal: TestClient) -> None:
    page = search(portal, q="sales", domain="orders")
    form = re.search(r"<form class=\"search-form\".*?</form>", page, flags=re.S)
    assert form is not None
    assert '<input type="hidden" name="domain" value="orders">' in form.group(0)
    assert 'value="sales"' in form.group(0)


# -- htmx ----------------------------------------------------------------------------------


def test_full_page_without_htmx_and_the_results_fragment_with_it(portal: TestClient) -> None:
    full = portal.get("/ui/products", params={"q": "cents"})
    assert full.text.lstrip().lower().startswith("<!doctype html>")
    assert 'hx-get="/ui/products"' in full.text
    assert 'hx-trigger="input changed delay:250ms, search"' in full.text
    assert 'hx-target="#results"' in full.text
    assert 'hx-push-url="true"' in full.text
    assert full.headers["vary"] == "HX-Request"
    fragment = portal.get("/ui/products", params={"q": "cents"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "<form" not in fragment.text
    assert card_names(fragment.text) == ["analytics.revenue-by-region"]
    assert 'data-facet="domain"' in fragment.text
    # the screen-reader status line outside the region is updated out of band
    assert (
        '<p id="search-status" class="visually-hidden" role="status" hx-swap-oob="true">'
        "1 product found</p>"
    ) in fragment.text
    assert '<p id="search-status" class="visually-hidden" role="status">' in full.text
    # a history restore (htmx's cache missed) needs the whole page again
    restored = portal.get(
        "/ui/products",
        params={"q": "cents"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<!doctype html>" in restored.text.lower()


def test_security_headers_and_no_inline_script_or_style(portal: TestClient) -> None:
    response = portal.get("/ui/products")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script>" not in response.text
    assert " style=" not in response.text
    assert not re.search(r"\son[a-z]+=", response.text)


# -- hostile input -------------------------------------------------------------------------


def test_a_script_in_the_query_is_escaped_everywhere(portal: TestClient) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    for headers in ({}, {"HX-Request": "true"}):
        response = portal.get(
            "/ui/products", params={"q": hostile, "tag": hostile}, headers=headers
        )
        assert response.status_code == 200
        assert "<script>alert(1)" not in response.text
        assert "<img src=x" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_a_10kb_query_is_cut_and_answered(portal: TestClient) -> None:
    huge = "revenue " + "x" * 10_000
    response = portal.get("/ui/products", params={"q": huge, "domain": "d" * 5000})
    assert response.status_code == 200
    assert "cut to its first 256 characters" in response.text
    assert card_names(response.text) == []
    assert len(response.text) < 60_000  # the query is not repeated 10 kB per link


@pytest.mark.parametrize(
    "params",
    [
        {"q": "\u202e\u0000\ud7ff 文字 🙂"},
        {"q": "%00%ff", "page": "-3"},
        {"page": "not-a-number"},
        {"page": "99999999999999999999"},
        {"q": "' OR 1=1 --", "kind": "{{7*7}}"},
    ],
)
def test_odd_unicode_and_injection_attempts_answer_200(
    portal: TestClient, params: dict[str, str]
) -> None:
    response = portal.get("/ui/products", params=params)
    assert response.status_code == 200
    if "kind" in params:  # shown literally, never evaluated as a template
        assert 'data-value="{{7*7}}"' in response.text


def test_read_auth_sends_an_anonymous_viewer_to_sign_in() -> None:
    client, _ = make_portal(read_requires_auth=True)
    response = client.get("/ui/products?q=x", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?next=")
    fragment = client.get("/ui/products?q=x", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["hx-redirect"].startswith("/ui/login")
    signed = client.get("/ui/products", headers={"Authorization": "Bearer orders-secret"})
    assert signed.status_code == 200
    assert len(card_names(signed.text)) == 4


# -- the index -----------------------------------------------------------------------------


def test_the_index_is_built_once_per_catalog_change() -> None:
    client, _ = make_portal()
    catalog = client.app.state.services.products  # type: ignore[attr-defined]
    first = index_of(catalog)
    assert index_of(catalog) is first
    client.put(
        "/products/orders.order-placed",
        json=descriptor("orders.order-placed", tags=["orders", "fresh-tag"]),
        auth=ADMIN,
    )
    second = index_of(catalog)
    assert second is not first
    assert card_names(search(client, q="fresh-tag")) == ["orders.order-placed"]


def _synthetic(count: int) -> SearchIndex:
    return SearchIndex(
        tuple(
            IndexedProduct(
                name=f"d{i % 7}.product-{i:04d}",
                domain=f"d{i % 7}",
                kind="source-aligned",
                classification="internal",
                tags=(f"t{i % 3}",),
                owner_team="team",
                owner_contact="team@example.com",
                description="A product.",
                text=f"d{i % 7}.product-{i:04d}\na product.\nt{i % 3}",
                folded_name=f"d{i % 7}.product-{i:04d}",
            )
            for i in range(count)
        )
    )


def test_results_are_paged_with_links_that_keep_the_query() -> None:
    index = _synthetic(2 * PAGE_SIZE + 5)
    first = index.search(SearchQuery.parse("product", tag="t0"))
    assert first.total == 35
    assert first.pages == 1
    everything = index.search(SearchQuery.parse("product"))
    assert everything.total == 2 * PAGE_SIZE + 5
    assert everything.pages == 3
    assert len(everything.page_hits) == PAGE_SIZE
    assert everything.previous_url is None
    assert everything.next_url == "/ui/products?q=product&page=2"
    last = index.search(SearchQuery.parse("product", page="9"))  # past the end: the last page
    assert last.query.page == 3
    assert len(last.page_hits) == 5
    assert (last.first_shown, last.last_shown) == (2 * PAGE_SIZE + 1, 2 * PAGE_SIZE + 5)


def test_a_thousand_products_search_in_milliseconds() -> None:
    index = _synthetic(1000)
    started = time.perf_counter()
    result = index.search(SearchQuery.parse("product 00", domain="d3"))
    elapsed = time.perf_counter() - started
    assert result.total == len([i for i in range(1000) if i % 7 == 3 and "00" in f"{i:04d}"])
    assert elapsed < 0.5  # measured at ~5 ms; a loose bound for a loaded machine


def test_query_parsing_cuts_and_normalises() -> None:
    query = SearchQuery.parse("  many   spaces\tand\nlines ", domain="  ", tag="x" * 500)
    assert query.q == "many spaces and lines"
    assert query.domain is None
    assert query.tag is not None
    assert len(query.tag) == 128
    long = SearchQuery.parse("y" * (MAX_QUERY_CHARS + 10))
    assert long.truncated
    assert len(long.q) == MAX_QUERY_CHARS
    assert SearchQuery.parse("a b", domain="orders").url() == "/ui/products?q=a+b&domain=orders"
    assert SearchQuery().url() == "/ui/products"


def test_health_summary_reads_the_last_record_time_from_the_freshness_figure() -> None:
    record = healthy("x.y", Status.DEGRADED, freshness=10.0)
    summary = summarize(record)
    assert summary.status == "degraded"
    assert summary.last_record_ms == record.measured_at_ms - 10_000
    assert summarize(healthy("x.y", Status.NO_DATA, freshness=None)).status == "no data"
    assert summarize(None).last_record_ms is None
