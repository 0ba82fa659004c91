"""The registry client used by producers, consumers, processors and the CLI.

It caches everything that cannot change once the registry said it: schemas by id, subject
versions, and the id of each (subject, schema) pair; and it remembers each subject's latest
version. So a producer or consumer that has seen its schemas keeps working while the registry
is down. HTTP errors are translated into :mod:`mesh_stream.errors` in :meth:`_request` only
(the one boundary), using the table in :mod:`mesh_stream.registry.error_codes`.

An answer the registry marks as passing (503 or 429 with ``Retry-After``: no writer while the
role moves to another instance, the store replaying, too many requests in flight) is retried
after the time it asks for, for up to ``retry_seconds``; registrations are idempotent, so a
retried write never registers twice. So is a request sent but not answered within the
timeout (a busy registry), when asking again cannot change the outcome (not deletes, not the
credential calls). Unreachable (no connection at all) is not retried here: the SDK's callers
decide what waiting means for them (see the consumer's registry wait).

Every answer the client reads is checked against the shape it expects (:data:`_Shape`) in
:meth:`_request` too: an answer of another shape (a list where an object belongs, a field
missing) is a :class:`~mesh_stream.errors.RegistryError` naming the URL and where the answer
differs, never a crash in the code that reads it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay

from mesh_stream.descriptor import Compatibility, DataProduct, product_name_problem
from mesh_stream.errors import (
    UNUSABLE_ANSWER,
    ConfigurationError,
    InvalidPrincipalError,
    ProductNotFoundError,
    RegistryError,
    RegistryUnavailableError,
    SettingsError,
)
from mesh_stream.health import ProductHealth
from mesh_stream.http_failures import failure_words
from mesh_stream.registry.error_codes import error_for
from mesh_stream.schema.avro import normalize
from mesh_stream.schema.wire import MAX_SCHEMA_ID
from mesh_stream.settings import MeshSettings, registry_url_problem, shown_url

CONFLUENT_JSON = "application/vnd.schemaregistry.v1+json"

#: How long a request keeps retrying answers marked passing: longer than a writer's lease
#: (10 s) plus a takeover, so a client rides out the loss of the writer instance.
RETRY_SECONDS = 30.0

#: The longest single wait between retries, whatever ``Retry-After`` says.
MAX_RETRY_WAIT_SECONDS = 2.0

#: Error codes that are never worth retrying even with Retry-After (a wrong credential).
_NOT_RETRIED = frozenset({42901})

#: The longest credential header every registry takes: most HTTP servers refuse a header
#: over 8 KB (Jetty under Confluent's registry, nginx, aiohttp under Karapace); the mesh
#: registry (uvicorn with h11) closes the connection on a request head over 16 KB that does
#: not arrive in one read, so a larger one fails or passes by chance.
LONG_HEADER_BYTES = 8 * 1024


def _passing(exc: BaseException) -> bool:
    """Marked by :meth:`RegistryClient._request_once` from the answer's ``Retry-After``."""
    return getattr(exc, "retry_in", None) is not None


def _wait_asked(state: RetryCallState) -> float:
    """The server's ``Retry-After``, capped so a client notices the next writer soon."""
    exc = state.outcome.exception() if state.outcome is not None else None
    asked = getattr(exc, "retry_in", None)
    return min(float(asked), MAX_RETRY_WAIT_SECONDS) if asked is not None else 0.0


def _wait_asked_within(left: Callable[[], float | None]) -> Callable[[RetryCallState], float]:
    """:func:`_wait_asked`, never past what ``left()`` says remains of a deadline."""

    def wait(state: RetryCallState) -> float:
        return min(_wait_asked(state), left() or 0.0)

    return wait


def _repeatable(method: str, path: str) -> bool:
    """Whether asking again after an unanswered request cannot change what happened: reads,
    PUTs and registrations (a schema registered twice keeps one id) are; deletes and the
    credential calls (each issues a new token) are not."""
    return method != "DELETE" and not path.startswith("/admin/")


def _reads_only(method: str, path: str) -> bool:
    """A request that changes nothing: a GET, or a POST that asks (a compatibility check, a
    product check, a lookup), as the registry's own forwarding judges it."""
    if method == "GET":
        return True
    if method != "POST":
        return False
    trimmed = path.split("?", 1)[0].rstrip("/")
    return trimmed.startswith("/compatibility/") or (
        trimmed.startswith("/products/") and trimmed.endswith("/check")
    )


def _maybe_applied(method: str, repeatable: bool) -> str:
    """What an unanswered write may still do: the registry finishes a write whose Kafka
    transaction outlives the client's wait, so "no answer" is not "not done"."""
    if method == "GET":
        return ""
    if repeatable:
        return "; the registry may still apply it (its Kafka is slow or away): asking again is safe"
    return (
        "; the registry may still apply it (its Kafka is slow or away): look before asking "
        "again, a repeat is not harmless"
    )


@dataclass(frozen=True)
class _Optional:
    """A field of a :data:`_Shape` object that may be absent or null."""

    shape: _Shape


_Shape: TypeAlias = "type | list[_Shape] | dict[str, _Shape | _Optional]"
"""The shape the client expects of an answer: ``dict``, ``list``, ``str``, ``int``, ``bool``
or ``object`` (anything); ``[item]`` a list of items; ``{"field": shape}`` an object with
those fields (others are not looked at)."""


class _SchemaId(int):
    """The shape of a schema id in an answer: a whole number that fits the wire format's
    4 unsigned bytes (a larger one could not frame a record)."""


