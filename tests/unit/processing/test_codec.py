"""Confluent framing: round trip, plain values, and errors that name where and what."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path

import pytest

from mesh_stream.errors import (
    DeserializationError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    SerializationError,
)
from mesh_stream.processing.codec import (
    FramedAvroDecoder,
    FramedAvroEncoder,
    cents_decimal,
    decimal_cents,
)

REPO = Path(__file__).resolve().parents[3]
SCHEMA = (REPO / "schemas/analytics/revenue-by-region.avsc").read_text()

RECORD = {
    "window_id": "eu-west@120000",
    "region": "eu-west",
    "window_start": 120_000,
    "window_end": 180_000,
    "order_count": 3,
    "gross_revenue": Decimal("100.05"),
    "average_order_value": Decimal("33.35"),
    "currency": "EUR",
    "updated_at": 150_000,
}


def test_round_trip_uses_confluent_framing_and_plain_values() -> None:
    encoded = FramedAvroEncoder(SCHEMA, 7).encode(RECORD)
    assert encoded[0] == 0
    assert struct.unpack(">I", encoded[1:5]) == (7,)
    fetched: list[int] = []

    def fetch(schema_id: int) -> str:
        fetched.append(schema_id)
        return SCHEMA

    decoder = FramedAvroDecoder(fetch)
    assert decoder.decode(encoded) == RECORD
    assert decoder.decode(encoded) == RECORD
    assert fetched == [7]  # writer schemas are cached per id


def test_record_that_does_not_fit_names_the_field() -> None:
    encoder = FramedAvroEncoder(SCHEMA, 7, where="analytics.revenue-by-region")
    with pytest.raises(SerializationError, match=r"analytics.revenue-by-region: .*order_count"):
        encoder.encode({**RECORD, "order_count": "three"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", r"2 byte\(s\) cannot be a Confluent-framed Avro record"),
        (b"\x01\x00\x00\x00\x07abc", r"unknown magic byte 1 \(expected 0\)"),
        (b"\x00\x00\x00\x00\x07\xff", "does not match writer schema id 7"),
    ],
)
def test_undecodable_bytes_name_their_position(data: bytes, message: str) -> None:
    decoder = FramedAvroDecoder(lambda _id: SCHEMA)
    with pytest.raises(DeserializationError, match=message) as caught:
        decoder.decode(data, where="orders.order-placed.v1[2]@41")
    assert str(caught.value).startswith("orders.order-placed.v1[2]@41: ")


def test_money_converts_to_exact_cents_and_back() -> None:
    assert decimal_cents(Decimal("1234.56")) == 123456
    assert cents_decimal(123456) == Decimal("1234.56")
    assert json.dumps(decimal_cents(Decimal("0.10"))) == "10"


LOGICAL_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Event",
        "fields": [
            {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "at_micros",
                "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            },
        ],
    }
)


@pytest.mark.parametrize("at_ms", [0, 1_795_276_560_123, 1_700_000_000_001, 253_402_300_799_999])
def test_timestamps_decode_to_the_exact_epoch_ms_and_uuids_to_text(at_ms: int) -> None:
    """timestamp-millis is read as its long, so no float round trip can shift it by a ms."""
    event_id = "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b11"
    encoded = FramedAvroEncoder(LOGICAL_SCHEMA, 3).encode(
        {"event_id": event_id, "at": at_ms, "at_micros": at_ms * 1000}
    )
    decoded = FramedAvroDecoder(lambda _: LOGICAL_SCHEMA).decode(encoded)
    # timestamp-micros still goes through a datetime, converted to epoch ms by plain()
    assert decoded == {"event_id": event_id, "at": at_ms, "at_micros": at_ms}
    assert type(decoded["event_id"]) is str


ORDER_SCHEMA = (REPO / "schemas/orders/order-placed.avsc").read_text()
ORDER = {
    "event_id": "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b11",
    "order_id": "0b9d6c1e-4f7a-4c1b-8d2e-5a6b7c8d9e0f",
    "customer_id": "cust-00042",
    "region": "eu-west",
    "channel": "MOBILE",
    "currency": "EUR",
    "total_amount": Decimal("131.50"),
    "items": [
        {"sku": "sku-0007", "quantity": 2, "unit_price": Decimal("60.00")},
        {"sku": "sku-0123", "quantity": 1, "unit_price": Decimal("11.50")},
    ],
    "placed_at": 1_795_276_560_123,
}


def test_a_nested_order_decodes_to_plain_values_through_the_sdk_codec() -> None:
    """Order lines, decimals, uuids as text and the event time as epoch ms, read by the SDK's
    compiled decoder (the one decoder of the project)."""
    encoded = FramedAvroEncoder(ORDER_SCHEMA, 5).encode(ORDER)
    decoder = FramedAvroDecoder(lambda _: ORDER_SCHEMA)
    decoded = decoder.decode(encoded)
    assert decoded == ORDER
    assert type(decoded["placed_at"]) is int
    assert type(decoded["order_id"]) is str
    reader = decoder._readers[(5, None)]
    assert reader.fast is not None
    assert reader.fast(encoded) == ORDER  # compiled, not fastavro's fallback


def test_a_processor_decodes_only_the_fields_it_reads() -> None:
    encoded = FramedAvroEncoder(ORDER_SCHEMA, 5).encode(ORDER)
    decoder = FramedAvroDecoder(lambda _: ORDER_SCHEMA)
    assert decoder.decode(encoded, fields=("region", "total_amount", "placed_at")) == {
        "region": "eu-west",
        "total_amount": Decimal("131.50"),
        "placed_at": 1_795_276_560_123,
    }
    assert decoder.decode(encoded, fields=["items"]) == {"items": ORDER["items"]}
    assert decoder.decode(encoded) == ORDER  # the whole record is still there for others


def test_a_field_the_writer_schema_lacks_is_named_with_where_it_was_read() -> None:
    encoded = FramedAvroEncoder(ORDER_SCHEMA, 5).encode(ORDER)
    decoder = FramedAvroDecoder(lambda _: ORDER_SCHEMA)
    with pytest.raises(DeserializationError, match=r"^orders.order-placed.v1\[0\]@3: .*'discount'"):
        decoder.decode(encoded, where="orders.order-placed.v1[0]@3", fields=["discount"])


def test_bytes_after_the_body_are_refused_as_the_sdk_consumer_refuses_them() -> None:
    encoded = FramedAvroEncoder(ORDER_SCHEMA, 5).encode(ORDER)
    decoder = FramedAvroDecoder(lambda _: ORDER_SCHEMA)
    with pytest.raises(DeserializationError, match=r"^t\[1\]@2: .*2 byte\(s\) left after"):
        decoder.decode(encoded + b"\x00\x00", where="t[1]@2")


def test_an_order_with_a_bad_amount_names_the_order_line() -> None:
    encoder = FramedAvroEncoder(ORDER_SCHEMA, 5, where="orders.order-placed")
    bad = {**ORDER, "items": [{**ORDER["items"][0], "unit_price": Decimal("1.005")}]}
    with pytest.raises(
        SerializationError,
        match=r"^orders.order-placed: record does not fit schema id 5 .*"
        r"items\[0\]\.unit_price",
    ):
        encoder.encode(bad)


def test_after_the_first_record_damaged_ones_are_still_refused_naming_where() -> None:
    """The second record of a schema goes straight to the compiled decoder; anything it
    cannot read still gets the checked path's error."""
    encoded = FramedAvroEncoder(ORDER_SCHEMA, 5).encode(ORDER)
    decoder = FramedAvroDecoder(lambda _: ORDER_SCHEMA)
    fields = ("region", "placed_at")
    assert decoder.decode(encoded, fields=fields) == decoder.decode(encoded, fields=fields)
    assert decoder.decode(encoded) == decoder.decode(encoded) == ORDER
    assert len(decoder._compiled) == 2  # whole and projected, each keyed by its header
    with pytest.raises(DeserializationError, match=r"^t\[0\]@9: .*does not match writer schema"):
        decoder.decode(encoded[:-4], where="t[0]@9", fields=fields)
    with pytest.raises(DeserializationError, match=r"^t\[0\]@9: .*1 byte\(s\) left after"):
        decoder.decode(encoded + b"\x01", where="t[0]@9")
    assert decoder.decode(bytearray(encoded), fields=["region"]) == {"region": "eu-west"}


