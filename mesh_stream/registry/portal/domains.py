"""Portal page: the domains view at ``/ui/domains`` -- the mesh at a glance.

Each domain (the part of product names before the dot) with its owner teams, its products
(kind and health badge), how many products are in each health status, and its worst status
(``no data`` ranks lowest, as for the monitor: a product nobody measured
does not hide a breached one). Built from the same cached index as the search page, plus the
per-request health.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mesh_stream.registry.portal.access import ViewerDep
from mesh_stream.registry.portal.search import current_health, record_time
from mesh_stream.registry.portal.search_index import (
    HEALTH_ORDER,
    NO_HEALTH,
    HealthSummary,
    Hit,
    SearchIndex,
    SearchQuery,
    index_of,
    worst_status,
)
from mesh_stream.registry.portal.web import render
from mesh_stream.registry.service.context import Services

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class DomainSummary:
    """One domain as the page shows it."""

    name: str
    teams: tuple[str, ...]
    products: tuple[Hit, ...]
    #: health status -> how many of the domain's products have it (best first, none left out)
    counts: tuple[tuple[str, int], ...]
    worst: str

    @property
    def search_url(self) -> str:
        return SearchQuery(domain=self.name).url()


def domain_overview(index: SearchIndex, health: Mapping[str, HealthSummary]) -> list[DomainSummary]:
    """Every domain of the index, by name, with its products by name."""
    grouped: dict[str, list[Hit]] = {}
    for product in index.products:
        grouped.setdefault(product.domain, []).append(
            Hit(product, health.get(product.name, NO_HEALTH))
        )
    overview = []
    for name in sorted(grouped):
        hits = sorted(grouped[name], key=lambda hit: hit.product.name)
        statuses = [hit.health.status for hit in hits]
        overview.append(
            DomainSummary(
                name=name,
                teams=tuple(sorted({hit.product.owner_team for hit in hits})),
                products=tuple(hits),
                counts=tuple(
                    (status, statuses.count(status))
                    for status in HEALTH_ORDER
                    if status in statuses
                ),
                worst=worst_status(statuses),
            )
        )
    return overview


@router.get("/domains", response_class=HTMLResponse)
def domains_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
    """Every domain, its teams, products and health (a ``def``: see :mod:`.search`)."""
    services: Services = request.app.state.services
    overview = domain_overview(index_of(services.products), current_health(services))
    return render(
        request,
        "domains.html",
        {
            "viewer": viewer,
            "domains": overview,
            "product_count": sum(len(d.products) for d in overview),
            "record_time": record_time,
        },
    )
