"""The README's tour stays complete: every setting and every top-level command is listed."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_stream.cli.main import cli
from mesh_stream.settings import MeshSettings

README = Path(__file__).resolve().parents[3] / "README.md"


def tour() -> str:
    text = README.read_text()
    start = text.index("\n## Tour\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_setting_is_in_the_configuration_table() -> None:
    prefix = str(MeshSettings.model_config.get("env_prefix", ""))
    rows = [line for line in tour().splitlines() if line.startswith("| `MESH_")]
    listed = {name for row in rows for name in re.findall(r"`(MESH_\w+)`", row.split("|")[1])}
    expected = {f"{prefix}{field}".upper() for field in MeshSettings.model_fields}
    missing, stale = sorted(expected - listed), sorted(listed - expected)
    assert missing == [], f"add {missing} to the Configuration table of README.md's Tour"
    assert stale == [], f"{stale} in README.md's Tour are no MeshSettings fields any more"


def test_every_command_is_in_the_cli_table() -> None:
    rows = [line for line in tour().splitlines() if line.startswith("| `mesh ")]
    listed = {name for row in rows for name in re.findall(r"^\| `mesh (\w+)", row)}
    missing = sorted(set(cli.commands) - listed)
    assert missing == [], f"add `mesh {missing}` to the CLI table of README.md's Tour"
    assert sorted(listed - set(cli.commands)) == [], "README.md's Tour lists unknown commands"
