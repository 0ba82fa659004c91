"""What every router needs from a request: the cores, and who is calling (FastAPI glue).

Reads are ``async`` routes: they only look at the in-memory view, so they run on the event
loop without a thread hop. Writes that only touch names are plain ``def`` routes, because
they block until Kafka has the record; FastAPI runs those in its thread pool. Anything that
parses a schema or a descriptor (register, lookup, compatibility, products) goes through
:data:`HeavyDep`: a small bounded pool, a per-client limit (429), size limits first.

:func:`caller` is a dependency of every router (see ``create_app``), so read auth covers
every route structurally; it also counts failed authentications per client address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mesh_stream.errors import (
    AuthenticationError,
    ProductRejectedError,
    RegistryUnavailableError,
    SchemaRejectedError,
    TooManyRequestsError,
)
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service.auth import ADMIN, Authenticator, require_principal
from mesh_stream.registry.service.consumers import ConsumerRegistrations
from mesh_stream.registry.service.credentials import CredentialBook
from mesh_stream.registry.service.edge import Edge, HeavyWork
from mesh_stream.registry.service.product_health import ProductHealthView
from mesh_stream.registry.service.products import ProductCatalog
from mesh_stream.registry.service.sample import ProductSampler
from mesh_stream.registry.service.schemas import SchemaRegistry

CONFLUENT_JSON = "application/vnd.schemaregistry.v1+json"


class RegistryJSONResponse(JSONResponse):
    """Every answer carries Confluent's content type (JSON, so any client reads it)."""

    media_type = CONFLUENT_JSON


def error_response(status: int, code: int, message: str, **extra: Any) -> RegistryJSONResponse:
    """Confluent's error body; 401 says which schemes are accepted.

    A message quoting client input may hold a lone surrogate; it is escaped (``\\ud800``)
    so the error itself can always be encoded.
    """
    headers = {"WWW-Authenticate": 'Basic realm="mesh-registry"'} if status == 401 else None
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return RegistryJSONResponse(
        {"error_code": code, "message": message, **extra}, status_code=status, headers=headers
    )


def render_error(exc: Exception) -> RegistryJSONResponse:
    """A raised error as its answer (status and code from the one table; 429 Retry-After)."""
    status, code = status_and_code(exc)
    message = getattr(exc, "message", None) or str(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ProductRejectedError | SchemaRejectedError):
        extra["violations"] = exc.violations
    response = error_response(status, code, message, **extra)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, TooManyRequestsError) or (status == 503 and retry_after is not None):
        response.headers["Retry-After"] = str(retry_after)
    return response


@dataclass
class Services:
    schemas: SchemaRegistry
    products: ProductCatalog
    #: None: no authentication at all (every caller is admin)
    auth: Authenticator | None
    credentials: CredentialBook
    read_requires_auth: bool
    edge: Edge
    consumers: ConsumerRegistrations
    #: product health read from the monitor's topic (``/products/{name}/health``)
    health: ProductHealthView
    #: brings this instance's view up to its log's end (a no-op for the in-memory store)
    catch_up: Callable[[], None] = lambda: None
    #: reads live samples of product topics; None without Kafka (an in-memory registry)
    samples: ProductSampler | None = None


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def client_address(request: Request) -> str:
    return f"client {request.client.host}" if request.client else "client (unknown address)"


async def caller(request: Request) -> str | None:
    """The authenticated principal; everyone is admin when no credentials are configured.

    With read auth on, no route (reads, lookups and compatibility checks included) answers
    without a credential. A wrong credential costs its client address one of its allowed
    failures; with none left, any credential from it is refused (429) unchecked.
    """
    found: Services = request.app.state.services
    if found.auth is None:
        return ADMIN
    header = request.headers.get("authorization")
    principal = None
    if header is not None:
        try:
            principal = await authenticate(found, header, client_address(request))
        except RegistryUnavailableError as exc:
            # Kafka cannot say whether the credential was revoked. An open read needs no
            # principal, so it is served from the view as an anonymous one would be (SDK
            # reads keep working while a partition leader moves); anything else is a 503
            # that clients retry (a leader moves within seconds).
            if found.read_requires_auth or request.method not in ("GET", "HEAD"):
                exc.retry_after = 1  # type: ignore[attr-defined]
                raise
    if found.read_requires_auth:
        action = (
            "reading the registry"
            if request.method in ("GET", "HEAD")
            else f"{request.method} {request.url.path}"
        )
        require_principal(principal, action)
    return principal


