"""Who may do what: credentials (principal -> token) and the ownership rule.

``admin`` may do everything. Any other principal is a domain and may write only subjects
named ``<domain>.…`` and products of its own domain. Credentials come from a YAML/JSON file
mapping principal to token, or from ``MESH_REGISTRY_CREDENTIALS`` as ``principal:token,...``.
An empty (or blank) token is refused when credentials are loaded, and an empty Bearer token
or Basic password never authenticates: otherwise "no secret" would be a valid secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import SecretStr

from mesh_stream.errors import AuthenticationError, ConfigurationError, PermissionDeniedError

ADMIN = "admin"


def _empty_token(principal: str, source: str) -> ConfigurationError:
    return ConfigurationError(
        f"{source}: principal '{principal}' has an empty token, which would let anyone act "
        f"as '{principal}'; give it a token or remove it"
    )


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
            if not token.strip():
                raise _empty_token(principal, source)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    @property
    def principals(self) -> list[str]:
        return sorted(self._tokens)

    @classmethod
    def parse(cls, text: str, source: str = "MESH_REGISTRY_CREDENTIALS") -> Credentials:
        """``principal:token,principal:token`` (whitespace around items ignored)."""
        tokens: dict[str, str] = {}
        for position, item in enumerate(text.split(","), start=1):
            if not item.strip():
                continue
            principal, sep, token = item.strip().partition(":")
            if sep and principal and not token.strip():
                raise _empty_token(principal, f"{source}: item {position}")
            if not sep or not principal:
                raise ConfigurationError(
                    f"{source}: item {position} is not `principal:token` (e.g. "
                    f"`admin:s3cret,orders:t0ken`)"
                )
            tokens[principal] = token
        return cls(tokens, source)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """A YAML or JSON mapping of principal to token."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{path}: cannot read registry credentials ({exc.strerror}); fix "
                f"MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(
                f"{path}: registry credentials are not UTF-8 text (byte {exc.start}); fix "
                f"MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
            ) from exc
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
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
        source = f"{path} (MESH_REGISTRY_CREDENTIALS_FILE)"
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
        return cls({k: str(v) for k, v in data.items()}, source)

    def principal_for(self, authorization: str | None) -> str | None:
        """The principal an ``Authorization`` header proves, None when absent."""
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
                user, sep, token = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthenticationError("Basic credentials are not base64 `user:token`") from None
            if not token:
                raise AuthenticationError("Basic credentials with an empty password never match")
            expected = self._tokens.get(user)
            if (
                sep
                and expected is not None
                and hmac.compare_digest(expected.encode(), token.encode())
            ):
                return user
            raise AuthenticationError("unknown principal or wrong token")
        if scheme.lower() == "bearer":
            if not value:
                raise AuthenticationError("an empty bearer token never matches")
            found = None
            for principal, expected in self._tokens.items():
                if hmac.compare_digest(expected.encode(), value.encode()) and found is None:
                    found = principal
            if found is not None:
                return found
            raise AuthenticationError("unknown bearer token")
        raise AuthenticationError(
            f"unsupported Authorization scheme {scheme[:20]!r}; use Basic or Bearer"
        )


def require_principal(principal: str | None, action: str) -> str:
    if principal is None:
        raise AuthenticationError(
            f"{action} needs a credential: HTTP Basic (user = principal, password = token) "
            f"or `Authorization: Bearer <token>`"
        )
    return principal


def domain_of(name: str) -> str:
    return name.split(".", 1)[0]


def authorize_subject(principal: str | None, subject: str | None, action: str) -> str:
    """Admin writes anything; a domain writes subjects ``<domain>.…`` (None = global config)."""
    who = require_principal(
        principal, action if subject is None else f"{action} subject '{subject}'"
    )
    if who == ADMIN:
        return who
    if subject is None:
        raise PermissionDeniedError(f"principal '{who}' may not {action}: only admin may")
    if not subject.startswith(f"{who}."):
        raise PermissionDeniedError(
            f"principal '{who}' may not {action} subject '{subject}': a domain writes only "
            f"subjects named '{who}.…'"
        )
    return who


def authorize_product(principal: str | None, product_name: str, action: str) -> str:
    who = require_principal(principal, f"{action} product '{product_name}'")
    if who != ADMIN and domain_of(product_name) != who:
        raise PermissionDeniedError(
            f"principal '{who}' may not {action} product '{product_name}': it belongs to "
            f"domain '{domain_of(product_name)}'"
        )
    return who
