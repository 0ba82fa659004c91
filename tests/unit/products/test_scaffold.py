"""`mesh init`: the scaffolded repository is a project that lints clean, nothing else."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli, run
from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.repository import lint_repository
from mesh_stream.project import load_project
from mesh_stream.scaffold import LAYOUT, PLACEHOLDER, render, scaffold


def test_init_writes_a_project_that_lints_clean_with_docs_on_every_field(tmp_path: Path) -> None:
    made = scaffold("order-fulfilment", tmp_path / "repo")

    project = load_project(made.root)
    assert project.domains == ("order-fulfilment",)
    [product] = project.descriptors()
    assert product.name == "order-fulfilment.example-event"
    assert product.kind.value == "source-aligned"
    schema = json.loads(project.schema_path(product).read_text())
    assert schema["namespace"] == "com.example.order_fulfilment"
    assert all(field.get("doc") for field in schema["fields"])
    report = lint_repository(made.root)
    assert (report.products, report.errors, report.warnings) == (1, 0, 0), report.violations


def test_init_writes_every_template_with_no_placeholder_left(tmp_path: Path) -> None:
    made = scaffold("inventory", tmp_path)

    assert set(made.files) == {d.format(domain="inventory") for d in LAYOUT.values()}
    for name in made.files:
        text = (tmp_path / name).read_text()
        assert PLACEHOLDER.search(text) is None, name
        if name.endswith(".py"):
            py_compile.compile(str(tmp_path / name), doraise=True)
    workflow = yaml.safe_load((tmp_path / ".github/workflows/mesh.yml").read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["products"]["steps"]]
    assert "mesh lint" in steps
    assert "mesh products plan" in steps
    assert "${{ vars.MESH_REGISTRY_URL }}" in (tmp_path / ".github/workflows/mesh.yml").read_text()
    # the lint sees the mesh's registry too: other domains' inputs are checked there
    [lint] = [step for step in workflow["jobs"]["products"]["steps"] if step.get("name") == "lint"]
    assert "vars.MESH_REGISTRY_URL" in lint["env"]["MESH_REGISTRY_URL"]


def test_the_scaffolded_test_runs_mesh_lint_and_fails_when_lint_fails(tmp_path: Path) -> None:
    scaffold("inventory", tmp_path)
    test_file = (tmp_path / "tests/test_lint.py").read_text()
    assert 'run(["lint", str(PROJECT)])' in test_file
    assert run(["lint", str(tmp_path)]) == 0
    descriptor = tmp_path / "domains/inventory/products/example-event.yaml"
    descriptor.write_text(descriptor.read_text().replace("classification: internal\n", ""))
    assert run(["lint", str(tmp_path)]) == 1


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(ConfigurationError, match=r"is not empty \(notes.txt\).*--force"):
        scaffold("inventory", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    scaffold("inventory", tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "mesh.yaml").is_file()


def test_init_forced_over_a_symlink_replaces_the_link_not_what_it_points_at(
    tmp_path: Path,
) -> None:
    """`mesh init --force` wrote README.md through a symlink there (an export campaign)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "repo"
    target.mkdir()
    (target / "README.md").symlink_to(victim)
    scaffold("inventory", target, force=True)
    assert victim.read_text() == "keep me"
    assert not (target / "README.md").is_symlink()
    assert "inventory" in (target / "README.md").read_text()


@pytest.mark.parametrize("kind", ["loop", "broken"])
def test_init_into_a_link_to_nothing_says_what_the_link_is(tmp_path: Path, kind: str) -> None:
    """`mesh init` into a symlink loop or a broken link said "file exists" (a campaign)."""
    link = tmp_path / "repo"
    link.symlink_to(link if kind == "loop" else tmp_path / "nowhere")
    with pytest.raises(ConfigurationError) as refused:
        scaffold("orders", link)
    said = (
        "a symlink loop"
        if kind == "loop"
        else f"a broken symlink (to {tmp_path / 'nowhere'}, which does not exist)"
    )
    assert str(refused.value) == f"{link} is {said}; pick another DIR or remove the link"


