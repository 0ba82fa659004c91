"""The plan engine's judgement: descriptor and schema diffs, verdicts, refusals, and that a
refused plan writes nothing. The registry is a small fake here (the real one, with the
registry's own compatibility verdict, runs in tests/integration/test_domain_workflow.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.cli.products import _product_lines, plan_summary
from mesh_stream.contracts import Contract, compile_contract
from mesh_stream.errors import (
    InvalidSchemaError,
    PlanRefusedError,
    ProductNotFoundError,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from mesh_stream.products_plan import (
    SchemaChange,
    Status,
    apply_plan,
    descriptor_changes,
    domain_acls,
    plan_project,
    schema_changes,
    schema_fields,
    type_label,
)
from mesh_stream.project import load_project
from mesh_stream.registry.client import RegisteredSchema
from mesh_stream.scaffold import scaffold
from mesh_stream.schema.avro import normalize
from tests.unit.registry.conftest import descriptor

PRODUCT = "inventory.example-event"
SUBJECT = "inventory.example-event.v1-value"


@dataclass
class FakeRegistry:
    """Answers what plan_project asks; records every write (there must be none when refused)."""

    url: str = "http://registry.test"
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, list[str]] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    asked: list[tuple[str, str | int | None]] = field(default_factory=list)
    #: subject -> the contract (metadata, ruleSet) of its latest version
    contracts: dict[str, Contract] = field(default_factory=dict)
    #: product -> the consumer groups registered on it (as GET .../consumers answers)
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: what the registry's own policies find in a descriptor (POST /products/{name}/check)
    policy_problems: list[dict[str, Any]] = field(default_factory=list)

    def check_product(self, product: Any, schema: str | None = None) -> list[dict[str, Any]]:
        self.asked.append((product.name, "check"))
        assert schema is not None  # the local .avsc goes with it
        assert json.loads(schema)
        return list(self.policy_problems)

    def get_product(self, name: str) -> dict[str, Any]:
        if name not in self.products:
            raise ProductNotFoundError(f"no {name}")
        downstream = sorted(
            other for other, doc in self.products.items() if name in doc.get("inputs", [])
        )
        facts = {"topic": "x", "downstream": downstream, "consumers": self.groups.get(name, [])}
        return {**self.products[name], "registry": facts}

    def consumers(self, name: str) -> list[dict[str, Any]]:
        if name not in self.products:
            raise ProductNotFoundError(f"no {name}")
        return list(self.groups.get(name, []))

    def product_schemas(self, name: str) -> list[dict[str, Any]]:
        subject = f"{name}.v1-value"
        return [
            {"subject": subject, "version": number, "id": number, "schema": text}
            for number, text in enumerate(self.schemas.get(subject, []), start=1)
        ]

    def get_latest(self, subject: str) -> RegisteredSchema:
        if subject not in self.schemas:
            raise SubjectNotFoundError(f"no {subject}")
        versions = self.schemas[subject]
        contract = self.contracts.get(subject)
        return RegisteredSchema(
            subject,
            len(versions),
            len(versions),
            versions[-1],
            metadata=contract.metadata if contract else None,
            rule_set=contract.rule_set if contract else None,
        )

    def get_compatibility(self, subject: str) -> str:
        return self.levels.get(subject, "BACKWARD")

    def check_compatibility(
        self, subject: str, schema: str, *, version: str | int | None = "latest"
    ) -> list[str]:
        self.asked.append((subject, version))
        json.loads(schema)  # the local schema text is what is sent
        return list(self.verdict)

    #: (subject, version) -> the contract of a version before the latest, for lookups
    #: narrowed by contract
    older: dict[tuple[str, int], Contract] = field(default_factory=dict)

    def lookup(
        self, subject: str, schema: str, *, metadata: Any = None, rule_set: Any = None
    ) -> RegisteredSchema:
        for number, text in enumerate(self.schemas.get(subject, []), start=1):
            if normalize(text) != normalize(schema):
                continue
            if rule_set is not None or metadata is not None:
                held = self.older.get((subject, number))
                if held is None or (held.rule_set, held.metadata) != (rule_set, metadata):
                    continue
            return RegisteredSchema(subject, number, number, text)
        raise SchemaNotFoundError(f"not under {subject}")

    def register_schema(self, subject: str, schema: str, **_contract: Any) -> int:
        self.writes.append(f"schema {subject} {len(schema)}")
        return 1

    def put_product(self, product: Any) -> dict[str, Any]:
        self.writes.append(f"product {product.name}")
        return {}

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        self.writes.append(f"level {subject} {level}")


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    return scaffold("inventory", tmp_path / "inventory").root


def _registered(root: Path, registry: FakeRegistry) -> None:
    """The registry holds exactly what the scaffolded project has."""
    project = load_project(root)
    [product] = project.descriptors()
    registry.products[product.name] = product.to_document()
    registry.schemas[SUBJECT] = [project.schema_path(product).read_text()]
    registry.contracts[SUBJECT] = compile_contract(
        product, json.loads(registry.schemas[SUBJECT][0])
    )


def _schema_file(root: Path) -> Path:
    return root / "schemas/inventory/example-event.avsc"


def test_a_new_product_is_new_everywhere_and_applicable(project_root: Path) -> None:
    plan = plan_project(load_project(project_root), FakeRegistry(), None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert (item.descriptor, item.schema) == (Status.NEW, Status.NEW)
    assert [c.field for c in item.schema_changes] == [
        "event_id", "item_id", "action", "quantity", "occurred_at"
    ]  # fmt: skip
    assert plan.applicable
    assert plan.counts() == {"new": 1, "changed": 0, "unchanged": 0}


def test_what_the_registry_holds_already_is_unchanged(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    # Re-formatting the .avsc does not change the schema the registry compares.
    text = _schema_file(project_root).read_text()
    _schema_file(project_root).write_text(json.dumps(json.loads(text), indent=4))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert (item.descriptor, item.schema) == (Status.UNCHANGED, Status.UNCHANGED)
    assert item.registered_version == 1
    assert registry.asked == []  # nothing to check
    assert plan.counts() == {"new": 0, "changed": 0, "unchanged": 1}


def test_a_new_quality_rule_is_a_new_version_of_the_same_schema(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    descriptor = project_root / "domains/inventory/products/example-event.yaml"
    descriptor.write_text(
        descriptor.read_text()
        + "rules:\n  - name: positive-quantity\n    expr: message.quantity > 0\n"
    )

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.schema is Status.CHANGED
    assert item.schema_changes == []
    assert item.contract_changes == ["quality rules: none -> ['positive-quantity']"]
    assert plan.applicable
    assert not item.unchanged
    apply_plan(plan, load_project(project_root), registry, None)  # type: ignore[arg-type]
    assert [w.split()[:2] for w in registry.writes] == [
        ["schema", SUBJECT],  # the same text, with the new ruleSet: a new version
        ["product", PRODUCT],  # the descriptor holds the rule too
    ]


def test_a_changed_descriptor_lists_each_field_that_differs(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    descriptor = project_root / "domains/inventory/products/example-event.yaml"
    descriptor.write_text(
        descriptor.read_text()
        .replace("partitions: 3", "partitions: 6")
        .replace("availability: 99.5", "availability: 99.9")
    )

    [item] = plan_project(load_project(project_root), registry, None, principal=None).products  # type: ignore[arg-type]

    assert item.descriptor is Status.CHANGED
    assert [c.describe() for c in item.descriptor_changes] == [
        "partitions: 3 -> 6",
        "slos.availability: 99.5 -> 99.9",
    ]


def test_an_incompatible_schema_is_refused_at_the_changed_fields_line(project_root: Path) -> None:
    registry = FakeRegistry(verdict=["READER_FIELD_MISSING_DEFAULT_VALUE at /fields/5"])
    _registered(project_root, registry)
    text = _schema_file(project_root).read_text()
    _schema_file(project_root).write_text(
        text.replace('"quantity", "type": "int"', '"quantity", "type": "long"')
    )

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.schema is Status.CHANGED
    assert item.schema_changes == [SchemaChange("quantity", "type changed", "int", "long")]
    assert registry.asked == [(SUBJECT, "latest")]
    assert item.compatible is False
    [refusal] = plan.all_refusals
    assert refusal.policy == "schema-compatibility"
    assert refusal.location == "schemas/inventory/example-event.avsc:10"
    assert "~ quantity: int -> long breaks BACKWARD against the registered version 1" in str(
        refusal
    )
    assert "`version: 2`" in refusal.fix
    assert not plan.applicable


def test_a_refusal_points_at_the_breaking_change_not_an_optional_field_beside_it(
    project_root: Path,
) -> None:
    """h58: an optional field added (sorted first) and a retype: the refusal pointed at the
    optional field's line and called both changes breaking."""
    registry = FakeRegistry(verdict=["TYPE_MISMATCH at /fields/3/type"])
    _registered(project_root, registry)
    text = _schema_file(project_root).read_text()
    text = text.replace('"quantity", "type": "int"', '"quantity", "type": "string"')
    text = text.replace(
        '"Event time: when it happened."}',
        '"Event time: when it happened."},\n'
        '    {"name": "note", "type": ["null", "string"], "default": null}',
    )
    _schema_file(project_root).write_text(text)

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert [c.field for c in item.schema_changes] == ["note", "quantity"]  # both listed
    [refusal] = [r for r in plan.all_refusals if r.policy == "schema-compatibility"]
    assert refusal.location == "schemas/inventory/example-event.avsc:10"  # quantity's line
    assert f"{SUBJECT}: ~ quantity: int -> string breaks BACKWARD" in str(refusal)
    assert "note" not in str(refusal)


