"""``/compatibility``: would this schema be accepted? (no write happens)

The subject segment is checked like ``/subjects``' (:mod:`.segments`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mesh_stream.registry.service.context import HeavyDep, SchemaBody, ServicesDep
from mesh_stream.registry.service.routes.segments import subject_segment

router = APIRouter(
    prefix="/compatibility",
    tags=["compatibility"],
    dependencies=[subject_segment("subjects")],
)


def _answer(problems: list[str], verbose: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose or problems:
        answer["messages"] = problems
    return answer


@router.post(
    "/subjects/{subject:path}/versions/{version}",
    summary="Test a schema against one version (the subject's level, non-transitively)",
)
async def against_version(
    subject: str,
    version: str,
    body: SchemaBody,
    services: ServicesDep,
    work: HeavyDep,
    verbose: bool = False,
    normalize: bool = False,  # noqa: ARG001 - accepted like Confluent, schemas are always normalised
) -> dict[str, Any]:
    problems = await work.run_on_schema(
        body.schema_,
        services.schemas.check_compatibility,
        subject,
        body.schema_,
        body.schemaType,
        version,
        body.references,
        metadata=body.metadata,
        rule_set=body.ruleSet,
    )
    return _answer(problems, verbose)


@router.post(
    "/subjects/{subject:path}/versions",
    summary="Test a schema against the versions the subject's level covers",
)
async def against_level(
    subject: str,
    body: SchemaBody,
    services: ServicesDep,
    work: HeavyDep,
    verbose: bool = False,
    normalize: bool = False,  # noqa: ARG001 - accepted like Confluent, schemas are always normalised
) -> dict[str, Any]:
    problems = await work.run_on_schema(
        body.schema_,
        services.schemas.check_compatibility,
        subject,
        body.schema_,
        body.schemaType,
        None,
        body.references,
        metadata=body.metadata,
        rule_set=body.ruleSet,
    )
    return _answer(problems, verbose)
