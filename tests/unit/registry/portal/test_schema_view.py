"""The schema as the product page shows it: field rows, readable types, and version diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.registry.portal.schema_view import (
    MAX_DEFAULT_CHARS,
    diff_fields,
    json_line_diff,
    logical_type,
    schema_fields,
    type_text,
)
from mesh_stream.schema.avro import field_docs, parse_schema

REPO = Path(__file__).resolve().parents[4]

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [
        {"name": "street", "type": "string", "doc": "Street and number.", "pii": True},
        {"name": "postcode", "type": ["null", "string"], "default": None},
    ],
}
CUSTOMER: dict[str, Any] = {
    "type": "record",
    "name": "Customer",
    "namespace": "io.example",
    "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "doc": "Id."},
        {"name": "email", "type": "string", "pii": True, "doc": "Where to write."},
        {"name": "home", "type": ADDRESS, "doc": "Where they live."},
        {"name": "work", "type": ["null", "Address"], "default": None},
        {
            "name": "orders",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Order",
                    "fields": [
                        {
                            "name": "total",
                            "type": {
                                "type": "bytes",
                                "logicalType": "decimal",
                                "precision": 12,
                                "scale": 2,
                            },
                        },
                        {"name": "next", "type": ["null", "Order"], "default": None},
                    ],
                },
            },
        },
        {"name": "scores", "type": {"type": "map", "values": "long"}, "default": {}},
        {
            "name": "tier",
            "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]},
            "default": "SILVER",
        },
        {"name": "seen_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "digest", "type": {"type": "fixed", "name": "Md5", "size": 16}},
    ],
}


def test_every_field_nested_ones_as_dotted_paths() -> None:
    rows = {row.path: row for row in schema_fields(CUSTOMER)}
    assert list(rows) == [
        "id",
        "email",
        "home",
        "home.street",
        "home.postcode",
        "work",
        "work.street",
        "work.postcode",
        "orders",
        "orders.total",
        "orders.next",
        "scores",
        "tier",
        "seen_at",
        "digest",
    ]
    assert rows["home.street"].depth == 1
    assert rows["orders.next"].type == "null | Order"  # recursive: not expanded again


def test_the_parsed_schema_documents_paths_agree_with_search() -> None:
    """The table lists the paths search and governance know (``field_docs``)."""
    for avsc in sorted((REPO / "schemas").glob("*/*.avsc")):
        document = parse_schema(avsc.read_text()).to_json()
        assert [r.path for r in schema_fields(document)] == [p for p, _ in field_docs(document)]


def test_readable_types() -> None:
    rows = {row.path: row for row in schema_fields(CUSTOMER)}
    assert rows["id"].type == "string"
    assert rows["home"].type == "record Address"
    assert rows["work"].type == "null | Address"
    assert rows["orders"].type == "array<Order>"
    assert rows["scores"].type == "map<string, long>"
    assert rows["tier"].type == "enum Tier {GOLD, SILVER}"
    assert rows["digest"].type == "fixed Md5 (16 bytes)"
    assert rows["seen_at"].type == "null | long"
    assert type_text("io.example.Customer") == "Customer"


def test_logical_types_pii_defaults_docs() -> None:
    rows = {row.path: row for row in schema_fields(CUSTOMER)}
    assert rows["id"].logical_type == "uuid"
    assert rows["orders.total"].logical_type == "decimal(12, 2)"
    assert rows["seen_at"].logical_type == "timestamp-millis"
    assert rows["email"].logical_type is None
    assert [p for p, r in rows.items() if r.pii] == ["email", "home.street", "work.street"]
    assert (rows["work"].has_default, rows["work"].default) == (True, "null")
    assert (rows["tier"].default, rows["scores"].default) == ('"SILVER"', "{}")
    assert (rows["id"].has_default, rows["id"].default) == (False, "")
    assert rows["home"].doc == "Where they live."
    assert rows["work"].doc is None
    assert logical_type({"type": "bytes", "logicalType": "decimal", "precision": 4}) == (
        "decimal(4, 0)"
    )


def test_a_huge_default_is_cut() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "blob", "type": "string", "default": "x" * 10_000}],
    }
    (row,) = schema_fields(schema)
    assert len(row.default) == MAX_DEFAULT_CHARS
    assert row.default.endswith("…")


@pytest.mark.parametrize("schema", ["string", ["null", "string"], {"type": "array"}, None, 3])
def test_a_schema_that_is_not_a_record_has_no_fields(schema: Any) -> None:
    assert schema_fields(schema) == []


def test_odd_field_entries_are_skipped_not_fatal() -> None:
    schema = {"type": "record", "name": "R", "fields": [3, {"doc": "no name"}, {"name": "a"}]}
    (row,) = schema_fields(schema)
    assert (row.path, row.type) == ("a", "null")


def _with(schema: dict[str, Any], *fields: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "fields": [*schema["fields"], *fields]}


def test_diff_names_added_removed_and_changed_fields() -> None:
    old = CUSTOMER
    fields = [dict(f) for f in CUSTOMER["fields"] if f["name"] != "digest"]
    for field in fields:
        if field["name"] == "email":
            field.update(doc="Where we write to them.", type=["null", "string"], default=None)
        if field["name"] == "tier":
            field["default"] = "GOLD"
    new = _with({**CUSTOMER, "fields": fields}, {"name": "nickname", "type": "string"})
    diff = diff_fields(old, new)
    assert [r.path for r in diff.added] == ["nickname"]
    assert [r.path for r in diff.removed] == ["digest"]
    changes = {c.path: c.changes for c in diff.changed}
    assert changes == {
        "email": (
            ("type", "string", "null | string"),
            ("default", "(none)", "null"),
            ("doc", "Where to write.", "Where we write to them."),
        ),
        "tier": (("default", '"SILVER"', '"GOLD"'),),
    }
    assert not diff.empty
    assert diff_fields(old, old).empty


def test_diff_sees_nested_changes() -> None:
    address = {**ADDRESS, "fields": [*ADDRESS["fields"], {"name": "city", "type": "string"}]}
    new = {
        **CUSTOMER,
        "fields": [
            {**f, "type": address} if f["name"] == "home" else f for f in CUSTOMER["fields"]
        ],
    }
    diff = diff_fields(CUSTOMER, new)
    assert [r.path for r in diff.added] == ["home.city", "work.city"]


def test_json_line_diff_marks_lines() -> None:
    new = _with(CUSTOMER, {"name": "nickname", "type": "string"})
    lines = json_line_diff(CUSTOMER, new, old_label="version 1", new_label="version 2")
    kinds = {line.kind for line in lines}
    assert kinds <= {"file", "hunk", "add", "del", "same"}
    assert lines[0].text == "--- version 1"
    assert lines[1].text == "+++ version 2"
    added = "\n".join(line.text for line in lines if line.kind == "add")
    assert '"name": "nickname"' in added
    assert (
        json_line_diff(CUSTOMER, json.loads(json.dumps(CUSTOMER)), old_label="a", new_label="b")
        == []
    )


def test_versions_too_long_to_compare_line_by_line_get_one_line_saying_so() -> None:
    """h54: two 5,000-field versions took difflib 8 s of CPU per request; past
    MAX_DIFF_INPUT_LINES the line diff is one line, the field changes stay complete."""

    def wide(doc: str, count: int) -> dict[str, Any]:
        fields = [{"name": f"f{i}", "type": "string", "doc": f"{doc} {i}"} for i in range(count)]
        return {"type": "record", "name": "Wide", "fields": fields}

    old, new = wide("before", 5000), wide("after", 5000)
    lines = json_line_diff(old, new, old_label="version 1", new_label="version 2")
    assert [line.kind for line in lines] == ["hunk"]
    assert "too long to compare line by line here" in lines[0].text
    assert "50,012 lines" in lines[0].text
    fitting = json_line_diff(wide("a", 300), wide("b", 300), old_label="1", new_label="2")
    assert sum(1 for line in fitting if line.kind == "add") == 300
