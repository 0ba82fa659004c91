"""Portal page-speed benchmark: the search page with N products, in Debian's headless Chromium.

It measures the page, not Kafka: an in-process registry over the in-memory store, served
over real HTTP on a free port, filled through the registry's own services with N realistic
products (default 1,000) spread over 20 domains: sources, aggregates and consumer-aligned
products with lineage, an owner, a description, tags, SLOs, a classification and a schema
of 10 documented fields. Then, for ``/ui/products`` and a query (``?q=revenue``), one
warm-up load and :data:`LOADS` timed loads in one browser context (cached static files, as
a returning reader has them), each figure the median (min-max) of the timed loads:

- ``server_ms``: the HTML's full answer fetched outside the browser (httpx, one at a time);
- ``response_ms``: request start to the HTML's last byte, as the browser saw it;
- ``cards_ms``: navigation start until the last result card is in the DOM (a
  MutationObserver installed before the page's own scripts);
- ``first_paint_ms``: first contentful paint;
- ``dom_content_loaded_ms`` and ``load_ms``: the two events' ends;
- ``html_bytes``: the HTML's decoded size.

Every load must show every card the server rendered (counted in the HTML) or the run fails:
a figure of a page that did not render is no figure. The issue's target (the search page
with 1,000 products renders in under 1 s) is reported against ``rendered_ms``, the later
of ``cards_ms`` and ``first_paint_ms``; it is measured, never asserted in a test.
``mesh bench --portal`` runs it alone; Playwright (the ``dev`` extra) drives the browser and
never downloads one (``make browser`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.auth import ADMIN
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.store import InMemoryStore

DEFAULT_PRODUCTS = (1_000,)
LOADS = 5
WARMUPS = 1
TARGET_MS = 1_000.0
CHROMIUM = Path("/usr/bin/chromium")
#: Keep Chromium from calling home (the bench machine may have no network).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: The pages timed: (case, path). The query word is in some products' field docs only.
PAGES = (("all products", "/ui/products"), ("query ?q=revenue", "/ui/products?q=revenue"))
CARD_SELECTOR = ".product-card"
CARD_MARK = re.compile(r'class="[^"]*\bproduct-card\b')

DOMAINS = (
    "orders", "payments", "shipping", "customers", "analytics", "inventory", "pricing",
    "marketing", "support", "billing", "fraud", "catalog", "returns", "loyalty", "logistics",
    "finance", "identity", "search", "reviews", "partners",
)  # fmt: skip
ENTITIES = (
    "order", "payment", "shipment", "customer", "invoice", "refund", "ticket", "session",
    "product", "price", "stock", "campaign", "review", "partner", "account", "claim",
)  # fmt: skip
EVENTS = ("placed", "updated", "cancelled", "settled", "created", "scored", "viewed", "closed")
TAGS = (
    "finance", "sales", "realtime", "daily", "gdpr", "kpi", "ops", "audit", "ml-feature",
    "dashboard", "sla", "public-api",
)  # fmt: skip
CLASSIFICATIONS = ("public", "internal", "internal", "confidential", "pii")
#: Domains whose schemas may have the net revenue field (the only doc saying "revenue"), so
#: the timed query matches about one product in six.
REVENUE_DOMAINS = frozenset({"orders", "payments", "analytics", "finance", "billing"})
#: (name, Avro type, doc) of the fields a schema picks 10 from.
FIELDS: tuple[tuple[str, Any, str], ...] = (
    ("event_id", "string", "Unique id of the event; producers retry with the same id."),
    ("occurred_at", {"type": "long", "logicalType": "timestamp-millis"}, "Event time."),
    ("amount_cents", "long", "Amount in cents of the event's currency."),
    ("currency", "string", "ISO 4217 code of the amount, e.g. EUR."),
    ("region", "string", "Sales region the event belongs to, e.g. eu-west."),
    ("status", "string", "Lifecycle state after this event."),
    ("quantity", "int", "Number of items concerned."),
    ("score", "double", "Model score between 0 and 1; higher is riskier."),
    ("channel", ["null", "string"], "Channel the event came through (web, app, store)."),
    ("is_test", "boolean", "True for synthetic traffic, which dashboards leave out."),
    ("net_revenue_cents", "long", "Net revenue in cents after discounts and refunds."),
    ("note", ["null", "string"], "Free text an operator added, if any."),
    ("country", "string", "ISO 3166 country code of the customer."),
    ("discount_cents", "long", "Discount granted, in cents."),
)
KIND_DESCRIPTIONS = {
    "source-aligned": "as the {domain} service emits them: one record per {entity} {event}",
    "aggregate": "per region and 1-minute window, built from its inputs as they arrive",
    "consumer-aligned": "shaped for the {domain} team's dashboards and reports",
}


def catalog(count: int, *, seed: int = 17) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``count`` products as (Avro schema, descriptor), inputs before the products using them.

    Deterministic for a seed. Every fifth product is an aggregate or consumer-aligned one
    built from one or two earlier products (so lineage exists), the rest are sources.
    """
    chooser = random.Random(seed)
    built: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for n in range(count):
        domain = DOMAINS[n % len(DOMAINS)]
        entity, event = chooser.choice(ENTITIES), chooser.choice(EVENTS)
        kind = "source-aligned"
        if n >= 2 * len(DOMAINS) and n % 5 == 0:
            kind = chooser.choice(("aggregate", "consumer-aligned"))
        name = f"{domain}.{entity}-{event}-{n:05d}"
        pool = [f for f in FIELDS[1:] if domain in REVENUE_DOMAINS or "revenue" not in f[0]]
        picked = chooser.sample(pool, 9)
        fields = [{"name": FIELDS[0][0], "type": FIELDS[0][1], "doc": FIELDS[0][2]}]
        for field_name, avro_type, doc in picked:
            field: dict[str, Any] = {"name": field_name, "type": avro_type, "doc": doc}
            if isinstance(avro_type, list):
                field["default"] = None
            fields.append(field)
        schema = {
            "type": "record",
            "name": "".join(part.title() for part in f"{entity}-{event}-{n}".split("-")),
            "namespace": f"bench.portal.{domain}",
            "doc": f"One {entity} {event} in the {domain} domain.",
            "fields": fields,
        }
        inputs = []
        if kind != "source-aligned":
            inputs = sorted({built[chooser.randrange(len(built))][1]["name"] for _ in range(2)})
        describe = KIND_DESCRIPTIONS[kind].format(domain=domain, entity=entity, event=event)
        descriptor = {
            "name": name,
            "domain": domain,
            "kind": kind,
            "description": f"{entity.title()} {event} events {describe}. Keyed by event_id; "
            f"consumers can rely on the freshness SLO below.",
            "owner": {"team": f"{domain}-team", "contact": f"{domain}-team@example.org"},
            "schema": f"schemas/{domain}/{entity}-{event}-{n:05d}.avsc",
            "key_field": "event_id",
            "partitions": 3,
            "slos": {"freshness_seconds": chooser.choice((5, 30, 60, 300)), "availability": 99.5},
            "classification": chooser.choice(CLASSIFICATIONS),
            "tags": sorted(set(chooser.sample(TAGS, 3))),
            "inputs": inputs,
        }
        built.append((schema, descriptor))
    return built


