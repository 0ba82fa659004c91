"""Encoding, validation errors, decoding and schema evolution of the record codec."""

from __future__ import annotations

import decimal
import io
import json
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.serialization import SerializationError as KafkaSerializationError
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_stream.errors import DeserializationError, SchemaError, SerializationError
from mesh_stream.schema.codec import (
    RecordDecoder,
    RecordEncoder,
    coerce_json,
    json_default,
    load_schema_file,
    parse_schema,
)
from mesh_stream.schema.wire import frame, header
from tests.unit.sdk.conftest import MemorySchemas, make_order


def expected_decoded(record: dict[str, Any]) -> dict[str, Any]:
    """What Avro gives back for ``record`` (logical types come back typed)."""
    return {**record, "order_id": uuid.UUID(record["order_id"])}


def test_encode_is_header_plus_fastavro_body(order_v1: dict[str, Any]) -> None:
    record = make_order(5)
    encoded = RecordEncoder(order_v1, 42).encode(record)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(order_v1), record)
    assert encoded == header(42) + body.getvalue()


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_round_trip_returns_the_record(index: int) -> None:
    schema = json.loads((Path(__file__).parents[2] / "fixtures/sdk/order_v1.avsc").read_text())
    record = make_order(index)
    encoder = RecordEncoder(schema, 3)
    decoder = RecordDecoder(MemorySchemas({3: schema}))
    assert decoder.decode(encoder.encode(record)) == expected_decoded(record)


