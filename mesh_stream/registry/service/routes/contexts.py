"""``/contexts``: the schema contexts in use (``.`` is the default one)."""

from __future__ import annotations

from fastapi import APIRouter

from mesh_stream.registry.service.context import PageDep, ServicesDep
from mesh_stream.registry.service.schemas import page

router = APIRouter(prefix="/contexts", tags=["contexts"])


@router.get("", summary="The default context `.` and every context a subject is in (offset, limit)")
async def list_contexts(services: ServicesDep, paging: PageDep) -> list[str]:
    return page(services.schemas.contexts(), paging.offset, paging.limit)
