"""The ASGI app: routers per resource over the domain cores, errors rendered Confluent-style.

Every error leaves as ``{"error_code": ..., "message": ...}`` with the status from
:mod:`mesh_stream.registry.error_codes`; request bodies above ``max_body_bytes`` are refused
with 413 before any handler runs; nothing a client sends should produce a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mesh_stream.errors import MeshError, ProductRejectedError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.problems import DescriptorValidator
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.context import (
    ERROR_RESPONSES,
    RegistryJSONResponse,
    Services,
)
from mesh_stream.registry.service.products import ProductCatalog
from mesh_stream.registry.service.routes import (
    compatibility,
    config,
    health,
    products,
    schemas,
    subjects,
)
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.registry.service.store import RegistryStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def _error(status: int, code: int, message: str, **extra: Any) -> RegistryJSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="mesh-registry"'} if status == 401 else None
    return RegistryJSONResponse(
        {"error_code": code, "message": message, **extra}, status_code=status, headers=headers
    )


class BodyLimit:
    """Reads the whole body first (it is small) and refuses it with 413 when too large."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        more = not too_large
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                too_large = True
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if too_large:
            response = _error(
                413, 41301, f"request body is larger than {self.max_bytes} bytes; send less"
            )
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    store: RegistryStore,
    *,
    credentials: Credentials | None = None,
    validators: Sequence[DescriptorValidator] = (),
    read_requires_auth: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    wait_for_replay: bool = True,
) -> FastAPI:
    """Build the registry app over ``store`` (opened here: its log is replayed now).

    ``credentials=None`` means no authentication at all (every caller is admin); the CLI
    only allows that when asked explicitly. ``validators`` are the governance hook.
    ``wait_for_replay=False`` returns at once; every route but ``/health`` answers 503
    until the log is replayed.
    """
    schema_registry = SchemaRegistry(store)
    store.open(schema_registry.state.apply, wait=wait_for_replay)
    app = FastAPI(
        title="mesh-stream registry",
        description="Confluent-compatible schema registry plus data product catalog.",
        version="1",
        default_response_class=RegistryJSONResponse,
    )
    app.state.services = Services(
        schemas=schema_registry,
        products=ProductCatalog(schema_registry, validators),
        credentials=credentials,
        read_requires_auth=read_requires_auth,
    )
    for module in (subjects, schemas, config, compatibility, products):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(health.router)

    @app.get("/", tags=["meta"], summary="Liveness: an empty object")
    def root() -> dict[str, str]:
        return {}

    @app.exception_handler(MeshError)
    async def mesh_error(_: Request, exc: Exception) -> RegistryJSONResponse:
        status, code = status_and_code(exc)
        message = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, ProductRejectedError):
            return _error(status, code, message, violations=exc.violations)
        return _error(status, code, message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: Exception) -> RegistryJSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in errors)
            return _error(400, 40001, f"malformed JSON body: {detail}")
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10]]
        return _error(422, 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: Exception) -> RegistryJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deeply)
            return _error(400, 40001, f"malformed JSON body: {exc.detail}")
        return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> RegistryJSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, 50001, f"internal error: {type(exc).__name__}")

    wrapped: FastAPI = app
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if not wait_for_replay:
        app.add_middleware(health.StartingGate, store=store)
    return wrapped
