"""How `mesh up` reaches the registry: is one there, and which token does each principal use.

The tokens of a registry `mesh up` starts itself live in a file under MESH_DATA_DIR, so a
second `mesh up` and the children of the first agree on them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from mesh_stream.errors import ConfigurationError
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


def probe_registry(url: str, timeout: float = 2.0) -> bool:
    """True when a registry answers at ``url``; False when nothing listens there.

    Raises :class:`ConfigurationError` when something else answers (a port clash).
    """
    try:
        response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout)
    except httpx.TransportError:
        return False
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
    raise ConfigurationError(
        f"something that is not a mesh registry answers at {url} (GET /subjects gave HTTP "
        f"{response.status_code}); stop it, or point MESH_REGISTRY_URL elsewhere"
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
