"""Mounting the portal: templates, static assets, security headers, the local API docs page.

Pages are Jinja2 templates rendered on the server with autoescaping on; the only scripts
are files under ``/ui/static`` (no inline script or style), which lets every portal answer
carry a strict Content-Security-Policy (:data:`CONTENT_SECURITY_POLICY`). ``/docs`` (the
OpenAPI page) is served here too, from the vendored Swagger UI instead of a CDN.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import Scope

from mesh_stream.descriptor import PRODUCT_NAME, DataProduct
from mesh_stream.errors import MeshError, RegistryUnavailableError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.portal.access import SessionSealer, ViewerDep, drop_session, safe_next
from mesh_stream.registry.service.context import Services, render_error

log = logging.getLogger(__name__)

PREFIX = "/ui"
STATIC = f"{PREFIX}/static"
#: Everything from this origin only; no inline script or style, no framing, forms post here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Pages (not static files) may show what only a signed-in viewer may read, and the sign-in
#: form a CSRF token: no cache keeps them.
PAGE_CACHE_CONTROL = "no-store"


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("mesh_stream.registry.portal").joinpath(name)))


TEMPLATES = Jinja2Templates(directory=_package_dir("templates"))


def count_text(number: int) -> str:
    """A count as every page writes it: thousands grouped (``1,001``)."""
    return f"{number:,}"


TEMPLATES.env.filters["count"] = count_text


@dataclass
class PortalState:
    """What the portal keeps per app: the cookie sealer (see :mod:`.access`), and the
    registry's address readers are told to use, when configured."""

    sessions: SessionSealer
    #: ``MESH_REGISTRY_PUBLIC_URL``: unset, the address a page was asked at is given.
    public_url: str | None = None


def portal_state(request: Request) -> PortalState:
    found: PortalState = request.app.state.portal
    return found


#: Longest product name a page looks up (longer ones are no product names).
MAX_PRODUCT_NAME = 300
#: Longest piece of user input a page repeats back.
MAX_ECHO = 120


def find_product(services: Services, name: str) -> DataProduct | None:
    """The registered product ``name``; None when unknown, malformed or unreadable (a
    stored descriptor a newer release refuses): every page shows those as not found."""
    if len(name) > MAX_PRODUCT_NAME or not PRODUCT_NAME.match(name):
        return None
    try:
        return services.products.get_product(name)
    except (MeshError, ValueError):
        return None


def echo(text: str) -> str:
    """User input as a page may repeat it: cut to :data:`MAX_ECHO` characters, and text
    that cannot be encoded (a lone surrogate) made visible instead of failing the page."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` rendered with ``context`` plus what every page needs (the viewer)."""
    values = {"request": request, "viewer": getattr(request.state, "viewer", None)}
    values.update(context or {})
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)


def error_page(scope: Scope, exc: Exception) -> HTMLResponse:
    """The portal's error page for a request refused before any page ran (a URL that is
    not UTF-8, say): the status the API would answer, in HTML."""
    status, _code = status_and_code(exc)
    page = render(
        Request(scope),
        "error.html",
        {
            "title": HTTPStatus(status).phrase,
            "message": str(getattr(exc, "message", None) or exc),
        },
        status_code=status,
    )
    page.headers.update({**SECURITY_HEADERS, "Cache-Control": "no-store"})  # outside theirs
    return page


def is_guarded(path: str) -> bool:
    """Whether ``path`` is a portal or API-docs path (``/ui``, ``/ui/...``, ``/docs...``)."""
    return path == PREFIX or path.startswith((f"{PREFIX}/", "/docs"))


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds :data:`SECURITY_HEADERS` to every portal and API-docs answer, errors included
    (and ``Cache-Control: no-store`` to all but static files), ``nosniff`` and ``no-store``
    to the API's, and drops a session cookie the viewer found no longer valid
    (``session_ended``)."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        page = wants_page(request)
        try:
            response = await call_next(request)
        except Exception:
            if not page:
                raise  # the API's own handler answers (JSON)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            response = _error_page(request, 500)
        else:
            if page and response.status_code >= 400 and _is_api_error(response):
                response = _error_page(request, response.status_code, response)
        if is_guarded(request.url.path):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if not request.url.path.startswith(f"{STATIC}/"):
                response.headers.setdefault("Cache-Control", PAGE_CACHE_CONTROL)
            if getattr(request.state, "session_ended", False):
                drop_session(response, request)
        else:  # the API: JSON no browser should sniff, and answers (a sample's records, a
            # credential listing) no cache should keep (h54)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", PAGE_CACHE_CONTROL)
        return response