def test_a_transitive_level_is_checked_against_every_version(project_root: Path) -> None:
    registry = FakeRegistry(levels={SUBJECT: "FULL_TRANSITIVE"})
    _registered(project_root, registry)
    text = _schema_file(project_root).read_text()
    _schema_file(project_root).write_text(text.replace('"action", "type"', '"what", "type"'))

    [item] = plan_project(load_project(project_root), registry, None, principal=None).products  # type: ignore[arg-type]

    assert [a for a in registry.asked if a[1] != "check"] == [(SUBJECT, None)]
    assert [c.describe() for c in item.schema_changes] == ["- action: string", "+ what: string"]
    assert item.level_change == ("FULL_TRANSITIVE", "BACKWARD")
    assert item.compatible is True


def test_another_domains_principal_is_refused_with_the_403_and_the_fix(
    project_root: Path,
) -> None:
    plan = plan_project(load_project(project_root), FakeRegistry(), None, principal="orders")  # type: ignore[arg-type]

    [refusal] = plan.all_refusals
    assert refusal.policy == "ownership"
    assert refusal.location == "domains/inventory/products/example-event.yaml:4"
    assert "403" in refusal.message
    assert "MESH_REGISTRY_PRINCIPAL=inventory" in refusal.fix
    admin = plan_project(load_project(project_root), FakeRegistry(), None, principal="admin")  # type: ignore[arg-type]
    assert admin.applicable


