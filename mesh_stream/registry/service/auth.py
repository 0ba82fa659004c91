"""Who may do what: credentials (principal -> token) and the ownership rule.

``admin`` may do everything. The platform's services (``registry``, ``monitor``) only read:
a token for one (the product monitor's under `mesh up`) writes nothing. Any other principal
is a domain and may write only subjects named ``<domain>.…`` and products of its own domain.
Credentials come from a YAML/JSON file mapping principal to token, or from
``MESH_REGISTRY_CREDENTIALS`` as ``principal:token,...`` (the bootstrap), and from tokens
issued at run time and kept hashed in the registry log (:class:`Authenticator`; the lifecycle
is :mod:`.credentials`).
An empty (or blank) token is refused when credentials are loaded, and an empty Bearer token
or Basic password never authenticates: otherwise "no secret" would be a valid secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from mesh_stream.descriptor import repeated_key
from mesh_stream.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidSubjectNameError,
    PermissionDeniedError,
    SettingsError,
)
from mesh_stream.files import not_utf8, open_regular
from mesh_stream.project import (
    MONITOR_USER,
    SERVICE_USERS,
    domain_name_problem,
    overlapping_domain,
)
from mesh_stream.registry.service.contexts import DEFAULT_CONTEXT, split_context

ADMIN = "admin"
#: A credentials file is a few lines per domain; past this it is a mistake, refused before
#: YAML spends seconds on it.
MAX_CREDENTIALS_FILE_BYTES = 1024 * 1024


def _empty_token(principal: str, source: str) -> ConfigurationError:
    return ConfigurationError(
        f"{source}: principal '{principal}' has an empty token, which would let anyone act "
        f"as '{principal}'; give it a token or remove it"
    )


def _refuse_repeated_principals(path: Path) -> Callable[[list[tuple[Any, Any]]], dict[Any, Any]]:
    """A ``json.loads`` hook: a principal named twice is refused (JSON keeps the last one
    silently, so which token counts would depend on the order of lines)."""

    def build(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        built: dict[Any, Any] = {}
        for key, value in pairs:
            if key in built:
                raise ConfigurationError(
                    f"{path}: principal {str(key)[:40]!r} is given twice; give each principal "
                    f"one token"
                )
            built[key] = value
        return built

    return build


def _yaml_scalars_as_written(text: str, path: Path) -> dict[str, str]:
    """The top-level values of a YAML mapping as written, and a principal given twice
    refused with its line (YAML, too, keeps the last one silently)."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return {}
    repeated = repeated_key(node)
    if repeated is not None:
        key, line, first = repeated
        raise ConfigurationError(
            f"{path}:{line}: principal {key[:40]!r} is given twice (first on line "
            f"{first}); give each principal one token"
        )
    return {
        key.value: value.value
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)
    }


#: Tokens shorter than this are warned about when the registry starts: each failed guess
#: costs an attacker only one request (rate-limited per address, not per principal).
TOKEN_MIN = 16


def _bootstrap_problem(principal: str) -> str | None:
    """Why the credentials file or MESH_REGISTRY_CREDENTIALS may not hold a token for
    ``principal`` (None when it may): ``admin``, the monitor, or a name a domain may have;
    never ``anonymous``, a platform service's user or a ``mesh-`` name, whose token would
    take over what is theirs."""
    if principal in (ADMIN, MONITOR_USER):
        return None
    problem = domain_name_problem(principal)
    return None if problem is None else f"principal {principal[:40]!r}: {problem}"


