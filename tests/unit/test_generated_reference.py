"""Reference blocks in README.md are generated from the code: a stale one fails here."""

from __future__ import annotations

from tools.gen_reference import README, render, settings_table


def test_readme_generated_blocks_are_current() -> None:
    text = README.read_text()
    assert render(text) == text, "README.md's generated blocks are stale: run `make reference`"


def test_settings_table_lists_every_setting_with_its_default() -> None:
    table = settings_table()
    assert "| `MESH_REGISTRY_URL` | `http://127.0.0.1:8081` |" in table
    assert "| `MESH_KAFKA_SASL_PASSWORD` | unset |" in table
    assert "| `MESH_CACHE_DIR` | `~/.cache/mesh-stream` |" in table
