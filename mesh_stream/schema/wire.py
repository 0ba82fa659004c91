"""Confluent wire framing: magic byte 0, a 4-byte big-endian schema id, then the Avro body.

This is what every Confluent deserializer, kcat and Kafka Connect expect, so our topics
stay readable by tools that have never heard of mesh-stream (DESIGN.md, "Wire format").
"""

from __future__ import annotations

import struct

from mesh_stream.errors import DeserializationError

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
MAX_SCHEMA_ID = 2**32 - 1
#: The largest id a registry hands out: Java clients read the four bytes as a signed int.
MAX_SIGNED_SCHEMA_ID = 2**31 - 1

#: ``unpack_schema_id(data, 1)[0]``: the schema id of framed bytes, for a hot loop that has
#: checked the framing itself (``len(data) >= HEADER_SIZE and data[0] == MAGIC_BYTE``).
unpack_schema_id = struct.Struct(">I").unpack_from


def header(schema_id: int) -> bytes:
    """The 5 bytes that precede every Avro body written with schema ``schema_id``."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} does not fit in 4 unsigned bytes")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` (an Avro body) prefixed with the Confluent header for ``schema_id``."""
    return header(schema_id) + bytes(payload)


def frame_problem(data: bytes | bytearray | memoryview | None) -> str | None:
    """Why ``data`` (a record's value) is not Confluent-framed; None when it is."""
    if data is None:
        return "the record has no value (a tombstone), not an Avro record"
    if len(data) < HEADER_SIZE:
        return (
            f"{len(data)} byte(s) cannot be a Confluent-framed Avro record: it needs a "
            f"{HEADER_SIZE}-byte header (magic byte 0 + 4-byte schema id)"
        )
    if data[0] != MAGIC_BYTE:
        return (
            f"unknown magic byte {data[0] & 0xFF} (expected {MAGIC_BYTE}): the record was not "
            f"written with the Confluent wire format"
        )
    return None


def framing_error(
    data: bytes | bytearray | memoryview | None, where: str = ""
) -> DeserializationError:
    """The error for ``data`` that is not framed (see :func:`frame_problem`), after
    ``where`` (e.g. ``topic[partition]@offset: ``)."""
    return DeserializationError(f"{where}{frame_problem(data) or 'framed'}")


def schema_id_of(data: bytes | bytearray | memoryview | None) -> int | None:
    """The schema id of framed ``data``; None when it is not framed (a dead letter's
    ``mesh.dlq.schema-id`` header names an id only when there is one)."""
    if frame_problem(data) is not None:
        return None
    assert data is not None
    schema_id: int = unpack_schema_id(data, 1)[0]
    return schema_id


def unframe(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Split framed bytes into (schema id, Avro body) without copying the body.

    Raises :class:`DeserializationError` when the bytes are too short or do not start
    with the magic byte, i.e. they were not written by a Confluent-compatible serializer.
    """
    view = memoryview(data)
    problem = frame_problem(view)
    if problem is not None:
        raise DeserializationError(problem)
    return unpack_schema_id(view, 1)[0], view[HEADER_SIZE:]
