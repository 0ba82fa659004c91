"""Tokens issued at run time: add, rotate, revoke and list them, with no HTTP in it.

The credentials file (``MESH_REGISTRY_CREDENTIALS_FILE`` / ``MESH_REGISTRY_CREDENTIALS``) is
the bootstrap: it holds ``admin`` and any principals an operator put there. Everything else
lives in the registry log as ``["credential", principal]`` records, so every instance knows
it after replay and after restarts, and no restart is needed to change it.

The rules, in one place:

* A principal has at most one active token. ``add`` refuses one that has a token (issued, or
  in the file): ``rotate`` replaces it, ``revoke`` ends it.
* Once the log holds a record for a principal, the log decides for it: a file token of that
  principal no longer counts (issued: only the issued token; revoked: nothing, until it is
  added again). Revoking a file principal therefore blocks its file token too.
* ``admin`` is never managed here: its token lives only in the credentials file, so no API
  call can lock the operator out by accident.
* Names are domain names (lowercase words joined by ``-``), the principals that own
  subjects and products. A token is issued (``add``, ``rotate``) only to a name ``mesh init``
  accepts as a domain (:func:`mesh_stream.project.domain_name_problem`: not ``registry``,
  ``anonymous``, ``mesh`` or ``mesh-…``), or to ``monitor``, the platform's read-only
  product monitor. ``revoke`` takes any domain name, so a token issued before that rule
  can still be ended.

A token is ``secrets.token_urlsafe(32)``, shown once in the answer to ``add``/``rotate``
and stored only as a salted hash (why that hash: :mod:`.auth`, which checks tokens).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mesh_stream.errors import (
    CredentialExistsError,
    CredentialNotFoundError,
    CredentialsDisabledError,
    InvalidPrincipalError,
)
from mesh_stream.project import (
    MAX_DOMAIN_LENGTH,
    MONITOR_USER,
    domain_name_problem,
    overlapping_domain,
)
from mesh_stream.registry.service.auth import ADMIN, Credentials, hash_token, token_id
from mesh_stream.registry.service.state import Record, RegistryState
from mesh_stream.registry.service.store import RegistryStore

#: A domain name: lowercase words of letters and digits joined by single hyphens.
PRINCIPAL_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_PRINCIPAL_LENGTH = MAX_DOMAIN_LENGTH  # a principal is a domain: one limit for both
ACTIVE = "active"
REVOKED = "revoked"


def principal_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a principal to issue a token to (None when usable)."""
    shown = repr(name[:40] + ("…" if len(name) > 40 else ""))
    if not name:
        return "a principal name is empty"
    if len(name) > MAX_PRINCIPAL_LENGTH:
        return f"principal {shown} is longer than {MAX_PRINCIPAL_LENGTH} characters"
    if name == ADMIN:
        return (
            "principal 'admin' is the bootstrap principal: its token lives only in the "
            "credentials file (MESH_REGISTRY_CREDENTIALS_FILE); change it there and restart"
        )
    if not PRINCIPAL_NAME.fullmatch(name):
        return (
            f"principal {shown} is not a domain name (lowercase letters and digits, words "
            f"joined by '-', starting with a letter, e.g. inventory or click-stream)"
        )
    return None


#: The platform's services that may be issued a token: the product monitor reads the registry
#: with one under --read-requires-auth (docs/how-to/credentials.md); it writes nothing.
ISSUED_SERVICES = (MONITOR_USER,)


def issue_problem(name: str) -> str | None:
    """Why no token may be issued to ``name`` (None when one may): a name the platform keeps
    for itself, by the rule ``mesh init`` applies to domains, except :data:`ISSUED_SERVICES`.
    """
    problem = principal_problem(name)
    if problem is not None or name in ISSUED_SERVICES:
        return problem
    reserved = domain_name_problem(name)
    if reserved is None:
        return None
    return f"no token is issued to principal {name!r}, the rule for domain names: {reserved}"


def check_principal(name: str) -> str:
    problem = principal_problem(name)
    if problem is not None:
        raise InvalidPrincipalError(problem, status=422, error_code=42217)
    return name


def check_issuable(name: str) -> str:
    problem = issue_problem(name)
    if problem is not None:
        raise InvalidPrincipalError(problem, status=422, error_code=42217)
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class IssuedToken:
    """The answer to ``add``/``rotate``: the only time the token itself leaves the registry."""

    principal: str
    token: str
    token_id: str
    created_at: str
    created_by: str

    def to_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "token": self.token,
            "token_id": self.token_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


