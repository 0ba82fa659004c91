"""Finding and loading a project (a folder with mesh.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.errors import (
    ConfigurationError,
    DescriptorError,
    ProductNotFoundError,
    ProjectNotFoundError,
)
from mesh_stream.project import find_project, load_project, locate_project, resolve_product
from mesh_stream.settings import MeshSettings

DESCRIPTOR = """\
name: {domain}.things
domain: {domain}
kind: source-aligned
description: Things.
owner: {{team: t, contact: t@example.com}}
schema: schemas/{domain}/things.avsc
slos: {{freshness_seconds: 5, availability: 99}}
classification: internal
"""


@pytest.fixture(autouse=True)
def no_project_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)


def make_project(root: Path, config: str = "domains: [shop]\n", domain: str = "shop") -> Path:
    (root / "domains" / domain / "products").mkdir(parents=True)
    (root / "domains" / domain / "products" / "things.yaml").write_text(
        DESCRIPTOR.format(domain=domain)
    )
    (root / "mesh.yaml").write_text(config)
    return root


def test_the_flag_wins_over_the_setting_and_the_working_directory(tmp_path: Path) -> None:
    flagged = make_project(tmp_path / "flagged")
    configured = make_project(tmp_path / "configured")
    around = make_project(tmp_path / "around")
    settings = MeshSettings(project_root=configured)

    assert find_project(flagged, settings, cwd=around).root == flagged.resolve()
    assert find_project(None, settings, cwd=around).root == configured.resolve()
    assert find_project(None, MeshSettings(), cwd=around).root == around.resolve()


def test_the_setting_is_read_from_mesh_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p")
    monkeypatch.setenv("MESH_PROJECT_ROOT", str(root))
    assert find_project(None, MeshSettings(), cwd=tmp_path).root == root.resolve()


def test_the_nearest_mesh_yaml_upwards_is_the_project(tmp_path: Path) -> None:
    outer = make_project(tmp_path / "outer")
    inner = make_project(outer / "nested", config="domains: [depot]\n", domain="depot")
    deep = inner / "domains" / "depot" / "products"

    project = find_project(None, MeshSettings(), cwd=deep)

    assert project.root == inner.resolve()
    assert project.domains == ("depot",)
    assert [p.name for p in project.descriptors()] == ["depot.things"]
    assert project.schema_path(project.descriptors()[0]) == (
        inner.resolve() / "schemas" / "depot" / "things.avsc"
    )


def test_no_mesh_yaml_anywhere_names_where_it_looked_and_the_fixes(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError) as caught:
        find_project(None, MeshSettings(), cwd=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"no mesh.yaml in {tmp_path.resolve()} or any folder above it" in message
    assert "mesh init" in message
    assert "--project" in message
    assert "MESH_PROJECT_ROOT" in message
    assert isinstance(caught.value, ConfigurationError)


@pytest.mark.parametrize(
    ("explicit", "source"), [(True, "--project"), (False, "MESH_PROJECT_ROOT")]
)
def test_a_named_root_without_mesh_yaml_names_the_flag_or_setting(
    tmp_path: Path, explicit: bool, source: str
) -> None:
    settings = MeshSettings(project_root=None if explicit else tmp_path)
    with pytest.raises(ProjectNotFoundError, match=f"^{source}={tmp_path}: no mesh.yaml there"):
        find_project(tmp_path if explicit else None, settings, cwd=tmp_path)


def test_an_unknown_key_is_refused_with_its_line(tmp_path: Path) -> None:
    make_project(tmp_path, config="domains: [shop]\n\nschema: schemas\n")
    with pytest.raises(ConfigurationError) as caught:
        load_project(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path.resolve()}/mesh.yaml:3: schema: not a field of mesh.yaml; did you mean schemas?"
    )


@pytest.mark.parametrize(
    ("config", "line", "field"),
    [
        ("domains: [shop]\nproducts: ../elsewhere\n", 2, "products"),
        ("domains: [Shop]\n", 1, "domains"),
        ("name: x\nrunnables: 'not a module'\n", 2, "runnables"),
        ("domains: shop\n", 1, "domains"),
    ],
)
def test_bad_values_name_file_line_and_field(
    tmp_path: Path, config: str, line: int, field: str
) -> None:
    make_project(tmp_path, config=config)
    with pytest.raises(ConfigurationError, match=rf"mesh\.yaml:{line}: {field}: "):
        load_project(tmp_path)


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        ("domains: shop\n", "the text 'shop'"),
        ("domains: 5\n", "the number 5"),
        ("domains: {shop: 1}\n", "a mapping (`key: value` lines)"),
        (f"domains: {'x' * 50}\n", f"the text '{'x' * 40}'..."),
    ],
)
def test_a_list_given_as_one_value_is_said_in_yaml_terms(
    tmp_path: Path, config: str, shown: str
) -> None:
    """pydantic said "Input should be a valid tuple" (a campaign)."""
    make_project(tmp_path, config=config)
    with pytest.raises(ConfigurationError) as refused:
        load_project(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / 'mesh.yaml'}:1: domains: must be a list (`[a, b]`, or one `- item` per "
        f"line), not {shown}"
    )


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    make_project(tmp_path, config="domains: [shop\nproducts: x\n")
    with pytest.raises(ConfigurationError, match=r"mesh\.yaml:\d+: not valid YAML"):
        load_project(tmp_path)


def test_an_empty_mesh_yaml_takes_the_defaults(tmp_path: Path) -> None:
    make_project(tmp_path, config="")
    project = load_project(tmp_path)
    assert project.domains == ("shop",)  # the folders under domains/ holding products/
    assert project.descriptors_dir == tmp_path.resolve() / "domains"
    assert project.schemas_dir == tmp_path.resolve() / "schemas"
    assert project.policies_file == tmp_path.resolve() / "mesh-policies.yaml"
    assert project.runnables is None


def test_a_descriptor_of_a_domain_the_project_does_not_own_is_refused(tmp_path: Path) -> None:
    make_project(tmp_path, config="domains: [depot]\n")
    with pytest.raises(DescriptorError, match=r"domain 'shop' is not one of this project's"):
        load_project(tmp_path).descriptors()


def test_the_sample_mesh_is_a_project(monkeypatch: pytest.MonkeyPatch) -> None:
    repository = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repository / "domains" / "orders")
    project = find_project(None, MeshSettings())
    assert project.root == repository
    assert project.domains == ("analytics", "customers", "orders", "payments", "shipping")
    assert project.runnables == "domains.runnables"
    assert all(project.schema_path(p).is_file() for p in project.descriptors())


class Catalog:
    """The registry's product lookup (a ProductSource), over a dict of documents."""

    url = "http://registry.test"

    def __init__(self, *documents: dict[str, Any]) -> None:
        self.documents = {d["name"]: d for d in documents}

    def get_product(self, name: str) -> dict[str, Any]:
        if name not in self.documents:
            raise ProductNotFoundError(f"no {name}", status=404, error_code=40404)
        return self.documents[name]


