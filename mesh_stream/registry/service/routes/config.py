"""``/config``: global and per-subject compatibility levels (default BACKWARD), and the
contract parts (defaultMetadata, overrideMetadata, defaultRuleSet, overrideRuleSet) every
new version of a subject gets. The subject segment is checked like ``/subjects``'
(:mod:`.segments`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mesh_stream.errors import InvalidCompatibilityLevelError
from mesh_stream.registry.service.auth import authorize_subject
from mesh_stream.registry.service.context import CallerDep, ConfigBody, ServicesDep
from mesh_stream.registry.service.contexts import owned_name
from mesh_stream.registry.service.routes.segments import subject_segment

router = APIRouter(
    prefix="/config",
    tags=["config"],
    dependencies=[subject_segment("config")],
)


def _level(body: ConfigBody) -> str | None:
    """The level asked for, under either of Confluent's two names; two different levels are
    refused (the first was kept without a word)."""
    first, second = body.compatibility, body.compatibilityLevel
    if first is not None and second is not None and first.upper() != second.upper():
        raise InvalidCompatibilityLevelError(
            f"compatibility {first[:40]!r} and compatibilityLevel {second[:40]!r} name two "
            f"levels; give one of them (both are the same setting)"
        )
    return first if first is not None else second


def _update(services: ServicesDep, subject: str | None, body: ConfigBody) -> dict[str, Any]:
    stored = services.schemas.update_config(subject, _level(body), body.model_dump())
    answer = {key: value for key, value in stored.items() if key != "compatibility"}
    if "compatibility" in stored:
        answer = {"compatibility": stored["compatibility"], **answer}
    return answer


@router.get("", summary="The global compatibility level and contract defaults")
async def get_global(services: ServicesDep) -> dict[str, Any]:
    found: dict[str, Any] = services.schemas.config_document(None)
    return found


@router.put("", summary="Set the global level and/or contract defaults (admin only)")
def put_global(body: ConfigBody, services: ServicesDep, principal: CallerDep) -> dict[str, Any]:
    authorize_subject(principal, None, "change the global compatibility level")
    return _update(services, None, body)


@router.delete("", summary="Reset the global config to the default (admin only)")
def delete_global(services: ServicesDep, principal: CallerDep) -> dict[str, Any]:
    authorize_subject(principal, None, "change the global compatibility level")
    return services.schemas.delete_config(None)


@router.get("/{subject:path}", summary="A subject's own config (defaultToGlobal: effective)")
async def get_subject(
    subject: str,
    services: ServicesDep,
    defaultToGlobal: bool = False,  # noqa: N803
) -> dict[str, Any]:
    found: dict[str, Any] = services.schemas.config_document(
        subject, default_to_global=defaultToGlobal
    )
    return found


@router.put("/{subject:path}", summary="Set a subject's level and/or contract defaults")
def put_subject(
    subject: str, body: ConfigBody, services: ServicesDep, principal: CallerDep
) -> dict[str, Any]:
    authorize_subject(principal, owned_name(subject), "change the compatibility level of")
    return _update(services, subject, body)


@router.delete("/{subject:path}", summary="Remove a subject's config (it falls back to global)")
def delete_subject(subject: str, services: ServicesDep, principal: CallerDep) -> dict[str, Any]:
    authorize_subject(principal, owned_name(subject), "change the compatibility level of")
    return services.schemas.delete_config(subject)
