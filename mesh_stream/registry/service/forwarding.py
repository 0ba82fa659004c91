"""Followers forward writes to the writer (Confluent's leader/follower model).

Every registry instance on one topic serves reads from its own replayed view; only the
writer (see :mod:`.kafka_store`) writes. :class:`WriteForwarder`, ASGI middleware behind the
body guard, sends each write request (POST/PUT/DELETE of subjects, versions, config and
products, and the portal's sign-out form; lookups and compatibility checks are reads) that
reaches a follower to the writer's advertised URL — same method, path, query, body and
headers (``Authorization``, ``Content-Type``, cookies; not the hop-by-hop ones) — and relays
the answer as it is, every ``Set-Cookie`` of it kept apart. The follower checks a credential first,
so wrong ones count against the client's own address, not against the follower's on the
writer. A forwarded request carries :data:`FORWARDED_BY`; an instance that gets one while
it is not the writer answers 503 rather than forwarding again (no loops).

When no writer is known (its claim lapsed, a takeover is under way), or the writer does not
answer within the store's timeout, the answer is 503 (``error_code`` 50302) with
``Retry-After``: clients retry, and the next writer is in place within a lease.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mesh_stream.errors import RegistryError, RegistryUnavailableError
from mesh_stream.http_failures import failure_words
from mesh_stream.registry.service.context import authenticate
from mesh_stream.registry.service.edge import PageRenderer, refusal
from mesh_stream.registry.service.store import (
    CATCH_UP_SECONDS,
    CatchingUpStore,
    SharedStore,
    WriteRoute,
)

log = logging.getLogger(__name__)

#: Header naming the follower that forwarded a request (value: its advertised URL).
FORWARDED_BY = "x-mesh-registry-forwarded-by"
#: Headers that describe one connection, not the request: never forwarded or relayed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ErrorRenderer = Callable[[Exception], Response]


def is_write(method: str, path: str) -> bool:
    """Whether a request changes the registry (lookups and compatibility checks do not)."""
    if method == "POST" and path == "/ui/logout":
        return True  # a sign-out is written to the log (the portal's access module)
    if method in READ_METHODS or path.startswith(("/health", "/ui/")):
        return False  # the portal's other forms (sign-in) only touch this instance
    if method == "POST":
        if path.startswith("/compatibility/"):
            return False
        if path.startswith("/products/") and path.rstrip("/").endswith("/check"):
            return False  # a product check stores nothing: any instance answers it
        if path.startswith("/subjects/") and not path.rstrip("/").endswith("/versions"):
            return False  # POST /subjects/{s}: look a schema up
    return True


def _unavailable(message: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(message, status=503, error_code=50302)


class WriteForwarder:
    """Sends writes that reach a follower to the writer; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        store: SharedStore,
        render: ErrorRenderer,
        advertised_url: str | None = None,
        render_page: PageRenderer | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.render = render
        #: The portal's error page, for its forms (the sign-out form got the API's JSON 503).
        self.render_page = render_page
        self.advertised_url = advertised_url or "a registry follower"
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_write(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        route = self.store.write_route()
        if route.local:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            if FORWARDED_BY in headers:
                raise _unavailable(
                    f"registry write forwarded by {headers[FORWARDED_BY]} to this instance, "
                    f"which is not the writer (any more): "
                    f"{route.reason or 'the writer is ' + route.writer}; retry"
                )
            if route.url is None:
                raise _unavailable(str(route.reason))
            vouched = await self._authenticate(scope, headers)
            body = await _read_body(receive)
            if body is None:
                return
            response = await self._forward(scope, headers, body, route)
            if vouched and response.status_code == 401:
                response = self._credentials_differ(response, route)
            if response.status_code < 400:
                await self._read_own_write(route)
        except RegistryError as exc:
            answer = refusal(scope, exc, self.render, self.render_page)
            if answer.status_code == 503:
                answer.headers["Retry-After"] = str(route.retry_after)
            await answer(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _authenticate(self, scope: Scope, headers: Headers) -> bool:
        """A wrong (or revoked) credential is refused here, counted against the client's
        address. True when this instance checked the credential and accepted it."""
        services: Any = getattr(scope["app"].state, "services", None)
        header = headers.get("authorization")
        if services is None or services.auth is None or header is None:
            return False  # no credential: the writer answers 401 where one is needed
        client = scope.get("client")
        address = f"client {client[0]}" if client else "client (unknown address)"
        await authenticate(services, header, address)
        return True

    async def _read_own_write(self, route: WriteRoute) -> None:
        """Bring this instance's view up to the log's end before the writer's answer goes
        back: a client that registered a schema through a follower and then read it there got
        404 for the next ~25 ms (h59: `mesh products apply` behind a load balancer stopped
        half done). Best effort: the write is stored whatever this says."""
        if not isinstance(self.store, CatchingUpStore):
            return
        try:
            wait = min(route.timeout, CATCH_UP_SECONDS)  # the write is stored already
            await anyio.to_thread.run_sync(self.store.catch_up_view, wait)
        except RegistryError as exc:
            log.warning(
                "a write forwarded to %s is stored, but this instance could not read it back "
                "before answering (a read here may not show it yet): %s",
                route.writer,
                exc,
            )

    def _credentials_differ(self, refused: Response, route: WriteRoute) -> Response:
        """The writer refused a credential this instance accepted: the instances were given
        different credentials. Say so in the 401's message, which alone would send the
        client to check a credential that is right here."""
        log.warning(
            "the writer %s refused a credential this instance (%s) accepted: the registry "
            "instances' credentials differ",
            route.writer,
            self.advertised_url,
        )
        try:
            answer = json.loads(bytes(refused.body))
            message = str(answer["message"])
        except (ValueError, TypeError, KeyError):
            return refused
        answer["message"] = (
            f"{message} (the writer, {route.writer}, refused a credential that the instance "
            f"which forwarded it, {self.advertised_url}, accepts: unless it was revoked a "
            f"moment ago, the registry instances have different credentials; give every "
            f"instance the same MESH_REGISTRY_CREDENTIALS or credentials file)"
        )
        headers = {k: v for k, v in refused.headers.items() if k.lower() != "content-length"}
        return Response(json.dumps(answer), status_code=401, headers=headers)

    async def _forward(
        self, scope: Scope, headers: Headers, body: bytes, route: WriteRoute
    ) -> Response:
        assert route.url is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=route.timeout)
        path = scope.get("raw_path") or scope["path"].encode()
        target = route.url + path.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        sent = [(k, v) for k, v in headers.items() if k not in HOP_BY_HOP]
        sent.append((FORWARDED_BY, self.advertised_url))
        try:
            with anyio.fail_after(route.timeout):
                answer = await self._client.request(
                    scope["method"], target, headers=sent, content=body
                )
        except TimeoutError:
            raise _unavailable(
                f"registry write forwarded to the writer, {route.writer}, got no answer within "
                f"{route.timeout:.0f}s; it may have been stored: retry (registering the same "
                f"schema again returns its id)"
            ) from None
        except httpx.HTTPError as exc:
            log.warning("registry write not forwarded to %s: %s", route.url, exc)
            raise _unavailable(
                f"registry write not forwarded: the writer, {route.writer}, does not answer "
                f"({failure_words(exc)}); if it is down, another instance takes over "
                f"once its claim lapses: retry"
            ) from exc
        relayed = Response(answer.content, status_code=answer.status_code)  # its length
        secure = scope.get("scheme") == "https"
        for name, value in answer.headers.multi_items():  # two Set-Cookie stay two
            if name.lower() not in HOP_BY_HOP:
                cookie = secure and name.lower() == "set-cookie"
                relayed.headers.append(name, secure_cookie(value) if cookie else value)
        return relayed


def secure_cookie(set_cookie: str) -> str:
    """``set_cookie`` marked ``Secure``: the writer sets a forwarded form's cookies for the
    scheme it was reached by (the instances' own, often plain HTTP), but the browser came over
    HTTPS, where the cookies the follower sets itself are ``Secure``."""
    attributes = [part.strip().lower() for part in set_cookie.split(";")[1:]]
    return set_cookie if "secure" in attributes else f"{set_cookie}; Secure"


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (the body guard bounded it); None when the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
