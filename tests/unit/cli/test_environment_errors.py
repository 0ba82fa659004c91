"""Bad settings (MESH_* variables, credentials files) are named with where and what is wrong."""

from __future__ import annotations

from pathlib import Path

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
