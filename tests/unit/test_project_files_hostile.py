"""Hostile files in a project, each refused (or read) with one line naming what is wrong and
where: `.avsc` files with a key given twice, a byte-order mark or bytes that are not UTF-8;
a `mesh.yaml` that is a folder or a link going nowhere; hidden files among the descriptors;
a project with no descriptor at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import run
from mesh_stream.descriptor import descriptor_files, resolve_product
from mesh_stream.errors import (
    ConfigurationError,
    ProductNotFoundError,
    ProjectNotFoundError,
    SchemaError,
)
from mesh_stream.exports.source import local_product
from mesh_stream.files import NotUTF8Error, read_regular_text
from mesh_stream.products_plan import plan_project
from mesh_stream.project import find_project, load_project, locate_project
from mesh_stream.registration import schema_text
from mesh_stream.scaffold import scaffold
from mesh_stream.schema import strict_json
from mesh_stream.schema.codec import load_schema_file
from mesh_stream.settings import MeshSettings
from tests.unit.products.test_products_plan import FakeRegistry
from tests.unit.registry.conftest import ADMIN, make_client

PRODUCT = "orders.example-event"
SCHEMA = "schemas/orders/example-event.avsc"
DESCRIPTOR = "domains/orders/products/example-event.yaml"
BOM = b"\xef\xbb\xbf"
JSON = {"content-type": "application/json"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh `mesh init orders` project (one descriptor, one schema; passes `mesh lint`)."""
    return scaffold("orders", tmp_path / "orders").root


def _mesh(*args: str, stdin: str = "") -> tuple[int, str]:
    """`mesh ARGS`: its exit status and its output (stdout, then stderr), as a user sees
    them: every exception is one `error:` line (mesh_stream.cli.main.run)."""
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams:
        status = run(list(args))
        return status, streams[0].getvalue().decode() + streams[1].getvalue().decode()


def _lint(root: Path) -> tuple[int, str]:
    return _mesh("lint", str(root))


def _refusal(error: type[Exception], call: Any) -> str:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# -- 1a. a key given twice in a JSON object ---------------------------------------------------


def test_a_key_given_twice_is_refused_at_its_second_line_with_the_first() -> None:
    text = '{"fields": [\n  {"name": "a",\n   "type": "int",\n   "name": "b"}\n]}'
    with pytest.raises(strict_json.DuplicateKeyError) as refused:
        strict_json.loads(text)
    error = refused.value
    assert (error.key, error.loc, error.first_line, error.lineno, error.colno) == (
        "name",
        ("fields", 0),
        2,
        4,
        4,
    )
    assert error.msg == 'key "name" given twice in fields[0] (first on line 2); keep one'
    assert isinstance(error, json.JSONDecodeError)  # every JSON reader places it by line
    # the same key in different objects, and a repeated value, are not repeated keys
    assert strict_json.loads('{"a": {"a": 1}, "b": [{"a": 1}, {"a": 1}]}') == {
        "a": {"a": 1},
        "b": [{"a": 1}, {"a": 1}],
    }


def test_an_avsc_with_a_key_given_twice_names_the_key_file_and_line(
    root: Path, tmp_path: Path
) -> None:
    schema = root / SCHEMA
    lines = schema.read_text().splitlines()
    assert lines[1] == '  "type": "record",'
    lines[2:2] = ['  "type": "enum",']
    schema.write_text("\n".join(lines) + "\n")
    assert _refusal(SchemaError, lambda: load_schema_file(schema)) == (
        f'{schema}:3:3: not valid JSON: key "type" given twice (first on line 2); keep one'
    )
    status, output = _lint(root)
    assert status == 1
    assert f"{SCHEMA}:3: error [schema-valid]" in output
    assert 'not valid JSON: key "type" given twice (first on line 2); keep one' in output


def test_the_registry_refuses_a_key_given_twice_in_a_body_or_a_schema() -> None:
    client = make_client()
    url = "/subjects/orders.r-value/versions"
    body = b'{"schema": "{}",\n "schema": "[]"}'
    answer = client.post(url, content=body, headers=JSON, auth=ADMIN)
    # the body itself is malformed, as one holding NaN is: 400 / 40001
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error_code": 40001,
            "message": 'malformed JSON body: key "schema" given twice (first on line 1); keep '
            "one (line 2, column 2)",
        },
    )
    # the schema text is an invalid schema: 422 / 42201
    schema = '{"type": "record", "name": "R", "fields": [], "name": "S"}'
    answer = client.post(url, json={"schema": schema}, auth=ADMIN)
    assert (answer.status_code, answer.json()) == (
        422,
        {
            "error_code": 42201,
            "message": "Invalid schema: invalid Avro schema: not valid JSON at line 1 column "
            '47: key "name" given twice (first on line 1); keep one',
        },
    )
    assert client.get("/subjects", auth=ADMIN).json() == []