def registered(domain: str, description: str) -> dict[str, Any]:
    document = yaml.safe_load(DESCRIPTOR.format(domain=domain))
    return {**document, "description": description, "registered_at": "2026-12-01T00:00:00Z"}


def test_the_projects_own_descriptor_wins_and_the_rest_comes_from_the_registry(
    tmp_path: Path,
) -> None:
    project = load_project(make_project(tmp_path))
    catalog = Catalog(registered("shop", "Registered."), registered("depot", "Other domain."))

    own = resolve_product("shop.things", project=project, registry=catalog)
    other = resolve_product("depot.things", project=project, registry=catalog)

    assert own.description == "Things."  # the local YAML, not the registry's copy
    assert other.description == "Other domain."  # no YAML of depot here: the registry's
    assert resolve_product("shop.things", project=None, registry=catalog).description == (
        "Registered."
    )
    with pytest.raises(ProductNotFoundError, match=r"register it there first"):
        resolve_product("depot.nothing", project=project, registry=catalog)


def test_locate_project_is_none_only_when_nothing_was_named_and_nothing_is_around(
    tmp_path: Path,
) -> None:
    assert locate_project(None, MeshSettings(), cwd=tmp_path) is None
    with pytest.raises(ProjectNotFoundError, match=r"^--project="):
        locate_project(tmp_path, MeshSettings(), cwd=tmp_path)
    with pytest.raises(ProjectNotFoundError, match=r"^MESH_PROJECT_ROOT="):
        locate_project(None, MeshSettings(project_root=tmp_path), cwd=tmp_path)
    project = locate_project(None, MeshSettings(), cwd=make_project(tmp_path / "p"))
    assert project is not None
    assert project.root == (tmp_path / "p").resolve()


