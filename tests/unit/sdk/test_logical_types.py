"""Logical types are applied only on their base type, every one is guarded, and a union
with a logical branch is written under the branch its value is: the codec's promise that a
valid record is written exactly and an invalid one is refused with its field path
(a differential fuzzing campaign against fastavro found each case below)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from io import BytesIO
from typing import Any

import fastavro
import pytest
from fastavro._logical_writers import LOGICAL_WRITERS

from mesh_stream.errors import SerializationError
from mesh_stream.schema.codec import APPLIED_LOGICAL, RecordEncoder


def _encoder(field_type: Any) -> RecordEncoder:
    return RecordEncoder(
        {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}, 1
    )


def _round_trip(field_type: Any, value: Any) -> Any:
    """``value`` written by the compiled and the checked path (the same bytes), read back by
    fastavro's reader."""
    encoder = _encoder(field_type)
    written = encoder.encode({"f": value})
    assert encoder.encode_checked({"f": value}) == written
    return fastavro.schemaless_reader(BytesIO(written[5:]), encoder.parsed)["f"]


def _refused(field_type: Any, value: Any) -> str:
    encoder = _encoder(field_type)
    for encode in (encoder.encode, encoder.encode_checked):
        with pytest.raises(SerializationError) as refused:
            encode({"f": value})
    return str(refused.value).removeprefix("record does not fit schema R: ")


def test_the_logical_types_applied_are_fastavros() -> None:
    # confluent-kafka's Avro serializer, once imported, adds a writer of its own
    assert frozenset(LOGICAL_WRITERS) - {"record-variant"} == APPLIED_LOGICAL


UUID_TEXT = "12345678-1234-1234-1234-123456789abc"


def test_a_uuid_on_a_fixed_is_its_sixteen_bytes_never_text() -> None:
    """The compiled encoder wrote the text, length-prefixed, where 16 bytes belong."""
    fixed = {"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}
    assert _refused(fixed, UUID_TEXT) == f"f: expected fixed U of 16 bytes, got str '{UUID_TEXT}'"
    assert _round_trip(fixed, bytes(range(16))) == bytes(range(16))


@pytest.mark.parametrize(
    ("field_type", "value", "problem"),
    [
        ({"type": "string", "logicalType": "timestamp-millis"}, 5, "f: expected string, got int 5"),
        (
            {"type": "int", "logicalType": "timestamp-millis"},
            2**40,
            f"f: expected int (from -2147483648 to 2147483647), got {2**40}",
        ),
        ({"type": "int", "logicalType": "x"}, True, "f: expected int, got bool True"),
        ({"type": "boolean", "logicalType": "x"}, 5, "f: expected boolean, got int 5"),
        ({"type": "null", "logicalType": "x"}, 5, "f: expected null, got int 5"),
        (
            {"type": "array", "items": "string", "logicalType": "x"},
            "vw",
            "f: expected array of string, got str 'vw'",
        ),
        (
            {
                "type": "record",
                "name": "S",
                "logicalType": "x",
                "fields": [{"name": "g", "type": "int"}],
            },
            {"g": 1.5},
            "f.g: expected int, got float 1.5",
        ),
    ],
)
def test_a_logical_type_on_another_base_or_unknown_leaves_the_base_types_rules(
    field_type: Any, value: Any, problem: str
) -> None:
    """The compiled encoder wrote a timestamp's number into a string; an unknown
    logicalType switched off every guard under it."""
    assert _refused(field_type, value) == problem


def test_a_value_of_the_base_type_is_taken_where_the_logical_type_does_not_apply() -> None:
    assert _round_trip({"type": "string", "logicalType": "timestamp-millis"}, "abc") == "abc"
    assert _round_trip({"type": "bytes", "logicalType": "timestamp-millis"}, b"abc") == b"abc"
    assert _round_trip({"type": "int", "logicalType": "x"}, 7) == 7


DATE = {"type": "int", "logicalType": "date"}
TIME_MILLIS = {"type": "int", "logicalType": "time-millis"}
TIME_MICROS = {"type": "long", "logicalType": "time-micros"}


@pytest.mark.parametrize(
    ("field_type", "value", "problem"),
    [
        (DATE, 1.5, "f: expected date (int), got float 1.5"),
        (DATE, True, "f: expected date (int), got bool True"),
        (
            DATE,
            2**31,
            f"f: expected date (int), got {2**31}, beyond the years 1 to 9999 (from -719162 to "
            "2932896), which no reader's datetime holds",
        ),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            1_765_000_000_000_000_000,
            "f: expected timestamp-millis (long), got 1765000000000000000, beyond the years 1 "
            "to 9999 (from -62135596800000 to 253402300799999), which no reader's datetime "
            "holds; nanoseconds where milliseconds belong?",
        ),
        (DATE, "2020-01-01", "f: expected date (int), got str '2020-01-01'"),
        (TIME_MILLIS, -1, "f: expected time-millis (int) (a time of day: 0 to 86399999), got -1"),
        (
            TIME_MILLIS,
            86_400_000,
            "f: expected time-millis (int) (a time of day: 0 to 86399999), got 86400000",
        ),
        (
            TIME_MICROS,
            86_400_000_000,
            "f: expected time-micros (long) (a time of day: 0 to 86399999999), got 86400000000",
        ),
        (TIME_MILLIS, 1.5, "f: expected time-millis (int), got float 1.5"),
    ],
)
def test_dates_and_times_of_day_are_guarded(field_type: Any, value: Any, problem: str) -> None:
    """fastavro wrote 1.5 as day 1, True as 1, 2**31 as an int no reader reads back, and
    times outside a day."""
    assert _refused(field_type, value) == problem


