"""The product page in a real browser, over the sample mesh on a real broker."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mesh_stream.schema.avro import field_docs
from tests.browser.portal import (
    DIFF_FIELD,
    DIFF_PRODUCT,
    HEALTH_PRODUCTS,
    REPO_ROOT,
    SAMPLE_PRODUCT,
    SAMPLE_RECORDS,
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
    # swapped in place by htmx, the diff's own URL pushed (a deep link to it)
    assert page.url.endswith(f"/ui/products/{DIFF_PRODUCT}/diff?from=1&to=2")
    assert page.locator("h1").inner_text() == DIFF_PRODUCT
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


class _Snippet:
    """A snippet running in a process of its own (it reads forever), its output collected."""

    def __init__(self, code: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def first_line_with(self, expected: str, deadline: float) -> str:
        """The first line holding ``expected``; the process is ended (by its id) either way."""
        seen: list[str] = []
        try:
            while time.monotonic() < deadline:
                try:
                    line = self.lines.get(timeout=1)
                except queue.Empty:
                    if self.process.poll() is not None and self.lines.empty():
                        break
                    continue
                seen.append(line)
                if expected in line:
                    return line
        finally:
            self.process.kill()
            self.process.wait(timeout=10)
        raise AssertionError(
            f"the snippet never printed {expected!r}; it printed:\n{''.join(seen)}"
        )


def test_the_copied_snippets_read_the_product(
    portal_mesh: PortalMesh, page: Any, tmp_path: Path
) -> None:
    """The Python snippets as a user copies them (the element's text) read real records."""
    page.goto(f"{portal_mesh.url}/ui/products/{SAMPLE_PRODUCT}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env["MESH_BOOTSTRAP_SERVERS"] = portal_mesh.bootstrap_servers
    running = []
    for key in ("snippet-sdk", "snippet-confluent"):
        code = page.locator(f"#{key}").text_content() or ""
        # a group of its own each: one group would share the partitions out between them
        assert "my-domain." in code
        own_group = code.replace("my-domain.", f"tests-{key}-{time.time_ns()}.")
        running.append(_Snippet(own_group, env, tmp_path))  # both at once
    first = SAMPLE_RECORDS[0]
    deadline = time.monotonic() + 90
    for snippet in running:
        line = snippet.first_line_with(str(first["email"]), deadline)
        assert str(first["customer_id"]) in line


def test_a_long_word_wraps_rather_than_widening_the_page(
    portal_mesh: PortalMesh, secured_portal: PortalMesh, page: Any
) -> None:
    """h54: a description, tag or contact holding one long word (a URL, base64) made the
    product page 296,687 px wide and the search page 38,911 px, for every visitor. The two
    portals share one registry topic; either may hold the writer's role, and neither
    advertises a URL to forward to, so the write goes to whichever is the writer."""
    import yaml

    from mesh_stream import registration
    from mesh_stream.descriptor import parse_descriptor
    from mesh_stream.errors import RegistryUnavailableError
    from mesh_stream.project import load_project
    from mesh_stream.registry.client import RegistryClient

    source = next(
        p for p in load_project(REPO_ROOT).descriptors() if p.name == "orders.order-placed"
    )
    document = source.to_document()
    word = "w" * 4000
    document.update(name="orders.long-words", description=f"See {word} for more.")
    document["tags"] = [f"t{'x' * 2000}"]
    long = parse_descriptor(yaml.safe_dump(document, sort_keys=False))
    for url in (portal_mesh.url, secured_portal.url):
        admin = portal_mesh.token("admin")  # no retries: a follower's 503 says "not here"
        with RegistryClient(url, principal="admin", token=admin, retry_seconds=0) as c:
            try:
                registration.register_product(c, long, REPO_ROOT, wait_for_inputs=0)
                break
            except RegistryUnavailableError:  # a follower: the other one is the writer
                continue
    else:
        raise AssertionError("neither portal took the write")
    portal_mesh.products.append(long.name)  # the search page's tests count it
    shown_by = time.monotonic() + 15  # the open portal may be the follower: it catches up
    while page.goto(f"{portal_mesh.url}/ui/products/orders.long-words").status == 404:
        assert time.monotonic() < shown_by, "the open portal never showed the product"
        time.sleep(0.2)
    widest = "() => document.documentElement.scrollWidth"
    for path in ("/ui/products/orders.long-words", "/ui/products?q=long-words"):
        page.goto(f"{portal_mesh.url}{path}")
        assert "orders.long-words" in page.locator("main").inner_text()
        assert page.evaluate(widest) <= page.evaluate("() => window.innerWidth"), path