def test_the_old_root_flag_reads_a_folder_without_mesh_yaml_with_the_defaults(
    tmp_path: Path,
) -> None:
    make_project(tmp_path)
    (tmp_path / "mesh.yaml").unlink()
    with pytest.raises(ProjectNotFoundError):
        load_project(tmp_path)
    project = load_project(tmp_path, defaults_without_file=True)
    assert project.domains == ("shop",)
    assert [p.name for p in project.descriptors()] == ["shop.things"]


# -- hostile mesh.yaml and roots: each one line naming the file or setting, never a traceback


def _one_line_refusal(error: type[Exception], call: Any) -> str:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"- shop\n- depot\n", r"mesh\.yaml: mesh\.yaml must be a YAML mapping of fields$"),
        (b"\xfe\x00garbage", r"mesh\.yaml: cannot read: not UTF-8 text \(byte 0xfe at offset 0\)"),
        (
            "name: x\n".encode("utf-16"),
            r"mesh\.yaml: cannot read: UTF-16 text \(it begins with a UTF-16 byte-order mark\), "
            r"not UTF-8; save it as UTF-8$",
        ),
        (b"a: " + b"[" * 50_000 + b"]" * 50_000, r"mesh\.yaml: not valid YAML: nested too deep"),
        (b"name: !!python/object/apply:os.system [x]\n", r"mesh\.yaml:1: not valid YAML: "),
        (b"domains: [shop]\nname: a\nname: b\n", r"mesh\.yaml:3: name: given twice \(first on "),
        (b"products: ~/domains\n", r"mesh\.yaml:1: products: .*without `\.\.`"),
        (b'schemas: "sch\\0emas"\n', r"mesh\.yaml:1: schemas: .*without `\.\.`"),
        (b"products: /etc\n", r"mesh\.yaml:1: products: "),
        (b"domains: [shop, shop]\n", r"mesh\.yaml:1: domains: .*listed twice"),
        (b"domains: ['../x']\n", r"mesh\.yaml:1: domains: .*not a domain name"),
        (b"domains: [orders, admin]\n", r"mesh\.yaml:1: domains: .*'admin' is the registry"),
        (b"domains: [" + b"a" * 65 + b"]\n", r"mesh\.yaml:1: domains: .*longer than 64"),
    ],
    ids=[
        "list",
        "binary",
        "utf16",
        "deep",
        "python-tag",
        "repeated-key",
        "home",
        "nul",
        "absolute",
        "domain-twice",
        "domain-path",
        "domain-admin",
        "domain-too-long",
    ],
)
def test_a_hostile_mesh_yaml_is_one_line_naming_the_file(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "mesh.yaml").write_bytes(content)
    message = _one_line_refusal(ConfigurationError, lambda: load_project(tmp_path))
    assert message.startswith(str(tmp_path.resolve() / "mesh.yaml"))
    assert __import__("re").search(expected, message), message