def test_a_broken_schema_is_a_lint_refusal_naming_the_file(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    _schema_file(project_root).write_text('{"type": "record",\n  "name": }\n')

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [refusal] = plan.all_refusals
    assert (refusal.policy, refusal.location) == (
        "schema-valid",
        "schemas/inventory/example-event.avsc:2",
    )
    assert plan.products[0].schema is Status.UNKNOWN
    assert registry.asked == []


def test_a_non_finite_schema_default_is_refused_at_its_line_and_nothing_applied(
    project_root: Path,
) -> None:
    registry = FakeRegistry()
    path = _schema_file(project_root)
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "ratio", "type": "double", "doc": "r", "default": 0})
    path.write_text(json.dumps(schema, indent=2).replace('"default": 0', '"default": Infinity'))
    line = path.read_text().splitlines().index('      "default": Infinity') + 1
    project = load_project(project_root)

    plan = plan_project(project, registry, None, principal="inventory")  # type: ignore[arg-type]

    [refusal] = plan.all_refusals
    assert (refusal.policy, refusal.location) == (
        "schema-valid",
        f"schemas/inventory/example-event.avsc:{line}",
    )
    assert refusal.message == (
        f"not a valid Avro schema: fields[{len(schema['fields']) - 1}].default: Infinity is "
        f"not JSON; JSON numbers are finite 64-bit floats (NaN and infinities have no JSON "
        f"form): write a finite number"
    )
    with pytest.raises(PlanRefusedError, match=r"nothing applied: 1 refusal\(s\)"):
        apply_plan(plan, project, registry, None)  # type: ignore[arg-type]
    assert registry.writes == []


def test_a_refused_plan_writes_nothing(project_root: Path) -> None:
    registry = FakeRegistry()
    project = load_project(project_root)
    plan = plan_project(project, registry, None, principal="orders")  # type: ignore[arg-type]

    with pytest.raises(PlanRefusedError, match=r"nothing applied: 1 refusal\(s\)") as caught:
        apply_plan(plan, project, registry, None)  # type: ignore[arg-type]
    assert caught.value.refusals == plan.all_refusals
    assert registry.writes == []


def test_what_the_registrys_policies_refuse_is_refused_before_anything_is_written(
    project_root: Path,
) -> None:
    """A domain's policies.yaml does not reach the registry: apply made the topic and the
    schema, and only then did the registry refuse the descriptor (a new team's campaign)."""
    registry = FakeRegistry(
        policy_problems=[
            {
                "policy": "retention-bounds",
                "severity": "error",
                "message": "retention.ms 15552000000 is outside the platform bounds",
                "field": "retention",
            },
            {"policy": "tags", "severity": "warning", "message": "no tags", "field": None},
        ]
    )
    project = load_project(project_root)
    plan = plan_project(project, registry, None, principal="inventory")  # type: ignore[arg-type]

    [refusal] = plan.all_refusals
    assert refusal.policy == "retention-bounds"
    assert refusal.message == "retention: retention.ms 15552000000 is outside the platform bounds"
    assert refusal.file == "domains/inventory/products/example-event.yaml"
    assert "not the domain's policies.yaml" in refusal.fix
    assert any("[tags] (registry) no tags" in w for w in plan.products[0].warnings)
    assert (PRODUCT, "check") in registry.asked
    with pytest.raises(PlanRefusedError):
        apply_plan(plan, project, registry, None)  # type: ignore[arg-type]
    assert registry.writes == []


def test_an_unchanged_plan_writes_nothing(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    project = load_project(project_root)
    plan = plan_project(project, registry, None, principal="inventory")  # type: ignore[arg-type]
    plan.products[0].topic_status = plan.products[0].topic_status.AS_SPECIFIED

    done = apply_plan(plan, project, registry, None)  # type: ignore[arg-type]

    assert (done.changed, done.unchanged, registry.writes) == (False, [PRODUCT], [])


def test_descriptor_changes_flatten_nested_fields() -> None:
    changes = descriptor_changes(
        {"owner": {"team": "a", "contact": "x"}, "tags": ["a"]},
        {"owner": {"team": "b", "contact": "x"}, "tags": ["a", "b"], "readers": ["c"]},
    )
    assert [c.describe() for c in changes] == [
        "owner.team: a -> b",
        'readers: null -> ["c"]',
        'tags: ["a"] -> ["a", "b"]',
    ]


def test_a_changed_rule_is_named_by_its_index_and_field() -> None:
    """Two long rule lists cut to the same prefix looked identical (h44)."""
    long_doc = "At least one unit of something, whatever the channel of the order. " * 2
    before = {"rules": [{"name": "has-customer", "expr": "size(message.customer_id) > 0",
                         "doc": long_doc}]}  # fmt: skip
    after = {"rules": [{"name": "has-customer", "expr": "size(message.client_id) > 0",
                        "doc": long_doc}]}  # fmt: skip
    assert [c.describe() for c in descriptor_changes(before, after)] == [
        "rules['has-customer'].expr: size(message.customer_id) > 0 -> size(message.client_id) > 0"
    ]
    # a rule inserted first is the one change shown, not every later rule (h46)
    added = {"rules": [{"name": "has-lines", "expr": "size(message.l) > 0"}, *after["rules"]]}
    assert [c.describe() for c in descriptor_changes(after, added)] == [
        "rules['has-lines'].expr: null -> size(message.l) > 0",
        "rules['has-lines'].name: null -> has-lines",
    ]


def test_a_changed_default_is_a_schema_change() -> None:
    """What a reader fills in for records without the field changed, and plan showed
    nothing (h44)."""
    before = {"type": "record", "name": "R", "fields": [
        {"name": "priority", "type": "int", "default": 0},
        {"name": "note", "type": "string"},
        {"name": "same", "type": "int", "default": 1},
    ]}  # fmt: skip
    after = {"type": "record", "name": "R", "fields": [
        {"name": "priority", "type": "int", "default": 5},
        {"name": "note", "type": "string", "default": "none"},
        {"name": "same", "type": "int", "default": 1},
    ]}  # fmt: skip
    assert [c.describe() for c in schema_changes(before, after)] == [
        '~ note: (none) -> default "none"',
        "~ priority: default 0 -> default 5",
    ]
    same = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "d", "type": "double", "default": 0}],
    }
    written_again = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "d", "type": "double", "default": 0.0}],
    }
    assert schema_changes(same, written_again) == []  # 0 and 0.0: the same default


