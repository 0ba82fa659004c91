"""The portal under attack and under a demanding user: hostile values in every route, stored
markup in what products register, every internal link resolving, JSON routes answering JSON
and pages answering pages, the same health words everywhere."""

from __future__ import annotations

import html
import json
import re
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from tests.unit.registry.conftest import ADMIN, TOKENS, descriptor

SCRIPT = "<script>alert(1)</script>"
EVIL = "orders.evil"
PLAIN = "orders.plain"
DERIVED = "analytics.derived"


def _schema(name: str, doc: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "doc": doc,
            "fields": [
                {"name": "id", "type": "string", "doc": doc},
                {"name": "email", "type": "string", "pii": True, "doc": "Address."},
            ],
        }
    )


def _register(client: TestClient, name: str, record: str, doc: str, **changes: Any) -> None:
    answer = client.post(
        f"/subjects/{name}.v1-value/versions", json={"schema": _schema(record, doc)}, auth=ADMIN
    )
    assert answer.status_code == 200, answer.text
    answer = client.put(f"/products/{name}", json=descriptor(name, **changes), auth=ADMIN)
    assert answer.status_code == 200, answer.text


def _client(*, read_auth: bool = False) -> TestClient:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=read_auth)
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """Three products, one of them carrying markup and a script URL wherever a registrant
    may write text."""
    with _client() as found:
        _register(
            found,
            EVIL,
            "Evil",
            f"{SCRIPT} javascript:alert(1)",
            description=f"{SCRIPT}[x](javascript:alert(1))",
            owner={"team": f"<b>{SCRIPT}</b>", "contact": "javascript:alert(1)//@x.com"},
            tags=['ta"g<i>', SCRIPT[:20].lower().replace("<", "").replace(">", "")],
            classification="pii",
        )
        _register(found, PLAIN, "Plain", "Plain.", owner={"team": "t", "contact": "t@example.com"})
        _register(
            found,
            DERIVED,
            "Derived",
            "Derived.",
            kind="aggregate",
            inputs=[EVIL, PLAIN],
            classification="pii",
        )
        yield found


#: Every page and the query parameters it reads (others get one it ignores).
PAGES = {
    "/ui/products": ["q", "domain", "kind", "classification", "tag", "health", "page"],
    "/ui/products/{name}": ["from", "to"],
    "/ui/products/{name}/diff": ["from", "to"],
    "/ui/products/{name}/lineage": ["x"],
    "/ui/products/{name}/sample": ["limit"],
    "/ui/domains": ["x"],
    "/ui/login": ["next"],
}
HOSTILE = [
    "a" * 5000,
    "\u202eevil\u202c",
    "e\u0301\u0301",
    "\U0001f600",
    "%00",
    "%ED%A0%80",
    "%FF%FE",
    "..",
    "..%2F..%2Fsubjects",
    SCRIPT,
    "'\"><img src=x onerror=alert(1)>",
    "-1",
    "1e9",
    "99999999999999999999999",
    "abc",
]


def _sane(answer: Any, where: str) -> None:
    assert answer.status_code < 500 or "Kafka" in answer.text, (where, answer.status_code)
    assert "Traceback" not in answer.text, where
    assert SCRIPT not in answer.text, where
    assert "<img src=x" not in answer.text, where


def test_hostile_paths_and_query_values_never_break_a_page(client: TestClient) -> None:
    for page, parameters in PAGES.items():
        for value in HOSTILE:
            if "{name}" in page:
                url = page.format(name=value)
                _sane(client.get(url), url)
            for parameter in parameters:
                url = page.format(name=EVIL) + f"?{parameter}={value}&{parameter}=2"
                answer = client.get(url)
                _sane(answer, url)
                if answer.status_code < 300 or "/api/" not in url:
                    # a page, its errors too: a URL that is not UTF-8 got the API's JSON
                    # (a campaign)
                    assert "text/html" in answer.headers["content-type"], (url, answer.text)
                elif answer.status_code >= 400:  # what scripts ask keeps answering JSON
                    assert "json" in answer.headers["content-type"], (url, answer.text)
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            url = page.format(name=EVIL)
            if url in ("/ui/login",) and method == "POST":
                continue
            assert client.request(method, url).status_code == 405, (method, url)


def test_stored_markup_is_text_and_a_script_url_is_never_a_link(client: TestClient) -> None:
    for url in (
        f"/ui/products/{EVIL}",
        f"/ui/products/{DERIVED}",
        f"/ui/products/{EVIL}/lineage",
        "/ui/products?q=evil",
        "/ui/domains",
    ):
        answer = client.get(url)
        assert answer.status_code == 200, url
        _sane(answer, url)
        assert not re.search(r"(href|src|action)=\"\s*javascript:", answer.text, re.I), url
    page = client.get(f"/ui/products/{EVIL}").text
    assert html.escape(SCRIPT, quote=False) in page or "&lt;script&gt;" in page
    graph = client.get(f"/ui/api/products/{DERIVED}/lineage")
    assert graph.headers["content-type"].startswith("application/json")
    assert {node["id"] for node in graph.json()["nodes"]} >= {EVIL, PLAIN, DERIVED}


