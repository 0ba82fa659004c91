"""``/schemas``: schemas by their global id or guid (what deserializers call), and listed.

An id or guid this instance does not know is looked up again once its view has caught up
with the log (:meth:`~mesh_stream.registry.service.store.CatchingUpStore.catch_up_view`)
before the answer is "not found": a follower may trail a schema the writer registered a
moment ago, and a consumer dead-letters a record whose schema id is not found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter
from pydantic import BeforeValidator

from mesh_stream.errors import SchemaNotFoundError
from mesh_stream.registry.service.context import PageDep, Services, ServicesDep
from mesh_stream.registry.service.schemas import page

T = TypeVar("T")

router = APIRouter(prefix="/schemas", tags=["schemas"])

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def _whole_number(value: object) -> object:
    """An id as Confluent reads one (Java's ``Integer.valueOf``: digits, a sign at most);
    pydantic alone would also take ``' 1'`` and ``'1.0'`` for 1."""
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value):
        raise ValueError("an id is a whole number")
    return value


SchemaId = Annotated[int, BeforeValidator(_whole_number)]


async def _found(services: Services, read: Callable[[], T]) -> T:
    """``read()``; if it finds nothing, again once the view holds the whole log."""
    try:
        return read()
    except SchemaNotFoundError:
        await anyio.to_thread.run_sync(services.catch_up)
        return read()


@router.get(
    "",
    summary="Subject versions with their schemas (subjectPrefix, deleted, latestOnly, offset, "
    "limit)",
)
async def list_schemas(
    services: ServicesDep,
    paging: PageDep,
    subjectPrefix: str = "",  # noqa: N803 - Confluent's names
    deleted: bool = False,
    latestOnly: bool = False,  # noqa: N803
) -> list[dict[str, Any]]:
    found = services.schemas.list_schemas(
        prefix=subjectPrefix, deleted=deleted, latest_only=latestOnly
    )
    return [v.to_dict() for v in page(found, paging.offset, paging.limit)]


@router.get("/types", summary="Schema types this registry stores")
async def schema_types() -> list[str]:
    return ["AVRO"]


@router.get("/ids/{schema_id}", summary="The schema with this id")
async def get_schema(
    schema_id: SchemaId,
    services: ServicesDep,
    subject: str | None = None,  # noqa: ARG001 - Confluent clients send it; ids are global
) -> dict[str, Any]:
    return await _found(services, lambda: services.schemas.get_schema_document(schema_id))


@router.get("/guids/{guid}", summary="The schema with this guid")
async def get_schema_by_guid(guid: str, services: ServicesDep) -> dict[str, Any]:
    return await _found(services, lambda: services.schemas.get_by_guid(guid))


@router.get("/ids/{schema_id}/schema", summary="The raw schema with this id")
async def get_raw_schema(schema_id: SchemaId, services: ServicesDep) -> Any:
    return json.loads(await _found(services, lambda: services.schemas.get_schema(schema_id)))


@router.get(
    "/ids/{schema_id}/subjects",
    summary="Subjects using this schema id, soft-deleted versions included (subject, offset, "
    "limit)",
)
async def subjects_of(
    schema_id: SchemaId,
    services: ServicesDep,
    paging: PageDep,
    subject: str | None = None,
    deleted: bool = False,  # noqa: ARG001 - soft-deleted versions are always included
) -> list[str]:
    await _found(services, lambda: services.schemas.get_schema(schema_id))
    found = sorted(
        {
            s
            for s, _v in services.schemas.subject_versions_of(schema_id)
            if subject is None or s == subject
        }
    )
    return page(found, paging.offset, paging.limit)


@router.get(
    "/ids/{schema_id}/versions",
    summary="Subject versions using this schema id (subject, offset, limit)",
)
async def versions_of(
    schema_id: SchemaId,
    services: ServicesDep,
    paging: PageDep,
    subject: str | None = None,
    deleted: bool = False,  # noqa: ARG001 - soft-deleted versions are always included
) -> list[dict[str, Any]]:
    await _found(services, lambda: services.schemas.get_schema(schema_id))
    found = [
        {"subject": s, "version": v}
        for s, v in services.schemas.subject_versions_of(schema_id)
        if subject is None or s == subject
    ]
    return page(found, paging.offset, paging.limit)
