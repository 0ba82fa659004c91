"""Who is looking: the portal's sign-in, its session cookie, and the same rules as the API.

A viewer proves who they are as an API client does (``Authorization`` header) or by signing
in once with a token: the portal then keeps the token, with a random session id, in a cookie
sealed with Fernet (``cryptography``: AES-CBC plus HMAC-SHA256, so it is both signed and
unreadable), marked ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui`` (and ``Secure`` under
https), valid for :data:`SESSION_SECONDS`. The token is checked again on every request exactly
as the API checks it, so a revoked token signs its sessions out at once (the stale cookie is
dropped). Signing out writes the session id to the registry's log (:func:`end_session`; a
follower forwards the form to the writer), so a copy of the cookie is refused by every
instance from then on, not only forgotten by the browser.
Failed sign-ins count against the client address like failed API calls (429 past the limit);
a session cookie's token is not a guess (only this registry can seal one, after a sign-in
that succeeded), so it neither counts as a failure when it no longer works nor waits out
another client's lock-out at the same address. With ``MESH_REGISTRY_READ_REQUIRES_AUTH`` a
page asked for without a credential redirects to the sign-in form; without it, pages are
open to read and signing in only changes what is masked (the live sample's PII fields).

Forms are CSRF-safe three times over: the session cookie is ``SameSite=Strict``, every form
that changes something carries a token that must equal the ``mesh_csrf`` cookie (double
submit; a new one at each sign-in), and a post the browser marks as coming from another
site or a sibling subdomain (``Sec-Fetch-Site``) is refused, planted cookie or not. The
``next`` page of a sign-in is always a portal path (:func:`safe_next`): never another site,
never outside ``/ui``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

import anyio
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mesh_stream.errors import (
    AuthenticationError,
    MeshError,
    RegistryUnavailableError,
    TooManyAuthFailuresError,
)
from mesh_stream.registry.service.auth import ADMIN
from mesh_stream.registry.service.context import Services, authenticate, client_address
from mesh_stream.registry.service.forwarding import FORWARDED_BY
from mesh_stream.registry.service.state import Record

SESSION_COOKIE = "mesh_session"
CSRF_COOKIE = "mesh_csrf"
CSRF_FIELD = "csrf_token"
#: How long a sign-in lasts.
SESSION_SECONDS = 8 * 3600
COOKIE_PATH = "/ui"
#: Where a sign-in lands when it names no (acceptable) page.
HOME = "/ui/products"
#: Longest ``next`` kept (a longer one lands on :data:`HOME`).
MAX_NEXT = 2048

router = APIRouter(prefix="/ui", include_in_schema=False)
log = logging.getLogger(__name__)


class SignInRequiredError(AuthenticationError):
    """A page needs a credential the request does not carry (read auth is on); the portal
    answers it with a redirect to its sign-in form, the API never sees it."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} needs a credential: sign in", status=401, error_code=40101)
        self.path = path


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the token it proves itself with, and the id a sign-out ends."""

    token: str
    id: str


class SessionSealer:
    """Seals a session into a cookie value and opens it again (Fernet, with an expiry)."""

    def __init__(self, secret: str | None) -> None:
        if secret:
            key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        else:
            key = Fernet.generate_key()
        self._fernet = Fernet(key)

    def seal(self, token: str) -> str:
        """A new session of ``token`` (its own random id), sealed."""
        content = json.dumps({"token": token, "session": secrets.token_urlsafe(16)})
        return self._fernet.encrypt(content.encode()).decode("ascii")

    def sealed_elsewhere(self, value: str) -> bool:
        """Whether ``value`` looks sealed (a Fernet token: version byte 0x80) but not with this
        sealer's key, expired or not: a forwarded sign-out tells a session another instance
        sealed from an expired or damaged one."""
        if not value.startswith("gAAAAA"):
            return False
        try:
            self._fernet.decrypt(value.encode("ascii"))
        except (InvalidToken, UnicodeError, ValueError):
            return True
        return False

    def open(self, value: str) -> Session | None:
        """The session sealed in ``value``; None when forged, damaged or expired (or sealed
        before sessions had ids: the token alone, so signed in again)."""
        try:
            text = self._fernet.decrypt(value.encode("ascii"), ttl=SESSION_SECONDS).decode()
            content = json.loads(text)
        except (InvalidToken, UnicodeError, ValueError):
            return None
        token = content.get("token") if isinstance(content, dict) else None
        session = content.get("session") if isinstance(content, dict) else None
        if not (isinstance(token, str) and token and isinstance(session, str) and session):
            return None
        return Session(token, session)


@dataclass(frozen=True)
class Viewer:
    """Who a page is rendered for. ``principal`` None: anonymous (allowed without read auth)."""

    principal: str | None
    #: signed in through the portal's form (shows "sign out")
    signed_in: bool = False
    #: the registry has credentials at all (shows "sign in")
    auth_enabled: bool = True

    @property
    def is_admin(self) -> bool:
        return self.principal == ADMIN

    def owns_domain(self, domain: str) -> bool:
        return self.principal is not None and self.principal in (ADMIN, domain)


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _sealer(request: Request) -> SessionSealer:
    sealer: SessionSealer = request.app.state.portal.sessions
    return sealer


async def viewer(request: Request) -> Viewer:
    """The page's viewer; raises :class:`SignInRequiredError` when read auth needs one.

    A damaged, expired or revoked session counts as no session (the form asks again).
    """
    found = _services(request)
    if found.auth is None:
        seen = Viewer(ADMIN, auth_enabled=False)
        request.state.viewer = seen
        return seen
    principal: str | None = None
    signed_in = False
    header = request.headers.get("authorization")
    try:
        if header is not None:  # an API client: the API's rules, its 401 and 429 included
            principal = await authenticate(found, header, client_address(request))
        else:
            sealed = request.cookies.get(SESSION_COOKIE)
            session = _sealer(request).open(sealed) if sealed else None
            if sealed and session is None:
                request.state.session_ended = True  # forged, damaged or expired
            if session is not None:
                principal = await _session_principal(found, session)
                signed_in = principal is not None
                if not signed_in:
                    request.state.session_ended = True  # signed out, revoked or rotated since
    except RegistryUnavailableError:
        if found.read_requires_auth:
            raise
    if principal is None and found.read_requires_auth:
        raise SignInRequiredError(_here(request))
    seen = Viewer(principal, signed_in=signed_in)
    request.state.viewer = seen
    return seen


async def _session_principal(found: Services, session: Session) -> str | None:
    """Who a session's token proves now; None when the session was signed out, or its token
    revoked or rotated, since (through any instance: the view is caught up first).

    Checked as the API checks a Bearer token, minus the failure count (see the module
    docstring: a sealed token is not a guess).
    """
    auth = found.auth
    assert auth is not None
    header = f"Bearer {session.token}"
    try:
        if auth.bootstrap_admin(header):  # no log behind the token: it works in an outage
            with contextlib.suppress(RegistryUnavailableError):  # sign-outs as far as known
                await anyio.to_thread.run_sync(found.catch_up)
            principal: str | None = ADMIN
        else:
            principal = await anyio.to_thread.run_sync(auth.principal_for, header)
    except AuthenticationError:
        return None
    if session.id in found.schemas.state.ended_sessions:
        return None
    return principal


def end_session(found: Services, session_id: str, now_ms: int | None = None) -> None:
    """Write to the registry's log that ``session_id`` signed out, so that every instance
    refuses a copy of its cookie until the cookie would have expired anyway; sign-outs past
    that time are tombstoned in the same write (the log keeps only those that matter).
    Blocks until the log has it (call it off the event loop); raises as any write does."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    registry = found.schemas
    with registry.write_lock:
        passed = [
            Record(("session", ended), None)
            for ended, until in list(registry.state.ended_sessions.items())
            if until <= now
        ]
        until_ms = now + SESSION_SECONDS * 1000
        registry.store.append(
            [*passed, Record(("session", session_id), {"ended_until_ms": until_ms})]
        )


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def safe_next(target: str | None) -> str:
    """``target`` when it is a page of the portal, else :data:`HOME` (no open redirect).

    Accepted: an absolute path ``/ui`` or ``/ui/...`` (so ``/ui@evil.com`` is not) with an
    optional query, nothing a browser could read as another host or scheme (``//``, ``\\``,
    ``https:``, whitespace or control characters, also percent-encoded), and no ``.``/``..``
    segment, plain or percent-encoded (browsers resolve ``/ui/%2e%2e/x`` to ``/x``).
    """
    if not target or len(target) > MAX_NEXT:
        return HOME
    if any(not char.isprintable() or char.isspace() for char in target) or "\\" in target:
        return HOME
    try:
        parts = urlsplit(target)
    except ValueError:
        return HOME
    path = parts.path
    inside = path == "/ui" or path.startswith("/ui/")
    if parts.scheme or parts.netloc or parts.fragment or not inside:
        return HOME
    decoded = unquote(path)
    if "\\" in decoded or "//" in decoded or not decoded.isprintable():
        return HOME
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return HOME
    return target


