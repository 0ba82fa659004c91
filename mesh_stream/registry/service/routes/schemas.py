"""``/schemas``: schemas by their global id (what deserializers call)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mesh_stream.registry.service.context import ServicesDep

router = APIRouter(prefix="/schemas", tags=["schemas"])


@router.get("/types", summary="Schema types this registry stores")
async def schema_types() -> list[str]:
    return ["AVRO"]


@router.get("/ids/{schema_id}", summary="The schema with this id")
async def get_schema(
    schema_id: int,
    services: ServicesDep,
    subject: str | None = None,  # noqa: ARG001 - Confluent clients send it; ids are global
) -> dict[str, Any]:
    return services.schemas.get_schema_document(schema_id)


@router.get("/ids/{schema_id}/schema", summary="The raw schema with this id")
async def get_raw_schema(schema_id: int, services: ServicesDep) -> Any:
    import json

    return json.loads(services.schemas.get_schema(schema_id))


@router.get("/ids/{schema_id}/subjects", summary="Subjects using this schema id")
async def subjects_of(schema_id: int, services: ServicesDep) -> list[str]:
    services.schemas.get_schema(schema_id)
    return sorted({s for s, _v in services.schemas.subject_versions_of(schema_id)})


@router.get("/ids/{schema_id}/versions", summary="Subject versions using this schema id")
async def versions_of(schema_id: int, services: ServicesDep) -> list[dict[str, Any]]:
    services.schemas.get_schema(schema_id)
    return [
        {"subject": s, "version": v} for s, v in services.schemas.subject_versions_of(schema_id)
    ]
