"""The hot paths must give exactly what the plain fastavro calls give, and refuse the same.

The encoder compiled per schema (``RecordEncoder.fast``) and the decoder's cached read plan
skip fastavro's generic per-record work; these tests pin them to ``schemaless_writer`` /
``schemaless_reader`` on a schema that uses every kind of field, and check that whatever
the compiled encoder does not take still gets the checked path's error or defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import decimal
import io
import pickle
import uuid
from typing import Any

import fastavro
import pytest
from confluent_kafka import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_stream.consumer import ConsumedRecord, _RecordBuilder
from mesh_stream.errors import SerializationError
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder
from mesh_stream.schema.wire import header
from tests.unit.sdk.conftest import MemorySchemas

SCHEMA_ID = 9
EVERY_KIND: dict[str, Any] = {
    "type": "record",
    "name": "EveryKind",
    "namespace": "sdktest.fast",
    "fields": [
        {"name": "nothing", "type": "null"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "precise", "type": "double"},
        {"name": "text", "type": "string"},
        {"name": "blob", "type": "bytes"},
        {
            "name": "colour",
            "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]},
        },
        {"name": "maybe_text", "type": ["null", "string"]},
        {"name": "text_or_null", "type": ["string", "null"]},
        {"name": "maybe_colour", "type": ["null", "Colour"]},
        {"name": "maybe_big", "type": ["null", "long"]},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "scores", "type": {"type": "map", "values": "int"}},
        {
            "name": "point",
            "type": {
                "type": "record",
                "name": "Point",
                "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "double"}],
            },
        },
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "choice", "type": ["null", "int", "string"], "default": None},
    ],
}
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UTC_TIMES = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
COLOURS = st.sampled_from(["RED", "GREEN", "BLUE"])
RECORDS = st.fixed_dictionaries(
    {
        "nothing": st.none(),
        "flag": st.booleans(),
        "small": INT32,
        "big": INT64,
        "ratio": st.floats(width=32, allow_nan=False),
        "precise": st.one_of(st.floats(allow_nan=False), INT32),
        "text": st.text(),
        "blob": st.binary(),
        "colour": COLOURS,
        "maybe_text": st.none() | st.text(),
        "text_or_null": st.none() | st.text(),
        "maybe_colour": st.none() | COLOURS,
        "maybe_big": st.none() | INT64,
        "at": st.integers(-(2**40), 2**42) | UTC_TIMES,
        "at_micros": st.integers(-(2**50), 2**52) | UTC_TIMES,
        "id": st.uuids() | st.uuids().map(str),
        "price": st.decimals(
            min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False
        ),
        "tags": st.lists(st.text(max_size=5), max_size=4),
        "scores": st.dictionaries(st.text(max_size=5), INT32, max_size=4),
        "point": st.fixed_dictionaries({"x": INT32, "y": st.floats(allow_nan=False)}),
        "digest": st.binary(min_size=4, max_size=4),
        "choice": st.none() | INT32 | st.text(max_size=5),
    }
)


def fastavro_framed(record: dict[str, Any]) -> bytes:
    """What the plain fastavro call writes for ``record``, framed: the reference bytes."""
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, fastavro.parse_schema(EVERY_KIND), record, strict_allow_default=True
    )
    return header(SCHEMA_ID) + body.getvalue()


@pytest.fixture(scope="module")
def encoder() -> RecordEncoder:
    return RecordEncoder(EVERY_KIND, SCHEMA_ID)


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_the_compiled_encoder_writes_what_fastavro_writes(record: dict[str, Any]) -> None:
    encoder = RecordEncoder(EVERY_KIND, SCHEMA_ID)
    assert encoder.fast is not None
    expected = fastavro_framed(record)
    assert encoder.fast(record) == expected  # taken by the compiled encoder, not the fallback
    assert encoder.encode(record) == expected


def fastavro_read(framed: bytes) -> Any:
    """What the plain fastavro call reads from framed bytes: the reference record."""
    body = io.BytesIO(framed)
    body.seek(5)
    return fastavro.schemaless_reader(body, fastavro.parse_schema(EVERY_KIND), None)


@settings(max_examples=100, deadline=None)
@given(RECORDS)
def test_the_compiled_decoder_reads_what_schemaless_reader_reads(record: dict[str, Any]) -> None:
    decoder = RecordDecoder(MemorySchemas({SCHEMA_ID: EVERY_KIND}))
    framed = fastavro_framed(record)
    compiled = decoder.plan_for(SCHEMA_ID)[3]
    assert compiled is not None
    expected = fastavro_read(framed)
    assert compiled(framed) == expected  # taken by the compiled decoder, not the fallback
    assert decoder.decode(framed) == expected
    assert decoder.decode(memoryview(framed)) == expected  # other buffers: fastavro reads


@settings(max_examples=200, deadline=None)
@given(RECORDS, st.data())
def test_on_damaged_bytes_the_compiled_decoder_never_disagrees_with_fastavro(
    record: dict[str, Any], data: st.DataObject
) -> None:
    """Truncated or altered bodies: whatever the compiled decoder returns, fastavro returns
    too; where fastavro fails it must fail (the consumer then asks fastavro for the error)."""
    compiled = RecordDecoder(MemorySchemas({SCHEMA_ID: EVERY_KIND})).plan_for(SCHEMA_ID)[3]
    assert compiled is not None
    framed = bytearray(fastavro_framed(record))
    if data.draw(st.booleans(), label="truncate"):
        del framed[data.draw(st.integers(5, len(framed) - 1), label="cut at") :]
    else:
        at = data.draw(st.integers(5, len(framed) - 1), label="position")
        framed[at] = data.draw(st.integers(0, 255), label="new byte")
    damaged = bytes(framed)
    try:
        expected = fastavro_read(damaged)
    except Exception:  # fastavro refuses: so must the compiled decoder
        with pytest.raises(Exception):  # noqa: B017, PT011
            compiled(damaged)
        return
    try:
        got = compiled(damaged)
    except Exception:  # refusing is allowed: fastavro then reads it
        return
    assert repr(got) == repr(expected)  # repr: damaged floats may read as NaN, never == itself


def valid_record() -> dict[str, Any]:
    return {
        "nothing": None,
        "flag": True,
        "small": -5,
        "big": 2**40,
        "ratio": 0.5,
        "precise": 2.25,
        "text": "grüße",
        "blob": b"\x00\xff",
        "colour": "GREEN",
        "maybe_text": "x",
        "text_or_null": None,
        "maybe_colour": "BLUE",
        "maybe_big": None,
        "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "at_micros": 1_767_225_600_000_000,
        "id": "00000000-0000-0000-0000-000000000007",
        "price": decimal.Decimal("19.90"),
        "tags": ["a", "b"],
        "scores": {"a": 1},
        "point": {"x": 1, "y": 2.0},
        "digest": b"abcd",
        "choice": 3,
    }


@pytest.mark.parametrize(
    ("field", "bad", "expected"),
    [
        ("nothing", 0, "nothing: expected null, got int 0"),
        ("flag", 1, "flag: expected boolean, got int 1"),
        ("small", 1.5, "small: expected int, got float 1.5"),
        ("small", True, "small: expected int, got bool True"),
        ("small", 2**31, f"small: expected int (from {-(2**31)} to {2**31 - 1}), got {2**31}"),
        ("big", 2**63, f"big: expected long (from {-(2**63)} to {2**63 - 1}), got {2**63}"),
        ("ratio", "0.5", "ratio: expected float, got str '0.5'"),
        ("precise", True, "precise: expected double, got bool True"),
        ("text", b"x", "text: expected string, got bytes b'x'"),
        ("blob", "x", "blob: expected bytes, got str 'x'"),
        ("colour", "PURPLE", "colour: expected enum sdktest.fast.Colour (one of RED, GREEN, BLUE)"),
        ("maybe_text", 3, "maybe_text: expected one of [null, string], got int 3"),
        ("maybe_big", 1.5, "maybe_big: expected one of [null, long], got float 1.5"),
        ("at", 1.5, "at: expected timestamp-millis (long), got float 1.5"),
        ("id", "not-a-uuid", "id: expected uuid (string), got str 'not-a-uuid'"),
        ("tags", ["a", 1], "tags[1]: expected string, got int 1"),
        ("scores", {"a": "1"}, "scores['a']: expected int, got str '1'"),
        ("point", {"x": 1, "y": "2"}, "point.y: expected double, got str '2'"),
        ("digest", b"abc", "digest: expected fixed sdktest.fast.Digest of 4 bytes, got bytes"),
    ],
)
def test_values_the_compiled_encoder_refuses_get_the_checked_paths_error(
    encoder: RecordEncoder, field: str, bad: Any, expected: str
) -> None:
    record = {**valid_record(), field: bad}
    assert encoder.fast is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal hands over to encode()
        encoder.fast(record)
    with pytest.raises(SerializationError) as caught:
        encoder.encode(record)
    assert expected in str(caught.value)
    assert str(caught.value).startswith("record does not fit schema sdktest.fast.EveryKind: ")


def test_a_left_out_field_with_a_default_takes_the_checked_path(encoder: RecordEncoder) -> None:
    record = valid_record()
    del record["choice"]
    assert encoder.encode(record) == fastavro_framed({**record, "choice": None})


def test_a_double_too_big_for_a_float_field_is_refused_not_written_as_infinity(
    encoder: RecordEncoder,
) -> None:
    record = {**valid_record(), "ratio": 3.5e38}  # beyond 32 bits: fastavro writes infinity
    with pytest.raises(SerializationError, match=r"ratio: 3\.5e\+38 is outside the range"):
        encoder.encode(record)
    # (tests/unit/sdk/test_publish_hostile_inputs.py has the other edges of this)


def test_an_extra_field_is_refused_by_name(encoder: RecordEncoder) -> None:
    with pytest.raises(SerializationError) as caught:
        encoder.encode({**valid_record(), "colour_code": 7})
    assert "colour_code: not a field of record sdktest.fast.EveryKind" in str(caught.value)


def test_other_mappings_than_dicts_are_encoded_the_same(encoder: RecordEncoder) -> None:
    from types import MappingProxyType

    record = valid_record()
    assert encoder.encode(MappingProxyType(record)) == fastavro_framed(record)


def lazily_built(message: Message, value: Any) -> ConsumedRecord:
    """A record as the consumer's loop builds it (key, timestamp, headers read on demand)."""
    built: Any = _RecordBuilder(
        "orders.x", message.topic(), message.partition(), message.offset(), message, value, 4
    )
    built.__class__ = ConsumedRecord
    record: ConsumedRecord = built
    return record


