"""Nothing leaves the registry's origin and nothing breaks the CSP, in a real browser: ``/docs``
renders the vendored Swagger UI's operations list, and the search page and a product page
(lineage graph included) load every request from the registry itself with no
Content-Security-Policy violation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.portal import PortalMesh

#: Reports every CSP violation into the page (an init script runs outside the page's CSP).
VIOLATION_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class Traffic:
    """What a page asked for and complained about while it loaded."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def foreign(self, origin: str) -> list[str]:
        return [
            url
            for url in self.requests
            if not url.startswith(f"{origin}/") and not url.startswith("data:")
        ]

    def csp_messages(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]


@pytest.fixture
def traffic(page: Any) -> Traffic:
    seen = Traffic()
    page.context.add_init_script(VIOLATION_WATCH)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("requestfailed", lambda request: seen.failed.append(request.url))
    page.on(
        "console",
        lambda message: (
            seen.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    return seen


def _origin(portal: PortalMesh) -> str:
    parts = urlsplit(portal.url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_clean(page: Any, traffic: Traffic, portal: PortalMesh) -> None:
    origin = _origin(portal)
    assert traffic.requests, "the page made no request at all?"
    assert traffic.foreign(origin) == []
    assert traffic.failed == []
    assert traffic.csp_messages() == []
    assert page.evaluate("window.__cspViolations") == []


def test_docs_renders_swagger_ui_from_the_registry_alone(
    portal_mesh: PortalMesh, page: Any, traffic: Traffic
) -> None:
    page.goto(f"{portal_mesh.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.eval_on_selector_all(
        ".opblock-summary-path", "items => items.map(i => i.textContent.trim())"
    )
    assert len(paths) > 40
    assert any(p.startswith("/subjects") for p in paths)
    assert any(p.startswith("/products") for p in paths)
    assert (
        page.locator(".information-container .title")
        .inner_text()
        .startswith("mesh-stream registry")
    )
    origin = _origin(portal_mesh)
    assert f"{origin}/ui/static/vendor/swagger-ui-bundle.js" in traffic.requests
    assert f"{origin}/openapi.json" in traffic.requests
    _check_clean(page, traffic, portal_mesh)


def test_search_and_product_pages_load_nothing_from_elsewhere(
    portal_mesh: PortalMesh, page: Any, traffic: Traffic
) -> None:
    page.goto(f"{portal_mesh.url}/ui/products")
    page.wait_for_selector("li.product-card")
    page.fill("input[name=q]", "revenue")  # search-as-you-type: htmx over this origin
    page.wait_for_function(
        "() => [...document.querySelectorAll('li.product-card')]"
        ".every(c => c.dataset.product.includes('revenue') || c.textContent.includes('revenue'))"
    )
    product = "analytics.customer-360"
    page.goto(f"{portal_mesh.url}/ui/products/{product}")
    page.wait_for_function("() => window.meshLineage !== undefined")
    assert page.locator("h1").inner_text().strip().endswith(product)
    origin = _origin(portal_mesh)
    assert f"{origin}/ui/static/vendor/htmx.min.js" in traffic.requests
    assert f"{origin}/ui/static/vendor/cytoscape.min.js" in traffic.requests
    _check_clean(page, traffic, portal_mesh)
