"""One deliberately bad fixture tree per policy: each yields its own violation and no other.

The expected file, line, field and message are derived from the fixture files themselves
(values read back from the YAML/Avro, lines found by their text), so a fixture edit that
changes the problem changes the expectation with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mesh_stream.governance import Severity, lint_repository
from mesh_stream.governance.policies import (
    BUILTIN_POLICIES,
    LOGICAL_TYPES,
    UNMARKED_PII,
    PartitionBounds,
    RetentionBounds,
    SloBounds,
)
from tests.unit.governance.conftest import line_containing

SHOP = "domains/shop/products/order-placed.yaml"
SHOP_SCHEMA = "schemas/shop/order-placed.avsc"
SUMMARY = "domains/insights/products/customer-summary.yaml"

Expected = tuple[str, str, int, str | None, str]
"""(policy, file, line, field, message) of the one violation a case must produce."""


def _yaml(root: Path, file: str) -> dict[str, object]:
    data = yaml.safe_load((root / file).read_text())
    assert isinstance(data, dict)
    return data


def descriptor_valid(root: Path) -> Expected:
    # the unclosed flow sequence on the `tags:` line is detected at the next key
    tags_line = line_containing(root / SHOP, "tags: [orders")
    return (
        "descriptor-valid",
        SHOP,
        tags_line + 1,
        None,
        f"not valid YAML: expected ',' or ']', but got ':' (in the flow sequence that starts "
        f"on line {tags_line})",
    )


def descriptor_field_type(root: Path) -> Expected:
    value = _yaml(root, SHOP)["partitions"]
    return (
        "descriptor-valid",
        SHOP,
        line_containing(root / SHOP, f"partitions: {value}"),
        "partitions",
        f"partitions: must be a whole number, not the text {value!r}",
    )


def schema_missing(root: Path) -> Expected:
    file = "domains/shop/products/refund-issued.yaml"
    schema = _yaml(root, file)["schema"]
    assert not (root / str(schema)).exists()
    return (
        "schema-valid",
        file,
        line_containing(root / file, "schema:"),
        "schema",
        f"cannot read schema {schema!r}: No such file or directory",
    )


def schema_has_product(root: Path) -> Expected:
    referenced = {
        _yaml(root, path.relative_to(root).as_posix())["schema"]
        for path in (root / "domains").glob("*/products/*.yaml")
    }
    (orphan,) = [
        path.relative_to(root).as_posix()
        for path in (root / "schemas").glob("*/*.avsc")
        if path.relative_to(root).as_posix() not in referenced
    ]
    return (
        "schema-has-product",
        orphan,
        1,
        None,
        f"no product descriptor under domains/ has `schema: {orphan}`",
    )


def schema_broken_json(root: Path) -> Expected:
    text = (root / SHOP_SCHEMA).read_text()
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"not valid JSON: {exc.msg}"
    return ("schema-valid", SHOP_SCHEMA, line_containing(root / SHOP_SCHEMA, '",}'), None, message)


def logical_types(root: Path) -> Expected:
    schema = json.loads((root / SHOP_SCHEMA).read_text())
    (field,) = [
        f for f in schema["fields"] if isinstance(f["type"], dict) and "logicalType" in f["type"]
    ]
    logical, base = field["type"]["logicalType"], field["type"]["type"]
    assert logical not in LOGICAL_TYPES
    where = f"{schema['name']}.{field['name']}"
    return (
        "logical-types",
        SHOP_SCHEMA,
        line_containing(root / SHOP_SCHEMA, '"logicalType"'),
        where,
        f"field {where}: logicalType {logical!r} is not one the mesh supports, so Avro ignores "
        f"it and the field is a plain {base}; supported: date (int), decimal (bytes/fixed), "
        "local-timestamp-micros (long), local-timestamp-millis (long), time-micros (long), "
        "time-millis (int), timestamp-micros (long), timestamp-millis (long), uuid (string)",
    )


def naming(root: Path) -> Expected:
    file = "domains/shop/products/refunds.yaml"
    name = _yaml(root, file)["name"]
    return (
        "naming",
        file,
        line_containing(root / file, "name:"),
        "name",
        f"product {name!r} is described in {file}, but its descriptor must be "
        f"domains/shop/products/{str(name).split('.')[1]}.yaml",
    )


def naming_schema_folder(root: Path) -> Expected:
    file = "domains/shop/products/refund-issued.yaml"
    schema = _yaml(root, file)["schema"]
    return (
        "naming",
        file,
        line_containing(root / file, "schema:"),
        "schema",
        f"schema {schema!r} must be an `.avsc` file under schemas/shop/ (the contracts of "
        f"domain 'shop')",
    )


def documentation(root: Path) -> Expected:
    schema = json.loads((root / SHOP_SCHEMA).read_text())
    lines = next(f for f in schema["fields"] if f["name"] == "lines")
    undocumented = [f["name"] for f in lines["type"]["items"]["fields"] if "doc" not in f]
    assert undocumented == ["quantity"]
    path = f"{schema['name']}.lines.quantity"
    return (
        "documentation",
        SHOP_SCHEMA,
        line_containing(root / SHOP_SCHEMA, '"name": "quantity"'),
        path,
        f"field {path} has no doc",
    )


def ownership(root: Path) -> Expected:
    contact = _yaml(root, SHOP)["owner"]["contact"]  # type: ignore[index]
    return (
        "ownership",
        SHOP,
        line_containing(root / SHOP, "contact:"),
        "owner.contact",
        f"owner.contact {contact!r} is not an e-mail address, #channel or http(s) URL",
    )


def rules_read_schema_fields(root: Path) -> Expected:
    return (
        "rules-read-schema-fields",
        SHOP,
        line_containing(root / SHOP, "expr:"),
        "rules.0.expr",
        "rule 'customer-named' reads message.customer, but OrderPlaced has no field "
        "'customer': the rule fails on every record",
    )


def ownership_missing(root: Path) -> Expected:
    return (
        "ownership",
        SHOP,
        line_containing(root / SHOP, "owner:"),
        "owner.contact",
        "owner.contact: Field required",
    )


def slos_declared(root: Path) -> Expected:
    availability = _yaml(root, SHOP)["slos"]["availability"]  # type: ignore[index]
    return (
        "slos-declared",
        SHOP,
        line_containing(root / SHOP, "availability:"),
        "slos.availability",
        f"slos.availability {availability:g}% is below the minimum "
        f"{SloBounds().min_availability:g}%",
    )


def slos_missing(root: Path) -> Expected:
    assert "slos" not in _yaml(root, SHOP)
    return ("slos-declared", SHOP, 1, "slos", "slos: Field required")


def classification_declared(root: Path) -> Expected:
    assert "classification" not in _yaml(root, SHOP)
    return ("classification-declared", SHOP, 1, "classification", "classification: Field required")


def pii_classification(root: Path) -> Expected:
    schema = json.loads((root / SHOP_SCHEMA).read_text())
    marked = [f["name"] for f in schema["fields"] if f.get("pii")]
    assert len(marked) == 1
    path = f"{schema['name']}.{marked[0]}"
    classification = _yaml(root, SHOP)["classification"]
    return (
        "pii-classification",
        SHOP_SCHEMA,
        line_containing(root / SHOP_SCHEMA, f'"name": "{marked[0]}"'),
        path,
        f"field {path} is marked PII but product 'shop.order-placed' is classified "
        f"{classification!r}",
    )


def pii_lineage(root: Path) -> Expected:
    return (
        "pii-lineage",
        SUMMARY,
        line_containing(root / SUMMARY, "people.customer:email"),
        "field_lineage.contact[0]",
        "output field 'contact' is computed from 'people.customer:email', which is PII "
        "(email), but 'insights.customer-summary' is classified 'internal'",
    )


def pii_lineage_product(root: Path) -> Expected:
    file = "domains/insights/products/region-count.yaml"
    customer = json.loads((root / "schemas/people/customer.avsc").read_text())
    marked = [f["name"] for f in customer["fields"] if f.get("pii")] + [
        f"address.{f['name']}" for f in customer["fields"][2]["type"][1]["fields"] if f.get("pii")
    ]
    return (
        "pii-lineage",
        file,
        line_containing(root / file, "- people.customer"),
        "inputs[0]",
        f"input 'people.customer' carries PII ({', '.join(marked)}) and "
        f"'insights.region-count' is classified 'internal' without field_lineage showing the "
        f"PII is dropped",
    )


def pii_lineage_uncovered(root: Path) -> Expected:
    schema = json.loads((root / "schemas/insights/customer-summary.avsc").read_text())
    covered = _yaml(root, SUMMARY)["field_lineage"]
    uncovered = [f["name"] for f in schema["fields"] if f["name"] not in covered]  # type: ignore[operator]
    return (
        "pii-lineage",
        SUMMARY,
        line_containing(root / SUMMARY, "field_lineage:"),
        "field_lineage",
        f"inputs people.customer carry PII but field_lineage does not say where output fields "
        f"{', '.join(uncovered)} come from",
    )


def field_lineage_resolves(root: Path) -> Expected:
    source = _yaml(root, SUMMARY)["field_lineage"]["spend_cents"][0]  # type: ignore[index]
    product, _, field = source.partition(":")
    return (
        "field-lineage-resolves",
        SUMMARY,
        line_containing(root / SUMMARY, source),
        "field_lineage.spend_cents[0]",
        f"field_lineage.spend_cents reads {source!r} but {product!r} has no field {field!r}",
    )


def inputs_exist(root: Path) -> Expected:
    inputs = _yaml(root, SUMMARY)["inputs"]
    assert isinstance(inputs, list)
    products = {
        _yaml(root, path.relative_to(root).as_posix())["name"]
        for path in (root / "domains").glob("*/products/*.yaml")
    }
    missing = [name for name in inputs if name not in products]
    assert len(missing) == 1
    return (
        "inputs-exist",
        SUMMARY,
        line_containing(root / SUMMARY, f"- {missing[0]}"),
        f"inputs[{inputs.index(missing[0])}]",
        f"input {missing[0]!r} is not a product of the mesh",
    )


def compatibility_with_consumers(root: Path) -> Expected:
    return (
        "compatibility-with-consumers",
        SHOP,
        line_containing(root / SHOP, "compatibility:"),
        "compatibility",
        "compatibility NONE is weaker than FULL_TRANSITIVE but 'shop.order-placed' is read by "
        "insights.customer-summary, and no compatibility_reason says why",
    )


def key_field(root: Path) -> Expected:
    key = _yaml(root, SHOP)["key_field"]
    schema = json.loads((root / SHOP_SCHEMA).read_text())
    return (
        "key-field",
        SHOP,
        line_containing(root / SHOP, "key_field:"),
        "key_field",
        f"key_field {key!r} is not a top-level field of the schema (fields: "
        f"{', '.join(f['name'] for f in schema['fields'])})",
    )


def key_field_compacted(root: Path) -> Expected:
    file = "domains/people/products/customer.yaml"
    policy = _yaml(root, file)["retention"]["cleanup_policy"]  # type: ignore[index]
    return (
        "key-field",
        file,
        line_containing(root / file, "cleanup_policy:"),
        "key_field",
        f"cleanup_policy {policy!r} compacts by key but no key_field is set",
    )


def key_field_type(root: Path) -> Expected:
    file = "domains/people/products/customer.yaml"
    return (
        "key-field",
        file,
        line_containing(root / file, "key_field:"),
        "key_field",
        "key_field 'address': its type is record or null: a record's text depends on the "
        "client that prints it, so the same value could key records differently and other "
        "clients could not reproduce the key; key by a string, uuid, enum, int, long, date, "
        "time or timestamp field",
    )


def key_field_nullable_compacted(root: Path) -> Expected:
    file = "domains/people/products/customer.yaml"
    return (
        "key-field",
        file,
        line_containing(root / file, "key_field:"),
        "key_field",
        "key_field 'customer_id' may be null, and a record without a key is refused by a "
        "compacted topic (cleanup_policy 'compact'); make the field non-null",
    )


def pii_input_readers(root: Path) -> Expected:
    """insights builds on people.customer (pii) without being among its readers: plan said
    "applicable" and the broker refused the processor later (h34)."""
    return (
        "pii-input-readers",
        SUMMARY,
        line_containing(root / SUMMARY, "- people.customer"),
        "inputs[0]",
        "input 'people.customer' is classified pii and domain 'insights' is not among its "
        "readers (billing): on a secured cluster the broker refuses this product's processor "
        "its records",
    )


def partition_bounds(root: Path) -> Expected:
    partitions = _yaml(root, SHOP)["partitions"]
    bounds = PartitionBounds()
    return (
        "partition-bounds",
        SHOP,
        line_containing(root / SHOP, "partitions:"),
        "partitions",
        f"partitions {partitions} is outside the platform bounds {bounds.min}..{bounds.max}",
    )


def retention_bounds(root: Path) -> Expected:
    ms = _yaml(root, SHOP)["retention"]["ms"]  # type: ignore[index]
    bounds = RetentionBounds()
    return (
        "retention-bounds",
        SHOP,
        line_containing(root / SHOP, "  ms:"),
        "retention.ms",
        f"retention.ms {ms} is outside the bounds in force for domain 'shop' "
        f"{bounds.min_ms}..{bounds.max_ms} ms (mesh-policies.yaml, or the domain's "
        f"policies.yaml where it overrides them)",
    )


def policy_override(root: Path) -> Expected:
    file = "domains/shop/policies.yaml"
    return (
        "policy-override",
        file,
        line_containing(root / file, "partition-bounds:"),
        "overrides.partition-bounds",
        "domain 'shop' overrides policy 'partition-bounds', which the global set does not "
        "mark overridable",
    )


CASES: dict[str, Callable[[Path], Expected]] = {
    "descriptor-valid": descriptor_valid,
    "descriptor-field-type": descriptor_field_type,
    "schema-missing": schema_missing,
    "schema-broken-json": schema_broken_json,
    "logical-types": logical_types,
    "schema-has-product": schema_has_product,
    "naming": naming,
    "naming-schema-folder": naming_schema_folder,
    "documentation": documentation,
    "ownership": ownership,
    "ownership-missing": ownership_missing,
    "slos-declared": slos_declared,
    "slos-missing": slos_missing,
    "classification-declared": classification_declared,
    "pii-classification": pii_classification,
    "pii-lineage": pii_lineage,
    "pii-lineage-product": pii_lineage_product,
    "pii-lineage-uncovered": pii_lineage_uncovered,
    "field-lineage-resolves": field_lineage_resolves,
    "inputs-exist": inputs_exist,
    "compatibility-with-consumers": compatibility_with_consumers,
    "key-field": key_field,
    "key-field-compacted": key_field_compacted,
    "pii-input-readers": pii_input_readers,
    "partition-bounds": partition_bounds,
    "retention-bounds": retention_bounds,
    "rules-read-schema-fields": rules_read_schema_fields,
    "policy-override": policy_override,
}


def test_the_good_tree_is_clean(mesh_tree: Callable[[str], Path]) -> None:
    report = lint_repository(mesh_tree("good"))
    assert report.violations == ()
    assert report.products == 3


FILE_FIXES = {
    "schema-broken-json": "Correct the JSON at the line shown (a comma, a quote or a bracket, "
    "usually)."
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_fixture_yields_exactly_its_violation(
    case: str, mesh_tree: Callable[[str], Path]
) -> None:
    root = mesh_tree(case)
    report = lint_repository(root)
    found = [(v.policy, v.file, v.line, v.field, v.message) for v in report.violations]
    assert found == [CASES[case](root)]
    violation = report.violations[0]
    policy = BUILTIN_POLICIES[violation.policy]
    assert violation.severity is policy.severity
    assert violation.why == policy.why
    # a file that cannot be read gets a fix for what is wrong with it (h44), others the policy's
    assert violation.fix == (FILE_FIXES.get(case) or policy.fix)
    assert (report.errors, report.warnings) == (
        (1, 0) if policy.severity is Severity.ERROR else (0, 1)
    )


def test_every_policy_has_a_bad_fixture(mesh_tree: Callable[[str], Path]) -> None:
    covered = {expect(mesh_tree(case))[0] for case, expect in CASES.items()}
    # a project's mesh.yaml decides it: test_project_domains.py lints a project for it
    covered.add("domain-in-project")
    assert covered == set(BUILTIN_POLICIES)


def test_pii_product_without_field_marks_taints_every_field(
    mesh_tree: Callable[[str], Path],
) -> None:
    """Without `"pii": true` marks nobody knows which fields of a `pii` product are
    personal, so every field mapped from it counts as PII."""
    root = mesh_tree("pii-lineage-unmarked")
    lineage = _yaml(root, SUMMARY)["field_lineage"]
    assert isinstance(lineage, dict)
    expected = [
        (
            "pii-lineage",
            SUMMARY,
            line_containing(root / SUMMARY, f"{output}: "),
            f"field_lineage.{output}[{index}]",
            f"output field {output!r} is computed from {source!r}, which is PII "
            f"({UNMARKED_PII}), but 'insights.customer-summary' is classified 'internal'",
        )
        for output, sources in lineage.items()
        for index, source in enumerate(sources)
        if source.startswith("people.customer:")
    ]
    assert len(expected) == 2
    found = [
        (v.policy, v.file, v.line, v.field, v.message) for v in lint_repository(root).violations
    ]
    assert found == expected


@pytest.mark.parametrize("mark", ["true", 1])
def test_a_pii_mark_that_is_no_boolean_is_refused_and_counts_as_pii(
    mesh_tree: Callable[[str], Path], mark: object
) -> None:
    """`"pii": "true"` or `1` was taken for no mark: lint and the registry accepted it on a
    non-pii product and the portal's sample served the value unmasked (h32)."""
    from mesh_stream.governance import avro_walk

    root = mesh_tree("good")
    path = root / "schemas/shop/order-placed.avsc"
    schema = json.loads(path.read_text())
    field = next(f for f in schema["fields"] if not f.get("pii"))
    field["pii"] = mark
    path.write_text(json.dumps(schema, indent=2))
    found = {
        (v.policy, v.field, v.message)
        for v in lint_repository(root).violations
        if v.field == f"{schema['name']}.{field['name']}"
    }
    where = f"{schema['name']}.{field['name']}"
    assert (
        "pii-classification",
        where,
        f'field {where} has "pii": {json.dumps(mark)}, not the boolean true or false (it '
        f'counts as PII meanwhile); write "pii": true',
    ) in found
    assert any(message.startswith(f"field {where} is marked PII") for _, _, message in found)
    assert field["name"] in avro_walk.pii_paths(schema)
    assert avro_walk.marked_pii({"pii": False}) is False
    assert avro_walk.marked_pii({}) is False