_KINDS: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    _SchemaId: f"a schema id (a whole number from 0 to {MAX_SCHEMA_ID})",
}


def _json_kind(value: Any) -> str:
    """A JSON value's kind in a message (never the value: it might be anything)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    for kind in (dict, list, str):
        if isinstance(value, kind):
            return _KINDS[kind]
    return "a number"


def _shape_problem(value: Any, shape: _Shape, at: str = "") -> str | None:
    """What ``value`` holds where it differs from ``shape`` (None: it does not), e.g. "a
    string at [0].registry.consumers, not a list"; ``at`` is where ``value`` sits."""
    where = f" at {at}" if at else ""
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{_json_kind(value)}{where}, not a list"
        for index, item in enumerate(value):
            problem = _shape_problem(item, shape[0], f"{at}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{_json_kind(value)}{where}, not an object"
        for name, field in shape.items():
            if isinstance(field, _Optional) and value.get(name) is None:
                continue
            if name not in value:
                return f"an object{where} without {name!r}"
            inner = field.shape if isinstance(field, _Optional) else field
            problem = _shape_problem(value[name], inner, f"{at}.{name}" if at else name)
            if problem is not None:
                return problem
        return None
    if shape is object:
        return None
    if shape is _SchemaId:
        fits = isinstance(value, int) and not isinstance(value, bool)
        if fits and 0 <= value <= MAX_SCHEMA_ID:
            return None
        shown = f"{value}" if fits else _json_kind(value)
        return f"{shown}{where}, not {_KINDS[shape]}"
    if isinstance(value, shape) and not (shape is int and isinstance(value, bool)):
        return None
    return f"{_json_kind(value)}{where}, not {_KINDS[shape]}"


#: What the client reads of the answers of the mesh registry and Confluent's API.
_REGISTERED: _Shape = {
    "version": int,
    "id": _SchemaId,
    "schema": str,
    "subject": _Optional(str),
}
_REGISTERED_ID: _Shape = {"id": _SchemaId, "version": _Optional(int)}
_CONSUMER: _Shape = {"group": str, "reads": _Optional([str])}
_FACTS = _Optional({"downstream": _Optional([str]), "consumers": _Optional([_CONSUMER])})
_PRODUCT: _Shape = {"registry": _FACTS}
#: A product as the catalog reads it back: named (a descriptor document and the facts).
_NAMED_PRODUCT: _Shape = {"name": str, "registry": _FACTS}
_SCHEMA_HISTORY: _Shape = [{"version": int, "schema": str, "subject": _Optional(str)}]
_ISSUED: _Shape = {
    "principal": str,
    "token": str,
    "token_id": object,
    "created_at": object,
    "created_by": object,
}
_CREDENTIALS: _Shape = [{"principal": str, "source": str}]


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as registered under a subject."""

    subject: str
    version: int
    schema_id: int
    schema: str
    #: Confluent data-contract fields of the version (None when it has none).
    metadata: dict[str, Any] | None = None
    rule_set: dict[str, Any] | None = None


#: How many read timeouts a whole answer may take to arrive (each read is bounded by one).
WHOLE_ANSWER_READS = 3


class AnswerTooSlowError(httpx.ReadTimeout):
    """An answer still arriving when the exchange's time was up (see ``_exchange``)."""


def _content_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "no content type")).split(";")[0]


def _path(name: str) -> str:
    """One URL path segment; `/`, `..` and unicode are percent-encoded, never interpreted."""
    return quote(name, safe="")


def _principal_path(principal: str) -> str:
    """``principal`` as one path segment of ``/admin/credentials``. Dots are encoded too: a
    bare ``.`` or ``..`` would be resolved away by the URL and reach another route (or, for
    the empty name, the list), so the registry judges the name and says what is wrong."""
    if not principal:
        raise InvalidPrincipalError("a principal name is empty", status=422, error_code=42217)
    return _path(principal).replace(".", "%2E")


def _consumer_path(product: str, group: str) -> str:
    """The URL of a consumer registration; the group's dots are encoded so ``.`` or ``..``
    reach the registry, which says what is wrong with them, instead of being resolved away."""
    return f"/products/{_path(product)}/consumers/{_path(group).replace('.', '%2E')}"


def without_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without ``user:token@`` and the pair it held (None when it held none).

    The URL is repeated in error messages; a token written into it must not be."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None  # registry_url_problem names what is wrong with it
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, token = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, (unquote(user), unquote(token)) if user else None


