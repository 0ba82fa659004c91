"""Records of recursive types nested past MAX_NESTING are refused, before fastavro's C code
(which recursed until the process died with a segmentation fault) writes or reads them."""

from __future__ import annotations

import struct
import subprocess
import sys
from typing import Any

import pytest
from confluent_kafka import Message

from mesh_stream.errors import DeserializationError, SerializationError
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder, parse_schema
from mesh_stream.schema.nesting import (
    MAX_EMPTY_ITEMS,
    MAX_NESTING,
    bytes_nest_deeper,
    holds_empty_item_arrays,
    recursive_names,
    value_nests_deeper,
)
from tests.fixtures.sdk.helpers import new_product
from tests.unit.sdk.conftest import MemorySchemas, offline_consumer

NODE: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "namespace": "t",
    "fields": [
        {"name": "v", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": None},
    ],
}
TREE: dict[str, Any] = {
    "type": "record",
    "name": "Tree",
    "namespace": "t",
    "fields": [
        {"name": "label", "type": "string"},
        {"name": "children", "type": {"type": "map", "values": {"type": "array", "items": "Tree"}}},
    ],
}


def chain(levels: int) -> dict[str, Any] | None:
    value = None
    for number in range(levels):
        value = {"v": number, "next": value}
    return value


def framed_chain(levels: int) -> bytes:
    """A Node chain ``levels`` deep as Avro bytes, built without any Avro writer."""
    return b"\x00" + struct.pack(">I", 1) + b"\x00\x02" * (levels - 1) + b"\x00\x00"


def tree(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"label": "leaf", "children": {}}
    for _ in range(levels - 1):
        node = {"label": "inner", "children": {"kids": [node]}}
    return node


EMPTY_ITEMS: dict[str, Any] = {
    "type": "record",
    "name": "Padded",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "marks", "type": {"type": "array", "items": "null"}},
        {
            "name": "blanks",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Blank", "fields": []},
            },
        },
    ],
}