def test_an_unknown_schema_id_is_undecodable_but_an_unavailable_registry_is_not() -> None:
    """An answer that will not change (no such schema) makes the record a dead letter; a
    registry that is away raises its own error, so the caller can wait for it."""
    encoded = FramedAvroEncoder(SCHEMA, 404).encode(RECORD)

    def unknown(schema_id: int) -> str:
        raise SchemaNotFoundError(f"schema {schema_id} not found", status=404, error_code=40403)

    with pytest.raises(DeserializationError, match=r"orders\[1\]@5: writer schema id 404 cannot"):
        FramedAvroDecoder(unknown).decode(encoded, where="orders[1]@5")
    answers: list[str | Exception] = [RegistryUnavailableError("connection refused"), SCHEMA]

    def away_then_back(_schema_id: int) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    decoder = FramedAvroDecoder(away_then_back)
    with pytest.raises(RegistryUnavailableError):
        decoder.decode(encoded, where="orders[1]@5")
    assert decoder.decode(encoded, where="orders[1]@5") == RECORD  # nothing cached the outage


def test_a_schema_that_does_not_parse_is_named_once_with_where_it_was_met() -> None:
    """The message said "cannot parse Avro schema: schema: invalid Avro schema: ...". A
    writer schema the registry served that does not parse stops the worker (a SchemaError
    naming the id), rather than dead-lettering every record of it (h46)."""
    broken = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(SchemaError) as raised:
        FramedAvroEncoder(broken, 1, where="analytics.revenue-by-region")
    assert str(raised.value).startswith(
        "analytics.revenue-by-region: schema: invalid Avro schema: unknown type 'nope'"
    )
    with pytest.raises(SchemaError) as unreadable:
        FramedAvroDecoder(lambda _id: broken).decode(
            b"\x00" + struct.pack(">I", 7) + b"\x02", where="orders[1]@5"
        )
    assert str(unreadable.value).startswith(
        "writer schema id 7: invalid Avro schema: unknown type 'nope'"
    )
