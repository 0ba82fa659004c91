"""The compiled codec on nested schemas: the sample mesh's contracts (order lines, decimals,
uuids, timestamps, enums, optional fields), maps, recursion, projections and damaged bytes.

Every check compares with fastavro itself (``schemaless_writer`` / ``schemaless_reader``):
same bytes out of the encoder, same values out of the decoder, the same refusals.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_stream.bench.codec_bench import sample_records
from mesh_stream.errors import DeserializationError, SerializationError
from mesh_stream.schema.codec import (
    FramedReader,
    RecordDecoder,
    RecordEncoder,
    _compile_fast_decoder,
    parse_schema,
)
from mesh_stream.schema.wire import header

REPO = Path(__file__).resolve().parents[3]
SAMPLE_SCHEMAS = sorted((REPO / "schemas").glob("*/*.avsc"))
SCHEMA_ID = 12


class OneSchema:
    def __init__(self, document: dict[str, Any]) -> None:
        self.text = json.dumps(document)

    def get_schema(self, schema_id: int) -> str:
        assert schema_id == SCHEMA_ID
        return self.text


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def fastavro_framed(document: dict[str, Any], record: Any) -> bytes:
    buffer = io.BytesIO()
    buffer.write(header(SCHEMA_ID))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(document), record)
    return buffer.getvalue()


def fastavro_read(document: dict[str, Any], framed: bytes) -> Any:
    buffer = io.BytesIO(framed[5:])
    return fastavro.schemaless_reader(buffer, fastavro.parse_schema(document), None)


def decimals(schema: dict[str, Any]) -> st.SearchStrategy[decimal.Decimal]:
    scale, precision = int(schema.get("scale", 0)), int(schema["precision"])
    bound = 10**precision - 1
    return st.integers(-bound, bound).map(lambda unscaled: decimal.Decimal(unscaled).scaleb(-scale))


def values(schema: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Any valid value of a fastavro-parsed ``schema`` (what the sample contracts use)."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named, depth + 1) for branch in schema))
    if isinstance(schema, dict):
        logical, kind = schema.get("logicalType"), schema.get("type")
        if logical == "decimal":
            return decimals(schema)
        if logical == "uuid":
            return st.uuids().map(str)
        if logical == "timestamp-millis":
            return st.integers(-(2**40), 2**45)
        if kind == "record":
            return st.fixed_dictionaries(
                {
                    field["name"]: values(field["type"], named, depth + 1)
                    for field in schema["fields"]
                }
            )
        if kind == "array":
            return st.lists(
                values(schema["items"], named, depth + 1), max_size=6 if depth < 3 else 0
            )
        if kind == "map":
            return st.dictionaries(st.text(max_size=5), values(schema["values"], named, depth + 1),
                                   max_size=4 if depth < 3 else 0)  # fmt: skip
        if kind == "enum":
            return st.sampled_from(schema["symbols"])
        return values(kind, named, depth)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": st.floats(allow_nan=False),
        "string": st.text(max_size=20),
        "bytes": st.binary(max_size=12),
    }[schema]


def records_of(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    parsed = parse_schema(document)
    return values(parsed, parsed.get("__named_schemas", {}))


@pytest.mark.parametrize("path", SAMPLE_SCHEMAS, ids=lambda path: path.stem)
def test_every_sample_contract_is_compiled_and_agrees_with_fastavro(path: Path) -> None:
    document = load(path)
    encoder = RecordEncoder(document, SCHEMA_ID)
    decoder = RecordDecoder(OneSchema(document))
    assert encoder.fast is not None
    for record in sample_records(document, 200):
        framed = encoder.fast(record)  # the compiled encoder takes every sample record
        assert framed == fastavro_framed(document, record)
        fast = decoder.plan_for(SCHEMA_ID)[3]
        assert fast is not None
        assert fast(framed) == decoder.decode(framed) == fastavro_read(document, framed)


@pytest.mark.parametrize("path", SAMPLE_SCHEMAS, ids=lambda path: path.stem)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_record_of_a_sample_contract_round_trips_as_fastavro_writes_and_reads_it(
    path: Path, data: st.DataObject
) -> None:
    document = load(path)
    record = data.draw(records_of(document))
    framed = RecordEncoder(document, SCHEMA_ID).encode(record)
    assert framed == fastavro_framed(document, record)
    assert RecordDecoder(OneSchema(document)).decode(framed) == fastavro_read(document, framed)


ORDER = load(REPO / "schemas/orders/order-placed.avsc")


@settings(max_examples=150, deadline=None)
@given(records_of(ORDER), st.data())
def test_on_damaged_nested_bytes_the_decoder_never_disagrees_with_fastavro(
    record: dict[str, Any], data: st.DataObject
) -> None:
    framed = bytearray(fastavro_framed(ORDER, record))
    if data.draw(st.booleans()):
        del framed[data.draw(st.integers(5, len(framed) - 1)) :]
    else:
        framed[data.draw(st.integers(5, len(framed) - 1))] = data.draw(st.integers(0, 255))
    damaged = bytes(framed)
    buffer = io.BytesIO(damaged[5:])
    try:
        expected = fastavro.schemaless_reader(buffer, fastavro.parse_schema(ORDER), None)
    except Exception:
        expected = None
    decoder = RecordDecoder(OneSchema(ORDER))
    if expected is None:
        with pytest.raises(DeserializationError):
            decoder.decode(damaged)
    elif buffer.tell() < len(damaged) - 5:  # fastavro ignores bytes after the body; we do not
        with pytest.raises(DeserializationError, match="left after the Avro body"):
            decoder.decode(damaged)
    else:
        assert decoder.decode(damaged) == expected


def order(lines: int) -> dict[str, Any]:
    return {
        "event_id": "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b11",
        "order_id": "0b9d6c1e-4f7a-4c1b-8d2e-5a6b7c8d9e0f",
        "customer_id": "cust-00042",
        "region": "eu-west",
        "channel": "WEB",
        "currency": "EUR",
        "total_amount": decimal.Decimal("-0.00"),
        "items": [
            {"sku": f"sku-{line:04d}", "quantity": line, "unit_price": decimal.Decimal("1.27")}
            for line in range(lines)
        ],
        "placed_at": 1_795_276_560_123,
    }


@pytest.mark.parametrize("lines", [0, 1, 5000])
def test_empty_and_long_arrays_are_written_and_read_as_fastavro_does(lines: int) -> None:
    framed = RecordEncoder(ORDER, SCHEMA_ID).encode(order(lines))
    assert framed == fastavro_framed(ORDER, order(lines))
    decoded = RecordDecoder(OneSchema(ORDER)).decode(framed)
    assert decoded == fastavro_read(ORDER, framed)
    assert decoded["placed_at"] == dt.datetime(2026, 11, 21, 15, 56, 0, 123000, tzinfo=dt.UTC)
    assert decoded["placed_at"].timestamp() * 1000 == 1_795_276_560_123


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (decimal.Decimal("1.234"), "at most 2 decimal place(s)"),
        (decimal.Decimal("12345678901.00"), "at most 12 digits"),
        (1.5, "got float 1.5"),
    ],
)
def test_decimals_the_compiled_encoder_cannot_take_get_the_checked_paths_error(
    amount: Any, message: str
) -> None:
    with pytest.raises(
        SerializationError, match=r"items\[0\]\.unit_price: .*" + re.escape(message)
    ):
        RecordEncoder(ORDER, SCHEMA_ID).encode(
            {**order(1), "items": [{"sku": "a", "quantity": 1, "unit_price": amount}]}
        )


@pytest.mark.parametrize("amount", ["1.5", "3", "1E+3", "-128", "127.99", "-0.01"])
def test_decimals_of_another_exponent_are_written_as_fastavro_writes_them(amount: str) -> None:
    record = {**order(0), "total_amount": decimal.Decimal(amount)}
    framed = RecordEncoder(ORDER, SCHEMA_ID).encode(record)
    assert framed == fastavro_framed(ORDER, record)
    assert RecordDecoder(OneSchema(ORDER)).decode(framed)["total_amount"] == decimal.Decimal(amount)


def test_a_nested_record_with_an_extra_field_is_refused_by_name() -> None:
    record = order(1)
    record["items"][0]["colour"] = "red"
    with pytest.raises(SerializationError, match=r"items\[0\]\.colour: not a field of record"):
        RecordEncoder(ORDER, SCHEMA_ID).encode(record)


NESTED: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "namespace": "sdktest.nested",
    "fields": [
        {"name": "label", "type": "string"},
        {"name": "weights", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {"name": "children", "type": {"type": "array", "items": "Node"}},
        {"name": "next", "type": ["null", "Node"]},
        {"name": "choice", "type": ["int", "string", "null"]},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 3}},
        {"name": "ratio", "type": "float"},
        {"name": "tail", "type": "string"},
    ],
}


def node(label: str, depth: int) -> dict[str, Any]:
    return {
        "label": label,
        "weights": {"a": [1, -2, 2**40], "": []},
        "children": [node(f"{label}.{i}", depth - 1) for i in range(2)] if depth else [],
        "next": node(label + ">", depth - 1) if depth else None,
        "choice": depth if depth % 2 else "text",
        "digest": b"abc",
        "ratio": 0.5,
        "tail": "end",
    }


def test_recursive_types_maps_and_general_unions_agree_with_fastavro() -> None:
    record = node("root", 3)
    framed = RecordEncoder(NESTED, SCHEMA_ID).encode(record)
    assert framed == fastavro_framed(NESTED, record)
    assert (
        RecordDecoder(OneSchema(NESTED)).decode(framed) == fastavro_read(NESTED, framed) == record
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"weights": {"a": "vw"}}, "weights['a']: expected array of long, got str 'vw'"),
        ({"children": "ab"}, "children: expected array of sdktest.nested.Node, got str 'ab'"),
        ({"children": {"a": 1}}, "children: expected array of sdktest.nested.Node, got dict"),
        ({"weights": {"a": {1, 2}}}, "weights['a']: expected array of long, got set"),
        ({"weights": {"a": b"\x01\x02"}}, "weights['a']: expected array of long, got bytes"),
    ],
    ids=["str-in-map", "str", "dict", "set", "bytes"],
)
def test_an_array_is_a_list_or_tuple_never_another_iterable(
    change: dict[str, Any], said: str
) -> None:
    """fastavro writes any iterable as an array: "vw" was stored as ["v", "w"], a dict as
    its keys, a set in no given order (an SDK campaign); refused, naming the field."""
    record = {**node("root", 0), **change}
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(NESTED, SCHEMA_ID).encode(record)
    assert said in str(refused.value)
    # a tuple is an array's items (not fastavro's union notation), written as a list is
    as_tuples = {**node("root", 0), "weights": {"a": (1, 2)}}
    framed = RecordEncoder(NESTED, SCHEMA_ID).encode(as_tuples)
    assert framed == RecordEncoder(NESTED, SCHEMA_ID).encode(
        {**as_tuples, "weights": {"a": [1, 2]}}
    )


@pytest.mark.parametrize("value", [[], (), "", 0], ids=["list", "tuple", "str", "int"])
def test_a_record_without_fields_is_a_mapping_never_an_empty_list(value: Any) -> None:
    """A record type without fields needed no field check, so nothing checked the value:
    fastavro wrote ``[]`` as the record (a review); refused, naming the field."""
    empty = {"type": "record", "name": "Marker", "fields": []}
    schema = with_field(empty)
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(schema, SCHEMA_ID).encode({"f": value})
    assert f"f: expected record sdktest.unions.Marker, got {type(value).__name__}" in str(
        refused.value
    )
    many = with_field({"type": "array", "items": "sdktest.unions.Marker"})
    many["fields"].insert(0, {"name": "m", "type": empty})
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(many, SCHEMA_ID).encode({"m": {}, "f": [{}, value]})
    assert "f[1]: expected record sdktest.unions.Marker" in str(refused.value)
    framed = RecordEncoder(schema, SCHEMA_ID).encode({"f": {}})
    assert RecordDecoder(OneSchema(schema)).decode(framed) == {"f": {}}


def with_field(field_type: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Holder",
        "namespace": "sdktest.unions",
        "fields": [{"name": "f", "type": field_type}],
    }


NUMBERS = {"type": "array", "items": "int"}
DIGEST = {"type": "fixed", "name": "Digest", "size": 2}


@pytest.mark.parametrize(
    ("field_type", "value", "read"),
    [
        (["null", NUMBERS, "bytes"], b"ab", b"ab"),
        (["null", NUMBERS, "bytes"], bytearray(b"ab"), b"ab"),
        ([NUMBERS, "bytes"], b"ab", b"ab"),
        (["null", NUMBERS, "string", "bytes"], b"ab", b"ab"),
        (["null", NUMBERS, DIGEST], b"ab", b"ab"),
        (["null", NUMBERS, "bytes"], (1, 2), [1, 2]),
        (
            {"type": "array", "items": ["null", NUMBERS, "bytes"]},
            [b"ab", (1, 2), None],
            [b"ab", [1, 2], None],
        ),
        ({"type": "map", "values": [NUMBERS, "bytes"]}, {"k": b"ab", "l": [3]}, None),
    ],
    ids=["bytes", "bytearray", "no-null", "four", "fixed", "tuple", "in-array", "in-map"],
)
def test_bytes_in_a_union_with_an_earlier_array_branch_stay_bytes(
    field_type: Any, value: Any, read: Any
) -> None:
    """fastavro's union writer takes the first branch whose check passes, and its array check
    passes bytes: b"ab" was written as the array [97, 98] (a valid record, silently changed).
    Such a schema's records now name their union branches."""
    document = with_field(field_type)
    encoder = RecordEncoder(document, SCHEMA_ID)
    assert encoder.fast is None  # neither compiled path applies to such a schema
    framed = encoder.encode({"f": value})
    expected = value if read is None else read
    assert RecordDecoder(OneSchema(document)).decode(framed) == {"f": expected}
    assert fastavro_read(document, framed) == {"f": expected}