async def send_to_sign_in(request: Request, exc: Exception) -> Response:
    """The handler of :class:`SignInRequiredError`: to the form, coming back afterwards."""
    assert isinstance(exc, SignInRequiredError)
    if request.headers.get("hx-request") or request.url.path.startswith("/ui/api/"):
        # A fragment is no page to come back to: the page the browser shows is.
        back = _page_shown(request.headers.get("hx-current-url"))
        target = f"/ui/login?next={quote(back, safe='')}"
        headers = {"HX-Redirect": target}
        if request.url.path.startswith("/ui/api/"):  # scripts read JSON, errors too
            return JSONResponse({"error": "sign in first"}, status_code=401, headers=headers)
        return Response("sign in first", status_code=401, headers=headers)
    return RedirectResponse(f"/ui/login?next={quote(exc.path, safe='')}", status_code=303)


def _page_shown(current_url: str | None) -> str:
    """The portal page htmx says the browser shows (``HX-Current-URL``), else :data:`HOME`."""
    if not current_url:
        return HOME
    try:
        parts = urlsplit(current_url)
    except ValueError:
        return HOME
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def _csrf_token(request: Request) -> str:
    kept = request.cookies.get(CSRF_COOKIE)
    if kept and 16 <= len(kept) <= 128 and kept.isascii():
        return kept
    return secrets.token_urlsafe(32)