def test_a_schema_changed_only_outside_its_fields_types_says_how() -> None:
    """A new doc, namespace or field order is a new schema version that plan showed as
    "changed" with nothing listed under it."""
    before = {"type": "record", "name": "Order", "namespace": "io.shop", "doc": "An order.",
              "fields": [
        {"name": "id", "type": "string", "doc": "Its id."},
        {"name": "total", "type": "long"},
        {"name": "lines", "type": {"type": "record", "name": "Line", "fields": [
            {"name": "sku", "type": "string", "doc": "Stock unit."},
        ]}},
    ]}  # fmt: skip
    after = {"type": "record", "name": "Order", "namespace": "io.store", "doc": "An order.",
             "fields": [
        {"name": "total", "type": "long", "doc": "In cents; " + "x" * 60},
        {"name": "id", "type": "string", "doc": "Its id."},
        {"name": "lines", "type": {"type": "record", "name": "Line", "fields": [
            {"name": "sku", "type": "string"},
        ]}},
    ]}  # fmt: skip
    assert [c.describe() for c in schema_changes(before, after)] == [
        "~ (schema): renamed, io.shop.Order -> io.store.Order",
        "~ (schema): fields reordered, id was field 1 -> field 2",
        '~ lines.sku: doc changed, "Stock unit." -> (no doc)',
        '~ total: doc changed, (no doc) -> "In cents; ' + "x" * 29 + '…"',
    ]
    assert schema_changes(after, after) == []
    aliased = {**after, "aliases": ["io.store.Purchase"]}
    assert [c.describe() for c in schema_changes(after, aliased)] == [
        "~ (schema): changed outside its fields' names, types, defaults and docs"
    ]


def test_schema_changes_see_nested_fields_and_type_labels() -> None:
    line = {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}
    old = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "lines", "type": {"type": "array", "items": line}},
        ],
    }
    new_line = {**line, "fields": [*line["fields"], {"name": "qty", "type": ["null", "int"]}]}
    new = {
        **old,
        "fields": [
            old["fields"][0],
            {"name": "lines", "type": {"type": "array", "items": new_line}},
        ],
    }

    assert schema_changes(old, new) == [SchemaChange("lines.qty", "added", after="null|int")]
    assert [f.type for f in schema_fields(old)] == [
        "long (timestamp-millis)", "array<Line>", "string"
    ]  # fmt: skip
    assert type_label({"type": "map", "values": {"type": "enum", "name": "E"}}) == "map<enum E>"


def test_a_decimal_rescaled_is_a_type_change_with_its_precision_and_scale() -> None:
    """`decimal(12,2)` to `decimal(14,4)` showed as "schema changed" with no field line, and
    `show` said `bytes (decimal)` (h34): a reader's scale decides what the bytes mean."""

    def record(precision: int, scale: int) -> dict[str, object]:
        money = {"type": "bytes", "logicalType": "decimal", "precision": precision}
        return {
            "type": "record",
            "name": "R",
            "fields": [{"name": "value", "type": {**money, "scale": scale}}],
        }

    assert schema_changes(record(12, 2), record(14, 4)) == [
        SchemaChange("value", "type changed", "bytes (decimal(12,2))", "bytes (decimal(14,4))")
    ]
    assert [f.type for f in schema_fields(record(8, 3))] == ["bytes (decimal(8,3))"]
    unscaled = {"type": "fixed", "name": "F", "size": 8, "logicalType": "decimal", "precision": 9}
    assert type_label(unscaled) == "fixed (decimal(9,0))"


def test_a_rescaled_decimal_is_planned_with_a_warning_for_readers_with_reader_schemas(
    project_root: Path,
) -> None:
    """Avro's checkers accept `decimal(12,2)` -> `decimal(14,4)`; Java reading old records
    with the new schema reads 99.90 as 0.9990 (h34)."""
    registry = FakeRegistry()
    document = json.loads(_schema_file(project_root).read_text())
    money = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
    document["fields"].append({"name": "price", "type": money, "doc": "Unit price."})
    _schema_file(project_root).write_text(json.dumps(document, indent=2))
    _registered(project_root, registry)
    document["fields"][-1]["type"] = {**money, "precision": 14, "scale": 4}
    _schema_file(project_root).write_text(json.dumps(document, indent=2))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.schema_changes == [
        SchemaChange("price", "type changed", "bytes (decimal(12,2))", "bytes (decimal(14,4))")
    ]
    [warning] = [w for w in item.warnings if "rescaled" in w]
    assert warning.startswith(
        f"{SUBJECT}: field price is rescaled (bytes (decimal(12,2)) -> bytes (decimal(14,4)))"
    )
    assert "(99.90 as 0.9990)" in warning


