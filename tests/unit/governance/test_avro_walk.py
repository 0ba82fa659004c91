"""Walking Avro schemas: nested records in unions, arrays and maps; PII paths."""

from __future__ import annotations

from typing import Any

from mesh_stream.governance import avro_walk

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
    # `again` is a Contact too: its email is as personal as `contact.email`
    assert avro_walk.pii_paths(SCHEMA) == ["contact.email", "extra", "again.email"]
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
    assert [path for path, _field in avro_walk.field_paths(schema)] == [
        "home", "home.city", "work", "work.city", "maybe", "maybe.city", "past", "past.city",
        "head", "head.next",
    ]  # fmt: skip
    assert avro_walk.pii_paths(schema) == ["home.city", "work.city", "maybe.city", "past.city"]
    assert avro_walk.has_field(schema, "maybe.city")
    assert not avro_walk.has_field(schema, "head.next.next")  # a record inside itself: once
    assert avro_walk.pii_within(schema, "work") == ["work.city"]
