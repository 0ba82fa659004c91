"""Walking Avro schemas: nested records in unions, arrays and maps; PII paths."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_stream.governance import avro_walk
from tests.unit.exports.schemas import doubling

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Root",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "contact",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Contact",
                    "fields": [
                        {"name": "email", "type": "string", "pii": True},
                        {"name": "region", "type": "string"},
                    ],
                },
            ],
        },
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}],
                },
            },
        },
        {
            "name": "extra",
            "pii": True,
            "type": {
                "type": "map",
                "values": {
                    "type": "record",
                    "name": "Extra",
                    "fields": [{"name": "note", "type": "string"}],
                },
            },
        },
        {"name": "again", "type": "Contact"},
    ],
}


def test_every_record_and_field_with_its_path_and_location() -> None:
    spots = [(type(spot).__name__, spot.path, spot.loc) for spot in avro_walk.walk(SCHEMA)]
    assert spots == [
        ("RecordSpot", "", ()),
        ("FieldSpot", "id", ("fields", 0)),
        ("FieldSpot", "contact", ("fields", 1)),
        ("RecordSpot", "contact", ("fields", 1, "type", 1)),
        ("FieldSpot", "contact.email", ("fields", 1, "type", 1, "fields", 0)),
        ("FieldSpot", "contact.region", ("fields", 1, "type", 1, "fields", 1)),
        ("FieldSpot", "lines", ("fields", 2)),
        ("RecordSpot", "lines", ("fields", 2, "type", "items")),
        ("FieldSpot", "lines.sku", ("fields", 2, "type", "items", "fields", 0)),
        ("FieldSpot", "extra", ("fields", 3)),
        ("RecordSpot", "extra", ("fields", 3, "type", "values")),
        ("FieldSpot", "extra.note", ("fields", 3, "type", "values", "fields", 0)),
        ("FieldSpot", "again", ("fields", 4)),
    ]


def test_pii_paths_and_what_flows_with_a_field() -> None:
    assert avro_walk.pii_paths(SCHEMA) == ["contact.email", "extra"]  # where defined
    # `again` is a Contact too: its email is as personal as `contact.email`
    assert avro_walk.pii_within(SCHEMA, "again") == ["again.email"]
    assert avro_walk.pii_within(SCHEMA, "contact") == ["contact.email"]  # a child is PII
    assert avro_walk.pii_within(SCHEMA, "extra.note") == ["extra"]  # an ancestor is PII
    assert avro_walk.pii_within(SCHEMA, "contact.region") == []
    assert avro_walk.top_level_fields(SCHEMA) == ["id", "contact", "lines", "extra", "again"]
    assert avro_walk.has_field(SCHEMA, "lines.sku")
    assert not avro_walk.has_field(SCHEMA, "lines.price")


def test_a_record_used_again_by_name_has_its_fields_at_every_use() -> None:
    """`work: Address` after `home: {record Address}`, `["null", "Address"]` and array items:
    `work.city` was no field to `field-lineage-resolves` (a valid path refused), and a pii
    field of `Address` was pii only under `home` (a campaign)."""
    schema = {
        "type": "record",
        "name": "Src",
        "namespace": "x",
        "fields": [
            {
                "name": "home",
                "type": {
                    "type": "record",
                    "name": "Address",
                    "fields": [{"name": "city", "type": "string", "pii": True}],
                },
            },
            {"name": "work", "type": "Address"},
            {"name": "maybe", "type": ["null", "x.Address"]},
            {"name": "past", "type": {"type": "array", "items": "Address"}},
            {
                "name": "head",
                "type": {
                    "type": "record",
                    "name": "Node",
                    "fields": [{"name": "next", "type": ["null", "Node"]}],
                },
            },
        ],
    }
    for path in ("work.city", "maybe.city", "past.city", "head.next", "head.next.next"):
        assert avro_walk.has_field(schema, path), path
    assert not avro_walk.has_field(schema, "work.street")
    assert avro_walk.pii_paths(schema) == ["home.city"]  # where defined
    assert avro_walk.pii_within(schema, "maybe.city") == ["maybe.city"]
    assert avro_walk.pii_within(schema, "past") == ["past.city"]
    assert avro_walk.pii_within(schema, "work") == ["work.city"]


@pytest.mark.timeout(10)
def test_a_record_nested_twice_per_level_costs_its_size_not_two_to_the_levels() -> None:
    """Listing every path through records used by name took 30 s at 20 levels, in the
    registry's gate on every registration (a review)."""
    schema = doubling(60)
    deepest = "t" + ".b" * 60 + ".v"
    assert avro_walk.has_field(schema, deepest)
    assert not avro_walk.has_field(schema, "t" + ".b" * 61)
    assert avro_walk.pii_within(schema, deepest) == [deepest]
    assert avro_walk.pii_within(schema, "t.b.b") == ["t.b.b.a" + ".a" * 57 + ".v"]


def test_every_union_branch_with_the_field_is_followed() -> None:
    """Only the first branch holding a field of that name was followed: `u.x.y` was no
    field when the first branch's `x` is an int, and pii below the second branch's `x` was
    missed by pii-lineage (a review)."""
    leaf = {"type": "record", "name": "C", "fields": [{"name": "y", "type": "string", "pii": True}]}
    first = {"type": "record", "name": "A", "fields": [{"name": "x", "type": "int"}]}
    second = {"type": "record", "name": "B", "fields": [{"name": "x", "type": leaf}]}
    marked = {"type": "record", "name": "D", "fields": [{"name": "x", "type": "int", "pii": True}]}
    schema = {
        "type": "record",
        "name": "Top",
        "fields": [
            {"name": "u", "type": ["null", first, second]},
            {"name": "v", "type": [{**first, "name": "A2"}, marked]},
        ],
    }
    assert avro_walk.has_field(schema, "u.x.y")
    assert avro_walk.pii_within(schema, "u.x") == ["u.x.y"]
    assert avro_walk.pii_within(schema, "v.x") == ["v.x"]
    assert avro_walk.pii_within(schema, "u") == ["u.x.y"]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (("contact", "email"), None),
        (("again", "region"), None),  # a record used again by name
        (("extra", "anything"), None),  # a map takes any key
        (("contact", "emial"), "Contact (message.contact) has no field 'emial'"),
        (("nope",), "Root has no field 'nope'"),
        (("lines", "sku"), "message.lines is an array, without fields"),
        (("id", "x"), "message.id is a string, without fields"),
        (("contact", "email", "x"), "message.contact.email is a string, without fields"),
    ],
)
def test_what_a_field_selection_cannot_find(path: tuple[str, ...], problem: str | None) -> None:
    assert avro_walk.selection_problem(SCHEMA, path) == problem


def test_a_logical_type_is_named_with_its_base() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    assert avro_walk.selection_problem(schema, ("at", "seconds")) == (
        "message.at is a long (timestamp-millis), without fields"
    )