# -- 1b. a UTF-8 byte-order mark at the start of an .avsc ------------------------------------


def test_an_avsc_starting_with_a_byte_order_mark_reads_everywhere(root: Path) -> None:
    schema = root / SCHEMA
    plain = schema.read_text()
    schema.write_bytes(BOM + schema.read_bytes())
    project = load_project(root)
    [product] = project.descriptors()
    assert read_regular_text(schema) == plain
    assert load_schema_file(schema) == json.loads(plain)  # the SDK's publisher
    assert schema_text(product, root) == plain  # `mesh products apply`, `mesh up`
    assert local_product(project, PRODUCT, reason="r").schema == json.loads(plain)  # exports
    status, output = _lint(root)  # `mesh lint`, and the lint of `mesh products plan`
    assert (status, output.strip().splitlines()[-1]) == (
        0,
        f"0 error(s), 0 warning(s) in 1 product(s) under {root} (policies: built-in defaults)",
    )


# -- 1c. an .avsc that is not UTF-8 -----------------------------------------------------------


def test_an_avsc_that_is_not_utf8_names_file_byte_and_offset_on_every_path(root: Path) -> None:
    schema = root / SCHEMA
    data = BOM + schema.read_bytes()
    offset = data.index(b'"doc"') + 2
    schema.write_bytes(data[:offset] + b"\xff" + data[offset + 1 :])
    project = load_project(root)
    [product] = project.descriptors()
    reason = f"not UTF-8 text (byte 0xff at offset {offset}); save it as UTF-8"
    with pytest.raises(NotUTF8Error) as caught:
        read_regular_text(schema)
    assert (str(caught.value), caught.value.start) == (reason, offset)
    assert _refusal(SchemaError, lambda: load_schema_file(schema)) == (
        f"{schema}: schema file is {reason}"
    )
    assert _refusal(SchemaError, lambda: schema_text(product, root)) == (
        f"{PRODUCT}: schema: {schema} is {reason}"
    )
    # exports read the file themselves before: the codec's words, or a traceback
    assert _refusal(SchemaError, lambda: local_product(project, PRODUCT, reason="r")) == (
        f"{schema}: schema file is {reason}"
    )
    status, output = _lint(root)
    assert status == 1
    assert f"{DESCRIPTOR}:12: error [schema-valid] schema" in output
    assert f"cannot read schema '{SCHEMA}': {reason}" in output
    records = root / "records.jsonl"
    records.write_text("{}\n")
    publish = ("publish", PRODUCT, "--project", str(root), "--schema", str(schema))
    assert _mesh(*publish, "-f", str(records)) == (
        1,
        f"error: {schema}: --schema is {reason}\n",
    )


# -- 2. a mesh.yaml that is no file -----------------------------------------------------------