def test_a_huge_mesh_yaml_is_refused_before_yaml_reads_it(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text("name: x\n# " + "a" * 10_000_000 + "\n")
    message = _one_line_refusal(ConfigurationError, lambda: load_project(tmp_path))
    assert message == (
        f"{tmp_path.resolve()}/mesh.yaml: larger than 1024 KiB, which no mesh.yaml needs; "
        f"it should name only the domains and folders"
    )


def test_an_anchor_bomb_is_refused_quickly_in_few_lines(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)
    ]
    (tmp_path / "mesh.yaml").write_text("\n".join([*levels, "domains: *i"]) + "\n")
    with pytest.raises(ConfigurationError) as caught:
        load_project(tmp_path)
    # 9**9 strings were never built: one line per top-level problem, nothing expanded.
    assert len(str(caught.value)) < 3000
    assert "a: not a field of mesh.yaml (its fields: " in str(caught.value)


def test_a_mesh_yaml_that_is_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").mkdir()
    for call in (lambda: load_project(tmp_path), lambda: find_project(tmp_path, MeshSettings())):
        message = _one_line_refusal(ConfigurationError, call)
        assert message.endswith(
            "mesh.yaml is a folder; the project file must be a YAML file "
            "named mesh.yaml (rename the folder)"
        )


def test_project_pointing_at_the_file_itself_names_its_folder(tmp_path: Path) -> None:
    make_project(tmp_path)
    message = _one_line_refusal(
        ProjectNotFoundError, lambda: find_project(tmp_path / "mesh.yaml", MeshSettings())
    )
    assert message == (
        f"--project={tmp_path}/mesh.yaml is the project file itself; point --project at its "
        f"folder {tmp_path.resolve()}"
    )


def test_a_relative_setting_names_the_folder_it_resolved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = _one_line_refusal(
        ProjectNotFoundError,
        lambda: find_project(None, MeshSettings(project_root=Path("rel/x"))),
    )
    assert message.startswith(
        f"MESH_PROJECT_ROOT=rel/x (relative to the working directory: {tmp_path.resolve()}/rel/x)"
        ": no mesh.yaml there"
    )


def test_an_empty_project_root_setting_means_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p")
    (root / "deep" / "er").mkdir(parents=True)
    monkeypatch.setenv("MESH_PROJECT_ROOT", "")
    settings = MeshSettings()
    assert settings.project_root is None
    assert find_project(None, settings, cwd=root / "deep" / "er").root == root.resolve()


@pytest.mark.parametrize(
    ("named", "problem"),
    [
        (Path("a" * 5000), "no mesh.yaml there"),
        (Path("a\x00b"), "a NUL character in the name"),
    ],
    ids=["too-long", "nul"],
)
@pytest.mark.parametrize("explicit", [True, False], ids=["flag", "setting"])
def test_an_unusable_root_name_is_one_line(named: Path, problem: str, explicit: bool) -> None:
    settings = MeshSettings(project_root=None if explicit else named)
    message = _one_line_refusal(
        ProjectNotFoundError, lambda: find_project(named if explicit else None, settings)
    )
    assert message.startswith("--project" if explicit else "MESH_PROJECT_ROOT")
    assert problem in message
    assert len(message) < 800  # the 5000-character name is cut short


def test_a_symlink_loop_as_working_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for call in (
        lambda: find_project(None, MeshSettings(), cwd=tmp_path / "loop"),
        lambda: locate_project(None, MeshSettings(), cwd=tmp_path / "loop"),
        lambda: find_project(tmp_path / "loop", MeshSettings()),
    ):
        assert "(a symlink loop)" in _one_line_refusal(ProjectNotFoundError, call)


