"""`mesh lint` on hostile files: pipes where files should be, NaN SLOs, logical types Avro
ignores. Each is reported at its file (and line) and the run goes on; none hangs or prints a
library's raw warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_stream.descriptor import load_descriptor, load_descriptors, parse_descriptor
from mesh_stream.errors import DescriptorError, SchemaError
from mesh_stream.exports.source import local_product
from mesh_stream.governance import lint_repository
from mesh_stream.project import domain_name_problem, load_project
from tests.unit.governance.conftest import line_containing

MESH = str(Path(sys.executable).with_name("mesh"))
SHOP = "domains/shop/products/order-placed.yaml"
SHOP_SCHEMA = "schemas/shop/order-placed.avsc"
FIFO = "not a regular file but a named pipe (FIFO)"


# -- files that are not regular files -------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_fifo_among_the_descriptors_is_an_error_at_its_path_not_a_hang(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    os.mkfifo(root / "domains/shop/products/something.yaml")  # no writer: reading blocks
    report = lint_repository(root)
    assert [(v.policy, v.file, v.line, v.message) for v in report.violations] == [
        (
            "descriptor-valid",
            "domains/shop/products/something.yaml",
            None,
            f"cannot read descriptor: {FIFO}; a descriptor is a regular YAML file: remove "
            f"this one or replace it with one",
        )
    ]
    assert report.products == 3  # the others are still linted
    # no line to correct: its fix says so (it said "at the line shown", a campaign, h49)
    assert report.violations[0].fix.startswith("Make the descriptor a readable UTF-8 YAML file")


@pytest.mark.timeout(10)
def test_loading_descriptors_names_the_fifo(mesh_tree: Callable[[str], Path]) -> None:
    root = mesh_tree("good")
    fifo = root / "domains/shop/products/something.yaml"
    os.mkfifo(fifo)
    with pytest.raises(DescriptorError) as caught:
        load_descriptors(root / "domains")
    assert str(caught.value) == (
        f"{fifo}: cannot read descriptor: {FIFO}; a descriptor is a regular YAML file: remove "
        f"this one or replace it with one"
    )


@pytest.mark.timeout(10)
def test_a_fifo_as_schema_or_domain_policies_is_an_error_not_a_hang(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    (root / SHOP_SCHEMA).unlink()
    os.mkfifo(root / SHOP_SCHEMA)
    os.mkfifo(root / "domains/shop/policies.yaml")
    found = {(v.policy, v.file, v.message) for v in lint_repository(root).violations}
    assert found == {
        ("schema-valid", SHOP, f"cannot read schema {SHOP_SCHEMA!r}: {FIFO}"),
        (
            "policy-override",
            "domains/shop/policies.yaml",
            f"cannot read the domain's overrides: {FIFO}",
        ),
    }


# -- schema paths leaving the project -------------------------------------------------------


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink-out", "symlink-loop"])
def test_a_schema_outside_the_project_is_never_read_by_lint_or_export(
    mesh_tree: Callable[[str], Path], tmp_path: Path, how: str
) -> None:
    """`mesh export` read a descriptor's absolute or symlinked `schema` from outside the
    project and quoted the file in its parse error (a key file's secret, in a campaign);
    a symlink loop ended lint with an internal error (exit 70)."""
    root = mesh_tree("good")
    secret = tmp_path / "key.json"
    secret.write_text('{"type": "service_account", "private_key": "FAKE-SECRET"}')
    descriptor = root / SHOP
    text = descriptor.read_text()
    written = {
        "absolute": str(secret),
        "dot-dot": os.path.relpath(secret, root),
        "symlink-out": "schemas/shop/linked.avsc",
        "symlink-loop": "schemas/shop/loop.avsc",
    }[how]
    if how == "symlink-out":
        (root / written).symlink_to(secret)
    if how == "symlink-loop":
        (root / written).symlink_to(root / written)
    descriptor.write_text(text.replace(f"schema: {SHOP_SCHEMA}", f"schema: {written}"))
    why = (
        "cannot be used (a symlink loop)"
        if how == "symlink-loop"
        else f"lies outside the project at {root} (an absolute path, `..` or a symlink leaving "
        f"it); the descriptor's `schema` must be a path inside the project"
    )
    found = [(v.policy, v.file, v.message) for v in lint_repository(root).violations]
    assert ("schema-valid", SHOP, f"cannot read schema {written!r}: {why}") in found
    product = load_descriptor(descriptor)
    with pytest.raises(SchemaError) as refused:
        local_product(load_project(root, defaults_without_file=True), product.name, reason="-")
    assert str(refused.value) == f"{product.name}: schema: {written!r} {why}"
    assert "FAKE-SECRET" not in str(refused.value)


@pytest.mark.timeout(20)
def test_a_schema_over_the_size_limit_is_refused_before_it_is_read_as_json(
    mesh_tree: Callable[[str], Path],
) -> None:
    """A 50 MB `.avsc` was decoded and walked in full (a minute, over a GB) before its size
    was judged (a campaign)."""
    root = mesh_tree("good")
    schema = json.loads((root / SHOP_SCHEMA).read_text())
    schema["fields"] += [
        {"name": f"f{i}", "type": "string", "doc": "d" * 200} for i in range(100_000)
    ]
    text = json.dumps(schema)
    (root / SHOP_SCHEMA).write_text(text)
    found = [
        (v.policy, v.file, v.line, v.message)
        for v in lint_repository(root).violations
        if v.policy == "schema-valid"
    ]
    assert found == [
        (
            "schema-valid",
            SHOP_SCHEMA,
            1,
            f"not a valid Avro schema: {len(text)} bytes of JSON, more than the limit of "
            f"1048576 a schema may have (the registry's is MESH_REGISTRY_MAX_SCHEMA_BYTES)",
        )
    ]


@pytest.mark.parametrize(
    ("damage", "fix"),
    [
        (lambda text: text.replace('",', '"', 1), "Correct the JSON at the line shown"),
        (lambda text: text + " " * 1_100_000, "Make the schema smaller"),
        (lambda _text: '{"type": "string"}', "Make the top-level schema an Avro record"),
        (
            lambda _text: (
                '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}'
            ),
            "Correct the schema at the line shown",
        ),
    ],
)
def test_each_unreadable_schema_gets_a_fix_of_its_own(
    mesh_tree: Callable[[str], Path], damage: Callable[[str], str], fix: str
) -> None:
    """Every problem of a schema file ended "fix: Point the descriptor's schema at an existing
    .avsc", also a file that exists and is too big or has a syntax error (h44)."""
    root = mesh_tree("good")
    schema = root / SHOP_SCHEMA
    schema.write_text(damage(schema.read_text()))
    [found] = [v for v in lint_repository(root).violations if v.policy == "schema-valid"]
    assert found.fix.startswith(fix), found.fix


def test_a_schema_that_is_not_utf8_is_told_to_be_saved_as_utf8(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    (root / SHOP_SCHEMA).write_bytes((root / SHOP_SCHEMA).read_bytes() + b"\xff\xfe")
    [found] = [v for v in lint_repository(root).violations if v.policy == "schema-valid"]
    assert found.fix == "Save the .avsc as UTF-8."


# -- a product described twice; readers naming the platform's users ---------------------------


def test_a_product_described_twice_is_an_error_and_no_tool_picks_one(
    mesh_tree: Callable[[str], Path],
) -> None:
    """With `order-placed.yaml` and `order-placed.yml` for one product, lint was clean while
    `mesh acl plan` and `mesh export` silently took the `.yml` (a campaign)."""
    root = mesh_tree("good")
    copy = root / "domains/shop/products/order-placed.yml"
    copy.write_text((root / SHOP).read_text().replace("partitions: 6", "partitions: 12"))
    said = (
        "product 'shop.order-placed' is also described by domains/shop/products/"
        "order-placed.yaml; a product has one descriptor (each tool would take one of the "
        "two): remove one"
    )
    found = [(v.policy, v.file, v.line, v.message) for v in lint_repository(root).violations]
    assert found == [
        ("descriptor-valid", "domains/shop/products/order-placed.yml", 1, said),
    ]
    with pytest.raises(DescriptorError) as refused:
        load_descriptors(root / "domains")
    assert str(refused.value) == (
        f"{copy}: name: {said.replace('domains/', f'{root}/domains/', 1)}"
    )


def test_readers_naming_a_platform_user_are_errors_at_their_line(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    descriptor = root / SHOP
    descriptor.write_text(
        descriptor.read_text().replace("classification: internal", "classification: pii")
        + "readers:\n  - people\n  - registry\n  - mesh-x\n"
    )
    violations = lint_repository(root).violations
    found = [
        (v.policy, v.line, v.field, v.message)
        for v in violations
        if v.field and "readers" in v.field
    ]
    assert found == [
        (
            "descriptor-valid",
            line_containing(descriptor, "- registry"),
            "readers[1]",
            "readers: 'registry' is the Kafka user of the platform's registry, not a domain "
            "(the domain would share its password and grants); name the domain after what it "
            "owns (e.g. orders)",
        ),
        (
            "descriptor-valid",
            line_containing(descriptor, "- mesh-x"),
            "readers[2]",
            f"readers: {domain_name_problem('mesh-x')}",
        ),
    ]


# -- NaN in an SLO --------------------------------------------------------------------------


def test_nan_availability_is_said_to_be_no_number(mesh_tree: Callable[[str], Path]) -> None:
    """`.nan` failed the `le=100` bound: "should be less than or equal to 100" was wrong."""
    root = mesh_tree("good")
    descriptor = root / SHOP
    descriptor.write_text(
        descriptor.read_text().replace("availability: 99.9", "availability: .nan")
    )
    assert [
        (v.policy, v.file, v.line, v.field, v.message) for v in lint_repository(root).violations
    ] == [
        (
            "slos-declared",
            SHOP,
            line_containing(descriptor, "availability: .nan"),
            "slos.availability",
            "slos.availability: availability is NaN (not a number): give a percentage between "
            "0 and 100, e.g. 99.9",
        )
    ]


@pytest.mark.parametrize(
    ("slo", "want"),
    [
        ("freshness_seconds", "a number of seconds above 0, e.g. 5"),
        ("max_dlq_ratio", "a ratio from 0 to 1, e.g. 0.01, or leave it out"),
    ],
)
def test_nan_in_any_slo_is_said_to_be_no_number(
    mesh_tree: Callable[[str], Path], slo: str, want: str
) -> None:
    text = (mesh_tree("good") / SHOP).read_text()
    text = re.sub(rf"^  {slo}: .*\n", "", text, flags=re.MULTILINE)
    text = text.replace("slos:\n", f"slos:\n  {slo}: .NaN\n")  # on line 15
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(text, SHOP)
    assert str(caught.value) == f"{SHOP}:15: slos.{slo}: {slo} is NaN (not a number): give {want}"


# -- logical types Avro ignores -------------------------------------------------------------


def _with_fields(root: Path, *fields: dict[str, object]) -> Path:
    schema_file = root / SHOP_SCHEMA
    schema = json.loads(schema_file.read_text())
    schema["fields"].extend(fields)
    schema_file.write_text(json.dumps(schema, indent=2))
    return schema_file


def test_logical_types_avro_ignores_are_errors_at_their_field_and_line(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    schema_file = _with_fields(
        root,
        {"name": "day", "doc": "d", "type": {"type": "string", "logicalType": "date"}},
        {
            "name": "seen",
            "doc": "s",
            "type": {
                "type": "array",
                "items": ["null", {"type": "long", "logicalType": "x-nanos"}],
            },
        },
        {"name": "fine", "doc": "f", "type": {"type": "int", "logicalType": "date"}},
    )
    day, seen, _fine = [
        number
        for number, line in enumerate(schema_file.read_text().splitlines(), 1)
        if '"logicalType"' in line
    ]
    found = [
        (v.policy, v.file, v.line, v.field, v.message) for v in lint_repository(root).violations
    ]
    assert found == [
        (
            "logical-types",
            SHOP_SCHEMA,
            day,
            "OrderPlaced.day",
            "field OrderPlaced.day: logicalType 'date' needs type int, not string, so Avro "
            "ignores it and the field is a plain string",
        ),
        (
            "logical-types",
            SHOP_SCHEMA,
            seen,
            "OrderPlaced.seen",
            "field OrderPlaced.seen: logicalType 'x-nanos' is not one the mesh supports, so Avro "
            "ignores it and the field is a plain long; supported: date (int), decimal "
            "(bytes/fixed), local-timestamp-micros (long), local-timestamp-millis (long), "
            "time-micros (long), time-millis (int), timestamp-micros (long), timestamp-millis "
            "(long), uuid (string)",
        ),
    ]


def test_lint_prints_no_raw_avro_warning(mesh_tree: Callable[[str], Path]) -> None:
    """A fresh process: the ``avro`` package warns once per process, on stderr."""
    root = mesh_tree("logical-types")
    done = subprocess.run(
        [MESH, "lint", str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MESH_REGISTRY_URL": "http://127.0.0.1:9"},
    )
    assert done.returncode == 1
    assert "error [logical-types] OrderPlaced.placed_at" in done.stdout
    assert "IgnoredLogicalType" not in done.stderr
    assert "warnings.warn" not in done.stderr


# -- numbers JSON cannot carry in a schema --------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("Infinity", "Infinity is not JSON"),
        ("NaN", "NaN is not JSON"),
        ("1e999", "number 1e999 is out of range for a 64-bit float"),
    ],
)
def test_a_non_finite_schema_number_is_an_error_at_its_field_and_line(
    mesh_tree: Callable[[str], Path], literal: str, reason: str
) -> None:
    root = mesh_tree("good")
    schema_file = _with_fields(root, {"name": "ratio", "type": "double", "doc": "r", "default": 0})
    index = len(json.loads(schema_file.read_text())["fields"]) - 1
    schema_file.write_text(schema_file.read_text().replace('"default": 0', f'"default": {literal}'))
    found = [(v.policy, v.file, v.line, v.message) for v in lint_repository(root).violations]
    assert found == [
        (
            "schema-valid",
            SHOP_SCHEMA,
            line_containing(schema_file, f'"default": {literal}'),
            f"not a valid Avro schema: fields[{index}].default: {reason}; JSON numbers are "
            f"finite 64-bit floats (NaN and infinities have no JSON form): write a finite number",
        )
    ]