def varint(number: int) -> bytes:
    """Avro's zig-zag varint, written without any Avro writer."""
    raw, out = (number << 1) ^ (number >> 63), bytearray()
    while raw >= 0x80:
        out.append(raw & 0x7F | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def framed_padded(*mark_blocks: int, blanks: int = 0) -> bytes:
    """A Padded record ``id="a"`` whose ``marks`` array is written as the given blocks."""
    marks = b"".join(varint(count) for count in mark_blocks) + b"\x00"
    blank = (varint(blanks) if blanks else b"") + b"\x00"
    return b"\x00" + struct.pack(">I", 1) + b"\x02a" + marks + blank


def test_only_types_that_can_hold_themselves_are_recursive() -> None:
    assert recursive_names(parse_schema(NODE)["__named_schemas"]) == {"t.Node"}
    assert recursive_names(parse_schema(TREE)["__named_schemas"]) == {"t.Tree"}
    flat = {"type": "record", "name": "F", "fields": [{"name": "a", "type": NODE}]}
    assert recursive_names(parse_schema(flat)["__named_schemas"]) == {"t.Node"}
    plain = {"type": "record", "name": "P", "fields": [{"name": "a", "type": "int"}]}
    assert recursive_names(parse_schema(plain)["__named_schemas"]) == frozenset()


@pytest.mark.parametrize(("schema", "make"), [(NODE, chain), (TREE, tree)], ids=["union", "map"])
def test_a_record_at_the_limit_round_trips_and_one_past_it_is_refused_both_ways(
    schema: dict[str, Any], make: Any
) -> None:
    # a Tree level is three containers (record, map, array); a Node level one record
    levels = MAX_NESTING if schema is NODE else (MAX_NESTING + 2) // 3
    encoder = RecordEncoder(schema, 1)
    at_limit = make(levels)
    framed = encoder.encode(at_limit)
    decoder = RecordDecoder(MemorySchemas({1: schema}))  # type: ignore[arg-type]
    assert decoder.decode(framed) == at_limit
    past = make(levels + 1)
    with pytest.raises(SerializationError) as refused:
        encoder.encode(past)
    assert f"nests records, arrays and maps more than {MAX_NESTING} levels deep" in str(
        refused.value
    )
    with pytest.raises(SerializationError):
        encoder.encode_checked(past)


def test_bytes_nested_thousands_deep_are_a_deserialization_error_not_a_crash() -> None:
    """Run apart: before, fastavro's reader ended the process (SIGSEGV) at about 6,000
    levels, and an SDK consumer crashed on the record at every restart."""
    program = (
        "import struct\n"
        "from mesh_stream.errors import DeserializationError\n"
        "from mesh_stream.schema.codec import RecordDecoder\n"
        "from tests.unit.sdk.test_nesting import NODE, framed_chain\n"
        "from tests.unit.sdk.conftest import MemorySchemas\n"
        "decoder = RecordDecoder(MemorySchemas({1: NODE}))\n"
        "try:\n"
        "    decoder.decode(framed_chain(50_000))\n"
        "except DeserializationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(
        "cannot decode 100000-byte Avro body with writer schema id 1 (t.Node): ValueError: "
        f"the record nests records, arrays and maps more than {MAX_NESTING} levels deep"
    )


@pytest.mark.parametrize(
    ("schema", "bad", "good", "said"),
    [
        (NODE, lambda: framed_chain(20_000), lambda: framed_chain(3), "more than 200 levels deep"),
        (
            EMPTY_ITEMS,  # six bytes claiming a billion nulls
            lambda: framed_padded(10**9),
            lambda: framed_padded(2),
            "claims 1,000,000,000 or more items",
        ),
    ],
    ids=["deep", "a-billion-nulls"],
)
def test_the_consumer_dead_letters_such_a_record_and_reads_on(
    schema: Any, bad: Any, good: Any, said: str
) -> None:
    product = new_product("deep")
    consumer = offline_consumer(product, MemorySchemas({1: schema}, {1: [product.value_subject]}))
    try:
        messages = [
            Message(topic=product.topic, partition=0, offset=0, value=bad()),
            Message(topic=product.topic, partition=0, offset=1, value=good()),
        ]
        with pytest.raises(DeserializationError) as refused:
            consumer._decode(messages)
        assert str(refused.value).startswith(f"{product.topic}[0]@0: ")
        assert said in str(refused.value)
    finally:
        consumer.close()


def test_the_publishers_own_fast_path_measures_a_recursive_record_too() -> None:
    """ProductPublisher.publish calls `encoder.fast` directly: for a recursive type it ran
    fastavro's C writer unmeasured and crashed on a deep record (the session's review).
    Such a schema has no compiled encoder to call; encode_checked measures."""
    encoder = RecordEncoder(NODE, 1)
    assert encoder.fast is None
    with pytest.raises(SerializationError):
        encoder.encode_checked(chain(MAX_NESTING + 1))


def test_a_deep_record_behind_a_million_nulls_is_still_found() -> None:
    """An array of a million nulls takes a few bytes: counting through it one by one ran the
    walk out of work, which then let fastavro read the 20,000 levels behind it (the
    session's review). Zero-size items are skipped by their count."""
    schema = {
        "type": "record",
        "name": "Padded",
        "namespace": "t",
        "fields": [
            {"name": "pad", "type": {"type": "array", "items": "null"}},
            {"name": "next", "type": ["null", "Padded"]},
        ],
    }
    parsed = parse_schema(schema)
    named = parsed["__named_schemas"]
    million = b"\x80\x89\x7a"  # zig-zag 1,000,000: one block of a million nulls
    level = million + b"\x00" + b"\x02"  # the block, the end of the array, next: Padded
    deep = level * 20_000 + b"\x00\x00"
    assert bytes_nest_deeper(deep, 0, parsed, named)
    shallow = level * 10 + b"\x00\x00"
    assert not bytes_nest_deeper(shallow, 0, parsed, named)


def test_damaged_or_endless_bytes_are_left_to_the_reader_without_hanging() -> None:
    named = parse_schema(TREE)["__named_schemas"]
    schema = parse_schema(TREE)
    huge_count = b"\x00" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"  # label "", 2**62 entries
    assert bytes_nest_deeper(huge_count, 0, schema, named) is False
    assert bytes_nest_deeper(b"\x02", 0, schema, named) is False  # ends early
    assert bytes_nest_deeper(b"\x00\x01", 0, schema, named) is False  # a negative count, no size


def test_value_nesting_counts_dicts_lists_and_tuples() -> None:
    assert not value_nests_deeper({"a": [({"b": 1},)]}, limit=4)
    assert value_nests_deeper({"a": [({"b": {}},)]}, limit=4)


def named_of(schema: Any) -> tuple[Any, Any]:
    parsed = parse_schema(schema)
    return parsed, parsed["__named_schemas"] if isinstance(parsed, dict) else {}


def test_only_schemas_with_arrays_of_items_taking_no_bytes_are_walked_for_them() -> None:
    assert holds_empty_item_arrays(*named_of(EMPTY_ITEMS))
    assert not holds_empty_item_arrays(*named_of(NODE))
    zero = {"type": "fixed", "name": "Z", "size": 0}
    fixed = {
        "type": "record",
        "name": "F",
        "fields": [
            {"name": "a", "type": {"type": "array", "items": zero}},
        ],
    }
    assert holds_empty_item_arrays(*named_of(fixed))
    union = {
        "type": "record",
        "name": "U",
        "fields": [
            {"name": "a", "type": {"type": "array", "items": ["null", "int"]}},  # a byte each
            {"name": "m", "type": {"type": "map", "values": "null"}},  # a key each
        ],
    }
    assert not holds_empty_item_arrays(*named_of(union))


@pytest.mark.parametrize(
    ("framed", "claimed"),
    [
        (framed_padded(1_000_000_000), "1,000,000,000"),  # six bytes claiming a billion
        (framed_padded(*[60_000, 60_000]), "120,000"),  # blocks add up
        (framed_padded(-100_001), "100,001"),  # a negative count, then the block's size
        (framed_padded(50_000, blanks=50_001), "100,001"),  # both arrays together
    ],
    ids=["a-billion", "two-blocks", "sized-block", "two-arrays"],
)
def test_a_record_claiming_too_many_items_that_take_no_bytes_is_refused_unbuilt(
    framed: bytes, claimed: str
) -> None:
    """Before, every reader built the list (a billion items: memory exhausted); the compiled
    decoder handed the record to fastavro, which built it."""
    if framed_padded(-100_001) == framed:  # a sized block: its size in bytes follows
        framed = framed[:7] + varint(-100_001) + varint(0) + b"\x00\x00"
    decoder = RecordDecoder(MemorySchemas({1: EMPTY_ITEMS}))  # type: ignore[arg-type]
    with pytest.raises(DeserializationError) as refused:
        decoder.decode(framed)
    assert f"the record claims {claimed} or more items of arrays whose items take no bytes" in (
        str(refused.value)
    )
    assert f"beyond the {MAX_EMPTY_ITEMS:,} a record may hold" in str(refused.value)
    with pytest.raises(DeserializationError):  # the projection a processor reads through
        decoder.decode(framed, fields=["id"])


def test_items_that_take_no_bytes_up_to_the_limit_are_read_and_written() -> None:
    decoder = RecordDecoder(MemorySchemas({1: EMPTY_ITEMS}))  # type: ignore[arg-type]
    framed = framed_padded(MAX_EMPTY_ITEMS - 3, blanks=3)
    record = decoder.decode(framed)
    assert record["marks"] == [None] * (MAX_EMPTY_ITEMS - 3)
    assert record["blanks"] == [{}, {}, {}]
    assert decoder.decode(framed, fields=["id"]) == {"id": "a"}
    encoder = RecordEncoder(EMPTY_ITEMS, 1)
    assert encoder.fast is None  # every record is counted
    assert encoder.encode(record) == framed_padded(MAX_EMPTY_ITEMS - 3, blanks=3)
    with pytest.raises(SerializationError) as refused:
        encoder.encode({**record, "blanks": [{}] * 4})
    assert str(refused.value) == (
        "record does not fit schema t.Padded: (record): claims 100,001 or more items of "
        "arrays whose items take no bytes, beyond the 100,000 a record may hold (a few bytes "
        "could otherwise make every reader build a billion)"
    )


def error_holding_nulls() -> dict[str, Any]:
    """Avro's `error` type is a record too."""
    error = {
        "type": "error",
        "name": "E",
        "fields": [{"name": "n", "type": {"type": "array", "items": "null"}}],
    }
    return {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [{"name": "e", "type": error}],
    }


def union_values_holding_nulls() -> dict[str, Any]:
    """Nulls inside the values of a three-branch union, which the compiled decoder hands
    to fastavro one value at a time."""
    holder = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "n", "type": {"type": "array", "items": "null"}}],
    }
    items = {"type": "array", "items": ["int", "string", holder]}
    return {
        "type": "record",
        "name": "R",
        "namespace": "t",
        "fields": [{"name": "xs", "type": items}],
    }


@pytest.mark.parametrize(
    ("schema", "body", "claimed"),
    [
        (error_holding_nulls(), varint(5_000_000) + b"\x00", "5,000,000"),
        # 50 union values of 100,000 nulls each: counted over the record, not per value
        (
            union_values_holding_nulls(),
            varint(50) + (varint(2) + varint(MAX_EMPTY_ITEMS) + b"\x00") * 50 + b"\x00",
            "200,000",
        ),
        ({"type": "array", "items": "null"}, varint(5_000_000) + b"\x00", "5,000,000"),
    ],
    ids=["error-type", "union-values", "top-level-array"],
)
def test_items_that_take_no_bytes_are_counted_wherever_they_are(
    schema: Any, body: bytes, claimed: str
) -> None:
    """A review found three ways past the count: an `error` type was no record to the walk,
    the compiled decoder counted each union value apart, and a writer schema that is an
    array was not looked at (each built 5,000,000 nulls from a few bytes)."""
    decoder = RecordDecoder(MemorySchemas({1: schema}))  # type: ignore[arg-type]
    with pytest.raises(DeserializationError) as refused:
        decoder.decode(b"\x00" + struct.pack(">I", 1) + body)
    assert f"the record claims {claimed} or more items of arrays" in str(refused.value)
