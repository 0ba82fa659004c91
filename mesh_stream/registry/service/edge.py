"""The HTTP edge's guards: no client can starve the others, and hostile input is a clean 4xx.

* :class:`EdgeLimits` — every limit, with the ``MESH_REGISTRY_*`` setting that changes it.
* :class:`HeadAsGet` — HEAD answered as GET without the body.
* :class:`BodyGuard` — ASGI middleware in front of every route: body size (413), a URL that
  is not UTF-8, more than one ``Authorization`` header (400), a body sent as
  ``application/octet-stream`` or with no content type read as JSON (Confluent accepts
  both), and a JSON body decoded once here so that malformed, non-UTF-8, too deeply nested,
  non-finite or over-long numbers are a 400 and strings the registry could not store (lone
  surrogates such as ``"\\ud800"``) a 422 naming the field path — before any handler.
* :func:`check_schema_text` — schema bytes, fields and nesting depth, and lone surrogates
  inside the schema text, checked before the ``avro`` parser sees it (422, 42201 / 42216).
* :class:`HeavyGate` — parsing, normalising and compatibility checks run in a small thread
  pool, never on the event loop, with at most ``heavy_per_client`` in flight per principal
  (per client address when unauthenticated); more answer 429 with ``Retry-After``. The GIL
  still shares one core between that pool and the loop, so the size limits bound each piece
  of work and the pool is small.
* :class:`FailureLimiter` — a token bucket of failed authentications per client address;
  an empty bucket answers 429 with ``Retry-After`` before any credential is checked.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message as EmailMessage
from functools import partial
from itertools import accumulate
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mesh_stream.errors import (
    InvalidRequestError,
    InvalidSchemaError,
    PermissionDeniedError,
    RegistryError,
    RequestTooLargeError,
    TooManyAuthFailuresError,
    TooManyRequestsError,
    UnencodableInputError,
)
from mesh_stream.schema import strict_json
from mesh_stream.settings import MeshSettings, quoted_name

T = TypeVar("T")

#: Deepest JSON nesting of a request body (descriptors and schema bodies are shallow).
MAX_BODY_DEPTH = 64
#: Most arrays and objects in a request body: a descriptor has dozens, a schema body a few
#: (the schema itself is a string); 250,000 empty lists in 1 MiB would cost ~80 ms to parse.
MAX_BODY_CONTAINERS = 10_000
#: Longest integer in a request body (Python refuses more than 4300 digits anyway).
MAX_INT_DIGITS = 100
#: Schema-parsing requests waiting for the pool, all clients together, beyond the running ones.
MAX_QUEUED_PER_WORKER = 16


@dataclass(frozen=True)
class EdgeLimits:
    """Limits of the HTTP edge (defaults = the settings' defaults)."""

    max_body_bytes: int = 1024 * 1024
    max_schema_bytes: int = 512 * 1024
    max_schema_fields: int = 5000
    max_schema_depth: int = 128
    heavy_workers: int = 2
    heavy_per_client: int = 2
    auth_failures_per_minute: int = 20

    @classmethod
    def from_settings(cls, settings: MeshSettings) -> EdgeLimits:
        return cls(
            max_body_bytes=settings.registry_max_body_bytes,
            max_schema_bytes=settings.registry_max_schema_bytes,
            max_schema_fields=settings.registry_max_schema_fields,
            max_schema_depth=settings.registry_max_schema_depth,
            heavy_workers=settings.registry_heavy_workers,
            heavy_per_client=settings.registry_heavy_per_client,
            auth_failures_per_minute=settings.registry_auth_failures_per_minute,
        )


# -- JSON bodies ----------------------------------------------------------------------------

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = bytes(range(256)).translate(None, b"[]{}")
_DELTA = [0] * 256
for _open in b"[{":
    _DELTA[_open] = 1
for _close in b"]}":
    _DELTA[_close] = -1
#: A ``\\u`` escape of a surrogate (D800-DFFF) somewhere in raw JSON; only then is a walk needed.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _brackets(raw: bytes) -> bytes:
    """The ``[]{}`` of JSON text outside its strings, in order."""
    return _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)


