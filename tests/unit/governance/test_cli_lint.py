"""`mesh lint`: text and JSON output, exit status, policy listing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.errors import ProjectNotFoundError
from mesh_stream.governance import BUILTIN_POLICIES, lint_repository

MESH = str(Path(sys.executable).with_name("mesh"))


def test_text_output_names_file_line_field_policy_why_and_fix(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("partition-bounds")
    (violation,) = lint_repository(root).violations
    result = CliRunner().invoke(cli, ["lint", str(root)])
    assert result.exit_code == 1
    policy = BUILTIN_POLICIES[violation.policy]
    assert result.stdout.splitlines() == [
        f"{violation.file}:{violation.line}: error [{violation.policy}] {violation.field}",
        f"    {violation.message}",
        f"    why: {policy.why}",
        f"    fix: {policy.fix}",
    ]
    assert "1 error(s), 0 warning(s) in 3 product(s)" in result.stderr


def test_json_output(mesh_tree: Callable[[str], Path]) -> None:
    root = mesh_tree("documentation")
    report = lint_repository(root)
    result = CliRunner().invoke(cli, ["lint", str(root), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "root": str(root),
        "policies": "built-in defaults",
        "products": 3,
        "errors": 1,
        "warnings": 0,
        "violations": [v.to_dict() for v in report.violations],
    }


def test_clean_tree_exits_zero(mesh_tree: Callable[[str], Path]) -> None:
    result = CliRunner().invoke(cli, ["lint", str(mesh_tree("good")), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["violations"] == []


def test_warnings_alone_exit_zero(mesh_tree: Callable[[str], Path]) -> None:
    root = mesh_tree("partition-bounds")
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  partition-bounds:\n    severity: warning\n"
    )
    result = CliRunner().invoke(cli, ["lint", str(root)])
    assert result.exit_code == 0
    assert "warning [partition-bounds] partitions" in result.stdout
    assert "0 error(s), 1 warning(s)" in result.stderr


def test_policies_option_and_listing(mesh_tree: Callable[[str], Path], tmp_path: Path) -> None:
    root = mesh_tree("partition-bounds")
    policies = tmp_path / "loose.yaml"
    policies.write_text("policies:\n  partition-bounds:\n    severity: 'off'\n")
    assert CliRunner().invoke(cli, ["lint", str(root), "--policies", str(policies)]).exit_code == 0

    listing = CliRunner().invoke(cli, ["lint", str(root), "--list-policies"])
    assert listing.exit_code == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()[1:] if line[2] != " "]
    assert names == list(BUILTIN_POLICIES)


def test_json_output_of_an_unreadable_policy_file_is_still_json(
    mesh_tree: Callable[[str], Path],
) -> None:
    """`--json` printed nothing on stdout when the policy file was broken (h32)."""
    root = mesh_tree("good")
    (root / "mesh-policies.yaml").write_text("policies:\n  naming: [1\n")
    result = CliRunner().invoke(cli, ["lint", str(root), "--json"])
    assert result.exit_code != 0
    answer = json.loads(result.stdout)
    assert answer["violations"] == []
    assert answer["error"].startswith(f"{root / 'mesh-policies.yaml'}:3: not valid YAML")


def test_list_policies_with_json_prints_the_listing_as_json(
    mesh_tree: Callable[[str], Path],
) -> None:
    """--json with --list-policies used to print the text table: scripts got no JSON."""
    root = mesh_tree("good")
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  partition-bounds:\n    severity: warning\n    params: {max: 12}\n"
    )
    result = CliRunner().invoke(cli, ["lint", str(root), "--list-policies", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["policies_source"] == "mesh-policies.yaml"
    rows = {row["name"]: row for row in listing["policies"]}
    assert list(rows) == list(BUILTIN_POLICIES)
    assert rows["partition-bounds"] == {
        "name": "partition-bounds",
        "severity": "warning",
        "overridable": False,
        "configurable": True,
        "summary": BUILTIN_POLICIES["partition-bounds"].summary,
        "params": {"min": 1, "max": 12},
    }
    assert rows["slos-declared"]["overridable"] is True
    assert rows["schema-valid"]["configurable"] is False
    assert rows["schema-valid"]["severity"] == "error"
    assert rows["naming"]["params"] == {}


def test_list_policies_json_is_strict_json_with_an_unbounded_freshness(
    mesh_tree: Callable[[str], Path],
) -> None:
    """`max_freshness_seconds: .inf` (no maximum) came out as `Infinity`, which JSON lacks."""
    root = mesh_tree("good")
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  slos-declared:\n    severity: error\n"
        "    params: {max_freshness_seconds: .inf}\n"
    )
    result = CliRunner().invoke(cli, ["lint", str(root), "--list-policies", "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    listing = json.loads(result.stdout, parse_constant=refuse)
    rows = {row["name"]: row for row in listing["policies"]}
    assert rows["slos-declared"]["params"]["max_freshness_seconds"] is None


def test_list_policies_with_against_registry_is_a_usage_error(
    mesh_tree: Callable[[str], Path],
) -> None:
    """--list-policies lints nothing, so --against-registry was silently ignored."""
    root = mesh_tree("good")
    result = CliRunner().invoke(cli, ["lint", str(root), "--list-policies", "--against-registry"])
    assert result.exit_code == 2, result.output
    assert "policies from" not in result.stdout
    assert (
        "Error: --list-policies lists the policies and exits, it compares no schema: drop "
        "--against-registry (or --list-policies to lint against the registry)"
    ) in result.stderr


def test_console_script_reports_a_path_without_domains(tmp_path: Path) -> None:
    done = subprocess.run(
        [MESH, "lint", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {tmp_path}: no domains/ folder here; pass the repository root that holds "
        f"domains/ and schemas/ (mesh lint PATH)"
    )


def test_console_script_reports_a_broken_global_file(mesh_tree: Callable[[str], Path]) -> None:
    root = mesh_tree("good")
    (root / "mesh-policies.yaml").write_text("policies:\n  naming:\n    severity: loud\n")
    done = subprocess.run([MESH, "lint", str(root)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: {root / 'mesh-policies.yaml'}:3: policies.naming.severity: Input should be "
        "'error', 'warning' or 'off'"
    )


def test_every_option_has_help() -> None:
    result = CliRunner().invoke(cli, ["lint", "--help"])
    assert result.exit_code == 0
    for option in ("--json", "--policies", "--list-policies"):
        assert option in result.stdout


def test_without_mesh_yaml_around_lint_names_the_fixes(
    mesh_tree: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mesh_tree("key-field")
    monkeypatch.chdir(root / "schemas" / "shop")
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    result = CliRunner().invoke(cli, ["lint", "--json"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ProjectNotFoundError)
    assert "mesh init" in str(result.exception)
    assert "`mesh lint PATH`" in str(result.exception)  # lint has no --project
    assert "--project" not in str(result.exception)
    # Listing the policies needs no project: the built-in ones are in force here.
    listing = CliRunner().invoke(cli, ["lint", "--list-policies"])
    assert listing.exit_code == 0, listing.output
    assert listing.stdout.startswith("policies from built-in defaults:")


def test_default_path_is_the_nearest_folder_holding_mesh_yaml(
    mesh_tree: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mesh_tree("key-field")
    domains = sorted(folder.name for folder in (root / "domains").iterdir() if folder.is_dir())
    (root / "mesh.yaml").write_text(f"domains: [{', '.join(domains)}]\n")
    monkeypatch.chdir(root / "schemas" / "shop")
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    result = CliRunner().invoke(cli, ["lint", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["root"] == str(root)
    assert [v["policy"] for v in report["violations"]] == ["key-field"]


def test_list_policies_for_a_domain_shows_its_overrides_applied_and_named(
    mesh_tree: Callable[[str], Path],
) -> None:
    """`--list-policies` showed the global set only: a domain could not see what holds for
    it once its own overrides apply (h32)."""
    root = mesh_tree("good")
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  partition-bounds:\n    severity: error\n    overridable: true\n"
        "    params: {max: 12}\n"
    )
    (root / "domains" / "shop" / "policies.yaml").write_text(
        "overrides:\n  partition-bounds:\n    reason: a busy topic\n    params: {max: 24}\n"
        "  spelling:\n    reason: x\n"
    )
    argv = ["lint", str(root), "--list-policies", "--json"]
    shop = CliRunner().invoke(cli, [*argv, "--domain", "shop"])
    assert shop.exit_code == 0, shop.output
    rows = {row["name"]: row for row in json.loads(shop.stdout)["policies"]}
    assert json.loads(shop.stdout)["domain"] == "shop"
    assert rows["partition-bounds"]["params"] == {"min": 1, "max": 24}
    assert rows["partition-bounds"]["overridden_in"] == "domains/shop/policies.yaml"
    assert rows["naming"]["overridden_in"] is None
    assert "overrides.spelling: no such policy" in shop.stderr  # shown, not applied
    people = CliRunner().invoke(cli, [*argv, "--domain", "people"])
    rows = {row["name"]: row for row in json.loads(people.stdout)["policies"]}
    assert rows["partition-bounds"]["params"] == {"min": 1, "max": 12}
    text = CliRunner().invoke(cli, ["lint", str(root), "--list-policies", "--domain", "shop"])
    assert text.stdout.startswith(
        "policies from mesh-policies.yaml with the overrides of domain shop:\n"
    )
    assert "overridden in domains/shop/policies.yaml" in text.stdout
    unknown = CliRunner().invoke(cli, [*argv, "--domain", "shipping"])
    assert unknown.exit_code == 2
    assert "domain 'shipping' is not one of the project's domains" in unknown.stderr
    alone = CliRunner().invoke(cli, ["lint", str(root), "--domain", "shop"])
    assert alone.exit_code == 2
    assert "--domain only chooses whose overrides --list-policies shows" in alone.stderr


def test_a_products_folder_mesh_yaml_misnames_is_blamed_on_mesh_yaml(tmp_path: Path) -> None:
    """`products: domain` (for domains) said "pass the repository root" (h34)."""
    assert CliRunner().invoke(cli, ["init", "shipping", str(tmp_path / "repo")]).exit_code == 0
    config = tmp_path / "repo" / "mesh.yaml"
    config.write_text(config.read_text().replace("products: domains ", "products: domain  "))
    result = CliRunner().invoke(cli, ["lint", str(tmp_path / "repo")])
    assert result.exit_code == 1  # the entry point prints the exception as one `error:` line
    line = next(
        n for n, text in enumerate(config.read_text().splitlines(), 1) if "products:" in text
    )
    assert str(result.exception).startswith(
        f"{config}:{line}: products: folder 'domain' does not exist under"
    )


def test_a_whole_descriptor_problem_is_said_once_in_our_words(tmp_path: Path) -> None:
    """`[descriptor-valid] (descriptor): (descriptor): Value error, name ...` (h34)."""
    assert CliRunner().invoke(cli, ["init", "shipping", str(tmp_path / "repo")]).exit_code == 0
    descriptor = tmp_path / "repo/domains/shipping/products/example-event.yaml"
    descriptor.write_text(
        descriptor.read_text().replace("name: shipping.example-event", "name: orders.x")
    )
    result = CliRunner().invoke(cli, ["lint", str(tmp_path / "repo"), "--json"])
    [violation] = json.loads(result.stdout)["violations"]
    assert violation["field"] is None
    assert violation["message"].startswith("name 'orders.x' must start with its domain 'shipping'")