def test_lazy_fields_come_from_the_message_and_equal_a_record_built_by_hand() -> None:
    message = Message(
        topic="orders.x.v1",
        partition=2,
        offset=41,
        key=b"k-1",
        value=b"",
        headers=[("trace", b"abc"), ("source", b"web")],
        timestamp=(1, 1_700_000_000_123),
    )
    record = lazily_built(message, {"a": 1})
    by_hand = ConsumedRecord(
        "orders.x",
        "orders.x.v1",
        2,
        41,
        "k-1",
        {"a": 1},
        1_700_000_000_123,
        {"trace": b"abc", "source": b"web"},
        4,
    )
    assert (record.key, record.timestamp_ms, record.headers) == (
        "k-1",
        1_700_000_000_123,
        {"trace": b"abc", "source": b"web"},
    )
    assert record.headers is record.headers  # read once, then kept
    assert record == by_hand
    assert repr(record) == repr(by_hand)
    assert "key='k-1'" in repr(record)


def test_a_key_that_is_not_text_stays_bytes_and_missing_parts_are_empty() -> None:
    message = Message(topic="orders.x.v1", partition=0, offset=1, key=b"\xff\x00", value=b"")
    record = lazily_built(message, None)
    assert record.key == b"\xff\x00"
    assert record.headers == {}
    no_key = lazily_built(Message(topic="t", partition=0, offset=2, value=b""), None)
    assert no_key.key is None


def test_consumed_records_pickle_and_copy_with_their_values() -> None:
    message = Message(
        topic="orders.x.v1", partition=1, offset=9, key=b"k", value=b"", headers=[("h", b"1")]
    )
    record = lazily_built(message, {"a": 1})
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.copy(record) == record
    assert copy.deepcopy(record).headers == {"h": b"1"}


def test_consumed_records_cannot_be_changed() -> None:
    record = lazily_built(Message(topic="t", partition=0, offset=1, key=b"k", value=b""), {})
    for name in ("key", "value", "offset", "headers"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        del record.value
    assert uuid.UUID(int=1) != record  # comparing to other types is not an error
