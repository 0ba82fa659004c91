"""Confluent framing: round trip, plain values, and errors that name where and what."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path

import pytest

from mesh_stream.errors import DeserializationError, SerializationError
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
        (b"\x00\x00", "too short for Confluent framing"),
        (b"\x01\x00\x00\x00\x07abc", "magic byte is 1"),
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
