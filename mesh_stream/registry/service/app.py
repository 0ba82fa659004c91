"""The ASGI app: routers per resource over the domain cores, errors rendered Confluent-style.

Every error leaves as ``{"error_code": ..., "message": ...}`` with the status from
:mod:`mesh_stream.registry.error_codes`; :class:`~mesh_stream.registry.service.edge.BodyGuard`
vets every request (size, URL, JSON) before any handler runs; nothing a client sends should
produce a 500. Over a store several instances share, a follower forwards writes to the
writer (:mod:`~mesh_stream.registry.service.forwarding`). Every router depends on
``caller``, so read auth covers every route but the liveness ones in :data:`PUBLIC_TAGS`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from mesh_stream.errors import MeshError, validation_problem
from mesh_stream.registry.portal import error_page, install_portal
from mesh_stream.registry.problems import DescriptorValidator
from mesh_stream.registry.service.auth import Authenticator, Credentials
from mesh_stream.registry.service.consumers import ConsumerRegistrations
from mesh_stream.registry.service.context import (
    ERROR_RESPONSES,
    RegistryJSONResponse,
    Services,
    caller,
    error_response,
    render_error,
)
from mesh_stream.registry.service.credentials import CredentialBook
from mesh_stream.registry.service.edge import BodyGuard, Edge, EdgeLimits, HeadAsGet
from mesh_stream.registry.service.forwarding import WriteForwarder
from mesh_stream.registry.service.metrics import install as install_metrics
from mesh_stream.registry.service.product_health import (
    HealthFeed,
    InMemoryHealthFeed,
    ProductHealthView,
)
from mesh_stream.registry.service.products import ProductCatalog
from mesh_stream.registry.service.routes import (
    compatibility,
    config,
    consumers,
    contexts,
    exports,
    health,
    modes,
    product_health,
    products,
    sample,
    schemas,
    subjects,
)
from mesh_stream.registry.service.routes import (
    credentials as credential_routes,
)
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.registry.service.store import (
    CATCH_UP_SECONDS,
    CatchingUpStore,
    RegistryStore,
    SharedStore,
)
from mesh_stream.settings import quoted_name

log = logging.getLogger(__name__)

#: Routes with these tags answer without a credential even with read auth (liveness only).
PUBLIC_TAGS = frozenset({"meta", "health"})
#: FastAPI's API description: the same for every registry, no registry data in it.
DOC_PATHS = frozenset({"/openapi.json", "/docs"})


def is_public(route: Any) -> bool:
    """Whether ``route`` (a route or route context) answers without a credential."""
    tags = getattr(route, "tags", None) or []
    return route.path in DOC_PATHS or bool(PUBLIC_TAGS.intersection(str(tag) for tag in tags))


def configure_edge(app: FastAPI, limits: EdgeLimits) -> None:
    """Apply ``limits`` (e.g. ``EdgeLimits.from_settings(settings)``) before serving."""
    services: Services = app.state.services
    services.edge = Edge(limits)


def _allowed(app: FastAPI, scope: Scope) -> list[str]:
    """The methods of every route whose path matches ``scope``'s (a 405's ``Allow``):
    Starlette names only the first such route's."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):  # flat, as the metrics' route templates
        found = getattr(route, "methods", None)
        if found and route.matches(scope)[0] is not Match.NONE:
            methods |= set(found)
    return sorted(methods)


