"""A damaged Avro body is said by the field it stops fitting, not by fastavro's exception.

Each body is a valid record's bytes with one place changed; the decoder (the compiled path,
and fastavro's with a reader schema) must name that field and what is wrong there.
"""

from __future__ import annotations

from typing import Any

import pytest

from mesh_stream.errors import DeserializationError
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder
from mesh_stream.schema.wire import HEADER_SIZE
from tests.unit.sdk.conftest import MemorySchemas

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "t.misfit",
    "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["A", "B"]}},
        {"name": "note", "type": ["null", "string"]},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
                },
            },
        },
        {"name": "tags", "type": {"type": "map", "values": "string"}},
    ],
}
ID = "6f1c1b8e-2f7e-4a53-9a8c-3f1f3c4c2b10"
RECORD = {
    "id": ID,
    "status": "B",
    "note": "hi",
    "lines": [{"sku": "s1", "qty": 1}, {"sku": "s2", "qty": 2}],
    "tags": {"k": "v"},
}


def body() -> bytearray:
    """The record framed, as a producer sends it."""
    return bytearray(RecordEncoder(SCHEMA, 1).encode(RECORD))


def at(framed: bytearray, text: bytes) -> int:
    return framed.index(text, HEADER_SIZE)


def refusal(framed: bytes, with_reader: bool) -> str:
    decoder = RecordDecoder(MemorySchemas({1: SCHEMA}), SCHEMA if with_reader else None)
    with pytest.raises(DeserializationError) as caught:
        decoder.decode(bytes(framed))
    return str(caught.value)


def damaged_uuid() -> tuple[bytearray, str]:
    framed = body()
    framed[at(framed, b"6f1c")] = ord("z")
    return framed, "id: string 'zf1c1b8e-2f7e-4a53-9a8c-3f1f3c4c2b10' does not read as a uuid"


def enum_index_past_symbols() -> tuple[bytearray, str]:
    framed = body()
    where = HEADER_SIZE + 1 + 36  # after the uuid's length and text
    framed[where] = 2 * 5  # zigzag 5
    return framed, f"status: enum index 5, but t.misfit.Status has 2 symbols (at byte {1 + 36}"


def union_branch_past_branches() -> tuple[bytearray, str]:
    framed = body()
    where = HEADER_SIZE + 1 + 36 + 1
    framed[where] = 2 * 3
    return framed, f"note: union branch 3, but the union has 2 branches (at byte {1 + 36 + 1}"


def text_not_utf8() -> tuple[bytearray, str]:
    framed = body()
    framed[at(framed, b"s2")] = 0xFF
    return framed, "lines[1].sku: text that is not UTF-8 (invalid start byte at its byte 0)"


def negative_length() -> tuple[bytearray, str]:
    framed = body()
    framed[at(framed, b"s1") - 1] = 3  # zigzag -2
    return framed, "lines[0].sku: a negative length (-2) (at byte"


def string_past_the_end() -> tuple[bytearray, str]:
    framed = body()
    where = at(framed, b"\x02k\x02v") + 2  # the map value's length
    framed[where] = 2 * 50
    return framed, "tags['k']: text of 50 bytes, but the body ends 2 bytes on"


@pytest.mark.parametrize("with_reader", [False, True], ids=["compiled", "fastavro"])
@pytest.mark.parametrize(
    "damage",
    [
        damaged_uuid,
        enum_index_past_symbols,
        union_branch_past_branches,
        text_not_utf8,
        negative_length,
        string_past_the_end,
    ],
)
def test_a_damaged_body_names_the_field_and_what_is_wrong_there(
    damage: Any, with_reader: bool
) -> None:
    framed, expected = damage()
    said = refusal(framed, with_reader)
    assert expected in said, said
    assert said.endswith("; the body is damaged, or was written with another schema")


def test_a_body_cut_inside_a_field_names_it() -> None:
    framed = body()
    cut = framed[: at(framed, b"s2") + 1]
    said = refusal(cut, with_reader=False)
    assert "lines[1].sku: text of 2 bytes, but the body ends 1 bytes on" in said, said


def test_the_header_alone_still_says_the_body_ends_before_the_record() -> None:
    said = refusal(body()[:HEADER_SIZE], with_reader=False)
    assert "id: the body ends before this value (at byte 0 of the body)" in said, said