@pytest.mark.parametrize(
    ("field_type", "value"),
    [
        (["null", "bytes", NUMBERS], b"ab"),
        (["null", "bytes", NUMBERS], bytearray(b"ab")),
        (["null", "bytes", {"type": "array", "items": "string"}], b"ab"),
        (["null", DIGEST, NUMBERS], b"ab"),
        ({"type": "array", "items": ["null", "bytes", NUMBERS]}, [b"ab", [1], None]),
        ({"type": "map", "values": ["null", DIGEST, NUMBERS]}, {"k": b"ab", "l": [2]}),
        ({"type": "array", "items": ["null", NUMBERS, "bytes"], "logicalType": "x"}, [b"ab"]),
        ({"type": "map", "values": ["null", NUMBERS, "bytes"], "logicalType": "x"}, {"k": b"a"}),
        (["null", {**DIGEST, "name": "Span", "logicalType": "duration"}, NUMBERS], b"ab"),
    ],
    ids=[
        "bytes-first",
        "bytearray",
        "strings",
        "fixed-first",
        "in-array",
        "in-map",
        "lt-a",
        "lt-m",
        "fixed-with-a-logical-type",
    ],
)
def test_bytes_for_a_bytes_branch_are_taken_wherever_the_array_is(
    field_type: Any, value: Any
) -> None:
    """A first guard for unions holding an array refused every non-list sequence, the bytes a
    ``bytes`` or ``fixed`` branch before the array takes too; and a container with an
    (ignored) logical type kept its unions unnamed (a review of the session's diff)."""
    document = with_field(field_type)
    framed = RecordEncoder(document, SCHEMA_ID).encode({"f": value})
    read = RecordDecoder(OneSchema(document)).decode(framed)["f"]
    assert read == fastavro_read(document, framed)["f"]
    if isinstance(value, (bytes, bytearray)):
        assert read == bytes(value)
    else:
        assert read == value