def test_a_loop_of_folders_above_still_finds_the_project(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    (root / "a").mkdir()
    (root / "a" / "back").symlink_to(root / "a")
    assert find_project(None, MeshSettings(), cwd=root / "a" / "back" / "back").root == (
        root.resolve()
    )


def test_a_deleted_working_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    message = _one_line_refusal(ProjectNotFoundError, lambda: find_project(None, MeshSettings()))
    assert message.startswith("the working directory is gone")
    assert locate_project is not None
    with pytest.raises(ProjectNotFoundError, match="working directory is gone"):
        locate_project(None, MeshSettings())


def test_control_characters_in_a_named_root_are_shown_escaped(tmp_path: Path) -> None:
    named = tmp_path / "a\x1b[2Jb"
    message = _one_line_refusal(ProjectNotFoundError, lambda: find_project(named, MeshSettings()))
    assert "\x1b" not in message
    assert "a\\x1b[2Jb: no mesh.yaml there" in message


def test_mesh_init_refuses_the_domains_mesh_yaml_would_refuse(tmp_path: Path) -> None:
    from mesh_stream.scaffold import domain_problem

    for domain in ("admin", "registry", "monitor", "mesh", "mesh-orders", "a" * 65, "Shop"):
        assert domain_problem(domain) is not None, domain
        (tmp_path / "mesh.yaml").write_text(f"domains: [{domain}]\n")
        with pytest.raises(ConfigurationError, match=r"mesh\.yaml:1: domains: "):
            load_project(tmp_path)


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("monitor", "'monitor' is the Kafka user of the platform's monitor, not a domain"),
        ("mesh-orders", "'mesh-orders' would own the platform's own names"),
    ],
)
def test_a_domain_folder_with_a_name_the_platform_keeps_is_refused(
    tmp_path: Path, folder: str, reason: str
) -> None:
    (tmp_path / "mesh.yaml").write_text("name: shop\n")
    (tmp_path / "domains" / folder / "products").mkdir(parents=True)
    with pytest.raises(ConfigurationError) as refused:
        load_project(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'domains' / folder}: the folder names a domain: ")
    assert reason in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("policies: mesh-polices.yaml\n", "policies: 'mesh-polices.yaml' does not exist; "),
        ("policies: domains\n", "policies: 'domains' is a folder; name the policy file"),
        ("products: mesh.yaml\n", "products: 'mesh.yaml' is a file; name the folder"),
        ("schemas: mesh.yaml\n", "schemas: 'mesh.yaml' is a file; name the folder"),
    ],
    ids=["policies-typo", "policies-folder", "products-file", "schemas-file"],
)
def test_a_field_naming_the_wrong_kind_of_path_is_refused(
    tmp_path: Path, config: str, expected: str
) -> None:
    make_project(tmp_path, config=f"domains: [shop]\n{config}")
    message = _one_line_refusal(ConfigurationError, lambda: load_project(tmp_path))
    assert message.startswith(f"{tmp_path.resolve()}/mesh.yaml:2: {expected}")  # its line


def test_an_unnamed_policy_file_may_be_absent(tmp_path: Path) -> None:
    make_project(tmp_path)
    assert not load_project(tmp_path).policies_file.exists()


def test_a_folder_given_as_an_argument_is_named_as_the_argument(tmp_path: Path) -> None:
    """`mesh products apply FOLDER` said "point --project at ...", an option apply lacks."""
    with pytest.raises(ProjectNotFoundError) as missing:
        find_project(tmp_path, MeshSettings(), named_by="PATH", explicit_as="PATH")
    assert str(missing.value).startswith(
        f"PATH={tmp_path}: no mesh.yaml there; point PATH at the folder holding mesh.yaml"
    )


def test_a_project_root_given_as_text_is_a_folder_and_other_types_are_named(
    tmp_path: Path,
) -> None:
    """The SDK's root= given a str failed with AttributeError deep in the library (an SDK
    campaign); a str is a path, anything else one line."""
    from mesh_stream.errors import ProjectNotFoundError
    from mesh_stream.scaffold import scaffold
    from mesh_stream.settings import MeshSettings

    scaffold("inventory", tmp_path)
    assert load_project(str(tmp_path)).root == tmp_path.resolve()
    assert find_project(str(tmp_path), MeshSettings()).root == tmp_path.resolve()  # type: ignore[arg-type]
    with pytest.raises(ProjectNotFoundError) as refused:
        load_project(5)  # type: ignore[arg-type]
    assert str(refused.value) == "project root must name a folder (a str or a Path), got int"