def _links(text: str) -> list[str]:
    return [
        html.unescape(found) for found in re.findall(r'(?:href|src|hx-get|action)="([^"]*)"', text)
    ]


def test_every_internal_link_of_every_page_resolves(client: TestClient) -> None:
    """Crawl from the search and domains pages: no internal link is a 404 or a 500 (the
    live sample may be a 503: this registry has no Kafka)."""
    seen: set[str] = set()
    todo = ["/ui/products", "/ui/domains"]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        answer = client.get(url)
        assert answer.status_code < 400 or (answer.status_code == 503 and "sample" in url), url
        if "text/html" not in answer.headers.get("content-type", ""):
            continue
        for link in _links(answer.text):
            if link.startswith(("#", "mailto:", "data:")):
                continue
            parts = urlsplit(urljoin(f"http://testserver{url}", link))
            assert parts.netloc == "testserver", (url, link)
            if parts.path in ("/ui/logout", "/ui/login"):
                continue
            todo.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert {f"/ui/products/{name}" for name in (EVIL, PLAIN, DERIVED)} <= seen
    assert len(seen) > 20


def test_portal_json_routes_answer_json_for_every_error() -> None:
    """``/ui/api/...`` is for scripts: an unknown path and a missing sign-in are JSON too
    (a page is HTML), the sign-in still named for htmx in ``HX-Redirect``."""
    with _client(read_auth=True) as guarded:
        refused = guarded.get(f"/ui/api/products/{PLAIN}/lineage")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/json")
        assert "sign in" in refused.json()["error"]
        assert refused.headers["hx-redirect"].startswith("/ui/login?next=")
        signed = {"Authorization": f"Bearer {TOKENS['orders']}"}
        missing = guarded.get("/ui/api/no/such/thing", headers=signed)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/json")
        assert "/ui/api/no/such/thing" in missing.json()["error"]
        page = guarded.get("/ui/no/such/page", headers=signed)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")


def test_a_product_never_measured_says_no_data_everywhere(client: TestClient) -> None:
    """One word for a product the monitor has not measured: the monitor's own 'no data'."""
    badges = {
        url: re.findall(r'class="badge[^"]*"[^>]*>([^<]*)<', client.get(url).text)
        for url in (f"/ui/products/{PLAIN}", "/ui/products", f"/ui/products/{DERIVED}/lineage")
    }
    for url, words in badges.items():
        health = [w for w in words if "data" in w or "observed" in w or "health" in w]
        assert health, url
        assert all(w.removeprefix("health: ") == "no data" for w in health), (url, health)


def test_the_product_page_dates_its_last_measurement() -> None:
    """A stale measurement from 20 hours ago must not read as today's: the product page gives
    its date and time as the cards do, not a bare HH:MM."""
    from mesh_stream.registry.service.product_health import InMemoryHealthFeed
    from tests.unit.registry.portal.test_product_page import _health

    feed = InMemoryHealthFeed()
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), health_feed=feed)
    with TestClient(app, raise_server_exceptions=False) as found:
        _register(found, PLAIN, "Plain", "Plain.")
        at_ms = int(time.time() * 1000) - 20 * 3_600_000
        feed.push(_health(at_ms, 12.0, 40).model_copy(update={"product": PLAIN}))
        page = found.get(f"/ui/products/{PLAIN}").text
    stamp = datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
    assert re.search(rf'measured <time datetime="[-0-9T:+]+">{stamp}:\d\d UTC</time>', page)


def test_the_json_line_diff_of_two_huge_versions_is_cut_short() -> None:
    """Two 1,000-field versions in opposite order: the raw line diff stops at
    MAX_DIFF_LINES and says how many lines it left out (the field-wise diff has them all);
    longer versions are not compared line by line (test_schema_view)."""
    from mesh_stream.registry.portal.schema_view import MAX_DIFF_LINES, json_line_diff

    fields = [{"name": f"f{i}", "type": "string", "doc": f"Field {i}."} for i in range(1000)]
    old = {"type": "record", "name": "Big", "fields": fields}
    new = {**old, "fields": fields[::-1]}
    lines = json_line_diff(old, new, old_label="version 1", new_label="version 2")
    assert len(lines) == MAX_DIFF_LINES + 1
    assert re.fullmatch(r"… \d+ more lines not shown", lines[-1].text)
    small = json_line_diff(old, {**old, "doc": "x"}, old_label="a", new_label="b")
    assert not any("not shown" in line.text for line in small)


