"""What every router needs from a request: the cores, and who is calling (FastAPI glue).

Reads are ``async`` routes: they only look at the in-memory view, so they run on the event
loop without a thread hop. Writes are plain ``def`` routes, because they block until Kafka
has the record; FastAPI runs those in its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mesh_stream.registry.service.auth import ADMIN, Credentials
from mesh_stream.registry.service.products import ProductCatalog
from mesh_stream.registry.service.schemas import SchemaRegistry

CONFLUENT_JSON = "application/vnd.schemaregistry.v1+json"


class RegistryJSONResponse(JSONResponse):
    """Every answer carries Confluent's content type (JSON, so any client reads it)."""

    media_type = CONFLUENT_JSON


@dataclass
class Services:
    schemas: SchemaRegistry
    products: ProductCatalog
    credentials: Credentials | None
    read_requires_auth: bool


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


async def caller(request: Request) -> str | None:
    """The authenticated principal; everyone is admin when no credentials are configured."""
    found: Services = request.app.state.services
    if found.credentials is None:
        return ADMIN
    from mesh_stream.registry.service.auth import require_principal

    principal = found.credentials.principal_for(request.headers.get("authorization"))
    if found.read_requires_auth and request.method in ("GET", "HEAD"):
        require_principal(principal, "reading the registry")
    return principal


CallerDep = Annotated[str | None, Depends(caller)]


class ErrorBody(BaseModel):
    """Every error answer (Confluent's shape; ``violations`` only for 42211)."""

    error_code: int = Field(description="Confluent code, or a mesh code (4221x, 40910, ...).")
    message: str = Field(description="What is wrong, naming the subject, version or field.")
    violations: list[dict[str, Any]] | None = Field(
        default=None, description="Governance findings: policy, severity, message, field."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed JSON (40001)",
        401: "No, unknown or wrong credential (40101)",
        403: "The principal does not own the subject or product (40301)",
        404: "Subject, version, schema or product not found (4040x)",
        409: "Incompatible schema (409) or product still in use (40910)",
        413: "Body over the size limit (41301)",
        422: "Invalid schema, version, level, subject name, descriptor or body (422xx)",
        503: "Fenced by a newer writer (50301) or Kafka unreachable (50302)",
    }.items()
}


class SchemaBody(BaseModel):
    """Confluent's register / lookup / compatibility request body."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema", description="The Avro schema as JSON text.")
    schemaType: str | None = Field(default=None, description="Only AVRO is supported.")  # noqa: N815
    references: list[Any] = Field(default_factory=list, description="Not supported; keep empty.")


class ConfigBody(BaseModel):
    """``{"compatibility": level}`` (Confluent also accepts ``compatibilityLevel``)."""

    model_config = ConfigDict(extra="allow")

    compatibility: str | None = None
    compatibilityLevel: str | None = None  # noqa: N815 - Confluent's field name
