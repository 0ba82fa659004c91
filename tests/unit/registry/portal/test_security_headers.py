"""Every portal and API-docs answer carries the CSP and its friends; nothing needs the internet.

The CSP forbids inline script and style, so the templates are scanned for them too: a
``<script>`` without ``src``, a ``style`` attribute or element, an ``on*=`` handler or a
``javascript:`` URL would be refused by the browser (and show up as a console error).
"""

from __future__ import annotations

import re
import warnings
from importlib import resources

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.portal.web import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from tests.unit.registry.conftest import TOKENS

PORTAL = resources.files("mesh_stream.registry.portal")


def _client(*, read_auth: bool) -> TestClient:
    app = create_app(
        InMemoryStore(),
        credentials=Credentials(TOKENS),
        read_requires_auth=read_auth,
        session_secret="headers-test",
    )
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def test_the_policy_allows_this_origin_only_and_no_inline_code() -> None:
    directives = {part.split()[0]: part.split()[1:] for part in CONTENT_SECURITY_POLICY.split("; ")}
    for name in ("default-src", "script-src", "style-src", "connect-src", "font-src"):
        assert directives[name] == ["'self'"], name
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("read_auth", [True, False])
@pytest.mark.parametrize(
    "path",
    [
        "/docs",
        "/ui",
        "/ui/",
        "/ui/login",
        "/ui/login?next=//evil.com",
        "/ui/products",
        "/ui/domains",
        "/ui/products/orders.no-such-product",
        "/ui/no-such-page",
        "/ui/static/portal.css",
        "/ui/static/vendor/htmx.min.js",
        "/ui/static/no-such-file.js",
    ],
)
def test_every_portal_answer_carries_the_security_headers(path: str, read_auth: bool) -> None:
    answer = _client(read_auth=read_auth).get(path)
    assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (path, name, answer.status_code)
    if path.startswith("/ui/static/"):
        assert "no-store" not in answer.headers.get("cache-control", "")
    else:
        assert answer.headers["cache-control"] == "no-store"


def test_errors_and_posts_carry_them_too() -> None:
    client = _client(read_auth=True)
    answers = [
        client.post("/ui/login", data={"token": "x"}),  # no CSRF cookie: 403
        client.post("/ui/logout"),
        client.get("/ui/products", auth=("orders", "wrong")),  # the API's 401
    ]
    assert [a.status_code for a in answers] == [403, 403, 401]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_api_keeps_its_own_answers() -> None:
    """The JSON API is not a page: no CSP there (its clients are programs). Its answers are
    not sniffed by a browser nor kept by a cache (h54: a product's sample, its records
    unmasked for the owner, went out with no Cache-Control), errors included."""
    client = _client(read_auth=False)
    for path, status in (("/subjects", 200), ("/schemas/ids/99", 404), ("/products/x.y", 404)):
        answer = client.get(path)
        assert answer.status_code == status, path
        assert "content-security-policy" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["cache-control"] == "no-store", path


def test_docs_is_swagger_ui_from_the_portals_own_static_files() -> None:
    client = _client(read_auth=True)  # the API's description needs no credential
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    # the empty data: icon keeps the browser from asking for /favicon.ico
    assets = [a for a in re.findall(r'(?:src|href)="([^"]+)"', page.text) if a != "data:,"]
    assert set(assets) == {
        "/ui/static/vendor/swagger-ui.css",
        "/ui/static/vendor/swagger-ui-bundle.js",
        "/ui/static/swagger-init.js",
    }
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset
    assert 'data-openapi-url="/openapi.json"' in page.text
    assert client.get("/openapi.json").status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    init = client.get("/ui/static/swagger-init.js").text
    assert "validatorUrl: null" in init


#: What the CSP refuses in a template (inline code) or what would leave this origin.
FORBIDDEN_IN_TEMPLATES = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "asset from another site": re.compile(
        r"(?:src|href|action)\s*=\s*[\"'](?:https?:)?//", re.IGNORECASE
    ),
    "|safe on data": re.compile(r"\|\s*safe\b"),
}


def test_no_template_holds_inline_code_or_a_foreign_asset() -> None:
    templates = sorted(
        entry for entry in PORTAL.joinpath("templates").iterdir() if entry.name.endswith(".html")
    )
    assert {t.name for t in templates} >= {"base.html", "login.html", "api_docs.html"}
    found = []
    for template in templates:
        text = template.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            for what, pattern in FORBIDDEN_IN_TEMPLATES.items():
                if pattern.search(line):
                    found.append(f"templates/{template.name}:{number}: {what}: {line.strip()}")
    assert found == []


def test_no_portal_script_or_stylesheet_reaches_another_site() -> None:
    """Our own static files (not the vendored ones) load nothing from elsewhere."""
    static = PORTAL.joinpath("static")
    own = [e for e in static.iterdir() if e.name.endswith((".js", ".css"))]
    assert {e.name for e in own} >= {"portal.js", "portal.css", "swagger-init.js"}
    foreign = re.compile(r"(?:url\(|import\s|fetch\(|src\s*=)\s*[\"']?(?:https?:)?//")
    for entry in own:
        text = entry.read_text(encoding="utf-8")
        assert not foreign.search(text), entry.name
        assert "eval(" not in text, entry.name
        assert "new Function" not in text, entry.name
