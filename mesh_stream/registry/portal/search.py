"""Portal page: product search at ``/ui/products``, with facets and search-as-you-type.

Every state of the page is its URL (``/ui/products?q=revenue&domain=analytics``), so a
search can be bookmarked and shared, and the page works without JavaScript (the form is an
ordinary GET form, facets are links). With htmx the box searches as you type: the form asks
for the same URL with an ``HX-Request`` header and gets back only the results and facets
(``_results.html``), which htmx swaps in and pushes to the address bar. The index and the
matching live in :mod:`.search_index`; this module only reads the request and renders.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mesh_stream.registry.portal.access import ViewerDep
from mesh_stream.registry.portal.search_index import (
    FACETS,
    HealthSummary,
    SearchQuery,
    health_of,
    index_of,
)
from mesh_stream.registry.portal.web import render
from mesh_stream.registry.service.context import Services

router = APIRouter(prefix="/ui", include_in_schema=False)


def record_time(epoch_ms: int | None) -> tuple[str, str] | None:
    """``(ISO 8601 for <time datetime>, what a person reads)`` in UTC; None when unknown."""
    if epoch_ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds"), moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def current_health(services: Services) -> dict[str, HealthSummary]:
    """Every product's health as cards show it (from the monitor's topic, per request)."""
    return health_of(services.health.every())


def wants_fragment(request: Request) -> bool:
    """An htmx search (swap the results only), not a page load, boost or history restore."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true"
        and headers.get("hx-history-restore-request") != "true"
        and headers.get("hx-boosted") != "true"
    )


@router.get("/products", response_class=HTMLResponse)
def search_page(
    request: Request,
    viewer: ViewerDep,
    q: str | None = None,
    domain: str | None = None,
    kind: str | None = None,
    classification: str | None = None,
    tag: str | None = None,
    health: str | None = None,
    page: str | None = None,
) -> HTMLResponse:
    """The search page (or, for htmx, its results region). A plain ``def``: building the
    index after a change is CPU work, so it runs in the thread pool, not on the event loop."""
    services: Services = request.app.state.services
    query = SearchQuery.parse(
        q,
        page=page,
        domain=domain,
        kind=kind,
        classification=classification,
        tag=tag,
        health=health,
    )
    result = index_of(services.products).search(query, current_health(services))
    context = {
        "viewer": viewer,
        "result": result,
        "query": result.query,
        "facet_names": list(FACETS),
        "record_time": record_time,
    }
    fragment = wants_fragment(request)
    context["fragment"] = fragment
    response = render(request, "_results.html" if fragment else "search.html", context)
    response.headers["Vary"] = "HX-Request"
    return response