def _everywhere(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The refusal of each way to name the project: the folder itself, --project,
    MESH_PROJECT_ROOT, the working directory (and one below it), the SDK's lookup."""
    monkeypatch.chdir(root)
    (root / "sub").mkdir()
    calls = [
        lambda: load_project(root),
        lambda: load_project(root, defaults_without_file=True),  # `mesh lint PATH`
        lambda: find_project(root, MeshSettings()),
        lambda: find_project(None, MeshSettings(project_root=root)),
        lambda: find_project(None, MeshSettings()),
        lambda: find_project(None, MeshSettings(), cwd=root / "sub"),
        lambda: locate_project(None, MeshSettings()),
    ]
    return [_refusal(ConfigurationError, call) for call in calls]


def test_a_mesh_yaml_folder_is_named_however_the_project_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mesh.yaml").mkdir()
    message = (
        f"{tmp_path}/mesh.yaml is a folder; the project file must be a YAML file named "
        f"mesh.yaml (rename the folder)"
    )
    assert _everywhere(tmp_path, monkeypatch) == [message] * 7


def test_a_mesh_yaml_symlink_loop_is_named_however_the_project_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mesh.yaml").symlink_to("mesh.yaml")
    message = (
        f"{tmp_path}/mesh.yaml is a symlink loop (following it leads back to it); the project "
        f"file must be a YAML file named mesh.yaml: replace the link with the file, or point "
        f"it at one"
    )
    assert _everywhere(tmp_path, monkeypatch) == [message] * 7
    assert _mesh("lint", str(tmp_path)) == (1, f"error: {message}\n")


def test_a_mesh_yaml_broken_link_or_fifo_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mesh.yaml").symlink_to("gone.yaml")
    assert _refusal(ConfigurationError, lambda: load_project(tmp_path)) == (
        f"{tmp_path}/mesh.yaml is a broken symlink (to gone.yaml, which does not exist); the "
        f"project file must be a YAML file named mesh.yaml: point the link at one, or replace "
        f"it with the file"
    )
    (tmp_path / "mesh.yaml").unlink()
    os.mkfifo(tmp_path / "mesh.yaml")
    assert _refusal(ConfigurationError, lambda: load_project(tmp_path)) == (
        f"{tmp_path}/mesh.yaml is a named pipe (FIFO), not a file; the project file must be a "
        f"YAML file named mesh.yaml (replace it with one)"
    )
    # and no mesh.yaml at all is still "not found"
    (tmp_path / "mesh.yaml").unlink()
    assert _refusal(ProjectNotFoundError, lambda: load_project(tmp_path)).startswith(
        f"{tmp_path} holds no mesh.yaml; "
    )
    assert load_project(tmp_path, defaults_without_file=True).domains == ()


# -- 3. hidden files among the descriptors ----------------------------------------------------


def test_hidden_files_and_folders_are_never_read_as_descriptors(root: Path) -> None:
    products = root / "domains/orders/products"
    text = (products / "example-event.yaml").read_text()
    (products / ".example-event.yaml").write_text(text)  # a backup copy
    (products / "._example-event.yaml").write_bytes(b"\x00\x05\x16\x07\xff")  # macOS
    (products / ".#example-event.yaml").symlink_to("me@host.1234")  # Emacs's lock
    (root / "domains/.trash/products").mkdir(parents=True)
    (root / "domains/.trash/products/old.yaml").write_text(text)
    assert descriptor_files(root / "domains") == [products / "example-event.yaml"]
    project = load_project(root)
    assert [p.name for p in project.descriptors()] == [PRODUCT]
    status, output = _lint(root)  # nothing "misplaced", "given twice" or unreadable
    assert (status, output.strip().splitlines()[-1]) == (
        0,
        f"0 error(s), 0 warning(s) in 1 product(s) under {root} (policies: built-in defaults)",
    )
    (products / "example-event.yaml").rename(products / "renamed.yaml")
    (products / ".other.yaml").write_text(text.replace("example-event", "other"))
    assert resolve_product(PRODUCT, root=root).name == PRODUCT  # found in renamed.yaml
    with pytest.raises(ProductNotFoundError):
        resolve_product("orders.other", root=root)  # only in a hidden file


def test_a_hidden_domain_folder_names_no_domain(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text("")
    (tmp_path / "domains/orders/products").mkdir(parents=True)
    (tmp_path / "domains/.git/products").mkdir(parents=True)
    assert load_project(tmp_path).domains == ("orders",)


# -- 4. a project with no descriptor ---------------------------------------------------------


def _plan_warnings(root: Path) -> tuple[bool, list[str]]:
    """Whether the plan against an empty registry (and no cluster) is applicable, and its
    warnings."""
    plan = plan_project(load_project(root), FakeRegistry(), None, principal="orders")  # type: ignore[arg-type]
    return plan.applicable, plan.to_dict()["warnings"]


def test_a_plan_with_no_descriptor_warns_that_there_is_nothing_to_apply(root: Path) -> None:
    applicable, warnings = _plan_warnings(root)  # a fresh `mesh init` project: no warning
    assert applicable
    assert not any("nothing to apply" in w for w in warnings), warnings
    (root / DESCRIPTOR).unlink()
    (root / SCHEMA).unlink()
    folder = root / "domains"
    assert _plan_warnings(root) == (
        True,  # apply would write nothing: a warning, as `mesh lint` passes it
        [
            f"no descriptors under {folder}: nothing to apply; a descriptor is {folder}/"
            f"<domain>/products/<product>.yaml (names starting with `.` are skipped), "
            f"`products` in {root}/mesh.yaml names the folder"
        ],
    )
