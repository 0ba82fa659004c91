"""``/subjects``: register, list, look up and delete subject versions (Confluent API).

A subject sent with a ``/`` (``%2F``) or a control character in it is refused by name
(422, 42215) before any route reads it: :mod:`.segments`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from mesh_stream.errors import InvalidRequestError
from mesh_stream.registry.service.auth import authorize_subject
from mesh_stream.registry.service.context import (
    CallerDep,
    DeletedOnlyDep,
    HeavyDep,
    PageDep,
    SchemaBody,
    ServicesDep,
)
from mesh_stream.registry.service.contexts import owned_name
from mesh_stream.registry.service.routes.segments import subject_segment
from mesh_stream.registry.service.schemas import page

router = APIRouter(
    prefix="/subjects",
    tags=["subjects"],
    dependencies=[subject_segment("subjects")],
)


@router.get(
    "",
    summary="List subjects (with live versions; deleted=true adds soft-deleted, deletedOnly "
    "lists only those; subjectPrefix, offset, limit)",
)
async def list_subjects(
    services: ServicesDep,
    paging: PageDep,
    only_deleted: DeletedOnlyDep,
    deleted: bool = False,
    subjectPrefix: str = "",  # noqa: N803 - Confluent's name
) -> list[str]:
    found = services.schemas.subjects(
        deleted=deleted, deleted_only=only_deleted, prefix=subjectPrefix
    )
    return page(found, paging.offset, paging.limit)


@router.get(
    "/{subject:path}/metadata",
    summary="The latest version whose metadata properties hold every key=value pair",
)
async def latest_with_metadata(
    subject: str,
    services: ServicesDep,
    key: Annotated[list[str] | None, Query()] = None,
    value: Annotated[list[str] | None, Query()] = None,
    deleted: bool = False,
) -> dict[str, Any]:
    keys, values = key or [], value or []
    if len(keys) != len(values):
        raise InvalidRequestError(
            f"?key= and ?value= come in pairs: got {len(keys)} keys and {len(values)} values; "
            f"send one value per key (?key=owner&value=checkout)",
            status=400,
            error_code=40001,
        )
    found = services.schemas.latest_with_metadata(
        subject, dict(zip(keys, values, strict=True)), deleted=deleted
    )
    return found.to_dict()


@router.post(
    "/{subject:path}/versions",
    summary="Register a schema under a subject (idempotent: the same schema keeps its id)",
)
async def register(
    subject: str,
    body: SchemaBody,
    services: ServicesDep,
    principal: CallerDep,
    work: HeavyDep,
    normalize: bool = False,  # noqa: ARG001 - accepted like Confluent, schemas are always normalised
) -> dict[str, Any]:
    authorize_subject(principal, owned_name(subject), "register schemas under")
    if body.id is not None or body.version is not None:  # an import picks ids: admin's call
        authorize_subject(principal, None, "register a schema with an explicit id or version")
    registered = await work.run_on_schema(
        body.schema_,
        services.schemas.register,
        subject,
        body.schema_,
        body.schemaType,
        body.references,
        metadata=body.metadata,
        rule_set=body.ruleSet,
        schema_id=body.id,
        version=body.version,
    )
    return {
        "id": registered.schema_id,
        "version": registered.version,
        "subject": subject,
        "guid": registered.guid,
        **registered.contract.to_record(),
    }


@router.get("/{subject:path}/versions/{version}/schema", summary="Raw schema of a version")
async def get_version_schema(
    subject: str, version: str, services: ServicesDep, deleted: bool = False
) -> Any:
    return json.loads(services.schemas.get_version(subject, version, deleted=deleted).schema)


@router.get(
    "/{subject:path}/versions/{version}/referencedby",
    summary="Ids of the schemas whose references name this version",
)
async def referenced_by(
    subject: str, version: str, services: ServicesDep, paging: PageDep
) -> list[int]:
    found = services.schemas.referenced_by(subject, version)
    return page(found, paging.offset, paging.limit)


@router.get(
    "/{subject:path}/versions/{version}",
    summary="A version of a subject (a number, `latest` or -1)",
)
async def get_version(
    subject: str, version: str, services: ServicesDep, deleted: bool = False
) -> dict[str, Any]:
    return services.schemas.get_version(subject, version, deleted=deleted).to_dict()


@router.get(
    "/{subject:path}/versions",
    summary="Version numbers of a subject (deleted, deletedOnly, offset, limit)",
)
async def list_versions(
    subject: str,
    services: ServicesDep,
    paging: PageDep,
    only_deleted: DeletedOnlyDep,
    deleted: bool = False,
) -> list[int]:
    found = services.schemas.versions(subject, deleted=deleted, deleted_only=only_deleted)
    return page(found, paging.offset, paging.limit)


@router.delete(
    "/{subject:path}/versions/{version}",
    summary="Soft-delete a version; permanent=true hard-deletes a soft-deleted one",
)
def delete_version(
    subject: str,
    version: str,
    services: ServicesDep,
    principal: CallerDep,
    permanent: bool = False,
) -> int:
    authorize_subject(principal, owned_name(subject), "delete versions of")
    return services.schemas.delete_version(subject, version, permanent=permanent)


@router.post("/{subject:path}", summary="Look up a schema under a subject: its id and version")
async def lookup(
    subject: str,
    body: SchemaBody,
    services: ServicesDep,
    work: HeavyDep,
    deleted: bool = False,
    normalize: bool = False,  # noqa: ARG001 - accepted like Confluent, schemas are always normalised
) -> dict[str, Any]:
    found = await work.run_on_schema(
        body.schema_,
        services.schemas.lookup,
        subject,
        body.schema_,
        body.schemaType,
        deleted=deleted,
        metadata=body.metadata,
        rule_set=body.ruleSet,
        references=body.references,
    )
    return found.to_dict()


@router.delete(
    "/{subject:path}",
    summary="Soft-delete a subject; permanent=true hard-deletes a soft-deleted one",
)
def delete_subject(
    subject: str, services: ServicesDep, principal: CallerDep, permanent: bool = False
) -> list[int]:
    authorize_subject(principal, owned_name(subject), "delete")
    return services.schemas.delete_subject(subject, permanent=permanent)
