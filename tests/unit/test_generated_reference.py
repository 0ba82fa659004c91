"""The reference pages of the docs are generated from the code: a stale one fails here."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct
from mesh_stream.governance.policies import BUILTIN_POLICIES
from mesh_stream.registry.error_codes import ERROR_TABLE
from mesh_stream.settings import MeshSettings
from tools import gen_reference
from tools.gen_reference import (
    ROOT,
    cli_page,
    descriptor_page,
    error_codes_page,
    policies_page,
    settings_page,
)


def test_generated_pages_are_current() -> None:
    """Checked in a fresh interpreter: click caches each command's help option on first use,
    so a test that ran a subcommand on its own would change the help this process renders."""
    check = subprocess.run(
        [sys.executable, "tools/gen_reference.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_mode_names_a_stale_page(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen_reference, "stale", lambda: [gen_reference.REFERENCE / "cli.md"])
    assert gen_reference.main(["--check"]) == 1
    assert "docs/reference/cli.md: stale, run `make reference`" in capsys.readouterr().out


def test_settings_page_lists_every_setting_and_hides_secret_defaults() -> None:
    page = settings_page()
    for name in MeshSettings.model_fields:
        assert f"| `MESH_{name.upper()}` |" in page
    assert "| `MESH_REGISTRY_URL` | string | `http://127.0.0.1:8081` |" in page
    assert "| `MESH_CACHE_DIR` | path | `~/.cache/mesh-stream` |" in page
    assert "| `MESH_KAFKA_SASL_PASSWORD` | secret string | unset (secret: never shown) |" in page


def test_a_secret_with_a_default_never_shows_it() -> None:
    field = copy.copy(MeshSettings.model_fields["registry_token"])
    field.default = SecretStr("s3cr3t-default")
    assert "s3cr3t" not in gen_reference._setting_default(field)


def test_error_codes_page_lists_every_code_with_its_status() -> None:
    page = error_codes_page()
    for status, code in set(ERROR_TABLE.values()):
        assert f"| {status} | {code} |" in page
    assert "| 404 | 40401 | `SubjectNotFoundError` | No subject by that name" in page


def test_policies_page_gives_every_policy_its_why_and_fix() -> None:
    page = policies_page()
    for name, policy in BUILTIN_POLICIES.items():
        section = page.split(f"\n## `{name}`\n", 1)[1].split("\n## ", 1)[0]
        assert " ".join(policy.why.split()) in section.replace("\\|", "|")
        assert "**fix**" in section
    assert "- `max` (integer, default `48`)" in page


def test_descriptor_page_lists_every_field_nested_ones_dotted() -> None:
    page = descriptor_page()
    for name, field in DataProduct.model_fields.items():
        assert f"| `{field.alias or name}` |" in page
    assert "| `slos.availability` | number | required |" in page
    assert "| `partitions` | integer | `3` |" in page
    assert "| `schema` | string | required |" in page
    rows = [row for row in page.splitlines() if row.startswith("| `")]
    undescribed = [row for row in rows if row.endswith("|  |")]
    assert undescribed == [], "give these DataProduct fields a description="


def test_cli_page_has_the_help_of_every_command() -> None:
    from mesh_stream.cli.main import cli

    page = cli_page()
    for name in cli.commands:
        assert f"\n## `mesh {name}`\n" in page
    assert "## `mesh broker start`" in page
    assert "Usage: mesh tail [OPTIONS] PRODUCT" in page