def test_a_narrowed_precision_and_a_rename_by_alias_are_planned_with_warnings(
    project_root: Path,
) -> None:
    """Both pass the registry's check and plan said nothing (h44): a lower precision refuses
    values producers sent until now; a rename through `aliases` gives old readers the
    default of the old name, silently."""
    registry = FakeRegistry()
    document = json.loads(_schema_file(project_root).read_text())
    money = {"type": "bytes", "logicalType": "decimal", "precision": 14, "scale": 4}
    document["fields"].append({"name": "price", "type": money, "doc": "Unit price."})
    optional = {"type": ["null", "string"], "default": None, "doc": "A coupon."}
    document["fields"].append({"name": "coupon", **optional})
    _schema_file(project_root).write_text(json.dumps(document, indent=2))
    _registered(project_root, registry)
    document["fields"][-2]["type"] = {**money, "precision": 6}
    document["fields"][-1] = {"name": "promo_code", "aliases": ["coupon"], **optional}
    _schema_file(project_root).write_text(json.dumps(document, indent=2))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    [lowered] = [w for w in item.warnings if "precision is lowered" in w]
    assert lowered.startswith(
        f"{SUBJECT}: field price's precision is lowered (bytes (decimal(14,4)) -> bytes "
        f"(decimal(6,4)))"
    )
    [renamed] = [w for w in item.warnings if "renamed through its aliases" in w]
    assert renamed.startswith(
        f"{SUBJECT}: field promo_code (was coupon) is renamed through its aliases"
    )
    assert not [w for w in item.warnings if "rescaled" in w]  # the scale stayed
    # the last line counts them beside lint's
    assert plan_summary(plan, len(plan.to_dict()["warnings"])) == (
        "plan: 0 new, 1 changed, 0 unchanged product(s); lint 0 error(s), 0 warning(s); 2 "
        "plan warning(s); applicable"
    )


def test_show_fields_carry_doc_and_pii() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "email", "type": "string", "doc": "Where to write.", "pii": True}],
    }
    [email] = schema_fields(schema)
    assert (email.name, email.type, email.doc, email.pii) == (
        "email",
        "string",
        "Where to write.",
        True,
    )


def test_a_domains_apply_grants_its_own_acls_and_its_readers_never_the_registrys(
    project_root: Path,
) -> None:
    descriptor = project_root / "domains/inventory/products/example-event.yaml"
    descriptor.write_text(
        descriptor.read_text().replace("classification: internal", "classification: pii")
        + "readers: [analytics]\n"
    )
    project = load_project(project_root)

    acls = domain_acls(project.descriptors(), project.domains, "User:registry")

    assert {a.principal for a in acls} == {"User:inventory", "User:analytics"}
    assert {a.name for a in acls if a.principal == "User:analytics"} == {
        "inventory.example-event.v1", "inventory.example-event.v1.dlq"
    }  # fmt: skip


TOTALS = """\
name: inventory.item-totals
domain: inventory
kind: aggregate
description: Total quantity per item, from the orders domain's stock events.
owner: {team: inventory-team, contact: inventory-team@example.com}
schema: schemas/inventory/item-totals.avsc
key_field: item_id
slos: {freshness_seconds: 60, availability: 99.5}
classification: internal
inputs: [orders.stock-event]
"""


def _totals_project(root: Path) -> None:
    (root / "domains/inventory/products/item-totals.yaml").write_text(TOTALS)
    schema = {
        "type": "record",
        "name": "ItemTotals",
        "namespace": "com.example.inventory",
        "doc": "Totals of one item.",
        "fields": [
            {"name": "item_id", "type": "string", "doc": "Id of the item; the Kafka key."},
            {"name": "total", "type": "long", "doc": "Sum of the quantities."},
        ],
    }
    (root / "schemas/inventory/item-totals.avsc").write_text(json.dumps(schema))


def test_an_input_of_another_domain_is_found_in_the_registry(project_root: Path) -> None:
    _totals_project(project_root)
    registry = FakeRegistry()
    stock = (
        load_project(project_root)
        .descriptors()[0]
        .model_copy(update={"name": "orders.stock-event", "domain": "orders"})
    )
    registry.products[stock.name] = stock.to_document()
    registry.schemas[stock.value_subject] = [_schema_file(project_root).read_text()]

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    assert plan.all_refusals == []
    assert [p.name for p in plan.products] == [PRODUCT, "inventory.item-totals"]


def test_an_input_known_nowhere_is_refused_naming_it(project_root: Path) -> None:
    _totals_project(project_root)

    plan = plan_project(load_project(project_root), FakeRegistry(), None, principal=None)  # type: ignore[arg-type]

    [refusal] = plan.all_refusals
    assert refusal.policy == "inputs-exist"
    assert refusal.location == "domains/inventory/products/item-totals.yaml:10"
    assert "'orders.stock-event' is not a product of the mesh" in refusal.message


