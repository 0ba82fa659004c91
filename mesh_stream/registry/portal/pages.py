"""Every page family's router, in one list (each module owns its routes and templates)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from mesh_stream.registry.portal.access import ViewerDep


def routers() -> list[APIRouter]:
    from mesh_stream.registry.portal import domains, lineage, product, sample, search

    home = APIRouter(include_in_schema=False)

    @home.get("/ui")
    @home.get("/ui/")
    async def portal_home(viewer: ViewerDep) -> RedirectResponse:  # noqa: ARG001 - read auth
        return RedirectResponse("/ui/products", status_code=307)

    return [home, search.router, product.router, lineage.router, sample.router, domains.router]