def wants_page(request: Request) -> bool:
    """Whether a browser expects an HTML page here: a portal or docs path that is neither a
    static file, nor ``/ui/api/...`` (JSON for scripts), nor an htmx fragment, asked without
    an ``Authorization`` header (an API client's: it gets the API's answers)."""
    path = request.url.path
    headers = request.headers
    return (
        is_guarded(path)
        and not path.startswith((f"{STATIC}/", f"{PREFIX}/api/"))
        and not headers.get("hx-request")
        and "authorization" not in headers
    )


def _is_api_error(response: Response) -> bool:
    """The API's JSON error body (a wrong method, a malformed form, a body too large)."""
    kind = response.headers.get("content-type", "")
    return kind.startswith(("application/vnd.schemaregistry", "application/json"))


def _error_page(request: Request, status: int, answered: Response | None = None) -> Response:
    """The portal's error page for ``status``, keeping ``Allow`` and ``Retry-After``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    message = (
        "Something went wrong on the registry while building this page; it has been logged."
        if status >= 500
        else f"The portal cannot answer this request ({status} {phrase})."
    )
    page = render(request, "error.html", {"title": phrase, "message": message}, status_code=status)
    for kept in ("allow", "retry-after"):
        if answered is not None and kept in answered.headers:
            page.headers[kept] = answered.headers[kept]
    return page


def _unknown_pages() -> APIRouter:
    """A friendly 404 page for any other ``/ui`` path (after the sign-in rule, like a page);
    JSON under ``/ui/api/``, where scripts ask."""
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/{rest:path}", response_model=None)
    async def unknown_page(
        request: Request,
        viewer: ViewerDep,  # noqa: ARG001 - read auth
        rest: str,  # noqa: ARG001
    ) -> Response:
        path = request.url.path
        if path.endswith("/") and path.rstrip("/") not in ("", PREFIX):
            query = f"?{request.url.query}" if request.url.query else ""
            target = path.rstrip("/") + query
            if safe_next(target) == target:  # a typed "/ui/products/": the page itself
                return RedirectResponse(target, status_code=308)
        if path.startswith(f"{PREFIX}/api/"):
            return JSONResponse(
                {"error": f"The portal has no API at {echo(path)}."}, status_code=404
            )
        return render(
            request,
            "error.html",
            {
                "title": "Page not found",
                "message": f"The portal has no page at {echo(path)}.",
            },
            status_code=404,
        )

    return router


async def _unavailable(request: Request, exc: Exception) -> Response:
    """Kafka cannot confirm a credential (or serve a read) right now: a page says so in
    HTML; the API and the portal's fragments keep the API's JSON 503."""
    assert isinstance(exc, RegistryUnavailableError)
    path = request.url.path
    if (
        not is_guarded(path)
        or path.startswith(f"{PREFIX}/api/")
        or request.headers.get("hx-request")
    ):
        return render_error(exc)
    response = render(
        request,
        "error.html",
        {
            "title": "The registry is unavailable",
            "message": "The registry cannot reach Kafka right now, so it cannot check who you "
            "are or read the catalog. Try again in a few seconds.",
        },
        status_code=503,
    )
    response.headers["Retry-After"] = str(getattr(exc, "retry_after", None) or 5)
    return response


def install_portal(
    app: FastAPI, *, session_secret: str | None = None, public_url: str | None = None
) -> None:
    """Mount the portal on ``app`` (the registry app from ``create_app``).

    ``session_secret`` seals the sign-in cookie; instances behind one address need the
    same one (unset: a random key per process, so a restart signs everybody out).
    ``public_url`` is the registry's address the pages give readers (unset: the one a page
    was asked at).
    """
    from mesh_stream.registry.portal import access, pages

    app.state.portal = PortalState(
        sessions=SessionSealer(session_secret),
        public_url=public_url.rstrip("/") if public_url else None,
    )
    app.mount(STATIC, StaticFiles(directory=_package_dir("static")), name="portal-static")
    app.include_router(access.router)
    for router in pages.routers():
        app.include_router(router)
    app.include_router(_unknown_pages())  # last: only what no page family answers
    app.add_exception_handler(access.SignInRequiredError, access.send_to_sign_in)
    app.add_exception_handler(RegistryUnavailableError, _unavailable)
    app.add_middleware(SecurityHeaders)

    @app.get("/docs", include_in_schema=False, tags=["meta"])
    def api_docs(request: Request) -> HTMLResponse:
        return render(request, "api_docs.html", {"openapi_url": app.openapi_url})
