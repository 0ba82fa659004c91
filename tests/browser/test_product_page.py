"""The product page in a real browser, over the sample mesh on a real broker."""

from __future__ import annotations

import json
from typing import Any

from mesh_stream.schema.avro import field_docs
from tests.browser.portal import (
    DIFF_FIELD,
    DIFF_PRODUCT,
    HEALTH_PRODUCTS,
    REPO_ROOT,
    PortalMesh,
    axe_violations,
    screenshot,
)


def _avsc_paths(product: str) -> list[str]:
    domain, name = product.split(".")
    document = json.loads((REPO_ROOT / "schemas" / domain / f"{name}.avsc").read_text())
    return [path for path, _ in field_docs(document)]


def test_every_field_and_a_version_diff(portal_mesh: PortalMesh, page: Any) -> None:
    page.goto(f"{portal_mesh.url}/ui/products/{DIFF_PRODUCT}")
    assert page.locator("h1").inner_text() == DIFF_PRODUCT
    shown = page.locator("table.fields tr[data-field]").evaluate_all(
        "rows => rows.map(r => r.dataset.field)"
    )
    # the latest version: the .avsc's fields (nested ones too) plus the one the second adds
    assert shown == [*_avsc_paths(DIFF_PRODUCT), DIFF_FIELD]
    assert page.locator("table.fields tr[data-field='items.sku']").is_visible()

    page.select_option("#diff-from", "1")
    page.select_option("#diff-to", "2")
    page.click("form.diff-form button[type=submit]")
    added = page.locator("#schema-diff table.diff-added tr[data-field]")
    added.first.wait_for()
    assert added.evaluate_all("rows => rows.map(r => r.dataset.field)") == [DIFF_FIELD]
    assert page.url.endswith(f"/ui/products/{DIFF_PRODUCT}")  # swapped in place by htmx
    page.click("#schema-diff details.raw-diff summary")
    added_lines = page.locator("#schema-diff .diff-line.add").all_inner_texts()
    assert any(f'"name": "{DIFF_FIELD}"' in line for line in added_lines)

    for key in ("snippet-sdk", "snippet-confluent", "snippet-tail"):
        button = page.locator(f"button[data-copy='#{key}']")
        assert button.is_visible()
        assert DIFF_PRODUCT in page.locator(f"#{key}").inner_text()


def test_health_chart_screenshot_and_accessibility(portal_mesh: PortalMesh, page: Any) -> None:
    product = next(p for p in HEALTH_PRODUCTS if p.startswith("analytics."))
    page.goto(f"{portal_mesh.url}/ui/products/{product}")
    chart = page.locator("svg#chart-freshness")
    assert chart.is_visible()
    assert chart.locator("polyline.chart-line").count() >= 1
    assert page.locator("svg#chart-volume").is_visible()
    freshness = page.locator("#slos table.slo-table tr", has_text="Freshness").first
    assert "ok" in freshness.inner_text()
    inputs = page.locator("#overview a[href='/ui/products/orders.order-placed']")
    assert inputs.count() == 1
    screenshot(page, "product")
    assert axe_violations(page) == []


def test_an_unknown_product_is_a_friendly_page(portal_mesh: PortalMesh, page: Any) -> None:
    answer = page.goto(f"{portal_mesh.url}/ui/products/nobody.nothing")
    assert answer is not None
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "Product not found"
    assert axe_violations(page) == []
