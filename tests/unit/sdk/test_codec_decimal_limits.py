"""Decimals in any notation are judged at the schema's scale by one rule
(:func:`decimal_problem`), whichever encoder path a record takes; strings must be UTF-8."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

from mesh_stream.errors import SerializationError
from mesh_stream.kafka.clients import LIBRDKAFKA_MESSAGE_MAX_BYTES, RECORD_OVERHEAD_BYTES
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder, coerce_json
from tests.unit.sdk.conftest import MemorySchemas

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
FIXED = {"type": "fixed", "name": "Amount", "size": 8, "logicalType": "decimal",
         "precision": 12, "scale": 2}  # fmt: skip


def schema(amount: Any, *, extra: bool = False) -> dict[str, Any]:
    fields = [{"name": "amount", "type": amount}]
    if extra:  # a field with a default: records leaving it out take the checked path
        fields.append({"name": "n", "type": "int", "default": 0})
    return {"type": "record", "name": "Priced", "fields": fields}


SHAPES = {
    "bytes": schema(DECIMAL),
    "fixed": schema(FIXED),
    "nullable": schema(["null", DECIMAL]),
    "checked path": schema(DECIMAL, extra=True),
    "in an array": schema({"type": "array", "items": DECIMAL}),
}


def encode(shape: str, value: Any) -> bytes:
    document = SHAPES[shape]
    amount = [value] if shape == "in an array" else value
    record = coerce_json(document, {"amount": amount})
    return RecordEncoder(document, 1).encode(record)


def decode(shape: str, data: bytes) -> Any:
    amount = RecordDecoder(MemorySchemas({1: SHAPES[shape]})).decode(data)["amount"]
    return amount[0] if shape == "in an array" else amount


TOO_MANY_DIGITS = ["1e12", "1E+15", "1e400", 1e308, 1e15, "123456789012345678", "1e10"]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("value", TOO_MANY_DIGITS)
def test_a_decimal_over_the_precision_is_refused_in_any_notation(shape: str, value: Any) -> None:
    with pytest.raises(SerializationError) as refused:
        encode(shape, value)
    shown = decimal.Decimal(str(value))
    if shape in ("bytes", "fixed", "checked path"):
        assert refused.value.problems == [  # type: ignore[attr-defined]
            f"amount: expected decimal(12,2) (at most 12 digits), got {shown}"
        ]
    elif shape == "in an array":
        assert refused.value.problems == [  # type: ignore[attr-defined]
            f"amount[0]: expected decimal(12,2) (at most 12 digits), got {shown}"
        ]


def test_the_exponent_form_fits_exactly_where_the_plain_form_does() -> None:
    pairs = [("9999999999.99", "999999999999e-2"), ("1000000000.00", "1e9"),
             ("10000000000.00", "1e10"), ("0.01", "1e-2"), ("-9.90", "-99e-1")]  # fmt: skip
    for plain, exponent in pairs:
        for shape in SHAPES:
            outcomes = []
            for value in (plain, exponent):
                try:
                    outcomes.append(decode(shape, encode(shape, value)))
                except SerializationError as exc:
                    outcomes.append(str(exc).split(" got ")[0])
            assert outcomes[0] == outcomes[1], (shape, plain, exponent)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_fraction_digits_beyond_the_scale_are_refused_never_rounded(shape: str) -> None:
    for value in ("1.234", "-1e-5", "1.2e-3", "0E-10"):
        with pytest.raises(SerializationError, match=r"at most 2 decimal place|\[null, decimal"):
            encode(shape, value)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_nan_and_infinities_are_refused(shape: str) -> None:
    for value in ("NaN", "-Infinity", "Infinity", "sNaN"):
        with pytest.raises(SerializationError, match=r"non-finite|expected one of"):
            encode(shape, value)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_zero_in_any_notation_is_zero(shape: str) -> None:
    for value in ("0", "-0", "-0.00", "0e20", "-0E+3", 0, -0.0):
        assert decode(shape, encode(shape, value)) == decimal.Decimal("0.00"), value


def test_a_negative_zero_decimal_is_refused_by_a_fixed_instead_of_written_as_minus_two() -> None:
    encoder = RecordEncoder(SHAPES["fixed"], 1)
    with pytest.raises(SerializationError, match=r"amount: .*negative zero -0\.00: give 0"):
        encoder.encode({"amount": decimal.Decimal("-0.00")})


def test_a_lone_surrogate_is_named_by_its_field_path() -> None:
    document = {
        "type": "record",
        "name": "Named",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "tags", "type": {"type": "map", "values": "string"}},
        ],
    }
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(document, 1).encode({"name": "ok\ud800", "tags": {"k": "\udc00"}})
    assert refused.value.problems == [  # type: ignore[attr-defined]
        "name: expected string (Unicode text), got a lone surrogate '\\ud800' at character 3, "
        "which UTF-8 cannot encode",
        "tags['k']: expected string (Unicode text), got a lone surrogate '\\udc00' at "
        "character 1, which UTF-8 cannot encode",
    ]


def test_the_size_limit_the_publisher_checks_is_librdkafkas_own() -> None:
    """librdkafka refuses key + value + 36 bytes over message.max.bytes: so does the check."""
    limit = 2000
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": limit})
    largest = limit - RECORD_OVERHEAD_BYTES
    producer.produce("t", b"x" * (largest - 3), b"key")  # queued: fits
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        producer.produce("t", b"x" * (largest - 2), b"key")
    producer.purge()
    assert LIBRDKAFKA_MESSAGE_MAX_BYTES == 1_000_000