def test_encoder_reuses_its_buffer_without_leaking_bytes(order_v1: dict[str, Any]) -> None:
    encoder = RecordEncoder(order_v1, 1)
    long_one = {**make_order(2), "note": "x" * 500}
    short_one = make_order(4)
    encoder.encode(long_one)
    again = encoder.encode(short_one)
    assert again == RecordEncoder(order_v1, 1).encode(short_one)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": 1.5}, "quantity: expected int, got float 1.5"),
        ({"quantity": True}, "quantity: expected int, got bool True"),
        (
            {"quantity": 2**31},
            f"quantity: expected int (from {-(2**31)} to {2**31 - 1}), got {2**31}",
        ),
        ({"express": "yes"}, "express: expected boolean, got str 'yes'"),
        (
            {"status": "SHIPPED"},
            "status: expected enum sdktest.orders.Status (one of PLACED, PAID, CANCELLED), "
            "got str 'SHIPPED'",
        ),
        (
            {"total": decimal.Decimal("1.234")},
            "total: expected decimal(12,2) with at most 2 decimal place(s), got 1.234",
        ),
        ({"total": 12.5}, "total: expected decimal(12,2), got float 12.5"),
        ({"note": 7}, "note: expected one of [null, string], got int 7"),
        ({"order_id": "not-a-uuid"}, "order_id: expected uuid (string), got str 'not-a-uuid'"),
        (
            {"placed_at": "yesterday"},
            "placed_at: expected timestamp-millis (long), got str 'yesterday'",
        ),
        (
            {"lines": [{"sku": "a", "count": 1}, {"sku": "b", "count": "2"}]},
            "lines[1].count: expected int, got str '2'",
        ),
        (
            {"lines": [{"sku": "a"}]},
            "lines[0].count: required field missing (expected int; the schema gives it no default)",
        ),
        ({"colour": "red"}, "colour: not a field of record sdktest.orders.OrderPlaced"),
    ],
)
def test_bad_field_is_named_with_expected_type_and_value(
    order_v1: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    record = {**make_order(1), **change}
    with pytest.raises(SerializationError) as caught:
        RecordEncoder(order_v1, 1).encode(record)
    assert message in str(caught.value)
    assert str(caught.value).startswith("record does not fit schema sdktest.orders.OrderPlaced: ")


def test_missing_required_field_is_named(order_v1: dict[str, Any]) -> None:
    record = make_order(1)
    del record["customer_email"]
    with pytest.raises(SerializationError, match="customer_email: required field missing"):
        RecordEncoder(order_v1, 1).encode(record)


def test_fields_with_defaults_may_be_left_out(order_v1: dict[str, Any]) -> None:
    record = make_order(1)
    del record["note"], record["lines"]
    decoded = RecordDecoder(MemorySchemas({1: order_v1})).decode(
        RecordEncoder(order_v1, 1).encode(record)
    )
    assert decoded == expected_decoded({**record, "note": None, "lines": []})


def test_every_problem_is_listed_and_kept_on_the_error(order_v1: dict[str, Any]) -> None:
    record = {**make_order(1), "quantity": "3", "express": None}
    with pytest.raises(SerializationError) as caught:
        RecordEncoder(order_v1, 1).encode(record)
    assert caught.value.problems == [  # type: ignore[attr-defined]
        "quantity: expected int, got str '3'",
        "express: expected boolean, got null",
    ]


def test_serde_errors_are_also_confluent_kafka_serialization_errors(
    order_v1: dict[str, Any],
) -> None:
    with pytest.raises(KafkaSerializationError):
        RecordEncoder(order_v1, 1).encode({"quantity": 1})
    with pytest.raises(KafkaSerializationError):
        RecordDecoder(MemorySchemas({})).decode(b"\x01\x00")


def test_decoder_asks_the_registry_once_per_schema_id(order_v1: dict[str, Any]) -> None:
    source = MemorySchemas({7: order_v1, 8: order_v1})
    decoder = RecordDecoder(source)
    seven, eight = RecordEncoder(order_v1, 7), RecordEncoder(order_v1, 8)
    for index in range(50):
        decoder.decode(seven.encode(make_order(index)))
        decoder.decode(eight.encode(make_order(index)))
    assert source.calls == 2


def test_unknown_schema_id_is_a_deserialization_error(order_v1: dict[str, Any]) -> None:
    data = RecordEncoder(order_v1, 99).encode(make_order(1))
    with pytest.raises(DeserializationError, match="schema id 99 is not in the registry"):
        RecordDecoder(MemorySchemas({1: order_v1})).decode(data)


def test_corrupt_body_names_schema_id_and_record_type(order_v1: dict[str, Any]) -> None:
    data = frame(1, b"\xff\xff\xff")
    with pytest.raises(
        DeserializationError, match=r"writer schema id 1 \(sdktest.orders.OrderPlaced\)"
    ):
        RecordDecoder(MemorySchemas({1: order_v1})).decode(data)


def test_new_reader_reads_old_records(order_v1: dict[str, Any], order_v2: dict[str, Any]) -> None:
    record = make_order(6)
    old = RecordEncoder(order_v1, 1).encode(record)
    decoded = RecordDecoder(MemorySchemas({1: order_v1}), order_v2).decode(old)
    expected = expected_decoded(record)
    del expected["note"]
    assert decoded == {**expected, "channel": "web"}


def test_old_reader_reads_new_records(order_v1: dict[str, Any], order_v2: dict[str, Any]) -> None:
    record = {**make_order(3), "channel": "app"}
    del record["note"]
    new = RecordEncoder(order_v2, 2).encode(record)
    decoded = RecordDecoder(MemorySchemas({2: order_v2}), order_v1).decode(new)
    expected = expected_decoded(record)
    del expected["channel"]
    assert decoded == {**expected, "note": None}


def test_one_decoder_reads_every_registered_version(
    order_v1: dict[str, Any], order_v2: dict[str, Any]
) -> None:
    decoder = RecordDecoder(MemorySchemas({1: order_v1, 2: order_v2}), order_v2)
    v2_record = {**make_order(1), "channel": "shop"}
    del v2_record["note"]
    assert decoder.decode_with_id(RecordEncoder(order_v2, 2).encode(v2_record))[0] == 2
    assert decoder.decode_with_id(RecordEncoder(order_v1, 1).encode(make_order(2)))[0] == 1


def test_reader_that_cannot_read_the_writer_is_refused(order_v1: dict[str, Any]) -> None:
    reader = json.loads(json.dumps(order_v1))
    reader["fields"].append({"name": "region", "type": "string"})
    data = RecordEncoder(order_v1, 1).encode(make_order(1))
    with pytest.raises(
        DeserializationError, match=r"cannot read records written with schema id 1.*region"
    ):
        RecordDecoder(MemorySchemas({1: order_v1}), reader).decode(data)


def test_invalid_schema_is_a_schema_error_naming_the_source() -> None:
    with pytest.raises(SchemaError, match="reader schema: invalid Avro schema"):
        RecordDecoder(MemorySchemas({}), {"type": "record", "name": "X", "fields": [{"name": "a"}]})


def test_schema_file_json_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.avsc"
    path.write_text('{\n  "type": "record",\n  "name": oops\n}\n')
    with pytest.raises(SchemaError, match=rf"{path}:3:11: not valid JSON"):
        load_schema_file(path)


def test_json_values_become_avro_values_and_back(order_v1: dict[str, Any]) -> None:
    record = make_order(9)
    as_json = json.loads(json.dumps(record, default=json_default))
    assert as_json["placed_at"] == record["placed_at"].isoformat()
    assert as_json["total"] == str(record["total"])
    parsed = parse_schema(order_v1)
    assert coerce_json(parsed, as_json) == record


def test_an_unknown_type_is_named_with_the_file() -> None:
    bad = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "strin"}]}
    with pytest.raises(SchemaError) as caught:
        parse_schema(bad, source="schemas/x/bad.avsc")
    assert str(caught.value) == (
        "schemas/x/bad.avsc: invalid Avro schema: unknown type 'strin' (neither a primitive "
        "type nor a named type defined earlier in the schema)"
    )