@pytest.mark.parametrize(
    ("field_type", "value", "said"),
    [
        (["null", NUMBERS, "string"], b"ab", "f: expected one of [null, array of int, string]"),
        (["null", {"type": "map", "values": NUMBERS}], {"k": b"ab"}, "f['k']: expected array"),
        (["null", "string", NUMBERS], range(3), "f: expected one of [null, string, array"),
        (["null", DIGEST, NUMBERS], b"abc", "f: expected one of [null, fixed"),
    ],
    ids=["no-bytes-branch", "nullable-map-of-arrays", "range", "fixed-of-another-size"],
)
def test_a_sequence_that_is_no_list_is_not_written_as_a_union_array(
    field_type: Any, value: Any, said: str
) -> None:
    """Without a bytes branch to take it, bytes (or a range) met fastavro's array check and
    were written as an array of numbers; refused, naming the field."""
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(with_field(field_type), SCHEMA_ID).encode({"f": value})
    assert said in str(refused.value)


def negative_blocks(record: dict[str, Any]) -> bytes:
    """``record`` with its ``weights`` map written as one block of negative count followed by
    its byte size (legal Avro other writers produce; fastavro never writes it)."""
    body = fastavro_framed(NESTED, {**record, "weights": {}})
    entries = io.BytesIO()
    for key, items in record["weights"].items():
        fastavro.schemaless_writer(entries, "string", key)
        fastavro.schemaless_writer(entries, {"type": "array", "items": "long"}, items)
    block = io.BytesIO()
    fastavro.schemaless_writer(block, "long", -len(record["weights"]))
    fastavro.schemaless_writer(block, "long", len(entries.getvalue()))
    start = 5 + 1 + len(record["label"].encode())  # header, label length and bytes
    return body[:start] + block.getvalue() + entries.getvalue() + body[start:]