def test_a_schema_registered_as_an_older_version_is_unchanged_with_a_warning(
    project_root: Path,
) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    newer = json.loads(registry.schemas[SUBJECT][0])
    newer["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    registry.schemas[SUBJECT].append(json.dumps(newer))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.schema is Status.UNCHANGED
    assert item.unchanged
    assert registry.asked == []
    [warning] = item.warnings
    assert "is version 1 of inventory.example-event.v1-value, older than the latest version 2" in (
        warning
    )
    assert item.local_version == 1
    from mesh_stream.cli.products import _product_lines

    assert (
        f"    schema {SUBJECT}: unchanged (the local schema is registered version 1, older than "
        f"the latest 2)"
    ) in _product_lines(item)  # not "unchanged, registered version 2" beside the warning (h34)


def _read_by_counts(registry: FakeRegistry) -> None:
    """analytics.action-counts reads inventory.example-event's action (field_lineage)."""
    registry.products["analytics.action-counts"] = {
        **descriptor(
            "analytics.action-counts",
            kind="aggregate",
            inputs=["inventory.example-event"],
            schema="schemas/analytics/action-counts.avsc",
            field_lineage={"action": ["inventory.example-event:action"]},
        ),
    }


def test_a_change_that_breaks_a_reading_product_is_refused_naming_it(
    project_root: Path,
) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    _read_by_counts(registry)
    text = _schema_file(project_root).read_text()
    # action: string -> int (the registry's own BACKWARD verdict is the fake's: compatible)
    _schema_file(project_root).write_text(
        text.replace('"action", "type": "string"', '"action", "type": "int"')
    )

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.consumers == ["analytics.action-counts"]
    assert item.consumer_level == "FULL_TRANSITIVE"
    assert item.protects_consumers is False
    assert item.compatible is False
    [refusal] = plan.all_refusals
    assert refusal.policy == "compatibility-with-consumers"
    assert refusal.location.startswith("schemas/inventory/example-event.avsc:")
    assert refusal.line is not None
    assert refusal.line > 1
    assert (
        "analytics.action-counts reads field action (field_lineage), which the new version "
        "retypes from string to int"
    ) in refusal.message
    assert "field action: type changed from string to int" in refusal.message
    assert refusal.fix.endswith(
        "publish a new major version inventory.example-event.v2 (`version: 2` in the descriptor)"
    )
    assert not plan.applicable
    lines = "\n".join(_product_lines(item))
    assert (
        "read by analytics.action-counts: FULL_TRANSITIVE (consumer protection): BREAKS THEM"
        in lines
    )


def test_a_change_both_the_level_and_the_readers_refuse_says_each_reason_once(
    project_root: Path,
) -> None:
    """The registry's 409 holds consumer protection's text too: the level's refusal repeated
    it in full before the readers' own refusal (h34: 3,000 characters, each reason twice)."""
    registry = FakeRegistry(verdict=["LEVEL AND READERS TEXT OF THE REGISTRY"])
    _registered(project_root, registry)
    _read_by_counts(registry)
    text = _schema_file(project_root).read_text()
    _schema_file(project_root).write_text(  # BACKWARD refuses string -> int as well
        text.replace('"action", "type": "string"', '"action", "type": "int"')
    )

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    level, readers = plan.all_refusals
    assert (level.policy, readers.policy) == (
        "schema-compatibility",
        "compatibility-with-consumers",
    )
    assert "LEVEL AND READERS TEXT" not in level.message
    assert "field action" in level.message
    assert "analytics.action-counts" not in level.message  # the readers' refusal says it
    assert "analytics.action-counts reads field action" in readers.message


def test_a_compatible_change_keeps_the_reading_products_working(project_root: Path) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    _read_by_counts(registry)
    document = json.loads(_schema_file(project_root).read_text())
    document["fields"].append(
        {"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."}
    )
    _schema_file(project_root).write_text(json.dumps(document, indent=2))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.protects_consumers is True
    assert item.compatible is True
    assert plan.applicable


def test_a_change_that_breaks_a_registered_consumer_group_is_refused_naming_it(
    project_root: Path,
) -> None:
    registry = FakeRegistry()
    _registered(project_root, registry)
    registry.groups[PRODUCT] = [{"group": "stock-app", "owner": "shop", "reads": ["action"]}]
    document = json.loads(_schema_file(project_root).read_text())
    document["fields"] = [f for f in document["fields"] if f["name"] != "action"]
    _schema_file(project_root).write_text(json.dumps(document, indent=2))

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    [item] = plan.products
    assert item.consumers == ["consumer group 'stock-app' (owner shop)"]
    assert item.consumer_level == "FULL_TRANSITIVE"
    assert item.protects_consumers is False
    [refusal] = plan.all_refusals
    assert refusal.policy == "compatibility-with-consumers"
    assert (
        "consumer group 'stock-app' (owner shop) reads field action (registered reads), which "
        "the new version removes"
    ) in refusal.message
    assert not plan.applicable
    lines = "\n".join(_product_lines(item))
    assert (
        "read by consumer group 'stock-app' (owner shop): FULL_TRANSITIVE (consumer "
        "protection): BREAKS THEM"
    ) in lines


def test_a_new_major_dropping_a_field_its_readers_use_is_a_warning_naming_them(
    project_root: Path,
) -> None:
    """A new major is a new subject and topic, so the registry protects no reader of the
    old one; plan said "applicable" and nothing else, and the reading processor refused to
    start once it moved (a processor team's campaign)."""
    registry = FakeRegistry()
    _registered(project_root, registry)
    _read_by_counts(registry)
    registry.groups[PRODUCT] = [{"group": "stock-app", "owner": "shop", "reads": ["action"]}]
    document = json.loads(_schema_file(project_root).read_text())
    document["fields"] = [f for f in document["fields"] if f["name"] != "action"]
    _schema_file(project_root).write_text(json.dumps(document, indent=2))
    descriptor_file = project_root / "domains/inventory/products/example-event.yaml"
    descriptor_file.write_text(descriptor_file.read_text() + "version: 2\n")

    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]

    assert plan.applicable  # a warning, not a refusal: v1 readers keep reading v1
    [item] = plan.products
    assert [w for w in item.warnings if "drops field" in w] == [
        "major version 2 of inventory.example-event drops field 'action', which consumer "
        "group stock-app, product analytics.action-counts's field_lineage read(s) on version "
        "1: they keep reading version 1's topic, and must stop reading 'action' before they "
        "move to version 2 (a processor refuses to start on a field its input lacks)"
    ]


