"""The README's tour stays complete: every top-level command is listed (settings: generated)."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_stream.cli.main import cli

README = Path(__file__).resolve().parents[3] / "README.md"


def tour() -> str:
    text = README.read_text()
    start = text.index("\n## Tour\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_command_is_in_the_cli_table() -> None:
    rows = [line for line in tour().splitlines() if line.startswith("| `mesh ")]
    listed = {name for row in rows for name in re.findall(r"^\| `mesh (\w+)", row)}
    missing = sorted(set(cli.commands) - listed)
    assert missing == [], f"add `mesh {missing}` to the CLI table of README.md's Tour"
    assert sorted(listed - set(cli.commands)) == [], "README.md's Tour lists unknown commands"