def test_dates_and_timestamps_at_the_ends_of_the_years_1_to_9999_are_written() -> None:
    stamp = {"type": "long", "logicalType": "timestamp-micros"}
    last = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    assert _round_trip(stamp, 253_402_300_799_999_999) == last
    assert _round_trip(stamp, -62_135_596_800_000_000) == dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    assert _round_trip(DATE, -719_162) == dt.date(1, 1, 1)
    assert _round_trip(DATE, 2_932_896) == dt.date(9999, 12, 31)


def test_dates_and_times_of_day_that_fit_are_written() -> None:
    assert _round_trip(DATE, dt.date(2020, 1, 1)) == dt.date(2020, 1, 1)
    assert _round_trip(DATE, 18262) == dt.date(2020, 1, 1)
    assert _round_trip(TIME_MILLIS, 86_399_999) == dt.time(23, 59, 59, 999_000)
    assert _round_trip(TIME_MILLIS, dt.time(12, 30)) == dt.time(12, 30)
    assert _round_trip(TIME_MICROS, 0) == dt.time(0)


def test_a_union_with_a_date_before_a_string_writes_text_as_text() -> None:
    """fastavro's date check passes any str: "2020-01-01" came back as a date, and "hello"
    was refused."""
    union = [{"type": "int", "logicalType": "date"}, "string"]
    assert _round_trip(union, "2020-01-01") == "2020-01-01"
    assert _round_trip(union, "hello") == "hello"
    assert _round_trip(union, dt.date(2020, 1, 1)) == dt.date(2020, 1, 1)
    nested = {"type": "array", "items": union}
    assert _round_trip(nested, ["hello", dt.date(2020, 1, 2)]) == ["hello", dt.date(2020, 1, 2)]
    assert _refused(union, 1.5) == "f: expected one of [date (int), string], got float 1.5"


def test_a_field_added_with_a_logical_default_reads_as_a_written_value_would() -> None:
    """fastavro hands a default over as its JSON: a decimal's as the str of its byte code
    points, a timestamp's as an int, a uuid's as a str (a fuzzing campaign)."""
    from mesh_stream.schema.codec import RecordDecoder
    from tests.unit.sdk.conftest import MemorySchemas

    sku = {"name": "sku", "type": "string"}
    at = {
        "name": "at",
        "type": {"type": "long", "logicalType": "timestamp-millis"},
        "default": 1000,
    }
    old_line = {"type": "record", "name": "Line", "fields": [sku]}
    new_line = {"type": "record", "name": "Line", "fields": [sku, at]}
    old = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "int"},
            {"name": "lines", "type": {"type": "array", "items": old_line}},
        ],
    }
    price = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}
    new = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "int"},
            {"name": "lines", "type": {"type": "array", "items": new_line}},
            {"name": "price", "type": price, "default": "\u0000d"},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "default": UUID_TEXT},
            {"name": "day", "type": [{"type": "int", "logicalType": "date"}, "null"], "default": 1},
            {"name": "note", "type": "string", "default": "\u0000d"},
        ],
    }
    written = RecordEncoder(old, 1).encode({"a": 1, "lines": [{"sku": "s"}]})
    decoder = RecordDecoder(MemorySchemas({1: old}), reader_schema=new)
    assert decoder.decode(written) == {
        "a": 1,
        "lines": [{"sku": "s", "at": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)}],
        "price": Decimal("1.00"),
        "id": uuid.UUID(UUID_TEXT),
        "day": dt.date(1970, 1, 2),
        "note": "\u0000d",  # not a logical type: as given
    }
    assert decoder.reader is not None  # the checks still see the schema as written
    assert decoder.reader["fields"][2]["default"] == "\u0000d"