DECIMAL_10_2 = {"precision": 10, "scale": 2}
NULLABLE = {
    "type": "record",
    "name": "Refund",
    "fields": [
        {
            "name": "amount",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            ],
        },
        {
            "name": "customer",
            "type": [
                "null",
                {"type": "record", "name": "Customer", "fields": [{"name": "age", "type": "int"}]},
            ],
        },
    ],
}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"amount": "12.345", "customer": None},
            "amount: expected decimal(10,2) with at most 2 decimal place(s), got 12.345",
        ),
        (
            {"amount": "1e20", "customer": None},
            "amount: expected decimal(10,2) (at most 10 digits), got 1E+20",
        ),
        ({"amount": None, "customer": {"age": "old"}}, "customer.age: expected int, got str 'old'"),
        # a value that is not the type at all still reads as the union
        (
            {"amount": True, "customer": None},
            "amount: expected one of [null, decimal(10,2)], got bool",
        ),
    ],
)
def test_a_nullable_value_of_the_wrong_shape_is_explained_as_its_type(
    record: dict[str, Any], message: str
) -> None:
    """JSON input (``mesh publish``) for a nullable decimal or record: the error says what is
    wrong with the value as that type, not only that it fits neither null nor the type."""
    with pytest.raises(SerializationError) as caught:
        RecordEncoder(NULLABLE, 1).encode(coerce_json(NULLABLE, record))
    assert message in str(caught.value)


def test_a_json_timestamp_without_an_offset_is_refused_not_taken_as_utc() -> None:
    """`mesh publish` took `2026-12-06T10:00:00` as UTC where the SDK refuses a naive
    datetime: which zone was meant cannot be told, so both refuse it, naming the field."""
    schema = {
        "type": "record",
        "name": "Stamped",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "maybe",
                "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
                "default": None,
            },
        ],
    }
    encoder = RecordEncoder(schema, 1)
    offsets = {"at": "2026-12-06T10:00:00Z", "maybe": "2026-12-06T11:00:00+01:00"}
    assert encoder.encode_checked(coerce_json(schema, offsets)) == encoder.encode_checked(
        coerce_json(schema, {"at": "2026-12-06T10:00:00+00:00", "maybe": "2026-12-06T10:00Z"})
    )
    for field, bad in (
        ("at", {"at": "2026-12-06T10:00:00"}),
        ("maybe", {**offsets, "maybe": "2026-12-06T10:00:00"}),
    ):
        with pytest.raises(SerializationError, match=f"{field}: a timestamp needs a timezone"):
            encoder.encode_checked(coerce_json(schema, bad))