def test_the_registry_check_waits_for_an_input_new_in_the_same_project(
    project_root: Path,
) -> None:
    """The registry cannot judge the lineage of an input it does not hold yet (apply
    registers it first): no refusal, a warning (a review: plan refused such products)."""
    import yaml

    source = project_root / "domains/inventory/products/example-event.yaml"
    derived = yaml.safe_load(source.read_text())
    derived.update(name="inventory.stock-levels", inputs=["inventory.example-event"])
    derived["kind"] = "aggregate"
    derived["schema"] = "schemas/inventory/stock-levels.avsc"
    (project_root / "domains/inventory/products/stock-levels.yaml").write_text(
        yaml.safe_dump(derived)
    )
    schemas = project_root / "schemas/inventory"
    (schemas / "stock-levels.avsc").write_text(
        (schemas / "example-event.avsc").read_text().replace("ExampleEvent", "StockLevel")
    )
    registry = FakeRegistry(
        policy_problems=[
            {"policy": "inputs-exist", "severity": "error", "message": "not a product"}
        ]
    )
    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]
    by_name = {item.name: item for item in plan.products}
    assert ("inventory.stock-levels", "check") not in registry.asked
    assert any(
        "checked when apply registers it, after its input(s) inventory.example-event" in w
        for w in by_name["inventory.stock-levels"].warnings
    )
    assert [r.policy for r in by_name["inventory.stock-levels"].refusals] == []


def test_a_policys_field_is_a_path_into_the_descriptor() -> None:
    from mesh_stream.products_plan.plan import _field_path

    assert _field_path("inputs[0]") == ("inputs", 0)
    assert _field_path("retention.ms") == ("retention", "ms")
    assert _field_path("field_lineage.total[1]") == ("field_lineage", "total", 1)


def test_an_enum_gaining_or_losing_symbols_and_a_fixed_resized_are_changes() -> None:
    """The plan said "changed" with no change listed, and an incompatible enum change was
    refused at line 1 (a campaign): the label `enum Reason` is the same both sides."""
    registered = {
        "type": "record",
        "name": "Adjusted",
        "fields": [
            {"name": "reason", "type": {"type": "enum", "name": "Reason", "symbols": ["A", "B"]}},
            {"name": "hash", "type": ["null", {"type": "fixed", "name": "Hash", "size": 16}]},
            {"name": "kept", "type": {"type": "enum", "name": "Kept", "symbols": ["X"]}},
        ],
    }
    local = json.loads(json.dumps(registered))
    local["fields"][0]["type"]["symbols"] = ["A", "LOST"]
    local["fields"][1]["type"][1]["size"] = 32
    assert [c.describe() for c in schema_changes(registered, local)] == [
        "~ hash: null|fixed Hash -> null|fixed Hash (size 16 -> 32)",
        "~ reason: enum Reason -> enum Reason (symbols + LOST; - B)",
    ]
    assert schema_changes(registered, registered) == []


def test_every_promised_topic_setting_has_the_descriptor_field_that_says_it() -> None:
    """One list of promised settings (kafka.topics) serves the plan and the publisher."""
    from mesh_stream.kafka.topics import PROMISED_SETTINGS
    from mesh_stream.products_plan import plan as plan_module

    assert set(plan_module._PROMISED) == PROMISED_SETTINGS


def test_a_contract_an_older_version_holds_is_a_warning_not_a_change_apply_repeats(
    project_root: Path,
) -> None:
    """Registering returns the older version holding the same schema and contract
    (Confluent's semantics), so dropping the rules version 2 added was planned as a change
    and apply "registered" on every run, changing nothing (seen when a shared registry held
    a ruled version). Without such an older version it is a change, a new version."""
    registry = FakeRegistry()
    _registered(project_root, registry)
    descriptor = project_root / "domains/inventory/products/example-event.yaml"
    plain = descriptor.read_text()
    schema = json.loads(_schema_file(project_root).read_text())
    [product] = load_project(project_root).descriptors()
    descriptor.write_text(
        plain + "rules:\n  - name: positive-quantity\n    expr: message.quantity > 0\n"
    )
    [ruled] = load_project(project_root).descriptors()
    registry.contracts[SUBJECT] = compile_contract(ruled, schema)  # the latest has the rule
    descriptor.write_text(plain)

    [item] = plan_project(
        load_project(project_root), registry, None, principal="inventory"
    ).products  # type: ignore[arg-type]
    assert item.contract_changes == ["quality rules: ['positive-quantity'] -> none"]

    registry.schemas[SUBJECT] = registry.schemas[SUBJECT] * 2  # version 1 without the rule
    registry.older[(SUBJECT, 1)] = compile_contract(product, schema)
    [item] = plan_project(
        load_project(project_root), registry, None, principal="inventory"
    ).products  # type: ignore[arg-type]
    assert item.schema is Status.UNCHANGED
    assert item.contract_changes == []
    [warning] = [w for w in item.warnings if "older than the latest" in w]
    assert warning.startswith(
        f"the registry holds this schema with the descriptor's contract as version 1 of "
        f"{SUBJECT}, older than the latest version 2 (quality rules: ['positive-quantity'] -> "
        "none): registering returns version 1"
    )