def json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of JSON text, brackets inside strings ignored (no recursion)."""
    return max(accumulate(map(_DELTA.__getitem__, _brackets(raw))), default=0)


def _paths(value: Any) -> Iterator[tuple[str, str]]:
    """Every string (keys too) with its path, e.g. ``('fields[0].doc', text)``; no recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            yield path or "(body)", node
        elif isinstance(node, dict):
            for key, item in node.items():
                here = f"{path}.{key}" if path else str(key)
                yield f"{here} (the key)", key
                stack.append((here, item))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(node))


def unencodable_path(value: Any) -> str | None:
    """Path of the first string UTF-8 cannot encode (a lone surrogate), None when all can.

    The path itself is escaped (a key may be the culprit), so it can go into a message.
    """
    for path, text in _paths(value):
        if _SURROGATE.search(text):
            return path.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def decode_json_body(raw: bytes) -> Any:
    """The JSON document in ``raw``, or a 400 saying exactly what is wrong (422: unencodable).

    Strict where Python's ``json`` is lenient: text must be valid UTF-8 (or UTF-16/32, which
    JSON allows to be detected), no ``NaN``/``Infinity``, numbers must fit a float, integers
    at most :data:`MAX_INT_DIGITS` digits, at most :data:`MAX_BODY_CONTAINERS` arrays and
    objects nested at most :data:`MAX_BODY_DEPTH` deep, and no lone surrogates.
    """
    encoding = json.detect_encoding(raw)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"malformed JSON body: not valid {encoding.upper()} at byte {exc.start}; send "
            f"UTF-8 JSON",
            status=400,
            error_code=40001,
        ) from None
    # Measured before parsing, which would otherwise hold the event loop (or recurse).
    brackets = _brackets(raw if encoding == "utf-8" else text.encode("utf-8", "surrogatepass"))
    head = brackets[: 2 * MAX_BODY_CONTAINERS]  # enough to tell, and bounded work
    depth = max(accumulate(map(_DELTA.__getitem__, head)), default=0)
    if depth > MAX_BODY_DEPTH:
        more = "over " if len(head) < len(brackets) else ""
        raise InvalidRequestError(
            f"malformed JSON body: nested {more}{depth} levels deep, more than the "
            f"{MAX_BODY_DEPTH} a registry request may have",
            status=400,
            error_code=40001,
        )
    if len(brackets) > 2 * MAX_BODY_CONTAINERS:
        raise InvalidRequestError(
            f"malformed JSON body: {(len(brackets) + 1) // 2} arrays and objects, more than "
            f"the {MAX_BODY_CONTAINERS} a registry request may have",
            status=400,
            error_code=40001,
        )
    try:
        document = strict_json.loads(text, max_int_digits=MAX_INT_DIGITS)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"malformed JSON body: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            status=400,
            error_code=40001,
        ) from None
    except ValueError as exc:  # 100+ digit integers, NaN, 1e400
        raise InvalidRequestError(
            f"malformed JSON body: {str(exc).splitlines()[0][:200]}",
            status=400,
            error_code=40001,
        ) from None
    if _SURROGATE_ESCAPE.search(raw):
        path = unencodable_path(document)
        if path is not None:
            raise UnencodableInputError(
                f"the JSON body has a lone UTF-16 surrogate (e.g. \\ud800) in {path}; the "
                f"registry stores UTF-8 text, which cannot hold it: send a valid character "
                f"or a surrogate pair"
            )
    return document


def _is_json(content_type: bytes | None) -> bool:
    """The media types FastAPI parses as JSON: ``application/json`` and ``application/*+json``."""
    if not content_type:
        return False
    message = EmailMessage()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _is_octet_stream(content_type: bytes | None) -> bool:
    """``application/octet-stream``, or no type at all (which HTTP reads as octets): Confluent
    takes either as JSON."""
    if not content_type:
        return True
    return content_type.split(b";")[0].strip().lower() == b"application/octet-stream"


def _is_portal(scope: Scope) -> bool:
    """Whether the request is for the web portal under ``/ui`` (whose forms post
    ``application/x-www-form-urlencoded``)."""
    path = str(scope.get("path", ""))
    return path == "/ui" or path.startswith("/ui/")


