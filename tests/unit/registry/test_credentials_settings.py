"""Open writes and credentials together are a contradiction the registry refuses to guess at."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from mesh_stream.errors import ConfigurationError
from mesh_stream.registry.service.server import credentials_from_settings
from mesh_stream.settings import MeshSettings


def test_open_writes_with_a_credentials_file_is_refused(tmp_path: Path) -> None:
    creds = tmp_path / "creds.yaml"
    creds.write_text("admin: s3cret\n")
    settings = MeshSettings(registry_open_writes=True, registry_credentials_file=creds)
    with pytest.raises(ConfigurationError) as raised:
        credentials_from_settings(settings)
    assert str(raised.value) == (
        "--open-writes (MESH_REGISTRY_OPEN_WRITES) lets everyone write, but credentials are "
        f"given too (--credentials / MESH_REGISTRY_CREDENTIALS_FILE={creds}); drop one of them"
    )


def test_open_writes_with_inline_credentials_is_refused() -> None:
    settings = MeshSettings(
        registry_open_writes=True,
        registry_credentials=SecretStr("admin:s3cret"),
        registry_credentials_file=None,
    )
    with pytest.raises(ConfigurationError, match=r"given too \(MESH_REGISTRY_CREDENTIALS\)"):
        credentials_from_settings(settings)


def test_open_writes_alone_means_no_credentials() -> None:
    settings = MeshSettings(
        registry_open_writes=True, registry_credentials=None, registry_credentials_file=None
    )
    assert credentials_from_settings(settings) is None


def test_serve_warns_of_short_tokens_naming_principals_never_tokens() -> None:
    """A 5-character token was served without a word; guessing it costs a request a try."""
    from mesh_stream.cli.registry import _check_credentials, short_tokens_warning

    long_token = "k" * 24
    settings = MeshSettings(
        registry_credentials=SecretStr(f"admin:short,orders:{long_token},billing:tiny1"),
        registry_credentials_file=None,
    )
    short = _check_credentials(settings)
    assert short == ["admin", "billing"]
    assert short_tokens_warning(short) == (
        "registry credentials: the token of admin, billing has fewer than 16 characters and "
        "may be guessed; put long random tokens in the credentials (file or "
        "MESH_REGISTRY_CREDENTIALS; `python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(24))'` makes one) and restart: these principals' tokens "
        "live only there"
    )
