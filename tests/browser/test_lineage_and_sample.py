"""The lineage graph and the live sample in Debian's headless Chromium, on the sample mesh.

A product page draws its lineage with cytoscape (node ids read from ``window.meshLineage``)
next to the same links as text; a real mouse click on an input node opens that product;
the live sample of ``customers.customer-profile`` shows the fixture's records decoded, with
PII masked for the ``orders`` credential and in clear for ``customers``.
"""

from __future__ import annotations

from typing import Any

from tests.browser.portal import (
    SAMPLE_PRODUCT,
    SAMPLE_RECORDS,
    PortalMesh,
    axe_violations,
    screenshot,
    sign_in,
)

C360 = "analytics.customer-360"
C360_INPUTS = ["customers.customer-profile", "customers.engagement-event", "orders.order-placed"]
MASK = "••• (PII)"


def _drawn(page: Any) -> None:
    page.wait_for_selector("[data-lineage-graph][data-drawn='true']")


def test_product_page_draws_its_inputs_and_a_click_on_one_opens_it(
    portal_mesh: PortalMesh, page: Any
) -> None:
    page.goto(f"{portal_mesh.url}/ui/products/{C360}")
    _drawn(page)
    ids = page.evaluate("() => window.meshLineage.nodes().map(n => n.id()).sort()")
    assert ids == sorted([C360, *C360_INPUTS])
    edges = page.evaluate(
        "() => window.meshLineage.edges().map(e => e.source().id() + '>' + e.data('label'))"
    )
    assert "customers.customer-profile>customer_id, region, segment" in edges
    upstream = page.locator(".lineage-lists ul").first.locator("a")
    assert sorted(upstream.all_inner_texts()) == C360_INPUTS
    # the profile holds PII: marked as text in the list, and drawn as a PII node
    profile_item = page.locator(".lineage-lists li", has_text="customers.customer-profile")
    assert "⚠ PII" in profile_item.inner_text()
    assert page.evaluate(
        "() => window.meshLineage.getElementById('customers.customer-profile').hasClass('pii')"
    )
    # inputs stand left of the product
    xs = page.evaluate(
        "() => Object.fromEntries(window.meshLineage.nodes().map("
        "n => [n.id(), n.renderedPosition().x]))"
    )
    assert all(xs[name] < xs[C360] for name in C360_INPUTS)
    assert page.get_attribute("#lineage-graph", "aria-label").startswith(
        f"Lineage graph of {C360}: 3 upstream"
    )

    # a real mouse click at the node's rendered position. Cytoscape maps a click through the
    # container's place it noted at the last scroll event, which fires at the next frame: a
    # click right after scrolling the graph into view missed the node (a CI failure)
    graph = page.locator("#lineage-graph")
    graph.scroll_into_view_if_needed()
    page.evaluate(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    at = page.evaluate(
        "() => window.meshLineage.getElementById('orders.order-placed').renderedPosition()"
    )
    with page.expect_navigation():
        graph.click(position={"x": at["x"], "y": at["y"]})
    assert page.url == f"{portal_mesh.url}/ui/products/orders.order-placed"
    _drawn(page)
    downstream = page.evaluate(
        "() => window.meshLineage.nodes('.downstream').map(n => n.id()).sort()"
    )
    assert C360 in downstream


def test_lineage_page_is_accessible(portal_mesh: PortalMesh, page: Any) -> None:
    page.goto(f"{portal_mesh.url}/ui/products/{C360}/lineage")
    _drawn(page)
    assert page.locator("table.field-lineage tbody tr").count() == 10
    screenshot(page, "lineage")
    assert axe_violations(page) == []


def _sample_rows(page: Any, portal: PortalMesh, *, refresh: bool) -> Any:
    """The sample's rows: loaded as the section scrolls into view, or by "Refresh"."""
    page.goto(f"{portal.url}/ui/products/{SAMPLE_PRODUCT}")
    section = page.locator("section.sample")
    section.scroll_into_view_if_needed()
    if refresh:
        section.get_by_role("button", name="Refresh").click()
    page.wait_for_selector("table.sample-table tbody tr")
    return page.locator("table.sample-table tbody tr")


def test_live_sample_masks_pii_for_another_domain_and_not_for_the_owner(
    portal_mesh: PortalMesh, page: Any
) -> None:
    sign_in(page, portal_mesh, "orders")
    rows = _sample_rows(page, portal_mesh, refresh=False)
    assert rows.count() == len(SAMPLE_RECORDS)
    shown = page.locator("table.sample-table").inner_text()
    for record in SAMPLE_RECORDS:
        assert record["customer_id"] in shown
        assert record["email"] not in shown
        assert record["full_name"] not in shown
    assert "eu-west" in shown
    assert "VIP" in shown
    masked = page.locator("table.sample-table span.masked")
    assert masked.count() == 3 * len(SAMPLE_RECORDS)  # full_name, email, phone per record
    assert set(masked.all_inner_texts()) == {MASK}
    assert axe_violations(page) == []

    page.context.clear_cookies()
    sign_in(page, portal_mesh, "customers")
    rows = _sample_rows(page, portal_mesh, refresh=True)
    assert rows.count() == len(SAMPLE_RECORDS)
    shown = page.locator("table.sample-table").inner_text()
    for record in SAMPLE_RECORDS:
        assert record["email"] in shown
        assert record["full_name"] in shown
    assert page.locator("table.sample-table span.masked").count() == 0
    assert MASK not in shown