def _set_csrf(response: Response, token: str, request: Request) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


#: ``Sec-Fetch-Site`` values of a post from another site, or from a sibling subdomain that
#: could have planted the CSRF cookie (cookie tossing): the token alone would pass them.
FOREIGN_SITES = ("cross-site", "same-site")


def _csrf_ok(request: Request, sent: str) -> bool:
    """The form's token equals the cookie's, and the browser (when it says so) posted it from
    this origin's own page."""
    if request.headers.get("sec-fetch-site", "").lower() in FOREIGN_SITES:
        return False
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or not sent or not (expected.isascii() and sent.isascii()):
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


def _sign_in_page(
    request: Request, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    from mesh_stream.registry.portal.web import render

    token = _csrf_token(request)
    response = render(
        request,
        "login.html",
        {"next_path": next_path, "error": error, "csrf_token": token, "csrf_field": CSRF_FIELD},
        status_code=status_code,
    )
    _set_csrf(response, token, request)
    return response


@router.get("/login")
async def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    request.state.viewer = None
    return _sign_in_page(request, next_path=safe_next(next))


@router.post("/login", response_model=None)
async def sign_in(
    request: Request,
    # No length limits here (the body's size limit applies): an odd form is answered with
    # the form and a message, never with the API's JSON 422.
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = HOME,
) -> Response:
    request.state.viewer = None
    target = safe_next(next)
    if not _csrf_ok(request, csrf_token):
        return _sign_in_page(
            request,
            next_path=target,
            error="The form expired or came from another site; sign in again.",
            status_code=403,
        )
    found = _services(request)
    if found.auth is None:
        return RedirectResponse(target, status_code=303)
    token = token.strip()
    if not token:
        return _sign_in_page(request, next_path=target, error="Enter your token.", status_code=400)
    try:
        await authenticate(found, f"Bearer {token}", client_address(request))
    except AuthenticationError:
        return _sign_in_page(
            request,
            next_path=target,
            error="That token was refused: it is not a registry token, or it was revoked or "
            "rotated. Ask your domain's admin for a valid one.",
            status_code=401,
        )
    except TooManyAuthFailuresError as exc:
        refused = _sign_in_page(request, next_path=target, error=exc.message, status_code=429)
        refused.headers["Retry-After"] = str(exc.retry_after or 60)
        return refused
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _sealer(request).seal(token),
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    _set_csrf(response, secrets.token_urlsafe(32), request)  # a new one per session
    return response


@router.post("/logout", response_model=None)
async def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    request.state.viewer = None
    if not _csrf_ok(request, csrf_token):
        return _sign_in_page(
            request,
            next_path=HOME,
            error="The sign-out form expired or came from another site; you are still signed in.",
            status_code=403,
        )
    found = _services(request)
    sealed = request.cookies.get(SESSION_COOKIE)
    session = _sealer(request).open(sealed) if sealed else None
    forwarded = FORWARDED_BY in request.headers
    if sealed and session is None and forwarded and _sealer(request).sealed_elsewhere(sealed):
        # A follower's session this writer cannot open: sealed with another key, so it
        # cannot be ended here (forgetting the cookie alone would leave copies valid).
        log.warning(
            "a sign-out forwarded by %s carries a session this instance cannot open: the "
            "registry instances seal sessions with different keys; give every instance the "
            "same MESH_REGISTRY_SESSION_SECRET",
            request.headers[FORWARDED_BY],
        )
        return _sign_in_page(
            request,
            next_path=HOME,
            error="The sign-out could not be recorded: the registry's instances seal sessions "
            "with different keys (MESH_REGISTRY_SESSION_SECRET), so your session cannot be "
            "ended from here; you are still signed in. Tell the registry's operators.",
            status_code=503,
        )
    ended = found.schemas.state.ended_sessions  # a replayed form writes nothing again
    if session is not None and found.auth is not None and session.id not in ended:
        try:
            await anyio.to_thread.run_sync(end_session, found, session.id)
        except MeshError as exc:  # the registry's log is out of reach: say so, stay signed in
            reason = getattr(exc, "message", None) or str(exc)
            failed = _sign_in_page(
                request,
                next_path=HOME,
                error=f"The sign-out could not be recorded ({reason}); you are still signed in. "
                "Try again in a moment.",
                status_code=503,
            )
            failed.headers["Retry-After"] = "5"
            return failed
    response = RedirectResponse("/ui/login", status_code=303)
    drop_session(response, request)
    return response


def drop_session(response: Response, request: Request) -> None:
    """Tell the browser to forget its session cookie."""
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
