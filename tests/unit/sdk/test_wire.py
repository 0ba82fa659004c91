"""Confluent framing: byte 0 magic, bytes 1-4 big-endian schema id, then the body."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_stream.errors import DeserializationError
from mesh_stream.schema.wire import (
    HEADER_SIZE,
    frame,
    frame_problem,
    framing_error,
    header,
    schema_id_of,
    unframe,
)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_frame_then_unframe_gives_back_id_and_body(schema_id: int, body: bytes) -> None:
    data = frame(schema_id, body)
    assert data[0] == 0
    assert data[1:HEADER_SIZE] == schema_id.to_bytes(4, "big")
    assert data[HEADER_SIZE:] == body
    found_id, found_body = unframe(data)
    assert found_id == schema_id
    assert bytes(found_body) == body


def test_header_is_big_endian() -> None:
    assert header(258) == bytes([0, 0, 0, 1, 2])


def test_schema_id_outside_four_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit in 4 unsigned bytes"):
        header(2**32)


def test_too_short_data_names_the_header_it_needs() -> None:
    with pytest.raises(DeserializationError, match=r"3 byte\(s\) cannot be a Confluent-framed"):
        unframe(b"\x00\x00\x01")


def test_wrong_magic_byte_is_named() -> None:
    with pytest.raises(DeserializationError, match="unknown magic byte 7 \\(expected 0\\)"):
        unframe(bytes([7, 0, 0, 0, 1, 2]))


@given(st.one_of(st.none(), st.binary(max_size=12)))
def test_one_framing_check_for_every_reader(data: bytes | None) -> None:
    """The consumer, the re-key stage's dead letters and the processors' decoder all ask
    this module (they had three copies with three wordings)."""
    problem = frame_problem(data)
    framed = data is not None and len(data) >= HEADER_SIZE and data[0] == 0
    assert (problem is None) == framed
    if framed:
        assert data is not None
        assert schema_id_of(data) == unframe(data)[0] == int.from_bytes(data[1:5], "big")
    else:
        assert schema_id_of(data) is None
        assert str(framing_error(data, "t[0]@3: ")) == f"t[0]@3: {problem}"


def test_a_tombstone_is_named_as_one() -> None:
    assert frame_problem(None) == "the record has no value (a tombstone), not an Avro record"
