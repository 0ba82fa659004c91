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


def header(schema_id: int) -> bytes:
    """The 5 bytes that precede every Avro body written with schema ``schema_id``."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} does not fit in 4 unsigned bytes")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` (an Avro body) prefixed with the Confluent header for ``schema_id``."""
    return header(schema_id) + bytes(payload)


def unframe(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Split framed bytes into (schema id, Avro body) without copying the body.

    Raises :class:`DeserializationError` when the bytes are too short or do not start
    with the magic byte, i.e. they were not written by a Confluent-compatible serializer.
    """
    view = memoryview(data)
    if len(view) < HEADER_SIZE:
        raise DeserializationError(
            f"{len(view)} byte(s) cannot be a Confluent-framed Avro record: it needs a "
            f"{HEADER_SIZE}-byte header (magic byte 0 + 4-byte schema id)"
        )
    magic, schema_id = _HEADER.unpack_from(view)
    if magic != MAGIC_BYTE:
        raise DeserializationError(
            f"unknown magic byte {magic & 0xFF} (expected {MAGIC_BYTE}): the record was not "
            f"written with the Confluent wire format"
        )
    return schema_id, view[HEADER_SIZE:]