def test_a_schema_the_registry_would_refuse_for_its_size_is_refused_by_plan(
    project_root: Path,
) -> None:
    """lint judges a schema against the SDK's 1 MiB; a registry configured tighter refused it
    only at apply, after the topics were created (h44). Plan asks the registry to read it."""

    class Tight(FakeRegistry):
        def check_compatibility(
            self, subject: str, schema: str, *, version: str | int | None = "latest"
        ) -> list[str]:
            self.asked.append((subject, version))
            raise InvalidSchemaError(
                f"Invalid schema: the schema is {len(schema)} bytes, more than the limit of 100 "
                "(MESH_REGISTRY_MAX_SCHEMA_BYTES)",
                status=422,
                error_code=42201,
            )

    registry = Tight()
    plan = plan_project(load_project(project_root), registry, None, principal="inventory")  # type: ignore[arg-type]
    assert not plan.applicable
    [refusal] = plan.all_refusals
    assert refusal.policy == "schema-valid"
    assert refusal.location == "schemas/inventory/example-event.avsc:1"
    assert refusal.message.startswith(
        "inventory.example-event.v1-value: the registry at http://registry.test refuses the "
        "schema: Invalid schema: the schema is "
    )
    assert "more than the limit of 100 (MESH_REGISTRY_MAX_SCHEMA_BYTES)" in refusal.message
    assert registry.writes == []


def test_a_topic_another_principal_does_not_see_is_not_called_missing_outright() -> None:
    """h59: as payments, customers' existing PII topic was planned as "missing, apply creates
    it": the cluster's listing leaves out the topics a principal may not DESCRIBE."""
    from mesh_stream.cli.products import _product_lines
    from mesh_stream.products_plan.model import ProductPlan, TopicStatus

    item = ProductPlan(
        "customers.customer-profile",
        "customers.customer-profile.v1",
        "customers.customer-profile.v1-value",
        "domains/customers/products/customer-profile.yaml",
        topic_status=TopicStatus.MISSING,
        topic_spec="3 partition(s), RF 3",
        topic_unseen_by="User:payments",
    )
    [line] = [line for line in _product_lines(item) if line.startswith("    topic ")]
    assert line == (
        "    topic customers.customer-profile.v1: missing or not visible to User:payments (a "
        "principal sees only the topics it may DESCRIBE); apply creates it if missing (3 "
        "partition(s), RF 3)"
    )
    item.topic_unseen_by = None
    [line] = [line for line in _product_lines(item) if line.startswith("    topic ")]
    assert line.endswith(": missing, apply creates it (3 partition(s), RF 3)")


def test_breaking_suspects_leave_out_promotions_new_records_fields_and_removed_defaults() -> None:
    """Review h60: a field of an optional record added beside a retype, a widening `int ->
    long` beside a new required field, and a removed field that had a default were each
    called breaking (and the refusal pointed at them)."""
    from mesh_stream.products_plan.judge import breaking_suspects

    def record(*fields: dict[str, Any]) -> dict[str, Any]:
        return {"type": "record", "name": "R", "fields": list(fields)}

    street = {"type": "record", "name": "Addr", "fields": [{"name": "street", "type": "string"}]}
    old = record({"name": "id", "type": "string"}, {"name": "amount", "type": "int"})
    new = record(
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "string"},
        {"name": "address", "type": ["null", street], "default": None},
    )
    changes = schema_changes(old, new)
    suspects = breaking_suspects(changes, json.dumps(new), "BACKWARD", json.dumps(old))
    assert [c.describe() for c in suspects] == ["~ amount: int -> string"]

    widened = record(
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "long"},
        {"name": "zz", "type": "string"},
    )
    changes = schema_changes(old, widened)
    suspects = breaking_suspects(changes, json.dumps(widened), "BACKWARD", json.dumps(old))
    assert [c.describe() for c in suspects] == ["+ zz: string"]
    at_full = breaking_suspects(changes, json.dumps(widened), "FULL", json.dumps(old))
    assert [c.describe() for c in at_full] == ["~ amount: int -> long", "+ zz: string"]

    defaulted = record({"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0})
    plain = record({"name": "id", "type": "string"}, {"name": "m", "type": "int"})
    changes = schema_changes(defaulted, plain)
    suspects = breaking_suspects(changes, json.dumps(plain), "FULL", json.dumps(defaulted))
    assert [c.describe() for c in suspects] == ["+ m: int"]  # n had a default old readers use


def test_a_nested_records_reorder_is_not_counted_among_the_top_level_fields() -> None:
    line = {"type": "record", "name": "Line", "fields": [
        {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}  # fmt: skip
    swapped = {**line, "fields": list(reversed(line["fields"]))}
    before = {"type": "record", "name": "O", "fields": [
        {"name": "lines", "type": line}, {"name": "id", "type": "string"}]}  # fmt: skip
    after = {"type": "record", "name": "O", "fields": [
        {"name": "id", "type": "string"}, {"name": "lines", "type": swapped}]}  # fmt: skip
    assert [c.describe() for c in schema_changes(before, after)] == [
        "~ (schema): fields reordered, lines was field 1 -> field 2"
    ]
    nested_only = {**before, "fields": [{"name": "lines", "type": swapped}, before["fields"][1]]}
    assert [c.describe() for c in schema_changes(before, nested_only)] == [
        "~ (schema): changed outside its fields' names, types, defaults and docs"
    ]
