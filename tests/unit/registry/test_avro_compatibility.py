"""Compatibility levels, in the style of Confluent's AvroCompatibilityTest matrix, decided by
the `avro` package's checker; and normalisation so formatting never makes a new version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_stream.descriptor import Compatibility
from mesh_stream.errors import SchemaError
from mesh_stream.schema.avro import (
    canonical_form,
    compatibility_problems,
    field_docs,
    fingerprint,
    normalize,
    parse_schema,
)


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "myrecord", "fields": list(fields)}


F1 = {"name": "f1", "type": "string"}
F2_DEFAULT = {"name": "f2", "type": "string", "default": "foo"}
F2 = {"name": "f2", "type": "string"}
F3_DEFAULT = {"name": "f3", "type": "string", "default": "bar"}

SCHEMA1 = record(F1)  # one field
SCHEMA2 = record(F1, F2_DEFAULT)  # adds a field with a default
SCHEMA3 = record(F1, F2)  # adds a field without a default
SCHEMA6 = record({"name": "f1", "type": ["null", "string"], "default": None})
SCHEMA7 = record({"name": "f1", "type": ["null", "string", "int"], "default": None})
SCHEMA8 = record(F1, F2_DEFAULT, F3_DEFAULT)
INT_FIELD = record({"name": "n", "type": "int"})
LONG_FIELD = record({"name": "n", "type": "long"})

ENUM_AB = record({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}})
ENUM_ABC = record({"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}})
STRING_FIELD = record({"name": "n", "type": "string"})
RENAMED = {**SCHEMA1, "name": "otherrecord"}

B, BT = Compatibility.BACKWARD, Compatibility.BACKWARD_TRANSITIVE
F, FT = Compatibility.FORWARD, Compatibility.FORWARD_TRANSITIVE
FU, FUT = Compatibility.FULL, Compatibility.FULL_TRANSITIVE
N = Compatibility.NONE

# (level, registered versions oldest first, candidate, compatible?)
MATRIX = [
    (B, [SCHEMA1], SCHEMA2, True),  # new field with default: readable
    (B, [SCHEMA1], SCHEMA3, False),  # new field without default: old data lacks it
    (B, [SCHEMA2], SCHEMA3, True),  # dropping the default is fine for a reader of v2 data
    (B, [SCHEMA3], SCHEMA2, True),
    (B, [SCHEMA1, SCHEMA2], SCHEMA3, True),  # only the latest counts
    (BT, [SCHEMA1, SCHEMA2], SCHEMA3, False),  # ... unless transitive: v1 data lacks f2
    (B, [SCHEMA6], SCHEMA7, True),  # widening a union
    (B, [SCHEMA7], SCHEMA6, False),  # narrowing a union
    (B, [INT_FIELD], LONG_FIELD, True),  # promotion int -> long
    (B, [LONG_FIELD], INT_FIELD, False),
    (F, [SCHEMA1], SCHEMA2, True),  # old readers ignore the new field
    (F, [SCHEMA2], SCHEMA1, True),  # old readers fill the removed field from its default
    (F, [SCHEMA3], SCHEMA1, False),  # old readers need f2 and have no default
    (F, [SCHEMA6], SCHEMA7, False),  # old readers cannot read the int branch
    (F, [SCHEMA3, SCHEMA2], SCHEMA1, True),
    (FT, [SCHEMA3, SCHEMA2], SCHEMA1, False),  # v1 readers need f2
    (FU, [SCHEMA1], SCHEMA2, True),
    (FU, [SCHEMA2], SCHEMA1, True),
    (FU, [SCHEMA1], SCHEMA3, False),
    (FU, [SCHEMA3], SCHEMA1, False),
    (FU, [SCHEMA6], SCHEMA7, False),
    (FU, [SCHEMA3, SCHEMA2], SCHEMA1, True),
    (FUT, [SCHEMA3, SCHEMA2], SCHEMA1, False),
    (FUT, [SCHEMA1, SCHEMA2], SCHEMA8, True),
    (N, [SCHEMA1], SCHEMA3, True),
    (N, [SCHEMA7], INT_FIELD, True),
    (B, [], SCHEMA3, True),  # nothing registered yet
    (B, [ENUM_AB], ENUM_ABC, True),  # a new reader knows every old symbol
    (F, [ENUM_AB], ENUM_ABC, False),  # an old reader meets an unknown symbol
    (FU, [ENUM_ABC], ENUM_AB, False),
    (B, [STRING_FIELD], INT_FIELD, False),  # type change
    (F, [STRING_FIELD], INT_FIELD, False),
    (B, [SCHEMA1], RENAMED, False),  # a record of another name
    (B, [SCHEMA3], SCHEMA1, True),  # dropping a field: new readers ignore it
    (FT, [SCHEMA1, SCHEMA2], SCHEMA8, True),  # only fields with defaults added
    (BT, [SCHEMA1, SCHEMA2], SCHEMA8, True),
    (N, [STRING_FIELD], RENAMED, True),
]


@pytest.mark.parametrize(("level", "registered", "candidate", "compatible"), MATRIX)
def test_compatibility_matrix(
    level: Compatibility,
    registered: list[dict[str, Any]],
    candidate: dict[str, Any],
    compatible: bool,
) -> None:
    versions = [(n, parse_schema(s)) for n, s in enumerate(registered, start=1)]
    problems = compatibility_problems(parse_schema(candidate), versions, level)
    assert (not problems) is compatible, problems


def test_problems_name_the_version_and_the_field() -> None:
    problems = compatibility_problems(
        parse_schema(SCHEMA3), [(1, parse_schema(SCHEMA1))], Compatibility.BACKWARD
    )
    assert problems == [
        "field f2: added without a default; consumers reading with the new schema cannot "
        "read old records (version 1), which lack it; fix: give it a default, or make it "
        'optional: ["null", "string"] with default null'
    ]


def test_every_level_is_covered() -> None:
    assert {row[0] for row in MATRIX} == set(Compatibility)


def _shuffle_keys(value: Any, seed: int) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        items = items[seed % len(items) :] + items[: seed % len(items)] if items else items
        return {k: _shuffle_keys(v, seed + 1) for k, v in reversed(items)}
    if isinstance(value, list):
        return [_shuffle_keys(v, seed + 1) for v in value]
    return value


@given(seed=st.integers(0, 50), indent=st.sampled_from([None, 0, 2, 7]))
def test_whitespace_and_key_order_do_not_change_the_normal_form(seed: int, indent: int) -> None:
    for schema in (SCHEMA1, SCHEMA7, SCHEMA8):
        reformatted = json.dumps(_shuffle_keys(schema, seed), indent=indent)
        assert normalize(reformatted) == normalize(json.dumps(schema))
        assert fingerprint(reformatted) == fingerprint(schema)


def test_normal_form_keeps_docs_and_defaults_but_canonical_fingerprint_ignores_them() -> None:
    documented = record({**F1, "doc": "first"}, F2_DEFAULT)
    assert json.loads(normalize(documented)) == documented
    plain = record(F1, F2)
    assert normalize(documented) != normalize(plain)
    assert fingerprint(documented) == fingerprint(plain)
    assert len(fingerprint(plain, "sha256")) == 64


def test_a_named_fixed_decimal_used_again_is_written_out_once() -> None:
    """avro writes a fixed decimal out in full at every use: the normal form of a valid
    schema defined `x.Money` twice, which no parser took, so `mesh products apply` of it
    was refused and a registry storing it could not read it back (a campaign)."""
    money = {
        "type": "fixed",
        "name": "Money",
        "size": 16,
        "logicalType": "decimal",
        "precision": 20,
        "scale": 2,
    }
    other = {
        "type": "fixed",
        "name": "Money",
        "namespace": "y",
        "size": 4,
        "logicalType": "decimal",
        "precision": 9,
        "scale": 2,
    }
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "x",
        "fields": [
            {"name": "a", "type": money},
            {"name": "b", "type": ["null", "Money"], "default": None},
            {"name": "c", "type": {"type": "array", "items": "x.Money"}},
            {"name": "d", "type": other},
            {"name": "e", "type": "y.Money"},
        ],
    }
    written = json.loads(normalize(json.dumps(schema)))
    types = [field["type"] for field in written["fields"]]
    assert types[1:3] == [["null", "Money"], {"type": "array", "items": "Money"}]
    assert types[4] == "y.Money"
    assert (types[0]["name"], types[3]["name"]) == ("Money", "Money")
    assert normalize(json.dumps(written)) == json.dumps(written, separators=(",", ":"))
    assert canonical_form(json.dumps(written)) == canonical_form(json.dumps(schema))


def test_invalid_schema_says_why() -> None:
    with pytest.raises(SchemaError, match=r'r\.a: unknown type "nope"'):
        parse_schema({"type": "record", "name": "r", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(SchemaError, match="invalid Avro schema"):
        parse_schema("{not json")


def test_field_docs_walks_nested_records() -> None:
    nested = record(
        {"name": "a", "type": "int", "doc": "A doc"},
        {
            "name": "b",
            "type": ["null", record({"name": "c", "type": "string", "doc": "C doc"})],
        },
    )
    nested["fields"][1]["type"][1]["name"] = "inner"
    assert field_docs(nested) == [("a", "A doc"), ("b", None), ("b.c", "C doc")]