def test_blocks_with_a_negative_count_are_read_and_skipped() -> None:
    record = node("n", 0)
    framed = negative_blocks(record)
    assert fastavro_read(NESTED, framed) == record
    decoder = RecordDecoder(OneSchema(NESTED))
    assert decoder.decode(framed) == record
    compiled = decoder.plan_for(SCHEMA_ID)[3]
    assert compiled is not None
    assert compiled(framed) == record  # read by the compiled decoder, no fallback
    writer = parse_schema(NESTED)
    assert FramedReader(writer, SCHEMA_ID, ["tail", "label"])(framed) == {
        "label": "n",
        "tail": "end",
    }
    fast = _compile_fast_decoder(writer, writer["__named_schemas"], ["tail"])
    assert fast is not None
    assert fast(framed) == {"tail": "end"}  # the compiled decoder skipped the block itself


@pytest.mark.parametrize(
    "fields",
    [["placed_at"], ["items", "region"], ["total_amount", "event_id"], ["channel"], []],
)
def test_a_projection_is_the_whole_record_cut_down_to_its_fields(fields: list[str]) -> None:
    writer = parse_schema(ORDER)
    reader = FramedReader(writer, SCHEMA_ID, fields)
    assert reader.fast is not None
    full = FramedReader(writer, SCHEMA_ID)
    for record in sample_records(ORDER, 50):
        framed = fastavro_framed(ORDER, record)
        whole = full(framed)
        assert reader(framed) == {name: whole[name] for name in fields}
        assert reader.fast(framed) == reader(framed)