def _credential_part(value: str | None, setting: str, *, basic: bool) -> str | None:
    """``value`` without the whitespace around it (a secret read from a file ends with a
    newline), or a one-line error naming ``setting`` when it cannot be sent in an
    ``Authorization`` header. The value itself is never quoted: it may be a secret."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise SettingsError(
            f"{setting} is set but empty (a missing secret?); set it, or unset it to send "
            f"no credential"
        )
    if any(c.isspace() or not c.isprintable() for c in stripped):
        raise SettingsError(
            f"{setting} holds whitespace or control characters inside it, which no registry "
            f"credential has; copy it again (its value is not shown)"
        )
    if not basic and not stripped.isascii():
        raise SettingsError(
            f"{setting} holds non-ASCII characters, which a Bearer header cannot carry; copy "
            f"it again, or send it as Basic with MESH_REGISTRY_PRINCIPAL (its value is not "
            f"shown)"
        )
    return stripped


def _credential_size(
    principal: str | None, token: str | None, *, principal_setting: str, token_setting: str
) -> tuple[int, str, int]:
    """The bytes of the ``Authorization`` header sent, and the setting that makes up most
    of it with its length (what a too-long header message names; never the value)."""
    if token is None:
        return 0, token_setting, 0
    if principal is None:
        return len("Bearer ") + len(token.encode()), token_setting, len(token.encode())
    pair = base64.b64encode(f"{principal}:{token}".encode())
    longer = max((len(token.encode()), token_setting), (len(principal.encode()), principal_setting))
    return len("Basic ") + len(pair), longer[1], longer[0]


def _why_too_long(setting: str, length: int) -> str:
    """Why a credential this long fails, naming its setting, never its value."""
    return (
        f"{setting} is {length:,} bytes long, more than HTTP servers take in a header (most "
        f"stop at {LONG_HEADER_BYTES // 1024} KB; a registry token is far shorter); copy it "
        f"again (its value is not shown)"
    )


#: The longest wait a RegistryClient takes (a day): more is a mistake, not a choice.
MOST_SECONDS = 86_400.0


def _check_seconds(name: str, value: object, *, above_zero: bool) -> None:
    """A :class:`ConfigurationError` naming ``name`` unless ``value`` is a finite number of
    seconds, above 0 (a timeout: 0 fails every request at once) or from 0 (a pause)."""
    fine = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if above_zero else value >= 0)
        and value <= MOST_SECONDS
    )
    if not fine:
        least = "more than 0" if above_zero else "0 or more"
        raise ConfigurationError(
            f"RegistryClient {name}={value!r:.40} is not a number of seconds ({least}, at "
            f"most {MOST_SECONDS:,.0f})"
        )


class RegistryClient:
    """Talks to the mesh registry (or any Confluent-compatible one for the schema calls)."""

    def __init__(
        self,
        url: str,
        *,
        principal: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retry_seconds: float = RETRY_SECONDS,
        credential_from: str | None = None,
    ) -> None:
        """``credential_from`` names where the caller took the credential (e.g. a CLI option),
        for the hint of a refusal; by default, the settings (MESH_REGISTRY_PRINCIPAL/_TOKEN)."""
        if not isinstance(url, str):
            raise ConfigurationError(
                f"the registry URL must be a str such as 'http://127.0.0.1:8081', got "
                f"{type(url).__name__}"
            )
        _check_seconds("timeout", timeout, above_zero=True)  # h53: -1, "x", nan went through
        _check_seconds("retry_seconds", retry_seconds, above_zero=False)
        url, in_url = without_userinfo(url)
        principal_setting = "MESH_REGISTRY_PRINCIPAL"
        token_setting = credential_from or "MESH_REGISTRY_TOKEN (or --token)"
        if in_url is not None and principal is None and token is None:
            principal, token = in_url  # http://user:token@host, as Confluent clients allow
            principal_setting = "the user in MESH_REGISTRY_URL"
            token_setting = "the password in MESH_REGISTRY_URL"
        elif in_url is not None and token is None and principal == in_url[0]:
            token = in_url[1]  # the principal named twice, its token in the URL
            token_setting = "the password in MESH_REGISTRY_URL"
        elif in_url is not None and principal is None and token == in_url[1]:
            principal = in_url[0]  # the token given twice, its principal in the URL
        elif in_url is not None and (
            (token is not None and token != in_url[1])
            or (principal is not None and principal != in_url[0])
        ):
            # two credentials, one silently ignored (h42): which one was meant is unknowable
            raise SettingsError(
                f"the registry URL carries a credential (user:token@) and "
                f"{credential_from or 'MESH_REGISTRY_TOKEN (or --token)'} gives another; give "
                f"one of them (the tokens are not shown)"
            )
        self.url = url.rstrip("/")  # never holds a secret: every message may show it
        self.retry_seconds = retry_seconds
        problem = registry_url_problem(self.url)
        if problem is not None:
            raise SettingsError(
                f"registry URL {shown_url(url)!r} {problem} (e.g. http://127.0.0.1:8081); fix "
                f"MESH_REGISTRY_URL or --registry-url"
            )
        principal = _credential_part(principal, principal_setting, basic=True)
        token = _credential_part(
            token,
            token_setting,
            basic=principal is not None,
        )
        if principal is not None and token is None:
            raise SettingsError(
                f"registry principal {principal!r} is set but no token: set MESH_REGISTRY_TOKEN "
                f"to its token too (or unset MESH_REGISTRY_PRINCIPAL to send no credential)"
            )
        self.principal = principal
        #: Where the credential came from, for a refusal's hint (never its value).
        self._credential_settings = (
            "the user and password in the registry URL (MESH_REGISTRY_URL or --registry-url)"
            if principal_setting.endswith("MESH_REGISTRY_URL")
            else credential_from or "MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN"
        )
        auth = (principal, token) if principal is not None and token is not None else None
        headers = {"Accept": f"{CONFLUENT_JSON}, application/json"}
        if token is not None and principal is None:
            headers["Authorization"] = f"Bearer {token}"
        self._credential = _credential_size(
            principal, token, principal_setting=principal_setting, token_setting=token_setting
        )
        try:
            self._http = httpx.Client(
                base_url=self.url, auth=auth, timeout=timeout, headers=headers
            )
        except httpx.InvalidURL as exc:  # what urlsplit lets through, e.g. a bad IDNA host
            raise SettingsError(
                f"registry URL {shown_url(url)!r} is not usable ({exc}); fix MESH_REGISTRY_URL or "
                f"--registry-url"
            ) from exc
        self.http_calls = 0
        #: Whether the registry answered this client once: only then can an answer be
        #: cached, and an unreachable registry's error say that none was for the request.
        self._answered = False
        self._lock = threading.Lock()
        #: Per thread: the monotonic time by which a call must return (:meth:`within`).
        self._deadline = threading.local()
        self._schema_by_id: dict[int, str] = {}
        self._by_version: dict[tuple[str, int], RegisteredSchema] = {}
        self._by_schema: dict[tuple[str, str], RegisteredSchema] = {}
        self._id_by_schema: dict[tuple[str, str], int] = {}
        self._latest: dict[str, RegisteredSchema] = {}
        self._by_contract: dict[tuple[str, str, str], RegisteredSchema] = {}

    @classmethod
    def from_settings(cls, settings: MeshSettings) -> RegistryClient:
        token = settings.registry_token.get_secret_value() if settings.registry_token else None
        return cls(settings.registry_url, principal=settings.registry_principal, token=token)

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """Calls made by this thread in the block return within ``seconds`` (at least
        0.1 s): each exchange waits no longer than what is left, and retries stop there.
        A consumer's ``consume(timeout=...)`` bounds its registry calls with it."""
        outer: float | None = getattr(self._deadline, "at", None)
        at = time.monotonic() + max(0.1, seconds)
        self._deadline.at = at if outer is None else min(outer, at)
        try:
            yield
        finally:
            self._deadline.at = outer

    def _left(self) -> float | None:
        """Seconds left before this thread's deadline (:meth:`within`), None without one."""
        at: float | None = getattr(self._deadline, "at", None)
        return None if at is None else max(0.0, at - time.monotonic())

    # -- the one HTTP boundary ------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        shape: _Shape | None = None,
    ) -> Any:
        """One call, retried while the registry answers that it is passing (see module doc);
        its answer checked against ``shape`` when given."""
        left = self._left()
        retrying = Retrying(
            retry=retry_if_exception(_passing),
            wait=_wait_asked if left is None else _wait_asked_within(self._left),
            stop=stop_after_delay(
                self.retry_seconds if left is None else min(self.retry_seconds, left)
            ),
            reraise=True,
        )
        started, attempts = time.monotonic(), itertools.count(1)
        return retrying(
            lambda: self._request_once(
                method,
                path,
                body=body,
                params=params,
                shape=shape,
                attempt=next(attempts),
                started=started,
            )
        )

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        shape: _Shape | None = None,
        attempt: int = 1,
        started: float | None = None,
    ) -> Any:
        """One HTTP exchange; ``attempt`` and ``started`` (of the first) let a timeout say how
        long the call has waited in all."""
        with self._lock:
            self.http_calls += 1
        # How messages name the call: a 5,000-character product name is not repeated whole,
        # and a name's dots read as dots (only the URL needs them encoded).
        shown = path.replace("%2E", ".")
        shown = shown if len(shown) <= 200 else f"{shown[:160]}... ({len(shown)} characters)"
        try:
            content = None if body is None else json.dumps(body).encode()
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"{method} {shown}: the request holds text UTF-8 cannot encode (character "
                f"{exc.start + 1}: {exc.reason}, e.g. a lone surrogate such as \\ud800)"
            ) from exc
        left = self._left()
        read_s = self._http.timeout.read or 10.0
        waits = read_s if left is None else round(max(0.1, min(read_s, left)), 1)
        whole_s = waits * WHOLE_ANSWER_READS
        try:
            response = self._exchange(
                method,
                path,
                content=content,
                headers={"Content-Type": CONFLUENT_JSON} if body is not None else None,
                params={k: v for k, v in (params or {}).items() if v is not None},
                timeout=self._http.timeout if left is None else httpx.Timeout(waits),
                within_s=whole_s,
            )
        except httpx.LocalProtocolError:
            # h11 refused a header before sending; its message quotes the header, which may
            # be the token, so none of it is repeated (nor chained).
            raise ConfigurationError(
                f"{method} {self.url}{shown}: the request could not be sent: a header value is "
                f"not allowed; check {self._credential_settings} (not shown)"
            ) from None
        except httpx.ReadTimeout as exc:
            # Sent, but no answer in time: a busy registry (its Kafka transaction is slow).
            # Asked again when a repeat cannot change the outcome (reads, registrations,
            # PUTs); a delete or a credential issue might have happened, so it is not.
            repeatable = _repeatable(method, path)
            waited = f"within {waits:g} s"
            if isinstance(exc, AnswerTooSlowError):
                waited = f"in full within {whole_s:g} s (it was still sending)"
            if attempt > 1 and started is not None:
                waited += f" each, {attempt} attempts over {time.monotonic() - started:.0f} s"
            may = "" if _reads_only(method, path) else _maybe_applied(method, repeatable)
            unanswered = RegistryUnavailableError(
                f"registry at {self.url} did not answer {method} {shown} {waited}{may}",
                status=503,
                error_code=50302,
            )
            unanswered.why = "unanswered"
            unanswered.request = f"{method} {shown}"
            unanswered.waited, unanswered.attempts = waits, attempt
            if repeatable:
                unanswered.retry_in = 1  # type: ignore[attr-defined]
            raise unanswered from exc
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            # The connection was made and then closed on us: a registry refusing the
            # request's head (a credential too long) does that; else it went away.
            refused = self._refused_as_too_long(method, shown, type(exc).__name__)
            raise refused or self._unreachable(method, shown, exc) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(method, shown, exc) from exc
        except httpx.HTTPError as exc:
            raise RegistryError(f"{method} {self.url}{shown} failed: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise ConfigurationError(
                f"{method} {self.url}{shown}: the request URL is not usable ({exc}); check the "
                f"names and filters given, and MESH_REGISTRY_URL / --registry-url"
            ) from exc
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"{method} {self.url}{shown}: a name or filter holds text UTF-8 cannot encode "
                f"(character {exc.start + 1}: {exc.reason}, e.g. a lone surrogate)"
            ) from exc
        except UnicodeError as exc:  # idna refuses the host name
            raise ConfigurationError(
                f"{method} {self.url}{shown}: the registry host name is not usable ({exc}); "
                f"fix MESH_REGISTRY_URL or --registry-url"
            ) from exc
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
            if response.status_code == 431 or (response.status_code == 400 and not payload):
                refused = self._refused_as_too_long(method, shown, f"HTTP {response.status_code}")
                if refused is not None:
                    raise refused
            if not payload:
                raise self._not_a_registry(method, shown, response)
            if response.status_code == 404 and payload.get("error_code") in (None, 404):
                # Not "no such product" (40404) but no such route: a URL with a wrong path.
                raise self._answered_by(
                    response,
                    RegistryError(
                        f"{method} {shown}: {self.url} has no such route (HTTP 404); is "
                        f"MESH_REGISTRY_URL (or --registry-url) the URL `mesh registry serve` "
                        f"prints, without a path?",
                        status=404,
                        error_code=404,
                    ),
                )
            message = str(payload.get("message") or response.reason_phrase)
            # a refusal that names its own fix (a group name the domain does not own) needs
            # no hint about credentials, which would point the wrong way
            if response.status_code in (401, 403) and "; name your " not in message:
                message += self._credential_hint(
                    response.status_code, method, consumer_group="/consumers/" in shown
                )
            code = payload.get("error_code")
            error = error_for(
                response.status_code,
                code if isinstance(code, int) else None,
                f"{method} {shown}: {message}",
            )
            if "violations" in payload and hasattr(error, "violations"):
                error.violations = payload["violations"]
            retry_after = response.headers.get("retry-after", "")
            if (
                response.status_code in (429, 503)
                and retry_after.isdigit()
                and error.error_code not in _NOT_RETRIED
            ):
                error.retry_in = int(retry_after)  # type: ignore[attr-defined]
            raise error
        self._answered = True
        answer = None
        if response.status_code != 204 and response.content:
            try:
                answer = response.json()
            except ValueError:
                raise self._not_a_registry(method, shown, response) from None
        if shape is not None:
            problem = "no content" if answer is None else _shape_problem(answer, shape)
            if problem is not None:
                raise RegistryError(
                    f"registry at {self.url} answered {method} {shown} with {problem}; is "
                    f"MESH_REGISTRY_URL (or --registry-url) a mesh registry?",
                    status=502,
                    error_code=UNUSABLE_ANSWER,
                )
        return answer

    def _unreachable(self, method: str, shown: str, exc: Exception) -> RegistryUnavailableError:
        unreachable = RegistryUnavailableError(
            f"registry at {self.url} is unreachable ({failure_words(exc)}) for "
            f"{method} {shown}"
            + (", and no earlier answer to it is cached" if self._answered else "")
            + "; start it (`mesh registry serve`) or fix MESH_REGISTRY_URL (or --registry-url)"
            + (  # a connection was made, then closed without an HTTP answer
                ": it took the connection and closed it without an HTTP answer (a registry "
                "going down, or another service's port, Kafka's say)"
                if isinstance(exc, httpx.RemoteProtocolError)
                else ": it answered the TLS handshake with something else, so it likely "
                "speaks plain HTTP (an http:// URL)"
                if self.url.startswith("https://") and "WRONG_VERSION_NUMBER" in str(exc)
                else ""
            ),
            status=503,
            error_code=50302,
        )
        unreachable.why = "unreachable"
        unreachable.request = f"{method} {shown}"
        return unreachable

    def _refused_as_too_long(self, method: str, shown: str, what: str) -> ConfigurationError | None:
        """The error for a registry that refused (``what``: a closed connection, HTTP 431)
        a request whose credential header is longer than registries take; None when it is
        not. The credential is measured, never shown."""
        size, setting, length = self._credential
        if size <= LONG_HEADER_BYTES:
            return None
        return ConfigurationError(
            f"{method} {self.url}{shown}: the registry refused the request ({what}): its "
            f"Authorization header is {size:,} bytes: {_why_too_long(setting, length)}"
        )

    def _exchange(
        self, method: str, path: str, *, within_s: float, **request: Any
    ) -> httpx.Response:
        """``self._http.request(method, path, **request)``, except that the whole answer must
        arrive within ``within_s``: httpx's timeouts bound each read, so a server sending its
        answer a byte at a time kept a command waiting for ever."""
        deadline = time.monotonic() + within_s
        if self._http.is_closed:  # httpx's own words are a RuntimeError (h53)
            raise ConfigurationError(
                f"the registry client of {self.url} is closed; {method} {path} was not sent "
                f"(open a new RegistryClient)"
            )
        with self._http.stream(method, path, **request) as streamed:
            chunks = []
            for chunk in streamed.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise AnswerTooSlowError(
                        "the answer was still arriving", request=streamed.request
                    )
        # the body decoded already (as Content-Encoding said): the headers no longer say so
        headers = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length")
        ]
        return httpx.Response(
            streamed.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=streamed.request,
            extensions=streamed.extensions,
        )

    def _not_a_registry(self, method: str, path: str, response: httpx.Response) -> RegistryError:
        """Something answered, but not with the registry's JSON: most likely a wrong URL."""
        return self._answered_by(
            response,
            RegistryError(
                f"{method} {path}: {self.url} answered HTTP {response.status_code} with "
                f"{_content_type(response)}, not a registry response; is MESH_REGISTRY_URL (or "
                f"--registry-url) the URL of `mesh registry serve`?",
                status=502,
                error_code=UNUSABLE_ANSWER,
            ),
        )

    @staticmethod
    def _answered_by(response: httpx.Response, error: RegistryError) -> RegistryError:
        """``error``, marked as answered by something that is not a registry (its status and
        content type), so a caller can tell a wrong URL from a registry's own refusal."""
        error.answered_status = response.status_code
        error.answered_type = _content_type(response)
        return error

    def _credential_hint(self, status: int, method: str, *, consumer_group: bool = False) -> str:
        """What to change when the registry refused the credential (or its absence). A
        consumer group is registered with the credential of the domain it is named after,
        not the product's owner."""
        owner = "the group's own domain's" if consumer_group else "the owning domain's"
        if status == 403:
            return (
                f"; send {owner} credential, not "
                + (f"that of principal {self.principal}" if self.principal else "this one")
                + f" ({self._credential_settings})"
            )
        if self.principal is None and "Authorization" not in self._http.headers:
            whose = "any principal's" if method == "GET" else owner
            return f"; set MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN ({whose})"
        size, setting, length = self._credential
        if size > LONG_HEADER_BYTES:
            return f"; {_why_too_long(setting, length)}"
        return f"; check {self._credential_settings}"

    # -- schemas --------------------------------------------------------------------------

    @staticmethod
    def _text(schema: str | Mapping[str, Any]) -> str:
        return normalize(schema)

    def _remember(self, registered: RegisteredSchema) -> RegisteredSchema:
        self._schema_by_id[registered.schema_id] = registered.schema
        self._by_version[(registered.subject, registered.version)] = registered
        key = (registered.subject, self._text(registered.schema))
        self._by_schema[key] = registered
        self._id_by_schema[key] = registered.schema_id
        latest = self._latest.get(registered.subject)
        if latest is None or latest.version <= registered.version:
            self._latest[registered.subject] = registered
        return registered

    @staticmethod
    def _registered(payload: Mapping[str, Any], subject: str) -> RegisteredSchema:
        metadata, rule_set = payload.get("metadata"), payload.get("ruleSet")
        return RegisteredSchema(
            subject=str(payload.get("subject", subject)),
            version=int(payload["version"]),
            schema_id=int(payload["id"]),
            schema=str(payload["schema"]),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
            rule_set=dict(rule_set) if isinstance(rule_set, Mapping) else None,
        )

    @staticmethod
    def _body(
        text: str, metadata: Mapping[str, Any] | None, rule_set: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """A Confluent register/lookup body: the schema, and its contract when given."""
        body: dict[str, Any] = {"schema": text}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if rule_set is not None:
            body["ruleSet"] = dict(rule_set)
        return body

    def register_schema(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> int:
        """Register ``schema`` under ``subject`` and return its id (idempotent, cached).

        ``metadata`` and ``rule_set`` are Confluent's data-contract fields (tags/properties,
        domainRules); with them, see :meth:`register_version`.
        """
        if metadata is not None or rule_set is not None:
            return self.register_version(
                subject, schema, metadata=metadata, rule_set=rule_set
            ).schema_id
        text = self._text(schema)
        cached = self._id_by_schema.get((subject, text))
        if cached is not None:
            return cached
        answer = self._request(
            "POST",
            f"/subjects/{_path(subject)}/versions",
            body={"schema": text},
            shape=_REGISTERED_ID,
        )
        schema_id = int(answer["id"])
        if answer.get("version") is not None:
            self._remember(RegisteredSchema(subject, int(answer["version"]), schema_id, text))
        else:
            self._id_by_schema[(subject, text)] = schema_id
            self._schema_by_id[schema_id] = text
        return schema_id

    def register_version(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> RegisteredSchema:
        """Register ``schema`` with its contract and return the version the registry holds,
        with the ``metadata`` and ``ruleSet`` it stored (what a serializer must enforce).

        Confluent's semantics: the same text with another contract is a new version, and a
        field left out (None) is inherited from the subject's previous version. The answer
        is cached per (subject, schema, contract).
        """
        text = self._text(schema)
        key = (subject, text, json.dumps([metadata, rule_set], sort_keys=True, default=str))
        cached = self._by_contract.get(key)
        if cached is not None:
            return cached
        body = self._body(text, metadata, rule_set)
        answer = self._request(
            "POST", f"/subjects/{_path(subject)}/versions", body=body, shape=_REGISTERED_ID
        )
        if answer.get("version") is not None and "schema" in answer and "ruleSet" in answer:
            registered = self._registered(answer, subject)
        elif answer.get("version") is not None:
            found = self._request(
                "GET",
                f"/subjects/{_path(subject)}/versions/{int(answer['version'])}",
                shape=_REGISTERED,
            )
            registered = self._registered(found, subject)
        else:
            found = self._request(
                "POST", f"/subjects/{_path(subject)}", body=body, shape=_REGISTERED
            )
            registered = self._registered(found, subject)
        self._remember(registered)
        self._by_contract[key] = registered
        return registered

    def get_schema(self, schema_id: int) -> str:
        """The schema text with this id; cached forever (ids never change meaning)."""
        cached = self._schema_by_id.get(schema_id)
        if cached is not None:
            return cached
        if not isinstance(schema_id, int) or isinstance(schema_id, bool):
            raise ConfigurationError(
                f"a schema id is a whole number (the 4 bytes after a record's magic byte), "
                f"got {type(schema_id).__name__} {schema_id!r:.40}"
            )
        answer = self._request("GET", f"/schemas/ids/{schema_id}", shape={"schema": str})
        text = str(answer["schema"])
        self._schema_by_id[schema_id] = text
        return text

    def get_schema_subjects(self, schema_id: int) -> list[str]:
        """The subjects this schema id is registered under, soft-deleted versions included
        (not cached: a subject may register the same schema later)."""
        answer = self._request(
            "GET",
            f"/schemas/ids/{int(schema_id)}/versions",
            params={"deleted": "true"},
            shape=[{"subject": str}],
        )
        return sorted({str(item["subject"]) for item in answer})

    def get_latest(self, subject: str) -> RegisteredSchema:
        """The newest version; the last one seen when the registry is unreachable."""
        try:
            answer = self._request(
                "GET", f"/subjects/{_path(subject)}/versions/latest", shape=_REGISTERED
            )
        except RegistryUnavailableError:
            cached = self._latest.get(subject)
            if cached is None:
                raise
            return cached
        return self._remember(self._registered(answer, subject))

    def get_version(self, subject: str, version: int) -> RegisteredSchema:
        """One version of a subject (cached: a version's schema never changes)."""
        cached = self._by_version.get((subject, version))
        if cached is not None:
            return cached
        answer = self._request(
            "GET", f"/subjects/{_path(subject)}/versions/{int(version)}", shape=_REGISTERED
        )
        return self._remember(self._registered(answer, subject))

    def lookup(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        rule_set: Mapping[str, Any] | None = None,
    ) -> RegisteredSchema:
        """The version and id ``schema`` has under ``subject`` (SchemaNotFoundError if none);
        ``metadata``/``rule_set`` narrow it to the version with that contract."""
        text = self._text(schema)
        contract = metadata is not None or rule_set is not None
        cached = None if contract else self._by_schema.get((subject, text))
        if cached is not None:
            return cached
        answer = self._request(
            "POST",
            f"/subjects/{_path(subject)}",
            body=self._body(text, metadata, rule_set),
            shape=_REGISTERED,
        )
        return self._remember(self._registered(answer, subject))

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """Set the global level, or one subject's level."""
        path = "/config" if subject is None else f"/config/{_path(subject)}"
        self._request("PUT", path, body={"compatibility": level})

    def get_compatibility(self, subject: str | None = None) -> str:
        """The level in force: the subject's own, else the global one (one of Confluent's
        seven: another would be compared with nothing, so it is an error here)."""
        path = "/config" if subject is None else f"/config/{_path(subject)}"
        params = None if subject is None else {"defaultToGlobal": "true"}
        answer = self._request("GET", path, params=params, shape={"compatibilityLevel": str})
        level = str(answer["compatibilityLevel"])
        if level not in Compatibility.__members__:
            raise RegistryError(
                f"registry at {self.url} answered GET {path} with compatibilityLevel "
                f"{level[:40]!r}, not one of {', '.join(Compatibility)}; is MESH_REGISTRY_URL "
                f"(or --registry-url) a mesh registry?",
                status=502,
                error_code=UNUSABLE_ANSWER,
            )
        return level

    def subjects(self) -> list[str]:
        return [str(s) for s in self._request("GET", "/subjects", shape=[str])]

    def check_compatibility(
        self, subject: str, schema: str | Mapping[str, Any], *, version: int | str | None = "latest"
    ) -> list[str]:
        """Why the registry would refuse ``schema`` under ``subject`` (empty: compatible).

        Asks the registry, read-only, against one registered ``version`` (``"latest"`` by
        default) at the subject's level, or with ``version=None`` against every version the
        level covers (the ``_TRANSITIVE`` levels). A missing subject is SubjectNotFoundError.
        """
        path = f"/compatibility/subjects/{_path(subject)}/versions"
        if version is not None:
            path += f"/{_path(str(version))}"
        answer = self._request(
            "POST",
            path,
            body={"schema": self._text(schema)},
            params={"verbose": "true"},
            shape={"is_compatible": _Optional(bool), "messages": _Optional([object])},
        )
        if answer.get("is_compatible", False):
            return []
        return [str(message) for message in answer.get("messages") or ["incompatible"]]

    # -- products -------------------------------------------------------------------------

    def put_product(self, product: DataProduct | Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a product from its descriptor; returns what the registry stored."""
        document = product.to_document() if isinstance(product, DataProduct) else dict(product)
        name = str(document.get("name", ""))
        answer: dict[str, Any] = self._request(
            "PUT", f"/products/{_path(name)}", body=document, shape=_PRODUCT
        )
        return answer

    def check_product(
        self, product: DataProduct | Mapping[str, Any], schema: str | None = None
    ) -> list[dict[str, Any]]:
        """What the registry's lineage checks and governance policies find in the descriptor
        (with ``schema``, the value schema it comes with), storing nothing: each problem's
        ``policy``, ``severity`` (``error`` refuses a PUT), ``message`` and ``field``."""
        document = product.to_document() if isinstance(product, DataProduct) else dict(product)
        name = str(document.get("name", ""))
        answer = self._request(
            "POST",
            f"/products/{_path(name)}/check",
            body={"descriptor": document, "schema": schema},
            shape={"problems": [dict]},
        )
        return [dict(problem) for problem in answer["problems"]]

    def get_product(self, name: str) -> dict[str, Any]:
        problem = product_name_problem(name)
        if problem is not None:  # "" or "." would ask for another route
            raise ProductNotFoundError(
                f"no such data product: {problem}", status=404, error_code=40404
            )
        answer: dict[str, Any] = self._request(
            "GET", f"/products/{_path(name)}", shape=_NAMED_PRODUCT
        )
        if answer["name"] != name:  # another product, or something that is no registry
            raise RegistryError(
                f"registry at {self.url} answered GET /products/{name} with product "
                f"{str(answer['name'])[:80]!r}; is MESH_REGISTRY_URL (or --registry-url) a "
                f"mesh registry?",
                status=502,
                error_code=UNUSABLE_ANSWER,
            )
        return answer

    def list_products(
        self,
        *,
        domain: str | None = None,
        tag: str | None = None,
        classification: str | None = None,
        kind: str | None = None,
        query: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {
            "domain": domain,
            "tag": tag,
            "classification": classification,
            "kind": kind,
            "q": query,
        }
        answer: list[dict[str, Any]] = self._request(
            "GET", "/products", params=params, shape=[_NAMED_PRODUCT]
        )
        return answer

    def lineage(self, name: str, direction: str = "both") -> dict[str, Any]:
        answer: dict[str, Any] = self._request(
            "GET",
            f"/products/{_path(name)}/lineage",
            params={"direction": direction},
            shape={"edges": [{"from": str, "to": str}]},
        )
        return answer

    def product_schemas(self, name: str) -> list[dict[str, Any]]:
        """The product's value schema history: each major's subject in turn, oldest first
        within it (every entry names its subject)."""
        answer: list[dict[str, Any]] = self._request(
            "GET", f"/products/{_path(name)}/schemas", shape=_SCHEMA_HISTORY
        )
        return answer

    def delete_product(self, name: str) -> None:
        self._request("DELETE", f"/products/{_path(name)}")

    # -- product health -------------------------------------------------------------------

    def _health(self, answer: Any, where: str) -> ProductHealth:
        try:
            return ProductHealth.model_validate(answer)
        except ValidationError as exc:
            first = str(exc).splitlines()[0]
            raise RegistryError(
                f"GET {where}: {self.url} answered a product health record that does not "
                f"parse ({first}); are the registry and this client the same mesh-stream "
                f"version?",
                status=502,
                error_code=UNUSABLE_ANSWER,
            ) from None

    def product_health(self, name: str) -> ProductHealth:
        """``name``'s latest health as the product monitor measured it (status ``no data``
        when it never was); :class:`~mesh_stream.errors.ProductNotFoundError` if unknown."""
        path = f"/products/{_path(name)}/health"
        return self._health(self._request("GET", path), path)

    def product_health_history(self, name: str, minutes: int = 60) -> list[ProductHealth]:
        """``name``'s measurements of the last ``minutes`` minutes (1..10080), oldest first."""
        path = f"/products/{_path(name)}/health/history"
        answer = self._request("GET", path, params={"minutes": minutes}, shape=[object])
        return [self._health(item, path) for item in answer]

    def all_product_health(self) -> dict[str, ProductHealth]:
        """The latest health of every registered product, by name (one request)."""
        answer = self._request("GET", "/product-health", shape=dict)
        return {str(name): self._health(item, "/product-health") for name, item in answer.items()}

    # -- registered consumers -------------------------------------------------------------

    def register_consumer(
        self,
        product: str,
        group: str,
        *,
        reads: Sequence[str] = (),
        contact: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Register consumer group ``group`` on ``product`` with the top-level fields it
        ``reads``: the registry then refuses schema versions that remove or retype them.
        Registering again replaces the registration (only its owner domain or admin may)."""
        body: dict[str, Any] = {"reads": list(reads)}
        body.update({k: v for k, v in (("contact", contact), ("description", description)) if v})
        answer: dict[str, Any] = self._request(
            "PUT", _consumer_path(product, group), body=body, shape=_CONSUMER
        )
        return answer

    def consumers(self, product: str) -> list[dict[str, Any]]:
        """The consumer groups registered on ``product`` (group, owner, reads, ...)."""
        answer: list[dict[str, Any]] = self._request(
            "GET", f"/products/{_path(product)}/consumers", shape=[_CONSUMER]
        )
        return answer

    def unregister_consumer(self, product: str, group: str) -> None:
        """Remove ``group``'s registration on ``product`` (its owner domain or admin)."""
        self._request("DELETE", _consumer_path(product, group))

    # -- credentials (admin only) ---------------------------------------------------------

    def add_credential(self, principal: str) -> dict[str, Any]:
        """Issue ``principal``'s first token; the answer holds it (the only time it is shown)."""
        answer: dict[str, Any] = self._request(
            "POST", f"/admin/credentials/{_principal_path(principal)}", shape=_ISSUED
        )
        return answer

    def rotate_credential(self, principal: str) -> dict[str, Any]:
        """Replace ``principal``'s token; the old one stops at once, the answer holds the new."""
        answer: dict[str, Any] = self._request(
            "POST", f"/admin/credentials/{_principal_path(principal)}/rotate", shape=_ISSUED
        )
        return answer

    def revoke_credential(self, principal: str) -> dict[str, Any]:
        """End ``principal``'s token (issued or from the file) until it is added again."""
        answer: dict[str, Any] = self._request(
            "DELETE",
            f"/admin/credentials/{_principal_path(principal)}",
            shape={"revoked_at": object},
        )
        return answer

    def list_credentials(self) -> list[dict[str, Any]]:
        """Every principal with a token or a revocation: source, token id, dates; no secret."""
        answer: list[dict[str, Any]] = self._request(
            "GET", "/admin/credentials", shape=_CREDENTIALS
        )
        return answer

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
