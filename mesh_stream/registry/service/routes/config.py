"""``/config``: global and per-subject compatibility levels (default BACKWARD)."""

from __future__ import annotations

from fastapi import APIRouter

from mesh_stream.errors import InvalidCompatibilityLevelError
from mesh_stream.registry.service.auth import authorize_subject
from mesh_stream.registry.service.context import CallerDep, ConfigBody, ServicesDep
from mesh_stream.registry.service.contexts import owned_name

router = APIRouter(prefix="/config", tags=["config"])


def _level(body: ConfigBody) -> str:
    level = body.compatibility or body.compatibilityLevel
    if level is None:
        raise InvalidCompatibilityLevelError('body needs {"compatibility": <level>}')
    return level


@router.get("", summary="The global compatibility level")
async def get_global(services: ServicesDep) -> dict[str, str]:
    return {"compatibilityLevel": services.schemas.get_config(None).value}


@router.put("", summary="Set the global compatibility level (admin only)")
def put_global(body: ConfigBody, services: ServicesDep, principal: CallerDep) -> dict[str, str]:
    authorize_subject(principal, None, "change the global compatibility level")
    return {"compatibility": services.schemas.set_config(None, _level(body)).value}


@router.delete("", summary="Reset the global compatibility level to the default (admin only)")
def delete_global(services: ServicesDep, principal: CallerDep) -> dict[str, str]:
    authorize_subject(principal, None, "change the global compatibility level")
    return {"compatibilityLevel": services.schemas.delete_config(None).value}


@router.get("/{subject:path}", summary="A subject's own compatibility level")
async def get_subject(
    subject: str,
    services: ServicesDep,
    defaultToGlobal: bool = False,  # noqa: N803
) -> dict[str, str]:
    level = services.schemas.get_config(subject, default_to_global=defaultToGlobal)
    return {"compatibilityLevel": level.value}


@router.put("/{subject:path}", summary="Set a subject's compatibility level")
def put_subject(
    subject: str, body: ConfigBody, services: ServicesDep, principal: CallerDep
) -> dict[str, str]:
    authorize_subject(principal, owned_name(subject), "change the compatibility level of")
    return {"compatibility": services.schemas.set_config(subject, _level(body)).value}


@router.delete("/{subject:path}", summary="Remove a subject's level (it falls back to global)")
def delete_subject(subject: str, services: ServicesDep, principal: CallerDep) -> dict[str, str]:
    authorize_subject(principal, owned_name(subject), "change the compatibility level of")
    return {"compatibilityLevel": services.schemas.delete_config(subject).value}
