"""Regenerate the reference blocks of README.md from the code they mirror.

Each block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
``tests/unit/test_generated_reference.py`` fails when a block differs from what this script
writes, so a new setting cannot be forgotten. Run ``make reference`` after changing them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mesh_stream.settings import MeshSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, Path):
            home = str(Path.home())
            text = str(value)
            return f"`{'~' + text[len(home) :] if text.startswith(home) else text}`"
        return f"`{value}`"
    value = field.default
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def settings_table() -> str:
    """One row per MeshSettings field: variable, default, meaning (its description)."""
    prefix = str(MeshSettings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in MeshSettings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)


BLOCKS = {"settings": settings_table}


def render(text: str) -> str:
    """``text`` with every generated block rewritten."""
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- generated:{name} --> block")
        made = make()
        text = pattern.sub(lambda m, made=made: m.group(1) + made + "\n" + m.group(2), text)
    return text


def main() -> int:
    before = README.read_text()
    after = render(before)
    if after != before:
        README.write_text(after)
        print("README.md: generated blocks rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
