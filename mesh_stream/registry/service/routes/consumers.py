"""``/products/{name}/consumers``: consumer groups registered on a product (mesh API).

The rules (who owns a registration, what ``reads`` may name) are in :mod:`..consumers`.
``{group:path}`` takes a name holding ``/`` too (``%2F`` is decoded before routing), so the
registry says what is wrong with it rather than answering a bare 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Response

from mesh_stream.registry.service.auth import refuse_service, require_principal
from mesh_stream.registry.service.context import CallerDep, ServicesDep
from mesh_stream.registry.service.routes.products import PRODUCT_SEGMENT

router = APIRouter(
    prefix="/products/{name}/consumers", tags=["consumers"], dependencies=[PRODUCT_SEGMENT]
)

RegistrationBody = Body(
    None,
    description='Optional: {"reads": [top-level field, ...], "contact": text, '
    '"description": text}. The fields in reads are protected from removal and retyping.',
)


@router.get("", summary="The consumer groups registered on a product")
async def list_consumers(name: str, services: ServicesDep) -> list[dict[str, Any]]:
    return services.consumers.listing(name)


@router.put(
    "/{group:path}", summary="Register (or update) a consumer group and the fields it reads"
)
def register_consumer(
    name: str,
    group: str,
    services: ServicesDep,
    principal: CallerDep,
    document: Any = RegistrationBody,
) -> dict[str, Any]:
    action = f"register consumer group '{group}' on '{name}'"
    who = require_principal(principal, action)
    refuse_service(who, action)
    return services.consumers.register(
        name, group, document, principal=who, authenticated=services.auth is not None
    )


@router.delete(
    "/{group:path}",
    summary="Unregister a consumer group (its owner, the product's domain or admin)",
    status_code=204,
)
def unregister_consumer(
    name: str, group: str, services: ServicesDep, principal: CallerDep
) -> Response:
    action = f"unregister consumer group '{group}' from '{name}'"
    who = require_principal(principal, action)
    refuse_service(who, action)
    services.consumers.unregister(name, group, principal=who)
    return Response(status_code=204)