@pytest.mark.parametrize("domain", ["Inventory", "1st", "in_ventory", "a" * 65, "", "inv.x", "a-"])
def test_init_refuses_a_bad_domain_in_one_line(tmp_path: Path, domain: str) -> None:
    result = CliRunner().invoke(cli, ["init", domain, str(tmp_path / "x")])

    assert result.exit_code == 2
    message = [line for line in result.output.splitlines() if "Invalid value" in line]
    assert len(message) == 1
    assert "DOMAIN" in message[0]
    assert not (tmp_path / "x").exists()


def test_mesh_init_defaults_to_a_folder_named_after_the_domain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", "inventory"])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "inventory" / "mesh.yaml").is_file()
    assert "mesh products apply" in result.output


def test_render_reads_templates_as_package_data() -> None:
    assert "name: inventory.example-event" in render("descriptor.yaml.tmpl", "inventory")


def test_apply_without_a_registry_credential_is_one_line_before_anything_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scaffold("inventory", tmp_path)
    monkeypatch.delenv("MESH_REGISTRY_PRINCIPAL", raising=False)
    monkeypatch.delenv("MESH_REGISTRY_TOKEN", raising=False)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "127.0.0.1:1")

    assert run(["products", "apply", str(tmp_path)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: mesh products apply writes as the products' domain")
    assert "MESH_REGISTRY_PRINCIPAL" in line


def test_the_scaffolded_publisher_says_a_mesh_error_in_one_line(tmp_path: Path) -> None:
    """Without a registry it ended in a 40-line traceback (processor campaign); the example
    every team starts from now shows the one line mesh-stream's errors are written for."""
    scaffold("inventory", tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MESH_")} | {
        "MESH_REGISTRY_URL": "http://127.0.0.1:1",
        "MESH_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(  # run from outside the project: it finds its own (h34)
        [sys.executable, str(tmp_path / "domains/inventory/publisher.py")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: "), line
    assert "mesh.yaml" not in line  # the registry's error, not "no project here"


def test_the_scaffolded_processor_totals_each_item_once(tmp_path: Path) -> None:
    """The template is a declaration the reference recomputation runs: a retried copy of an
    event counts once, and each item's record carries its total and newest event time."""
    import importlib.util
    import uuid

    from mesh_stream.processing.reference import InputRecord, recompute

    made = scaffold("inventory", tmp_path)
    path = made.root / "domains/inventory/processors/example_processor.py"
    spec = importlib.util.spec_from_file_location("scaffolded_processor", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    processor = module.PROCESSOR
    assert processor.output == "inventory.item-totals"
    assert [i.product for i in processor.inputs] == ["inventory.example-event"]

    def event(item: str, quantity: int, at: int, event_id: str | None = None) -> InputRecord:
        record = {
            "event_id": event_id or str(uuid.uuid4()),
            "item_id": item,
            "action": "updated",
            "quantity": quantity,
            "occurred_at": at,
        }
        return InputRecord("inventory.example-event", record, at + 5)

    retried = event("item-1", 4, 2_000)
    records = [event("item-1", 3, 1_000), retried, retried, event("item-2", 10, 1_500)]
    assert recompute(processor, records) == {
        "item-1": {"item_id": "item-1", "total_quantity": 7, "updated_at": 2_000},
        "item-2": {"item_id": "item-2", "total_quantity": 10, "updated_at": 1_500},
    }


def test_the_scaffolded_processor_shows_the_verify_command_that_finds_it(tmp_path: Path) -> None:
    """Step 4 of its docstring is a command to copy: its module is the scaffolded file, and
    `mesh verify`'s loader finds the declaration there from the project folder."""
    import re
    import subprocess
    import sys

    made = scaffold("inventory", tmp_path)
    text = (made.root / "domains/inventory/processors/example_processor.py").read_text()
    command = re.search(r"``mesh verify (\S+) --records \d+ --kills \d+``", text)
    assert command is not None, text
    module = command.group(1)
    assert module == "domains.inventory.processors.example_processor"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, '.'); from mesh_stream.verify import load_processor;"
            f" print(load_processor({module!r}).output)",
        ],
        cwd=made.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.stdout.strip() == "inventory.item-totals", loaded.stderr


def test_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError) as caught:
        scaffold("shop", blocker / "project")
    assert str(caught.value) == (
        f"cannot write the new project into {blocker / 'project'}: "
        f"{blocker / 'project'}: not a directory; pick a folder that can be created and written"
    )


def test_init_says_where_the_token_of_its_next_steps_comes_from(tmp_path: Path) -> None:
    """The next steps used a MESH_REGISTRY_TOKEN=... nothing said how to get (a campaign)."""
    from click.testing import CliRunner

    from mesh_stream.cli.main import cli

    result = CliRunner().invoke(cli, ["init", "inventory", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    steps = result.stdout.split("next:\n", 1)[1].splitlines()
    hint = "  # the token: a registry admin runs `mesh registry credentials add inventory` once"
    assert steps[steps.index(hint) + 1].startswith(
        "  MESH_REGISTRY_PRINCIPAL=inventory MESH_REGISTRY_TOKEN=... mesh products apply"
    )


def test_the_scaffolded_ci_installs_the_mesh_stream_that_made_it(tmp_path: Path) -> None:
    """`pip install mesh-stream` unpinned failed where no index serves it, and would take
    any package of that name an index served later (h34)."""
    from importlib.metadata import version

    workflow = yaml.safe_load(render("workflow.yml.tmpl", "shipping"))
    installs = [
        s["run"] for s in workflow["jobs"]["products"]["steps"] if "pip" in s.get("run", "")
    ]
    assert installs == [
        "pip install ${{ vars.MESH_STREAM_PIP_ARGS }} "
        f"'mesh-stream=={version('mesh-stream')}' pytest"
    ]


def test_init_inside_a_project_warns_that_the_new_one_is_nested(tmp_path: Path) -> None:
    """`mesh init shipping repo/sub` made a project inside another without a word (h34)."""
    assert CliRunner().invoke(cli, ["init", "orders", str(tmp_path / "repo")]).exit_code == 0
    nested = CliRunner().invoke(cli, ["init", "shipping", str(tmp_path / "repo" / "sub")])
    assert nested.exit_code == 0, nested.output
    assert f"warning: {tmp_path / 'repo' / 'sub'} is inside the project at {tmp_path / 'repo'}" in (
        nested.stderr
    )
    alone = CliRunner().invoke(cli, ["init", "payments", str(tmp_path / "payments")])
    assert "warning" not in alone.stderr


def test_init_forced_keeps_another_domains_project_and_names_the_real_file_it_cannot_replace(
    tmp_path: Path,
) -> None:
    """A campaign (h49): `--force` over another domain's project replaced its mesh.yaml,
    dropping that domain; a folder where a template file goes was named by the temporary file
    beside it, and the files written before it only counted."""
    scaffold("shop", tmp_path / "shop")
    with pytest.raises(ConfigurationError) as other:
        scaffold("inventory", tmp_path / "shop", force=True)
    assert str(other.value).startswith(
        f"{tmp_path / 'shop' / 'mesh.yaml'} is the project of domain(s) shop; `mesh init` "
        f"would write a new mesh.yaml naming only inventory over it"
    )
    assert load_project(tmp_path / "shop").domains == ("shop",)
    scaffold("shop", tmp_path / "shop", force=True)  # its own domain again: written over
    blocked = tmp_path / "blocked"
    (blocked / "mesh.yaml").mkdir(parents=True)
    with pytest.raises(ConfigurationError) as caught:
        scaffold("shop", blocked, force=True)
    first = next(iter(LAYOUT.values())).format(domain="shop")
    assert first == "mesh.yaml"  # the first file written is the one in the way
    assert str(caught.value) == (
        f"cannot write the new project into {blocked}: {blocked / 'mesh.yaml'}: is a "
        f"directory; pick a folder that can be created and written"
    )
    later = tmp_path / "later"
    layout = [name.format(domain="shop") for name in LAYOUT.values()]
    (later / layout[2]).mkdir(parents=True)
    with pytest.raises(ConfigurationError) as caught:
        scaffold("shop", later, force=True)
    assert str(caught.value).endswith(
        f"{later / layout[2]}: is a directory; pick a folder that can be created and written "
        f"(written before it: {layout[0]}, {layout[1]})"
    )


def test_init_refuses_an_empty_dir_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mesh init shop ""` took the current folder (a campaign, h49)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", "shop", ""])
    assert result.exit_code == 2
    assert "DIR is empty; name a folder, or leave DIR out for ./DOMAIN" in result.output
    assert list(tmp_path.iterdir()) == []