def test_a_projection_of_a_recursive_record_skips_what_it_does_not_read() -> None:
    record = node("root", 2)
    framed = fastavro_framed(NESTED, record)
    reader = FramedReader(parse_schema(NESTED), SCHEMA_ID, ["tail", "choice"])
    assert reader(framed) == {"tail": "end", "choice": "text"}


def test_a_projection_of_a_field_the_writer_lacks_is_refused_naming_it() -> None:
    with pytest.raises(DeserializationError, match=r"schema id 12 .* has no field 'discount'"):
        FramedReader(parse_schema(ORDER), SCHEMA_ID, ["region", "discount"])


def test_a_projection_still_refuses_a_body_of_another_length() -> None:
    framed = fastavro_framed(ORDER, order(2))
    reader = FramedReader(parse_schema(ORDER), SCHEMA_ID, ["region"])
    assert reader(framed) == {"region": "eu-west"}
    with pytest.raises(DeserializationError, match="1 byte\\(s\\) left after the Avro body"):
        reader(framed + b"\x00")
    with pytest.raises(DeserializationError, match="cannot decode"):
        reader(framed[:-3])


@pytest.mark.parametrize("path", SAMPLE_SCHEMAS, ids=lambda path: path.stem)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_projection_of_any_record_is_read_by_the_compiled_decoder(
    path: Path, data: st.DataObject
) -> None:
    document = load(path)
    names = [field["name"] for field in document["fields"]]
    fields = data.draw(st.lists(st.sampled_from(names), unique=True))
    record = data.draw(records_of(document))
    framed = fastavro_framed(document, record)
    whole = fastavro_read(document, framed)
    reader = FramedReader(parse_schema(document), SCHEMA_ID, fields)
    assert reader.fast is not None
    assert reader.fast(framed) == {name: whole[name] for name in fields}  # no fallback


