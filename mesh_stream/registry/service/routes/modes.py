"""``/mode``: the registry's and each subject's mode (READWRITE, READONLY, IMPORT, ...).

Reads are open like ``/config``; every change is admin's, since a mode stops or reshapes
every writer of a subject (see :mod:`..modes`). The subject segment is checked like
``/subjects``' (:mod:`.segments`).
"""

from __future__ import annotations

from fastapi import APIRouter

from mesh_stream.registry.service.auth import authorize_subject
from mesh_stream.registry.service.context import CallerDep, ModeBody, ServicesDep
from mesh_stream.registry.service.routes.segments import subject_segment

router = APIRouter(
    prefix="/mode",
    tags=["mode"],
    dependencies=[subject_segment("mode")],
)


@router.get("", summary="The global mode")
async def get_global(services: ServicesDep) -> dict[str, str]:
    return {"mode": services.schemas.get_mode(None).value}


@router.put("", summary="Set the global mode (admin only; IMPORT over schemas needs force)")
def put_global(
    body: ModeBody, services: ServicesDep, principal: CallerDep, force: bool = False
) -> dict[str, str]:
    authorize_subject(principal, None, "change the registry's mode")
    return {"mode": services.schemas.set_mode(None, body.mode, force=force).value}


@router.get("/{subject:path}", summary="A subject's own mode (defaultToGlobal: its effective one)")
async def get_subject(
    subject: str,
    services: ServicesDep,
    defaultToGlobal: bool = False,  # noqa: N803 - Confluent's name
) -> dict[str, str]:
    return {"mode": services.schemas.get_mode(subject, default_to_global=defaultToGlobal).value}


@router.put("/{subject:path}", summary="Set a subject's mode (admin only)")
def put_subject(
    subject: str, body: ModeBody, services: ServicesDep, principal: CallerDep, force: bool = False
) -> dict[str, str]:
    authorize_subject(principal, None, f"change the mode of subject '{subject}'")
    return {"mode": services.schemas.set_mode(subject, body.mode, force=force).value}


@router.delete("/{subject:path}", summary="Remove a subject's own mode (admin only)")
def delete_subject(subject: str, services: ServicesDep, principal: CallerDep) -> dict[str, str]:
    authorize_subject(principal, None, f"change the mode of subject '{subject}'")
    return {"mode": services.schemas.delete_mode(subject).value}
