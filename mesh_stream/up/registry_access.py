"""How `mesh up` reaches the registry: is one there, and which token does each principal use.

The tokens of a registry `mesh up` starts itself live in a file under MESH_DATA_DIR, so a
second `mesh up` and the children of the first agree on them.
"""

from __future__ import annotations

import errno
import json
import secrets
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from mesh_stream.errors import ConfigurationError
from mesh_stream.http_failures import causes, failure_words
from mesh_stream.project import MONITOR_USER


def registry_credentials(path: Path, principals: Sequence[str]) -> dict[str, str]:
    """Tokens of the local registry (``admin``, one per domain, the monitor's), kept in
    ``path``.

    Created once with random tokens (file mode 0600) and reused, so a second `mesh up`
    and the children of the first agree on them.
    """
    tokens: dict[str, str] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigurationError(
                f"{path} is not valid JSON ({exc}); delete it and `mesh up` writes a new one"
            ) from exc
        tokens = {str(k): str(v) for k, v in loaded.items()}
    missing = [p for p in principals if p not in tokens]
    if missing:
        for principal in missing:
            tokens[principal] = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tokens, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
    return tokens


#: Why a connection was never made: nothing listens at that port, or no such host is reached.
_NOTHING_THERE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})


def probe_registry(url: str, timeout: float = 2.0, *, starting: bool = False) -> bool:
    """True when a registry answers at ``url``; False when nothing listens there (the
    connection is refused, the host is unknown, unreachable or silent) or a registry there is
    not ready yet.

    Raises :class:`ConfigurationError` when something else holds the address: an HTTP
    service that is not a registry, or a port that takes the connection and then gives no
    HTTP answer within ``timeout`` (Kafka's, say). Pass ``starting=True`` while the registry
    `mesh up` started there comes up: it takes connections as soon as it has bound its port
    and answers only once it has joined Kafka, so no answer yet means not ready yet.
    """
    try:
        response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout)
    except (httpx.ConnectTimeout, httpx.ConnectError) as exc:
        if starting or isinstance(exc, httpx.ConnectTimeout) or _nothing_there(exc):
            return False
        raise _not_a_registry(url, f"the connection failed: {failure_words(exc)}") from exc
    except httpx.TransportError as exc:
        if starting:
            return False
        if isinstance(exc, httpx.TimeoutException):
            raise _not_a_registry(
                url,
                f"it took the connection, then gave no answer to GET /subjects within {timeout:g}s",
            ) from exc
        raise _not_a_registry(
            url, f"no HTTP answer to GET /subjects: {failure_words(exc)}"
        ) from exc
    if response.status_code in (401, 403):
        return True  # a registry whose reads need a credential
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, list):
        return True
    if response.status_code == 503 and isinstance(body, dict) and "error_code" in body:
        return False  # a registry still replaying its log (or cut off from Kafka): not yet
    raise _not_a_registry(url, f"GET /subjects gave HTTP {response.status_code}", "answers at")


def registry_kafka_cluster(url: str, timeout: float = 2.0) -> str | None:
    """The id of the Kafka cluster the registry at ``url`` keeps its log on, as its
    ``/health/ready`` says (None: it does not say, or did not answer)."""
    try:
        body = httpx.get(f"{url.rstrip('/')}/health/ready", timeout=timeout).json()
    except (httpx.HTTPError, ValueError):
        return None
    found = body.get("kafka_cluster_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and found else None


def _nothing_there(exc: httpx.ConnectError) -> bool:
    """The connection failed because no one is there: refused, unknown host, unreachable."""
    return any(
        isinstance(cause, socket.gaierror)
        or (isinstance(cause, OSError) and cause.errno in _NOTHING_THERE)
        for cause in causes(exc)
    )


def _not_a_registry(url: str, what: str, verb: str = "listens at") -> ConfigurationError:
    return ConfigurationError(
        f"something that is not a mesh registry {verb} {url} ({what}); stop it, or point "
        f"MESH_REGISTRY_URL elsewhere"
    )


def monitor_credential(tokens: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The product monitor's: its own read-only principal when the registry `mesh up` runs
    knows it (it only lists products), else the writer's of a registry found running."""
    if MONITOR_USER in tokens:
        return MONITOR_USER, tokens[MONITOR_USER]
    return writer_credential(tokens)


def writer_credential(tokens: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The principal and token that register schemas: ``admin`` if known, else any one."""
    if "admin" in tokens:
        return "admin", tokens["admin"]
    for principal, token in tokens.items():
        return principal, token
    return None, None
