"""Confluent-framed Avro for faust topics: the same bytes the SDK and `mesh tail` use.

Faust topics of the processors carry raw bytes; this module turns them into plain records
and back. Framing (DESIGN.md): byte 0 = magic 0, bytes 1-4 = big-endian schema id, then the
fastavro schemaless body. Writer schemas are fetched once per id and cached, so decoding costs
no registry call per record.

Decoded records are *plain*: timestamps as epoch milliseconds, decimals as
:class:`~decimal.Decimal`, uuids as strings, so processors and tests compare them directly.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import fastavro
from fastavro.validation import validate

from mesh_stream.errors import DeserializationError, SerializationError

MAGIC = 0
HEADER = struct.Struct(">bI")

SchemaFetcher = Callable[[int], str]
"""Returns the Avro schema text registered under a schema id (a registry lookup)."""


def plain(value: Any) -> Any:
    """Avro logical values as plain values: datetime -> epoch ms, UUID -> str."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def parse_schema(schema: str | Mapping[str, Any]) -> Any:
    """Parse Avro schema text or a JSON document with fastavro; errors become SchemaError."""
    from mesh_stream.errors import SchemaError

    try:
        document = json.loads(schema) if isinstance(schema, str) else dict(schema)
        return fastavro.parse_schema(document)
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"cannot parse Avro schema: {exc}") from exc


class FramedAvroEncoder:
    """Encodes records of one writer schema, registered under ``schema_id``."""

    def __init__(self, schema: str | Mapping[str, Any], schema_id: int, *, where: str = "") -> None:
        self.schema = parse_schema(schema)
        self.schema_id = schema_id
        self.where = where
        self._header = HEADER.pack(MAGIC, schema_id)
        self._buffer = io.BytesIO()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self.schema, record)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise SerializationError(self._explain(record, exc)) from exc
        return buffer.getvalue()

    def _explain(self, record: Mapping[str, Any], exc: Exception) -> str:
        where = f"{self.where}: " if self.where else ""
        try:
            validate(record, self.schema, raise_errors=True)
        except fastavro.validation.ValidationError as invalid:
            problems = "; ".join(str(error) for error in invalid.errors)
            return f"{where}record does not fit schema id {self.schema_id}: {problems}"
        return f"{where}record does not fit schema id {self.schema_id}: {exc}"


#: Logical types whose underlying Avro value already is the plain value (epoch ms, text).
READ_AS_UNDERLYING = frozenset({"timestamp-millis", "uuid"})
#: Logical types that fastavro turns into datetimes, which :func:`plain` must convert.
NEEDS_PLAIN = frozenset({"timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"})


def without_plain_logical_types(schema: Any) -> Any:
    """The schema document with the READ_AS_UNDERLYING logical types removed.

    Reading ``timestamp-millis`` as a datetime and turning it back into epoch ms cost more than
    the rest of decoding (and the float round trip can be off by one ms); the long is exact.
    """
    if isinstance(schema, dict):
        stripped = {key: without_plain_logical_types(value) for key, value in schema.items()}
        if stripped.get("logicalType") in READ_AS_UNDERLYING:
            del stripped["logicalType"]
        return stripped
    if isinstance(schema, list):
        return [without_plain_logical_types(item) for item in schema]
    return schema


def _has_logical_type(schema: Any, names: frozenset[str]) -> bool:
    if isinstance(schema, dict):
        return schema.get("logicalType") in names or any(
            _has_logical_type(value, names) for value in schema.values()
        )
    if isinstance(schema, list):
        return any(_has_logical_type(item, names) for item in schema)
    return False


class FramedAvroDecoder:
    """Decodes framed records of any registered writer schema, fetched once per id."""

    def __init__(self, fetch_schema: SchemaFetcher) -> None:
        self._fetch = fetch_schema
        self._schemas: dict[int, tuple[Any, bool]] = {}

    def _reader(self, schema_id: int) -> tuple[Any, bool]:
        """The parsed writer schema to read with, and whether results still need plain()."""
        reader = self._schemas.get(schema_id)
        if reader is None:
            text = self._fetch(schema_id)
            try:
                document: Any = json.loads(text)
            except ValueError:
                document = text  # not JSON: parse_schema below names the problem
            stripped = without_plain_logical_types(document)
            reader = (parse_schema(stripped), _has_logical_type(stripped, NEEDS_PLAIN))
            self._schemas[schema_id] = reader
        return reader

    def writer_schema(self, schema_id: int) -> Any:
        return self._reader(schema_id)[0]

    def decode(self, data: bytes | None, *, where: str = "<record>") -> dict[str, Any]:
        """Decode one framed value; ``where`` (``topic[partition]@offset``) names it in errors."""
        if data is None or len(data) < HEADER.size:
            raise DeserializationError(
                f"{where}: value of {0 if data is None else len(data)} bytes is too short for "
                "Confluent framing (magic byte + 4-byte schema id + Avro body)"
            )
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DeserializationError(
                f"{where}: magic byte is {magic}, expected {MAGIC}: not Confluent-framed Avro"
            )
        schema, needs_plain = self._reader(schema_id)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[HEADER.size :]), schema, None)
        except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            raise DeserializationError(
                f"{where}: Avro body does not match writer schema id {schema_id}: {exc!r}"
            ) from exc
        return cast("dict[str, Any]", plain(record) if needs_plain else record)


def decimal_cents(amount: Decimal) -> int:
    """Money as integer cents, exact (amounts in the contracts have scale 2)."""
    return int((amount * 100).to_integral_exact())


def cents_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))
