"""A record's Kafka key is the text of the value Avro writes for its key field: one value,
one key, whatever Python form it was given in (h34: one instant gave three keys on two
partitions, and a list gave the key "['a', 'b']")."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from typing import Any

import fastavro
import pytest

from mesh_stream.schema.keys import KeyType, key_field_problem, key_text, key_type

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "namespace": "com.example",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "count", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "carrier", "type": {"type": "enum", "name": "Carrier", "symbols": ["A", "B"]}},
        {"name": "again", "type": "Carrier"},
        {"name": "maybe", "type": ["null", "string"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "loc", "type": {"type": "record", "name": "Loc", "fields": []}},
        {"name": "price", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2},
        },
        {"name": "either", "type": ["null", "string", "long"]},
    ],
}


def text(field: str, value: Any) -> str | bytes:
    return key_text(key_type(SCHEMA, field))(value)


def test_one_instant_is_one_key_whatever_form_it_was_given_in() -> None:
    utc = dt.datetime(2026, 12, 6, 10, tzinfo=dt.UTC)
    paris = dt.datetime(2026, 12, 6, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    millis = int(utc.timestamp() * 1000)
    assert {text("at", utc), text("at", paris), text("at", millis)} == {str(millis)}
    assert text("at_us", utc) == str(millis * 1000)
    assert text("local", dt.datetime(1970, 1, 1, 0, 0, 1)) == "1000"
    # an aware datetime in a local timestamp: its wall time, as Avro writes it (h35: it raised)
    assert text("local", dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)) == "1000"
    assert text("day", dt.date(1970, 1, 11)) == text("day", 10) == "10"
    assert text("day", dt.datetime(1970, 1, 11, 5)) == "10"
    assert text("clock", dt.time(0, 1, 0, 500_000)) == "60500"


def test_the_key_is_the_text_of_what_the_encoder_wrote() -> None:
    """One home for a logical type's conversion: the key agrees with the encoded record."""
    fields: list[dict[str, Any]] = [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ]
    schema: dict[str, Any] = {"type": "record", "name": "K", "fields": fields}
    record: dict[str, Any] = {
        "at": dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "local": dt.datetime(2026, 3, 1, 12, 30, 0, 123456, tzinfo=dt.UTC),
        "day": dt.date(2026, 3, 1),
        "id": uuid.UUID("12345678-1234-5678-1234-56781234abcd"),
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    buffer.seek(0)
    plain = {  # the same wire, read without logical types: the numbers and text written
        **schema,
        "fields": [{"name": f["name"], "type": f["type"]["type"]} for f in fields],
    }
    raw: Any = fastavro.schemaless_reader(buffer, fastavro.parse_schema(plain))
    for field, value in record.items():
        written = raw[field]  # without logical types: what is on the wire
        assert key_text(key_type(schema, field))(value) == str(written), field


def test_a_uuid_key_is_the_text_written_and_plain_keys_stay_as_given() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-56781234abcd")
    assert text("id", value) == text("id", str(value)) == str(value)
    upper = str(value).upper()
    assert text("id", upper) == upper  # written as given, so keyed as given (h35)
    assert text("name", "Ab C") == "Ab C"
    assert text("count", 42) == "42"
    assert text("carrier", "B") == text("again", "B") == "B"


def test_types_with_no_one_text_cannot_key_a_product() -> None:
    for field in ("tags", "loc", "price", "flag", "raw", "amount", "either"):
        kind = key_type(SCHEMA, field)
        assert kind is not None
        problem = key_field_problem(kind)
        assert problem is not None, field
        assert problem.startswith("its type is "), field
    [record_problem] = [key_field_problem(KeyType("record"))]
    assert record_problem is not None
    assert "a record's text depends on the client that prints it" in record_problem
    assert key_type(SCHEMA, "amount") == KeyType("bytes", "decimal")
    assert key_type(SCHEMA, "either") == KeyType(
        "union", nullable=True, union_of=("string", "long")
    )
    for field in ("name", "id", "count", "at", "day", "carrier", "again", "maybe"):
        kind = key_type(SCHEMA, field)
        assert kind is not None, field
        assert key_field_problem(kind) is None, field
    assert key_type(SCHEMA, "maybe") == KeyType("string", nullable=True)
    assert key_type(SCHEMA, "nowhere") is None
    misapplied = {"name": "s", "type": {"type": "string", "logicalType": "date"}}
    assert key_type({**SCHEMA, "fields": [misapplied]}, "s") == KeyType("string")  # ignored


@pytest.mark.parametrize("value", [b"\x00raw", "text"])
def test_a_field_of_unknown_type_keeps_str_and_bytes_as_they_are(value: str | bytes) -> None:
    assert key_text(None)(value) == value