def test_unions_whose_logical_branch_fastavro_would_take_for_a_later_branch_name_it() -> None:
    """Tried pair by pair: fastavro's union writer took these values for the earlier logical
    branch (a symbol written as an unreadable uuid, an int read back as a datetime, bytes as a
    Decimal)."""
    enum = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    uuid_or_symbol = [{"type": "string", "logicalType": "uuid"}, enum]
    assert _round_trip(uuid_or_symbol, "A") == "A"
    assert _round_trip(uuid_or_symbol, UUID_TEXT) == uuid.UUID(UUID_TEXT)
    stamp_or_int = [{"type": "long", "logicalType": "timestamp-millis"}, "int"]
    assert _round_trip(stamp_or_int, 5) == 5
    instant = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert _round_trip(stamp_or_int, instant) == instant
    fixed_decimal = {
        "type": "fixed",
        "name": "D",
        "size": 8,
        "logicalType": "decimal",
        "precision": 4,
        "scale": 2,
    }
    decimal_or_bytes = [fixed_decimal, {"type": "fixed", "name": "F", "size": 8}]
    assert _round_trip(decimal_or_bytes, b"abcdefgh") == b"abcdefgh"
    assert _round_trip(decimal_or_bytes, Decimal("1.25")) == Decimal("1.25")


def test_unions_fastavro_routes_right_keep_the_compiled_encoder() -> None:
    for union in (
        ["null", {"type": "long", "logicalType": "timestamp-millis"}, "string"],
        ["null", {"type": "string", "logicalType": "uuid"}, "long"],
        [{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, "string"],
    ):
        assert _encoder(union).fast is not None, union
    assert _encoder([{"type": "int", "logicalType": "date"}, "string"]).fast is None


def test_an_aware_datetime_beyond_the_years_1_to_9999_in_utc_is_refused() -> None:
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    east = dt.timezone(dt.timedelta(hours=5))
    early = dt.datetime(1, 1, 1, 1, tzinfo=east)  # 0000-12-31T20:00Z
    assert _refused(stamp, early) == (
        f"f: expected timestamp-millis (long), got {early}, beyond the years 1 to 9999 in UTC, "
        "which no reader's datetime holds"
    )
    inside = dt.datetime(1, 1, 1, 6, tzinfo=east)
    assert _round_trip(stamp, inside) == inside
    late = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert _refused({"type": "long", "logicalType": "timestamp-micros"}, late).startswith(
        "f: expected timestamp-micros (long), got 9999-12-31 23:00:00-05:00, beyond"
    )


def test_logical_values_inside_a_complex_default_read_as_written_ones() -> None:
    from mesh_stream.schema.codec import RecordDecoder
    from tests.unit.sdk.conftest import MemorySchemas

    old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    at = {"type": "record", "name": "At", "fields": [{"name": "t", "type": stamp}]}
    new = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "int"},
            {"name": "at", "type": at, "default": {"t": 0}},
            {"name": "times", "type": {"type": "array", "items": stamp}, "default": [0, 1000]},
            {"name": "by", "type": {"type": "map", "values": "At"}, "default": {"k": {"t": 0}}},
        ],
    }
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    decoder = RecordDecoder(MemorySchemas({1: old}), reader_schema=new)
    assert decoder.decode(RecordEncoder(old, 1).encode({"a": 1})) == {
        "a": 1,
        "at": {"t": epoch},
        "times": [epoch, epoch + dt.timedelta(seconds=1)],
        "by": {"k": {"t": epoch}},
    }
