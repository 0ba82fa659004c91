"""Bad settings (MESH_* variables, credentials files) are named with where and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.errors import ConfigurationError


def test_each_bad_variable_gets_one_line_naming_it() -> None:
    result = CliRunner().invoke(
        cli,
        ["broker", "status"],
        env={"MESH_BROKER_PORT": "abc", "MESH_BROKER_START_TIMEOUT": "-1"},
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-3:] == [
        "Error: invalid MESH_* environment setting:",
        "  MESH_BROKER_PORT='abc': Input should be a valid integer, unable to parse string as "
        "an integer",
        "  MESH_BROKER_START_TIMEOUT='-1': Input should be greater than 0",
    ]
    assert "errors.pydantic.dev" not in result.stderr


def test_a_broken_credentials_file_is_named_with_its_line(tmp_path: Path) -> None:
    creds = tmp_path / "creds.yaml"
    creds.write_text("admin: admin-secret\norders: [unclosed\n")
    result = CliRunner().invoke(
        cli, ["registry", "serve", "--port", "0", "--credentials", str(creds)]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{creds}:3: registry credentials are not valid YAML: expected ',' or ']', but got "
        "'<stream end>'; the file maps each principal to its token, e.g. `admin: s3cret`"
    )


def test_a_broken_json_credentials_file_is_named_with_line_and_column(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text('{"admin": "admin-secret",\n "orders": }\n')
    result = CliRunner().invoke(
        cli, ["registry", "serve", "--port", "0", "--credentials", str(creds)]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{creds}:2: registry credentials are not valid JSON (column 12): Expecting value"
    )


def test_a_huge_bad_value_is_shortened_and_a_bad_password_never_shown() -> None:
    result = CliRunner().invoke(
        cli,
        ["broker", "status"],
        env={"MESH_BROKER_PORT": "9" * 100_000, "MESH_KAFKA_SASL_MECHANISM": "GSSAPI"},
    )
    assert result.exit_code == 2
    port_line = next(line for line in result.stderr.splitlines() if "MESH_BROKER_PORT" in line)
    assert "... (100002 characters)" in port_line
    assert len(port_line) < 300


def test_a_credentials_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from mesh_stream.registry.service.auth import Credentials

    creds = tmp_path / "creds.yaml"
    creds.write_bytes(b"orders: \xff\xfe\n")
    with pytest.raises(ConfigurationError) as caught:
        Credentials.load(creds)
    assert str(caught.value) == (
        f"{creds}: registry credentials are not UTF-8 text (byte 8); fix "
        "MESH_REGISTRY_CREDENTIALS_FILE or --credentials"
    )
