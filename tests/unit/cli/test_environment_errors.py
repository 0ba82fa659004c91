"""A bad MESH_* variable is named with its value and what is expected, one line each."""

from __future__ import annotations

from click.testing import CliRunner

from mesh_stream.cli.main import cli


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