class Credentials:
    """Tokens per principal; compares in constant time. Blank tokens are refused."""

    def __init__(
        self, tokens: Mapping[str, str | SecretStr], source: str = "registry credentials"
    ) -> None:
        self._tokens = {
            principal: token.get_secret_value() if isinstance(token, SecretStr) else token
            for principal, token in tokens.items()
        }
        for principal, token in self._tokens.items():
            if not principal.strip():
                raise ConfigurationError(f"{source}: a principal name is empty")
            if any(c.isspace() or not c.isprintable() for c in principal):
                # It would reach terminals through `credentials list`; no domain has one.
                raise ConfigurationError(
                    f"{source}: principal {principal[:40]!r} holds whitespace or control "
                    f"characters; principals are domain names (e.g. orders)"
                )
            refused = _bootstrap_problem(principal)
            if refused is not None:  # as `mesh registry credentials add` refuses it
                raise ConfigurationError(f"{source}: no token is given to {refused}")
            if not token.strip():
                raise _empty_token(principal, source)
            if any(c.isspace() or not c.isprintable() for c in token.strip()):
                # no client could send it: they refuse a token with whitespace inside
                raise ConfigurationError(
                    f"{source}: the token of principal {principal!r} holds whitespace or "
                    f"control characters inside it, which no client can send (its value is "
                    f"not shown)"
                )

        holders: dict[str, list[str]] = {}
        for principal, token in self._tokens.items():
            holders.setdefault(token.strip(), []).append(principal)
        shared = sorted(sorted(names) for names in holders.values() if len(names) > 1)
        if shared:
            # a bearer token names its principal: a shared one is the first holder's rights
            # for every holder (a campaign, h50: a domain's token was admin's too)
            raise ConfigurationError(
                f"{source}: principals {', '.join(repr(n) for n in shared[0])} are given the "
                f"same token (its value is not shown); give each principal a token of its own "
                f"(`mesh registry credentials add` makes one)"
            )

        domains = set(self._tokens) - {ADMIN, MONITOR_USER}
        for principal in sorted(domains):
            # the longer name of a pair is refused, as `mesh registry credentials add` does
            overlap = overlapping_domain(principal, {d for d in domains if len(d) < len(principal)})
            if overlap is not None:
                raise ConfigurationError(
                    f"{source}: no token is given to principal {principal!r}: {overlap}; name "
                    f"the domain so that neither name is the other followed by '-'"
                )

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def short(self, fewest: int = TOKEN_MIN) -> list[str]:
        """The principals whose token has fewer than ``fewest`` characters (guessable)."""
        return sorted(p for p, token in self._tokens.items() if len(token.strip()) < fewest)

    @property
    def principals(self) -> list[str]:
        return sorted(self._tokens)

    @classmethod
    def parse(cls, text: str, source: str = "MESH_REGISTRY_CREDENTIALS") -> Credentials:
        """``principal:token,principal:token`` (whitespace around items ignored). A value
        that is not is a :class:`SettingsError` (exit status 2, as for every bad ``MESH_*``
        value; h51: it was 1)."""
        tokens: dict[str, str] = {}
        for position, item in enumerate(text.split(","), start=1):
            if not item.strip():
                continue
            principal, sep, token = item.strip().partition(":")
            principal, token = principal.strip(), token.strip()
            if sep and principal and not token.strip():
                raise SettingsError(str(_empty_token(principal, f"{source}: item {position}")))
            if not sep or not principal:
                raise SettingsError(
                    f"{source}: item {position} is not `principal:token` (e.g. "
                    f"`admin:s3cret,orders:t0ken`)"
                )
            if principal in tokens:
                raise SettingsError(
                    f"{source}: item {position} names principal '{principal}' again; give "
                    f"each principal one token"
                )
            tokens[principal] = token
        if not tokens:  # an empty variable: a registry nobody could write to, said nowhere
            raise SettingsError(
                f"{source} names no principal: give `principal:token,...` (e.g. "
                f"`admin:s3cret,orders:t0ken`), or unset it"
            )
        return cls(tokens, source)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """A YAML or JSON mapping of principal to token."""
        try:
            with open_regular(path) as handle:
                raw = handle.read(MAX_CREDENTIALS_FILE_BYTES + 1)
            text = raw.decode("utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{path}: cannot read registry credentials ({exc.strerror}); fix "
                f"MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(
                f"{path}: registry credentials are {not_utf8(exc)}; fix "
                f"MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
            ) from exc
        if len(raw) > MAX_CREDENTIALS_FILE_BYTES:
            raise ConfigurationError(
                f"{path}: registry credentials larger than "
                f"{MAX_CREDENTIALS_FILE_BYTES // 1024} KiB; the file maps each principal to "
                f"its token, e.g. `admin: s3cret`"
            )
        typed: dict[str, str] = {}  # YAML: the token as written, where YAML made a number
        try:
            if path.suffix == ".json":
                data = json.loads(text, object_pairs_hook=_refuse_repeated_principals(path))
            else:
                data = yaml.safe_load(text)
                typed = _yaml_scalars_as_written(text, path)
        except RecursionError as exc:
            raise ConfigurationError(
                f"{path}: registry credentials are nested too deeply; the file maps each "
                f"principal to its token, e.g. `admin: s3cret`"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{path}:{exc.lineno}: registry credentials are not valid JSON (column "
                f"{exc.colno}): {exc.msg}"
            ) from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigurationError(
                f"{where}: registry credentials are not valid YAML: {problem}; the file maps "
                f"each principal to its token, e.g. `admin: s3cret`"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"{path}: registry credentials must map each principal to its token, e.g. "
                f"`admin: s3cret`"
            )
        source = f"{path} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE)"
        for principal, token in data.items():
            if isinstance(principal, str) and (token is None or token == ""):
                raise _empty_token(principal, source)
            if (
                not isinstance(principal, str)
                or isinstance(token, bool)
                or not isinstance(token, (str, int))
            ):
                raise ConfigurationError(
                    f"{path}: registry credentials must map each principal to its token (a "
                    f"string), e.g. `admin: s3cret`; the entry for {str(principal)[:40]!r} "
                    f"is not one"
                )
        # A YAML number is kept as the operator typed it: `admin: 0123` is the token
        # "0123", not "83" (YAML 1.1 octal); JSON numbers have one spelling.
        return cls(
            {k: typed.get(k, str(v)) if isinstance(v, int) else str(v) for k, v in data.items()},
            source,
        )

    def verify(self, principal: str, token: str) -> bool:
        """Whether ``token`` is ``principal``'s token in this file (constant time)."""
        expected = self._tokens.get(principal)
        return expected is not None and hmac.compare_digest(expected.encode(), token.encode())

    def owner_of(self, token: str) -> str | None:
        """The principal whose token ``token`` is, comparing with every one (constant time)."""
        found = None
        for principal, expected in self._tokens.items():
            if hmac.compare_digest(expected.encode(), token.encode()) and found is None:
                found = principal
        return found

    def principal_for(self, authorization: str | None) -> str | None:
        """The principal an ``Authorization`` header proves, None when absent."""
        presented = presented_credential(authorization)
        if presented is None:
            return None
        user, token = presented
        if user is not None:
            if self.verify(user, token):
                return user
            raise AuthenticationError("unknown principal or wrong token")
        found = self.owner_of(token)
        if found is not None:
            return found
        raise AuthenticationError("unknown bearer token")


def presented_credential(authorization: str | None) -> tuple[str | None, str] | None:
    """``(principal, token)`` from Basic, ``(None, token)`` from Bearer, None when absent.

    A header that cannot hold a credential (empty, malformed, another scheme, an empty
    token) is an :class:`AuthenticationError` here, before any token is compared.
    """
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if not scheme:
        raise AuthenticationError(
            "empty Authorization header; send Basic or Bearer credentials, or no header"
        )
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII (h52: it was a 500)
            raise AuthenticationError("Basic credentials are not base64 `user:token`") from None
        try:
            user, sep, token = decoded.decode().partition(":")
        except UnicodeDecodeError:
            raise AuthenticationError(
                "Basic credentials are base64 but not UTF-8 text; send base64 of the UTF-8 "
                "`user:token`"
            ) from None
        if not sep:
            raise AuthenticationError(
                "Basic credentials are base64 of `principal:token`; these have no ':', so no "
                "principal"
            )
        if not token:
            raise AuthenticationError("Basic credentials with an empty password never match")
        if not user:
            raise AuthenticationError("unknown principal or wrong token")
        return user, token
    if scheme.lower() == "bearer":
        if not value:
            raise AuthenticationError("an empty bearer token never matches")
        return None, value
    # A header of one word is most likely a bare token pasted without its scheme: naming
    # it would echo the secret into the caller's logs, so only a real scheme word is shown.
    named = f" {scheme!r}" if value and scheme.isalpha() and len(scheme) <= 16 else ""
    raise AuthenticationError(
        f"unsupported Authorization scheme{named}; use Basic or Bearer "
        f"(`Authorization: Bearer <token>`)"
    )


# -- issued tokens ---------------------------------------------------------------------------
#
# A token issued at run time is ``secrets.token_urlsafe(32)``: 256 random bits, kept only as
# a salted SHA-256. A slow password hash (scrypt, bcrypt) protects secrets people choose,
# which can be guessed; nobody enumerates 2**256 random tokens at any hash speed, so a fast
# hash loses nothing and keeps checking a token on every request cheap. The salt keeps equal
# tokens from having equal hashes; comparisons are constant-time. ``token_id``, the first 8
# hex digits of the token's plain SHA-256, names a token in listings and messages without
# revealing anything usable, and lets a Bearer token (which names no principal) find its
# record without hashing against every salt.


def token_id(token: str) -> str:
    """A short public name of ``token`` (see above)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def hash_token(token: str, salt: str) -> str:
    """The stored form of ``token``: SHA-256 over the salt's bytes, then the token."""
    return hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()


def token_matches(token: str, hashed: Mapping[str, Any] | None) -> bool:
    """Whether ``token`` is the one ``hashed`` (``token_hash`` and ``salt``) was made from."""
    if hashed is None:
        return False
    salt, expected = hashed.get("salt"), hashed.get("token_hash")
    if not isinstance(salt, str) or not isinstance(expected, str):
        return False
    try:
        actual = hash_token(token, salt)
    except ValueError:  # a salt that is not hex matches nothing
        return False
    return hmac.compare_digest(actual.encode(), expected.encode())


IssuedView = Callable[[], Mapping[str, Mapping[str, Any]]]


class Authenticator:
    """Who an ``Authorization`` header proves: the credentials file, then the issued tokens.

    ``issued`` returns the registry state's credential records (principal -> record, see
    :mod:`.credentials` for the rules); ``catch_up`` brings this instance's view up to its
    log's end (:meth:`.store.CatchingUpStore.catch_up_view`).

    Why a revoked token is refused at once on every instance: before it trusts anything
    the log can change, :meth:`principal_for` calls ``catch_up``, so the view holds every
    record committed before the request arrived, a revocation through another instance
    included. That costs one end-offset request to the broker (shared by concurrent
    requests) on requests that carry a credential; the bootstrap ``admin`` token is checked
    without it (:meth:`bootstrap_admin`: nothing in the log can change it), and requests
    without a credential never pay it.
    """

    def __init__(
        self,
        file: Credentials,
        issued: IssuedView,
        catch_up: Callable[[], None] | None = None,
    ) -> None:
        self.file = file
        self._issued = issued
        self._catch_up = catch_up

    def bootstrap_admin(self, authorization: str | None) -> bool:
        """Whether the header carries the file's ``admin`` token (no log involved, no wait)."""
        presented = presented_credential(authorization)
        if presented is None:
            return False
        user, token = presented
        if user is not None:
            return user == ADMIN and self.file.verify(ADMIN, token)
        return self.file.owner_of(token) == ADMIN

    def principal_for(self, authorization: str | None) -> str | None:
        """The principal the header proves (None when absent), as of the log's end now.

        Blocks for the catch-up: call it off the event loop.
        """
        presented = presented_credential(authorization)
        if presented is None:
            return None
        user, token = presented
        if user == ADMIN or (user is None and self.file.owner_of(token) == ADMIN):
            if self.bootstrap_admin(authorization):
                return ADMIN
            raise AuthenticationError("unknown principal or wrong token")
        if self._catch_up is not None:
            self._catch_up()
        issued = self._issued()
        if user is not None:
            return self._basic(user, token, issued.get(user))
        return self._bearer(token, issued)

    def _basic(self, user: str, token: str, entry: Mapping[str, Any] | None) -> str:
        if entry is None:
            if self.file.verify(user, token):
                return user
            raise AuthenticationError("unknown principal or wrong token")
        if entry.get("state") == "active" and token_matches(token, entry):
            return user
        raise AuthenticationError(self._refusal(user, token, entry))

    def _bearer(self, token: str, issued: Mapping[str, Mapping[str, Any]]) -> str:
        wanted = token_id(token)
        for principal, entry in list(issued.items()):
            if (
                entry.get("state") == "active"
                and entry.get("token_id") == wanted
                and token_matches(token, entry)
            ):
                return principal
        owner = self.file.owner_of(token)
        if owner is not None and owner not in issued:
            return owner
        for principal, entry in list(issued.items()):
            previous = entry.get("previous")
            if principal == owner or (
                isinstance(previous, Mapping)
                and previous.get("token_id") == wanted
                and token_matches(token, previous)
            ):
                raise AuthenticationError(self._refusal(principal, token, entry))
        raise AuthenticationError("unknown bearer token")

    def _refusal(self, principal: str, token: str, entry: Mapping[str, Any]) -> str:
        """Why a token of ``principal`` no longer counts (no secret in it)."""
        previous = entry.get("previous")
        if isinstance(previous, Mapping) and token_matches(token, previous):
            return (
                f"the token of '{principal}' (id {previous.get('token_id')}) was "
                f"{previous.get('ended')} at {previous.get('ended_at')} by "
                f"{previous.get('ended_by')}; "
                + (
                    "use the new one"
                    if previous.get("ended") == "rotated"
                    else f"an admin can issue a new one (`mesh registry credentials add "
                    f"{principal}`)"
                )
            )
        if self.file.verify(principal, token):
            if entry.get("state") == "active":
                return (
                    f"the credentials file's token of '{principal}' no longer counts: a token "
                    f"was issued to '{principal}' at {entry.get('created_at')}; use that one"
                )
            return (
                f"principal '{principal}' was revoked at {entry.get('revoked_at')} by "
                f"{entry.get('revoked_by')}, which also blocks its token in the credentials "
                f"file; an admin can add it again (`mesh registry credentials add {principal}`)"
            )
        # A token that was never this principal's learns nothing about it (not even that it
        # was revoked, or when): as for any wrong token.
        return "unknown principal or wrong token"


def require_principal(principal: str | None, action: str) -> str:
    if principal is None:
        raise AuthenticationError(
            f"{action} needs a credential: HTTP Basic (user = principal, password = token) "
            f"or `Authorization: Bearer <token>`"
        )
    return principal


def domain_of(name: str) -> str:
    return name.split(".", 1)[0]


def refuse_service(who: str, action: str) -> None:
    """Refuse any write to a platform service's principal: it only reads (no domain has
    its name, see :func:`mesh_stream.project.domain_name_problem`)."""
    if who in SERVICE_USERS:
        raise PermissionDeniedError(
            f"principal '{who}' may not {action}: it is the platform's {who} service, which "
            f"only reads the registry"
        )


def _in_other_context(subject: str) -> bool:
    """Whether ``subject`` is a well-formed name in a schema context other than the default
    (a malformed ``:...`` name is refused for its name, not for its context)."""
    try:
        return split_context(subject)[0] != DEFAULT_CONTEXT
    except InvalidSubjectNameError:
        return False


def authorize_subject(principal: str | None, subject: str | None, action: str) -> str:
    """Admin writes anything; a domain writes subjects ``<domain>.…`` (None = global config)."""
    who = require_principal(
        principal, action if subject is None else f"{action} subject '{subject}'"
    )
    if who == ADMIN:
        return who
    refuse_service(who, action if subject is None else f"{action} subject '{subject}'")
    if subject is None:
        raise PermissionDeniedError(f"principal '{who}' may not {action}: only admin may")
    if subject.startswith(":") and _in_other_context(subject):  # default's arrive short
        raise PermissionDeniedError(
            f"principal '{who}' may not {action} subject '{subject}': subjects in a schema "
            f"context other than the default (':.<context>:…') are admin's; a domain writes "
            f"'{who}.…' in the default context"
        )
    if not subject.startswith(f"{who}."):
        raise PermissionDeniedError(
            f"principal '{who}' may not {action} subject '{subject}': a domain writes only "
            f"subjects named '{who}.…'"
        )
    return who


def authorize_product(principal: str | None, product_name: str, action: str) -> str:
    who = require_principal(principal, f"{action} product '{product_name}'")
    if who != ADMIN:
        refuse_service(who, f"{action} product '{product_name}'")
    if who != ADMIN and domain_of(product_name) != who:
        raise PermissionDeniedError(
            f"principal '{who}' may not {action} product '{product_name}': it belongs to "
            f"domain '{domain_of(product_name)}'"
        )
    return who