def test_a_form_posted_from_another_site_is_refused_even_with_a_planted_csrf_cookie() -> None:
    """Login CSRF by cookie tossing: a sibling subdomain can plant ``mesh_csrf`` and post the
    same value from its own page. The browser says where the post came from
    (``Sec-Fetch-Site``): only the portal's own pages may sign in or out."""
    with _client(read_auth=True) as guarded:
        _register(guarded, PLAIN, "Plain", "Plain.")
        planted = "p" * 32
        guarded.cookies.set("mesh_csrf", planted, path="/ui")
        form = {"token": TOKENS["orders"], "csrf_token": planted, "next": "/ui/products"}
        for site in ("cross-site", "same-site"):
            refused = guarded.post("/ui/login", data=form, headers={"Sec-Fetch-Site": site})
            assert refused.status_code == 403, site
            assert "mesh_session" not in refused.headers.get("set-cookie", "")
        signed = guarded.post("/ui/login", data=form, headers={"Sec-Fetch-Site": "same-origin"})
        assert signed.status_code == 303
        assert "mesh_session=" in signed.headers["set-cookie"]
        csrf = guarded.cookies.get("mesh_csrf", path="/ui", domain="testserver.local")
        kept = guarded.post(
            "/ui/logout", data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert kept.status_code == 403
        assert guarded.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303


def test_control_characters_in_a_search_are_spaces(client: TestClient) -> None:
    """NUL and other control or format characters in ``q`` neither reach the page nor hide
    results: ``q=%00`` is an empty search, ``q=plain%00`` searches for ``plain``."""
    everything = client.get("/ui/products?q=%00%00%E2%80%AE")
    assert "\x00" not in everything.text
    assert "\u202e" not in everything.text
    for name in (EVIL, PLAIN, DERIVED):
        assert f'href="/ui/products/{name}"' in everything.text
    found = client.get("/ui/products?q=plain%00%07").text
    assert f'href="/ui/products/{PLAIN}"' in found
    assert f'href="/ui/products/{EVIL}"' not in found
    facet = client.get("/ui/products?domain=orders%00&tag=%E2%80%AE").text
    assert "\x00" not in facet
    assert "\u202e" not in facet


def test_a_page_never_answers_the_apis_json_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong method and a bug in a page are HTML pages (no traceback, security headers
    kept); the API, ``/ui/api`` and htmx fragments keep JSON."""
    wrong = client.post("/ui/products")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("text/html")
    assert "Method Not Allowed" in wrong.text
    assert "frame-ancestors 'none'" in wrong.headers["content-security-policy"]
    assert client.post("/subjects").headers["content-type"].startswith("application/")
    assert client.post(f"/ui/api/products/{PLAIN}/lineage").status_code == 405
    assert (
        client.post(f"/ui/api/products/{PLAIN}/lineage")
        .headers["content-type"]
        .startswith("application/")
    )

    from mesh_stream.registry.portal import search

    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug in a page")

    monkeypatch.setattr(search, "current_health", broken)
    failed = client.get("/ui/products")
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("text/html")
    assert "RuntimeError" not in failed.text
    assert "Traceback" not in failed.text
    assert "frame-ancestors 'none'" in failed.headers["content-security-policy"]
    fragment = client.get("/ui/products", headers={"HX-Request": "true"})
    assert fragment.status_code == 500
    assert fragment.headers["content-type"].startswith("application/")


def test_counts_read_the_same_everywhere() -> None:
    """1,001 products in one domain: the result total, the facet counts and the domains
    view's status counts all group thousands the same way."""
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))
    services = app.state.services
    for number in range(1001):
        name = f"bulk.product-{number}"
        services.schemas.register(f"{name}.v1-value", _schema(f"P{number}", "A product."))
        services.products.put(descriptor(name, tags=["bulk"]), principal="admin")
    with TestClient(app) as found:
        search = found.get("/ui/products").text
        domains = found.get("/ui/domains").text
    assert "1,001 products" in search
    assert re.search(r'<span class="count"> \(1,001\)</span>', search)
    assert "(1001)" not in search
    assert re.search(r">1,001 no data<", domains)
    assert "1001" not in re.sub(r"product-1001|P1001", "", domains)


def test_a_trailing_slash_leads_to_the_page_without_it(client: TestClient) -> None:
    for typed, page in (
        ("/ui/products/", "/ui/products"),
        (f"/ui/products/{PLAIN}/?x=1", f"/ui/products/{PLAIN}?x=1"),
        ("/ui/domains//", "/ui/domains"),
    ):
        answer = client.get(typed)
        assert answer.status_code == 308, typed
        assert answer.headers["location"] == page
    assert client.get("/ui//evil.example/").headers.get("location") in (None, "/ui//evil.example")