class CredentialBook:
    """The credentials lifecycle over the registry log (see the module docstring).

    ``file`` is the bootstrap credentials (None: the registry runs without authentication
    and issues nothing); ``write_lock`` serialises these writes with the registry's others.
    """

    def __init__(
        self,
        store: RegistryStore,
        state: RegistryState,
        file: Credentials | None,
        write_lock: Any,
        *,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.store = store
        self.state = state
        self.file = file
        self.write_lock = write_lock
        self.clock = clock

    def _require_auth(self, action: str) -> Credentials:
        if self.file is None:
            raise CredentialsDisabledError(
                f"cannot {action}: this registry runs without authentication (--open-writes), "
                f"so every caller is admin and no token would ever be checked; start it with "
                f"credentials (MESH_REGISTRY_CREDENTIALS_FILE) to manage tokens"
            )
        return self.file

    def _issue(self, principal: str, by: str, previous: dict[str, Any] | None) -> IssuedToken:
        token = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        issued = IssuedToken(principal, token, token_id(token), self.clock(), by)
        value = {
            "state": ACTIVE,
            "token_hash": hash_token(token, salt),
            "salt": salt,
            "token_id": issued.token_id,
            "created_at": issued.created_at,
            "created_by": by,
            "previous": previous,
        }
        self.store.append([Record(("credential", principal), value)])
        return issued

    def _ended(self, entry: Mapping[str, Any] | None, how: str, by: str) -> dict[str, Any] | None:
        """What an active issued token leaves behind when it ends: its hash, for messages."""
        if entry is None or entry.get("state") != ACTIVE:
            return None
        kept = ("token_hash", "salt", "token_id", "created_at")
        return {
            **{k: entry.get(k) for k in kept},
            "ended": how,
            "ended_at": self.clock(),
            "ended_by": by,
        }

    def add(self, principal: str, *, by: str) -> IssuedToken:
        """A first token for ``principal`` (or again after a revocation)."""
        file = self._require_auth(f"add a token for {principal!r}")
        check_issuable(principal)
        with self.write_lock:
            entry = self.state.credentials.get(principal)
            if entry is not None and entry.get("state") == ACTIVE:
                raise CredentialExistsError(
                    f"principal '{principal}' already has a token (id {entry.get('token_id')}, "
                    f"issued {entry.get('created_at')} by {entry.get('created_by')}); rotate it "
                    f"to get a new one (POST /admin/credentials/{principal}/rotate)"
                )
            if entry is None and principal in file.principals:
                raise CredentialExistsError(
                    f"principal '{principal}' already has a token in the credentials file; "
                    f"rotate it to replace that with an issued one, or revoke it"
                )
            if entry is None:  # a new domain: its names must not be another's
                active = (p for p, e in self.state.credentials.items() if e.get("state") == ACTIVE)
                known = {*file.principals, *active} - {ADMIN, MONITOR_USER}
                overlap = overlapping_domain(principal, known)
                if overlap is not None:
                    raise InvalidPrincipalError(
                        f"no token is issued to principal {principal!r}: {overlap}, and the "
                        f"broker's ACL plan refuses such a pair; name the domain so that "
                        f"neither name is the other followed by '-'",
                        status=422,
                        error_code=42217,
                    )
            previous = entry.get("previous") if entry is not None else None
            return self._issue(principal, by, previous)

    def rotate(self, principal: str, *, by: str) -> IssuedToken:
        """A new token for ``principal``; its old one (issued or from the file) stops at once."""
        file = self._require_auth(f"rotate the token of {principal!r}")
        check_issuable(principal)
        with self.write_lock:
            entry = self.state.credentials.get(principal)
            if entry is None and principal not in file.principals:
                raise self._not_found(principal, "rotate")
            if entry is not None and entry.get("state") != ACTIVE:
                raise CredentialNotFoundError(
                    f"principal '{principal}' was revoked ({entry.get('revoked_at')} by "
                    f"{entry.get('revoked_by')}), so there is no token to rotate; add it again "
                    f"(POST /admin/credentials/{principal})"
                )
            return self._issue(principal, by, self._ended(entry, "rotated", by))

    def revoke(self, principal: str, *, by: str) -> dict[str, Any]:
        """End ``principal``'s token (issued or from the file) until it is added again."""
        file = self._require_auth(f"revoke the token of {principal!r}")
        check_principal(principal)
        with self.write_lock:
            entry = self.state.credentials.get(principal)
            if entry is None and principal not in file.principals:
                raise self._not_found(principal, "revoke")
            if entry is not None and entry.get("state") != ACTIVE:
                raise CredentialNotFoundError(
                    f"principal '{principal}' is already revoked ({entry.get('revoked_at')} by "
                    f"{entry.get('revoked_by')})"
                )
            when = self.clock()
            value = {
                "state": REVOKED,
                "revoked_at": when,
                "revoked_by": by,
                "previous": self._ended(entry, "revoked", by),
            }
            self.store.append([Record(("credential", principal), value)])
        ended = entry.get("token_id") if entry is not None else None
        return {
            "principal": principal,
            "source": "issued" if entry is not None else "file",
            "token_id": ended,
            "revoked_at": when,
            "revoked_by": by,
        }

    def _not_found(self, principal: str, action: str) -> CredentialNotFoundError:
        return CredentialNotFoundError(
            f"principal '{principal}' has no token to {action} (neither issued nor in the "
            f"credentials file); `mesh registry credentials list` shows the known ones, "
            f"`add` issues one"
        )

    def listing(self) -> list[dict[str, Any]]:
        """Every principal with a token or a revocation, without any secret, sorted by name.

        ``source``: ``file`` (the file's token counts), ``issued`` (an issued token counts;
        a file token of the same principal no longer does) or ``revoked`` (nothing counts).
        """
        self._require_auth("list tokens")
        assert self.file is not None
        issued = dict(self.state.credentials)
        rows: list[dict[str, Any]] = []
        for principal in sorted(set(self.file.principals) | set(issued)):
            entry = issued.get(principal)
            in_file = principal in self.file.principals
            if entry is None:
                rows.append(
                    {"principal": principal, "source": "file", "in_file": True, "token_id": None}
                )
            elif entry.get("state") == ACTIVE:
                rows.append(
                    {
                        "principal": principal,
                        "source": "issued",
                        "in_file": in_file,
                        "token_id": entry.get("token_id"),
                        "created_at": entry.get("created_at"),
                        "created_by": entry.get("created_by"),
                    }
                )
            else:
                rows.append(
                    {
                        "principal": principal,
                        "source": "revoked",
                        "in_file": in_file,
                        "token_id": None,
                        "revoked_at": entry.get("revoked_at"),
                        "revoked_by": entry.get("revoked_by"),
                    }
                )
        return rows