def _shown_type(content_type: bytes | None) -> str:
    """A request's media type as a message may show it (its first 80 characters)."""
    shown = (content_type or b"").split(b";")[0].strip().decode("latin-1")[:80]
    return repr(shown)


def _as_json(scope: Scope) -> Scope:
    """The request with its content type replaced by Confluent's JSON type (body unchanged)."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
    headers.append((b"content-type", b"application/vnd.schemaregistry.v1+json"))
    return {**scope, "headers": headers}


def check_url(scope: Scope) -> None:
    """The path and query, percent-decoded, must be UTF-8 (names are never silently mangled),
    and an API path must hold no newline: routing stops at one (a route's ``$`` even matches
    before a final one, so ``DELETE /subjects/S%0A`` would reach subject S). Other control
    characters reach the routes, whose name checks refuse them; the portal's pages answer
    such names with their own 404 page."""
    for part, raw in (("path", scope.get("raw_path") or b""), ("query", scope["query_string"])):
        decoded = unquote_to_bytes(raw)
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnencodableInputError(
                f"the URL {part} is not valid UTF-8 after percent-decoding (byte {exc.start}: "
                f"{decoded[exc.start : exc.start + 4]!r}); names must be UTF-8 text"
            ) from None
        if part == "path" and "\n" in text and not _is_portal(scope):
            raise InvalidRequestError(
                f"the URL path {quoted_name(text)} holds a newline ('\\n'); no registry name "
                f"or route has one",
                status=400,
                error_code=40001,
            )


#: Methods that change something: a browser may send them from another site's page.
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def check_not_cross_site(scope: Scope) -> None:
    """Refuse an API write a browser sent from another site's page (``Sec-Fetch-Site``
    ``cross-site`` or ``same-site``). A browser that once took Basic credentials at the
    registry's prompt sends them along with any site's form post, so such a page could
    rotate a token (h54). Clients that are not browsers send no such header; the portal's
    own forms are same-origin and check their CSRF token besides."""
    if scope.get("method", "GET") not in _WRITES or _is_portal(scope):
        return
    for name, value in scope.get("headers", []):
        if name.lower() == b"sec-fetch-site":
            site = value.decode("latin-1").strip().lower()
            if site in ("cross-site", "same-site"):
                raise PermissionDeniedError(
                    f"the browser sent this {scope.get('method')} from another site's page "
                    f"(Sec-Fetch-Site: {site}); the registry's API takes writes from its "
                    f"clients and the portal only"
                )


def check_headers(scope: Scope) -> None:
    """One ``Authorization`` and one ``Content-Type`` header at most: with two, which one
    counts would depend on which part of the registry read it (h52: the body guard read the
    last Content-Type, FastAPI the first). A compressed body is refused by name: the registry
    reads JSON as sent (h52: gzip was "not valid UTF-8 at byte 1", br ignored)."""
    headers = scope.get("headers", [])
    for header, what in ((b"authorization", "send one credential (Basic or Bearer)"),
                         (b"content-type", "send one media type (application/json)")):  # fmt: skip
        count = sum(1 for name, _value in headers if name.lower() == header)
        if count > 1:
            shown = header.decode().title()
            raise InvalidRequestError(
                f"the request has {count} {shown} headers; only one is allowed: {what}",
                status=400,
                error_code=40001,
            )
    encodings = [
        value.decode("latin-1").strip()
        for name, value in headers
        if name.lower() == b"content-encoding"
    ]
    coded = [e for e in encodings if e.lower() not in ("", "identity")]
    if coded:
        raise InvalidRequestError(
            f"the body is sent with Content-Encoding {', '.join(coded)[:40]!r}, which the "
            f"registry does not decode; send the JSON uncompressed",
            status=415,
            error_code=415,
        )


ErrorRenderer = Callable[[Exception], Any]
#: The portal's error page for a request refused before any route ran.
PageRenderer = Callable[[Scope, Exception], Any]


def refusal(
    scope: Scope,
    exc: Exception,
    render: ErrorRenderer,
    render_page: PageRenderer | None,
) -> Any:
    """The answer to a request refused before any route ran: the portal's error page for a
    portal page (a browser posting a form gets a page, not the API's JSON), else the API's
    JSON error."""
    path = str(scope.get("path", ""))
    if render_page is not None and _is_portal(scope) and not path.startswith("/ui/api/"):
        return render_page(scope, exc)
    return render(exc)


class HeadAsGet:
    """ASGI middleware: a HEAD request is answered as the GET of the same URL without its
    body (RFC 9110), so uptime checks, link checkers and ``curl -I`` get the GET's status and
    headers; FastAPI's routes would answer 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


#: Seconds a request body may pause between its parts before the request is answered 408:
#: a client that declared more than it sends must not hold a connection for ever.
BODY_IDLE_S = 30.0


class BodyGuard:
    """Reads the whole body (at most ``max_body_bytes``) and vets it before any route runs."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Callable[[], EdgeLimits],
        render: ErrorRenderer,
        render_page: PageRenderer | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.render = render
        #: The portal's own error page for its pages (an API error's JSON elsewhere).
        self.render_page = render_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_url(scope)
            check_headers(scope)
            check_not_cross_site(scope)
            body = await self._body(scope, receive)
            if body is None:
                return
            headers = dict(scope.get("headers", []))
            if body and _is_octet_stream(headers.get(b"content-type")):
                scope = _as_json(scope)
                headers = dict(scope["headers"])
            if body and _is_json(headers.get(b"content-type")):
                decode_json_body(body)
            elif body and not _is_portal(scope):  # the API reads JSON only (the portal, forms)
                raise InvalidRequestError(
                    f"the body is sent as {_shown_type(headers.get(b'content-type'))}; send "
                    f"JSON, with Content-Type application/vnd.schemaregistry.v1+json or "
                    f"application/json",
                    status=415,
                    error_code=415,
                )
        except RegistryError as exc:
            await refusal(scope, exc, self.render, self.render_page)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The body, None when the client left; 413 above the limit."""
        limit = self.limits().max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        more = not too_large
        while more:
            try:  # h52: a body that stopped arriving held the request for ever
                message = await asyncio.wait_for(receive(), BODY_IDLE_S)
            except TimeoutError:
                raise InvalidRequestError(
                    f"the request body stopped arriving: nothing for {BODY_IDLE_S:g} s after "
                    f"{size} byte(s)"
                    + (f" of the {int(declared)} its Content-Length says" if declared else ""),
                    status=408,
                    error_code=408,
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large = True
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if too_large:
            raise RequestTooLargeError(
                f"request body is larger than {limit} bytes; send less (the limit is "
                f"MESH_REGISTRY_MAX_BODY_BYTES)"
            )
        return b"".join(chunks)


# -- schema text ----------------------------------------------------------------------------


def _count_fields(document: Any) -> int:
    """Record fields anywhere in a schema document (nested records and unions too)."""
    count = 0
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            fields = node.get("fields")
            if isinstance(fields, list):
                count += len(fields)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def check_schema_text(schema: str, limits: EdgeLimits) -> None:
    """Refuse a schema over a size limit, or with text UTF-8 cannot hold, before parsing it.

    Text that is not JSON passes: the parser then says what is wrong with it.
    """
    raw = schema.encode("utf-8", "surrogatepass")
    if len(raw) > limits.max_schema_bytes:
        raise InvalidSchemaError(
            f"Invalid schema: the schema is {len(raw)} bytes, more than the limit of "
            f"{limits.max_schema_bytes} (MESH_REGISTRY_MAX_SCHEMA_BYTES)"
        )
    depth = json_depth(raw)
    if depth > limits.max_schema_depth:
        raise InvalidSchemaError(
            f"Invalid schema: nested too deeply: {depth} JSON levels, more than the limit of "
            f"{limits.max_schema_depth} (MESH_REGISTRY_MAX_SCHEMA_DEPTH)"
        )
    if _SURROGATE.search(schema):
        raise UnencodableInputError(
            "the JSON body has a lone UTF-16 surrogate in schema; the registry stores UTF-8 "
            "text, which cannot hold it"
        )
    try:
        document = json.loads(schema)
    except (ValueError, RecursionError):
        return
    fields = _count_fields(document)
    if fields > limits.max_schema_fields:
        raise InvalidSchemaError(
            f"Invalid schema: the schema has {fields} record fields, more than the limit of "
            f"{limits.max_schema_fields} (MESH_REGISTRY_MAX_SCHEMA_FIELDS)"
        )
    if _SURROGATE_ESCAPE.search(raw):
        path = unencodable_path(document)
        if path is not None:
            raise UnencodableInputError(
                f"the schema has a lone UTF-16 surrogate (e.g. \\ud800) in {path}; the "
                f"registry stores UTF-8 text, which cannot hold it: send a valid character "
                f"or a surrogate pair"
            )


# -- CPU-heavy work -------------------------------------------------------------------------


@dataclass
class HeavyGate:
    """A small thread pool for CPU-heavy work, and the per-client count of work in flight."""

    workers: int
    per_client: int
    _limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)
    _in_flight: dict[str, int] = field(default_factory=dict, repr=False)
    _total: int = field(default=0, repr=False)

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created on the event loop, on first use
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter

    def in_flight(self, client: str | None = None) -> int:
        """Requests running or queued, of ``client`` or all (readable from any thread)."""
        return self._total if client is None else self._in_flight.get(client, 0)

    async def run(self, client: str, work: Callable[[], T]) -> T:
        """``work()`` in the pool; 429 when ``client`` already has ``per_client`` in flight."""
        mine = self._in_flight.get(client, 0)
        if mine >= self.per_client:
            raise TooManyRequestsError(
                f"{client} already has {mine} schema requests (parse, lookup, compatibility, "
                f"register) in flight, the most one client may have; retry after 1 s or raise "
                f"MESH_REGISTRY_HEAVY_PER_CLIENT",
                retry_after=1,
            )
        if self.in_flight() >= self.workers * (1 + MAX_QUEUED_PER_WORKER):
            raise TooManyRequestsError(
                f"the registry has {self.in_flight()} schema requests in flight, the most it "
                f"queues; retry after 1 s or raise MESH_REGISTRY_HEAVY_WORKERS",
                retry_after=1,
            )
        self._in_flight[client] = mine + 1
        self._total += 1
        try:
            return await anyio.to_thread.run_sync(work, limiter=self.limiter)
        finally:
            self._total -= 1
            left = self._in_flight[client] - 1
            if left:
                self._in_flight[client] = left
            else:
                del self._in_flight[client]


@dataclass
class HeavyWork:
    """CPU-heavy work of one request, counted against its client (a FastAPI dependency)."""

    gate: HeavyGate
    limits: EdgeLimits
    client: str

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.gate.run(self.client, partial(work, *args, **kwargs))

    async def run_on_schema(
        self, schema: str, work: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Like :meth:`run`, after :func:`check_schema_text` (in the pool, too)."""

        def checked() -> T:
            check_schema_text(schema, self.limits)
            return work(*args, **kwargs)

        return await self.gate.run(self.client, checked)


# -- failed authentications -----------------------------------------------------------------


class FailureLimiter:
    """Token bucket per client address: ``per_minute`` failures, refilled evenly over a minute.

    Only failures take a token, so clients that authenticate are never slowed; an address
    with an empty bucket is refused before its credential is even compared.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, address: str, now: float) -> float:
        tokens, stamp = self._buckets.get(address, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - stamp) * self.rate)

    def check(self, address: str) -> None:
        """Raise :class:`TooManyAuthFailuresError` when ``address`` has no failure left."""
        tokens = self._tokens(address, self.clock())
        if tokens < 1:
            retry_after = max(1, math.ceil((1 - tokens) / self.rate))
            raise TooManyAuthFailuresError(
                f"too many failed authentications from {address} (more than "
                f"{self.per_minute} a minute); retry after {retry_after} s (the limit is "
                f"MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE)",
                retry_after=retry_after,
            )

    def failed(self, address: str) -> None:
        now = self.clock()
        tokens = self._tokens(address, now) - 1
        self._buckets[address] = (tokens, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)


class Edge:
    """The limits and the per-client state of one app (swapped whole by ``configure_edge``)."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.heavy = HeavyGate(limits.heavy_workers, limits.heavy_per_client)
        self.auth_failures = FailureLimiter(limits.auth_failures_per_minute)