def fill(services: Services, products: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Register each product's schema and descriptor through the registry's own services."""
    for schema, descriptor in products:
        topic = f"{descriptor['name']}.v1"
        services.schemas.register(f"{topic}-value", json.dumps(schema))
        services.products.put(descriptor, principal=ADMIN)


@contextmanager
def portal_server(count: int) -> Iterator[str]:
    """An in-process registry with ``count`` catalog products, served on a free port."""
    app = create_app(InMemoryStore())
    fill(app.state.services, catalog(count))
    server = RegistryServer(app)
    try:
        yield server.start()
    finally:
        server.stop()
        app.state.services.health.close()


#: Installed before the page's own scripts: when the last result card entered the DOM.
CARD_WATCH = """
(() => {
  const seen = { count: 0, at: null };
  window.__meshPortalBench = seen;
  const check = () => {
    const count = document.querySelectorAll(%s).length;
    if (count !== seen.count) { seen.count = count; seen.at = performance.now(); }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", check);
})();
"""
READ_TIMINGS = """
async () => {
  const painted = () => performance.getEntriesByName("first-contentful-paint")[0];
  for (let waited = 0; !painted() && waited < 3000; waited += 50) {
    await new Promise((done) => setTimeout(done, 50));
  }
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = painted();
  const seen = window.__meshPortalBench || { count: 0, at: null };
  return {
    response_ms: nav.responseEnd - nav.requestStart,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_ms: nav.loadEventEnd,
    html_bytes: nav.decodedBodySize,
    first_paint_ms: paint ? paint.startTime : null,
    cards_ms: seen.at,
    cards_in_dom: document.querySelectorAll(%s).length,
  };
}
"""


def _chromium() -> Any:
    """Playwright's sync API, or a clear error naming what to install."""
    if not CHROMIUM.exists():
        raise ConfigurationError(
            f"{CHROMIUM} is missing: the portal benchmark drives Debian's headless Chromium "
            f"(`make browser`, or `apt-get install chromium`)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ConfigurationError(
            "the portal benchmark needs Playwright for Python (`pip install playwright`, in "
            "the dev extra); it drives /usr/bin/chromium and never downloads a browser"
        ) from exc
    return sync_playwright


def _server_ms(url: str, loads: int) -> tuple[list[float], int]:
    """The HTML fetched ``loads`` times outside the browser: times and the cards it holds."""
    times, cards = [], 0
    with httpx.Client(timeout=60.0) as client:
        client.get(url).raise_for_status()  # warm-up
        for _ in range(loads):
            started = time.perf_counter()
            answer = client.get(url)
            times.append((time.perf_counter() - started) * 1000.0)
            answer.raise_for_status()
            cards = len(CARD_MARK.findall(answer.text))
    return times, cards


def _summary(values: Sequence[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(present), 1),
        "min": round(min(present), 1),
        "max": round(max(present), 1),
    }


FIGURES = (
    "server_ms",
    "response_ms",
    "cards_ms",
    "first_paint_ms",
    "rendered_ms",
    "dom_content_loaded_ms",
    "load_ms",
    "html_bytes",
)


def _keep_error(message: Any, errors: list[str]) -> None:
    """A console error of the page, with the address it names (a 404, a CSP refusal)."""
    if message.type == "error":
        errors.append(f"{message.text} ({message.location.get('url') or 'the page'})")


def _time_page(page: Any, url: str, loads: int, warmups: int) -> list[dict[str, Any]]:
    runs = []
    for n in range(warmups + loads):
        page.goto(url, wait_until="load")
        timings: dict[str, Any] = page.evaluate(READ_TIMINGS % json.dumps(CARD_SELECTOR))
        if n >= warmups:
            runs.append(timings)
    return runs


def measure(
    base_url: str,
    *,
    products: int,
    loads: int = LOADS,
    warmups: int = WARMUPS,
    pages: Sequence[tuple[str, str]] = PAGES,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time ``pages`` of the portal at ``base_url`` (holding ``products`` products)."""
    sync_playwright = _chromium()
    cases = []
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(CARD_WATCH % json.dumps(CARD_SELECTOR))
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.on("console", lambda message: _keep_error(message, violations))
            for case, path in pages:
                url = f"{base_url}{path}"
                progress(f"portal bench: {products:,} products, {case}: {loads} loads")
                server, expected = _server_ms(url, loads)
                runs = _time_page(page, url, loads, warmups)
                for run, server_time in zip(runs, server, strict=True):
                    run["server_ms"] = server_time
                    seen = [t for t in (run["cards_ms"], run["first_paint_ms"]) if t is not None]
                    run["rendered_ms"] = max(seen) if seen else None
                shown = [run["cards_in_dom"] for run in runs]
                if expected == 0 or any(count != expected for count in shown):
                    raise MeshError(
                        f"portal bench: {url} rendered {shown} result cards in its loads; the "
                        f"server's HTML holds {expected}"
                    )
                cases.append(
                    {
                        "case": case,
                        "path": path,
                        "cards": expected,
                        "cards_in_dom": shown,
                        "runs": runs,
                        **{figure: _summary([r[figure] for r in runs]) for figure in FIGURES},
                    }
                )
            context.close()
        finally:
            browser.close()
    return {
        "products": products,
        "loads": loads,
        "warmups": warmups,
        "target_ms": TARGET_MS,
        "console_errors": violations,
        "cases": cases,
    }


def run_portal_bench(
    products: Sequence[int] = DEFAULT_PRODUCTS,
    *,
    loads: int = LOADS,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The benchmark at each product count, each on a registry of its own."""
    results = []
    for count in products:
        progress(f"portal bench: registering {count:,} products")
        started = time.perf_counter()
        with portal_server(count) as url:
            filled_s = time.perf_counter() - started
            result = measure(url, products=count, loads=loads, progress=progress)
        result["setup_seconds"] = round(filled_s, 1)
        results.append(result)
    return results


def render_portal(results: Sequence[dict[str, Any]]) -> str:
    """Per product count: a row per figure, a column per page, then the target lines."""
    lines = []
    for result in results:
        cases = result["cases"]
        lines.append(
            f"portal page speed: {result['products']:,} products (set up in "
            f"{result.get('setup_seconds', 0):,.1f} s), headless Chromium, median (min-max) of "
            f"{result['loads']} loads after {result['warmups']} warm-up"
        )
        heads = [f"{c['case']} ({c['cards']} cards)" for c in cases]
        lines.append(f"  {'figure':<24}" + "".join(f"{h:>32}" for h in heads))
        for name in FIGURES:
            row = f"  {name:<24}"
            for case in cases:
                figure = case[name]
                if figure["median"] is None:
                    cell = "n/a"
                elif name == "html_bytes":
                    cell = f"{figure['median'] / 1024:,.1f} KiB"
                else:
                    cell = f"{figure['median']:,.0f} ({figure['min']:,.0f}-{figure['max']:,.0f})"
                row += f"{cell:>32}"
            lines.append(row)
        for case in cases:
            rendered = case["rendered_ms"]["median"]
            if rendered is None:
                verdict = "not measured (no paint or card timing)"
            else:
                met = "met" if rendered < result["target_ms"] else "MISSED"
                verdict = f"{rendered:,.0f} ms, {met}"
            lines.append(
                f"  target: {case['case']} rendered in under {result['target_ms']:,.0f} ms: "
                f"{verdict}"
            )
        if result["console_errors"]:
            lines.append(f"  console errors: {result['console_errors'][:5]}")
    return "\n".join(lines)