async def authenticate(found: Services, header: str, address: str) -> str:
    """The principal ``header`` proves; a failure costs ``address`` one allowed failure.

    The bootstrap admin is checked on the event loop; any other credential waits in a
    worker thread for this instance's view to reach its log's end (see
    :class:`~mesh_stream.registry.service.auth.Authenticator`).
    """
    assert found.auth is not None
    auth = found.auth
    found.edge.auth_failures.check(address)
    try:
        if auth.bootstrap_admin(header):
            return ADMIN
        principal = await anyio.to_thread.run_sync(auth.principal_for, header)
    except AuthenticationError:
        found.edge.auth_failures.failed(address)
        raise
    assert principal is not None  # a header present proves someone or raises
    return principal


CallerDep = Annotated[str | None, Depends(caller)]


async def heavy_work(request: Request, principal: CallerDep) -> HeavyWork:
    """CPU-heavy work counted per principal; per client address when nobody authenticated."""
    found: Services = request.app.state.services
    client = (
        f"principal '{principal}'"
        if principal is not None and found.auth is not None
        else client_address(request)
    )
    return HeavyWork(found.edge.heavy, found.edge.limits, client)


HeavyDep = Annotated[HeavyWork, Depends(heavy_work)]


#: Largest offset or limit a list accepts (Confluent's are Java ints).
MAX_PAGE = 2**31 - 1


@dataclass(frozen=True)
class Page:
    """``?offset=&limit=`` of a list route (limit negative: everything)."""

    offset: int = 0
    limit: int = -1


async def paging(
    offset: Annotated[int, Query(ge=0, le=MAX_PAGE, description="Items to skip.")] = 0,
    limit: Annotated[
        int, Query(ge=-MAX_PAGE, le=MAX_PAGE, description="Most items; negative: all.")
    ] = -1,
) -> Page:
    return Page(offset, limit)


PageDep = Annotated[Page, Depends(paging)]


async def deleted_only(
    deletedOnly: bool = False,  # noqa: N803 - Confluent's name
    deleted_only: bool = False,  # confluent-kafka's client sends this spelling
) -> bool:
    """``?deletedOnly=true`` (or ``deleted_only``): list only soft-deleted entries."""
    return deletedOnly or deleted_only


DeletedOnlyDep = Annotated[bool, Depends(deleted_only)]


class ErrorBody(BaseModel):
    """Every error answer (Confluent's shape; ``violations`` only for 42211 and 42218)."""

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
        403: "The principal does not own the subject or product, or is not admin (40301)",
        404: "Subject, version, schema, product, credential, subject config or subject mode "
        "not found (4040x)",
        409: "Incompatible schema (409), product still in use (40910), credential exists "
        "(40911) or no authentication configured (40912)",
        413: "Body over the size limit (41301)",
        422: "Invalid schema, references, metadata or ruleSet (42201), version (42202), level "
        "(42203), mode (42204), a write the mode forbids (42205), a referenced version "
        "(42206), subject or principal name, descriptor or body, or a schema or descriptor "
        "governance refused (422xx)",
        429: "Too many failed authentications (42901) or schema requests in flight (42902)",
        503: "Fenced by a newer writer (50301) or Kafka unreachable (50302)",
    }.items()
}


class SchemaBody(BaseModel):
    """Confluent's register / lookup / compatibility request body."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema", description="The Avro schema as JSON text.")
    schemaType: str | None = Field(default=None, description="Only AVRO is supported.")  # noqa: N815
    references: Any = Field(
        default=None,
        description="Avro named types from other subjects: [{name, subject, version}].",
    )
    metadata: Any = Field(
        default=None,
        description="Confluent metadata: {tags: {path: [tag]}, properties: {k: v}, sensitive: [k]}"
        "; omitted on register = the subject's latest version's.",
    )
    ruleSet: Any = Field(  # noqa: N815 - Confluent's field name
        default=None,
        description="Confluent rules: {domainRules: [...], migrationRules: [...]}; omitted on "
        "register = the subject's latest version's.",
    )
    id: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description="IMPORT mode only: the id to keep."
    )
    version: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description="IMPORT mode only: the version to keep."
    )

    @field_validator("id", "version", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        """``true`` is no id (pydantic would take it as 1, and Confluent refuses it)."""
        if isinstance(value, bool):
            raise ValueError("must be a whole number, not a boolean")
        return value


class ModeBody(BaseModel):
    """``{"mode": "READWRITE" | "READONLY" | "READONLY_OVERRIDE" | "IMPORT"}``."""

    model_config = ConfigDict(extra="allow")

    mode: Any = None


class ConfigBody(BaseModel):
    """``{"compatibility": level}`` (Confluent also accepts ``compatibilityLevel``), and the
    contract parts every new version gets: default/override metadata and ruleSet."""

    model_config = ConfigDict(extra="allow")

    compatibility: str | None = None
    compatibilityLevel: str | None = None  # noqa: N815 - Confluent's field name
    defaultMetadata: Any = None  # noqa: N815 - Confluent's field names
    overrideMetadata: Any = None  # noqa: N815
    defaultRuleSet: Any = None  # noqa: N815
    overrideRuleSet: Any = None  # noqa: N815