def create_app(
    store: RegistryStore,
    *,
    credentials: Credentials | None = None,
    validators: Sequence[DescriptorValidator] = (),
    read_requires_auth: bool = False,
    limits: EdgeLimits | None = None,
    wait_for_replay: bool = True,
    health_feed: HealthFeed | None = None,
    session_secret: str | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """Build the registry app over ``store`` (opened here: its log is replayed now).

    ``credentials=None`` means no authentication at all (every caller is admin); the CLI
    only allows that when asked explicitly. ``validators`` are the governance hook;
    ``limits`` those of the HTTP edge (defaults: the settings' defaults).
    ``wait_for_replay=False`` returns at once; every route but ``/health`` answers 503
    until the log is replayed. ``health_feed`` is where product health comes from (default:
    an :class:`InMemoryHealthFeed`); it starts here and stops with ``services.health.close()``.
    ``session_secret`` seals the portal's sign-in cookie and ``public_url`` is the address
    its pages give readers (see :func:`~mesh_stream.registry.portal.install_portal`).
    """
    schema_registry = SchemaRegistry(store)
    store.open(schema_registry.state.apply, wait=wait_for_replay)
    app = FastAPI(
        title="mesh-stream registry",
        description="Confluent-compatible schema registry plus data product catalog.",
        version="1",
        default_response_class=RegistryJSONResponse,
        docs_url=None,  # the portal serves /docs from the vendored Swagger UI, not a CDN
        redoc_url=None,
    )
    state = schema_registry.state
    catch_up = (
        (lambda: store.catch_up_view(CATCH_UP_SECONDS))
        if isinstance(store, CatchingUpStore)
        else (lambda: None)
    )
    catalog = ProductCatalog(schema_registry, validators)
    app.state.services = Services(
        schemas=schema_registry,
        products=catalog,
        auth=(
            None
            if credentials is None
            else Authenticator(credentials, lambda: state.credentials, catch_up)
        ),
        credentials=CredentialBook(store, state, credentials, schema_registry.write_lock),
        read_requires_auth=read_requires_auth,
        edge=Edge(limits or EdgeLimits()),
        consumers=ConsumerRegistrations(schema_registry),
        health=ProductHealthView(catalog, health_feed or InMemoryHealthFeed()),
        catch_up=catch_up,
    )
    app.state.services.health.start()
    routers = (
        subjects,
        schemas,
        config,
        modes,
        contexts,
        compatibility,
        products,
        exports,
        product_health,
        sample,
        consumers,
        credential_routes,
    )
    for module in routers:
        app.include_router(module.router, responses=ERROR_RESPONSES, dependencies=[Depends(caller)])
    app.include_router(health.router)
    install_portal(app, session_secret=session_secret, public_url=public_url)

    @app.get("/", tags=["meta"], summary="Liveness: an empty object")
    def root() -> dict[str, str]:
        return {}

    @app.exception_handler(MeshError)
    async def mesh_error(_: Request, exc: Exception) -> RegistryJSONResponse:
        return render_error(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: Exception) -> RegistryJSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = "; ".join(str(e.get("ctx", {}).get("error", e["msg"])) for e in errors)
            return error_response(400, 40001, f"malformed JSON body: {detail}")
        parts = [
            f"{'.'.join(str(p) for p in e['loc'])}: {validation_problem(e)}" for e in errors[:10]
        ]
        if errors and all(e["loc"][:1] == ("path",) for e in errors):
            # /schemas/ids/abc names no resource: Confluent's registry answers 404, as for a
            # path no route takes, and its clients read a 422 as a refused schema
            return error_response(404, 404, "HTTP 404 Not Found: " + "; ".join(parts))
        return error_response(422, 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> RegistryJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deeply)
            return error_response(400, 40001, f"malformed JSON body: {exc.detail}")
        if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
            # routing's own answer: say which route, as the path was read (once decoded, so
            # a %2F inside a name is a separator here; the scope's path keeps a decoded
            # newline, which the URL object drops)
            answer = error_response(
                exc.status_code,
                exc.status_code,
                f"HTTP {exc.status_code} {exc.detail}: no route for {request.method} "
                f"{quoted_name(request.scope['path'])}; the API is described at /docs",
            )
            answer.headers.update(exc.headers or {})  # 405's Allow, of the first route only
            if exc.status_code == 405:  # and every method the other routes of the path take
                given = (exc.headers or {}).get("Allow", "")
                methods = {m.strip() for m in given.split(",") if m.strip()}
                methods |= set(_allowed(app, request.scope))
                if methods:
                    answer.headers["Allow"] = ", ".join(sorted(methods))
            return answer
        return error_response(
            exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> RegistryJSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, 50001, f"internal error: {type(exc).__name__}")

    services: Services = app.state.services
    if isinstance(store, SharedStore):  # several instances: followers forward writes
        app.add_middleware(
            WriteForwarder,
            store=store,
            render=render_error,
            advertised_url=getattr(store, "advertised_url", None),
            render_page=error_page,
        )
    app.add_middleware(
        BodyGuard,
        limits=lambda: services.edge.limits,
        render=render_error,
        render_page=error_page,
    )
    if not wait_for_replay:
        app.add_middleware(health.StartingGate, store=store)
    app.add_middleware(HeadAsGet)
    install_metrics(app, state, store)  # last: its observer is outermost, sees every answer
    return app
