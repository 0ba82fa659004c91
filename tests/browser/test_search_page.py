"""The search page and the domains view in headless Chromium, over the registered sample mesh:
a field-doc word finds its product, facets narrow and deep-link, typing searches without a
reload, every domain is listed with its products; screenshots and an axe check of each."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.browser.portal import SAMPLE_DOMAINS, PortalMesh, axe_violations, screenshot

#: A word that occurs only in a field doc of schemas/analytics/revenue-by-region.avsc
#: (average_order_value: "rounded half-even to cents"), in no name, description or tag.
FIELD_DOC_WORD = "cents"
REVENUE = "analytics.revenue-by-region"


def cards(page: Any) -> list[str]:
    found: list[str] = page.eval_on_selector_all(
        "#results li.product-card", "items => items.map(i => i.dataset.product)"
    )
    return found


def facet(page: Any, name: str, value: str) -> Any:
    return page.locator(f'#results a[data-facet="{name}"][data-value="{value}"]')


def test_a_field_doc_word_finds_revenue_and_facets_narrow_with_deep_links(
    portal_mesh: PortalMesh, page: Any
) -> None:
    page.goto(f"{portal_mesh.url}/ui/products?q={FIELD_DOC_WORD}")
    assert cards(page) == [REVENUE]
    assert page.locator("#results .result-count").inner_text().startswith("1 product")

    # "region" is in products of three domains (names, descriptions, field docs)
    page.goto(f"{portal_mesh.url}/ui/products?q=region")
    everything = cards(page)
    assert REVENUE in everything
    assert len({name.split(".")[0] for name in everything}) > 1
    in_analytics = [name for name in everything if name.startswith("analytics.")]
    assert facet(page, "domain", "analytics").inner_text().endswith(f"({len(in_analytics)})")

    with page.expect_navigation():
        facet(page, "domain", "analytics").click()
    assert sorted(cards(page)) == sorted(in_analytics)
    assert len(in_analytics) < len(everything)
    assert facet(page, "domain", "analytics").get_attribute("aria-current") == "true"
    with page.expect_navigation():
        facet(page, "kind", "aggregate").click()
    assert cards(page) == [REVENUE]
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"q": ["region"], "domain": ["analytics"], "kind": ["aggregate"]}
    deep_link = page.url

    # the same URL loaded afresh shows the same results and the same selected facets
    page.goto("about:blank")
    page.goto(deep_link)
    assert cards(page) == [REVENUE]
    assert page.input_value("#q") == "region"
    assert facet(page, "kind", "aggregate").get_attribute("aria-current") == "true"
    screenshot(page, "search")
    assert axe_violations(page) == []


def test_typing_in_the_box_updates_results_without_a_reload(
    portal_mesh: PortalMesh, page: Any
) -> None:
    page.goto(f"{portal_mesh.url}/ui/products")
    assert len(cards(page)) == len(portal_mesh.products)
    page.evaluate("() => { window.meshMarker = 'same page'; }")
    page.locator("#q").press_sequentially(FIELD_DOC_WORD, delay=40)
    page.wait_for_function(
        "() => document.querySelectorAll('#results li.product-card').length === 1"
    )
    assert cards(page) == [REVENUE]
    assert page.evaluate("() => window.meshMarker") == "same page"  # no full reload
    assert page.locator("#search-status").inner_text() == "1 product found"
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query).get("q") == [FIELD_DOC_WORD])
    page.locator("#q").fill("")
    page.locator("#q").press_sequentially("zzz-no-such-word", delay=10)
    page.wait_for_function(
        "() => document.querySelectorAll('#results li.product-card').length === 0"
    )
    assert "0 products" in page.locator("#results .result-count").inner_text()
    assert page.evaluate("() => window.meshMarker") == "same page"


def test_the_keyboard_reaches_the_first_result_past_the_filters_in_three_tabs(
    portal_mesh: PortalMesh, page: Any
) -> None:
    """h54: with many products a keyboard user pressed Tab 56 times through the facet links
    before the first result; a skip link after the search box goes straight there."""
    page.goto(f"{portal_mesh.url}/ui/products")
    page.locator("#q").focus()
    page.keyboard.press("Tab")  # the Search button
    page.keyboard.press("Tab")  # the skip link, shown when focused
    skip = page.locator("a.skip-link[href='#results-heading']")
    assert skip.evaluate("link => link === document.activeElement")
    assert skip.is_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => document.activeElement.closest('li.product-card')?.dataset.product"
    )
    assert focused == cards(page)[0]


def test_the_domains_page_lists_every_sample_domain_with_its_products(
    portal_mesh: PortalMesh, page: Any
) -> None:
    page.goto(f"{portal_mesh.url}/ui/domains")
    shown: list[str] = page.eval_on_selector_all(
        "li.domain", "items => items.map(i => i.dataset.domain)"
    )
    assert sorted(shown) == sorted(SAMPLE_DOMAINS)
    for domain in SAMPLE_DOMAINS:
        listed: list[str] = page.eval_on_selector_all(
            f'li.domain[data-domain="{domain}"] tr[data-product]',
            "rows => rows.map(r => r.dataset.product)",
        )
        assert listed == sorted(p for p in portal_mesh.products if p.startswith(f"{domain}."))
        badge = page.locator(f'li.domain[data-domain="{domain}"] h2 .badge')
        assert badge.inner_text() in ("ok", "degraded", "breached", "no data")
    screenshot(page, "domains")
    assert axe_violations(page) == []
    with page.expect_navigation():
        page.locator('li.domain[data-domain="payments"] h2 a').click()
    assert parse_qs(urlsplit(page.url).query) == {"domain": ["payments"]}
    assert sorted(cards(page)) == sorted(
        p for p in portal_mesh.products if p.startswith("payments.")
    )