def test_the_sdk_decoder_decodes_a_projection_too() -> None:
    framed = fastavro_framed(ORDER, order(3))
    decoder = RecordDecoder(OneSchema(ORDER))
    whole = decoder.decode(framed)
    assert decoder.decode(framed, fields=["items", "currency"]) == {
        "items": whole["items"],
        "currency": "EUR",
    }
    with pytest.raises(DeserializationError, match="has no field 'discount'"):
        decoder.decode(framed, fields=["discount"])
    evolved = {**ORDER, "fields": [*ORDER["fields"], {"name": "note", "type": "string",
                                                      "default": "-"}]}  # fmt: skip
    reading = RecordDecoder(OneSchema(ORDER), reader_schema=evolved)
    assert reading.decode(framed, fields=["note", "region"]) == {"note": "-", "region": "eu-west"}
    with pytest.raises(DeserializationError, match=r"reader schema .* has no field 'x'"):
        reading.decode(framed, fields=["x"])


UUID_TEXT = "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b11"


@pytest.mark.parametrize(
    "text",
    [
        UUID_TEXT,
        UUID_TEXT.upper(),
        UUID_TEXT.replace("-", ""),
        "{" + UUID_TEXT + "}",
        "urn:uuid:" + UUID_TEXT,
        "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b1_",
        "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b1\u0661",  # an Arabic-Indic one: int() takes it
        "6f1c1c55-1d9a-4c2e-9a52-3f0d6f2d8b",  # too short
        "not a uuid at all, but 36 chars long",
    ],
)
def test_uuid_text_is_read_exactly_as_fastavro_reads_it(text: str) -> None:
    """Another writer may put any text in a uuid field: what UUID() accepts, fastavro
    returns, and the compiled decoder returns the same or lets fastavro refuse it."""
    framed = fastavro_framed(ORDER, {**order(0), "event_id": text})
    decoder = RecordDecoder(OneSchema(ORDER))
    try:
        expected = fastavro_read(ORDER, framed)
    except ValueError:
        with pytest.raises(
            DeserializationError,
            match=r"cannot decode .*: event_id: string .* does not read as a uuid",
        ):
            decoder.decode(framed)
        return
    decoded = decoder.decode(framed)
    assert decoded == expected
    assert decoded["event_id"].is_safe == expected["event_id"].is_safe
    assert type(decoded["event_id"]) is type(expected["event_id"])


def test_a_dict_in_a_union_with_one_record_branch_is_explained_as_that_record() -> None:
    """It said only `note: expected one of [null, string, Line], got dict {...}` (an SDK
    campaign), not which field of the record was wrong."""
    line = {
        "type": "record",
        "name": "Line",
        "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
    }
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "note", "type": ["null", "string", line]}],
    }
    with pytest.raises(SerializationError) as refused:
        RecordEncoder(schema, SCHEMA_ID).encode({"note": {"sku": "a", "qty": "x"}})
    assert str(refused.value) == "record does not fit schema R: note.qty: expected int, got str 'x'"