def test_a_nullable_key_field_of_a_deleting_product_is_a_warning(
    mesh_tree: Callable[[str], Path],
) -> None:
    root = mesh_tree("good")
    schema = root / SHOP_SCHEMA
    schema.write_text(
        schema.read_text().replace(
            '{"name": "order_id", "type": "string",',
            '{"name": "order_id", "type": ["null", "string"], "default": null,',
        )
    )
    report = lint_repository(root)
    assert [(v.policy, v.severity, v.file, v.field) for v in report.violations] == [
        ("key-field", Severity.WARNING, SHOP, "key_field")
    ]
    assert report.violations[0].message.startswith(
        "key_field 'order_id' may be null: such a record is published without a key"
    )


@pytest.mark.parametrize("case", ["key-field-type", "key-field-nullable-compacted"])
def test_a_key_field_with_no_one_text_or_null_on_compaction_is_a_warning(
    case: str, mesh_tree: Callable[[str], Path]
) -> None:
    """Warnings, not errors: a product keyed so before the check stays publishable (h35)."""
    root = mesh_tree(case)
    expected = {
        "key-field-type": key_field_type,
        "key-field-nullable-compacted": (key_field_nullable_compacted),
    }[case](root)
    report = lint_repository(root)
    assert [(v.policy, v.file, v.line, v.field, v.message) for v in report.violations] == [expected]
    assert (report.errors, report.warnings) == (0, 1)
