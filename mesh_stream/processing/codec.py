"""Confluent-framed Avro for faust topics: the SDK's codec, with plain values for processors.

Faust topics of the processors carry raw bytes; this module turns them into plain records
and back with the one codec of the project (:mod:`mesh_stream.schema.codec`: the compiled
encoder and decoder, fastavro behind them) and the one framing module
(:mod:`mesh_stream.schema.wire`). Writer schemas are fetched once per id and cached, so
decoding costs no registry call per record.

Decoded records are *plain*: timestamps as epoch milliseconds, decimals as
:class:`~decimal.Decimal`, uuids as strings, so processors and tests compare them directly.
A processor that reads a few fields asks for just those (``decode(data, fields=...)``): the
others are skipped without being built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from mesh_stream.errors import (
    DeserializationError,
    RegistryError,
    SchemaError,
    SerializationError,
)
from mesh_stream.schema.codec import FramedReader, RecordEncoder, with_logical_defaults
from mesh_stream.schema.codec import parse_schema as parse_avro
from mesh_stream.schema.wire import HEADER_SIZE, framing_error, schema_id_of

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


def parse_schema(schema: str | Mapping[str, Any], *, source: str = "schema") -> Any:
    """Parse Avro schema text or a JSON document; a SchemaError names ``source``."""
    return parse_avro(schema, source=source)


class FramedAvroEncoder:
    """Encodes records of one writer schema, registered under ``schema_id`` (the SDK's
    :class:`~mesh_stream.schema.codec.RecordEncoder`; errors start with ``where``)."""

    def __init__(self, schema: str | Mapping[str, Any], schema_id: int, *, where: str = "") -> None:
        try:
            self._encoder = RecordEncoder(schema, schema_id)
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}" if where else str(exc)) from exc
        self.schema = self._encoder.parsed
        self.schema_id = schema_id
        self.where = where

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            return self._encoder.encode(record)
        except SerializationError as exc:
            where = f"{self.where}: " if self.where else ""
            problems = getattr(exc, "problems", None) or [str(exc)]
            raise SerializationError(
                f"{where}record does not fit schema id {self.schema_id} "
                f"({self._encoder.name}): {'; '.join(problems)}"
            ) from exc


#: Logical types whose underlying Avro value already is the plain value (epoch ms, text).
READ_AS_UNDERLYING = frozenset({"timestamp-millis", "uuid"})
#: Logical types that decode to datetimes, which :func:`plain` must convert.
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
        # schema id -> (parsed writer schema read plain, whether results still need plain())
        self._schemas: dict[int, tuple[Any, bool]] = {}
        # (schema id, fields or None) -> the SDK's reader for it
        self._readers: dict[tuple[int, tuple[str, ...] | None], FramedReader] = {}
        # (5-byte header, fields as given) -> compiled decoder, for schemas read plain as is
        self._compiled: dict[tuple[bytes, Collection[str] | None], Callable[[bytes], Any]] = {}

    def _reader(self, schema_id: int) -> tuple[Any, bool]:
        """The parsed writer schema to read with, and whether results still need plain()."""
        reader = self._schemas.get(schema_id)
        if reader is None:
            try:
                text = self._fetch(schema_id)
            except RegistryError as exc:
                if exc.retryable:  # the registry is away: the caller may wait for it
                    raise
                raise DeserializationError(
                    f"writer schema id {schema_id} cannot be fetched from the registry: {exc}"
                ) from exc
            try:
                document: Any = json.loads(text)
            except ValueError:
                document = text  # not JSON: parse_schema below names the problem
            stripped = without_plain_logical_types(document)
            # a SchemaError stops the worker rather than dead-lettering every record of the
            # id: a reader that cannot parse it (a schema with references, say) may be the
            # one to change (h46), and nothing is committed past the record meanwhile
            parsed = parse_schema(stripped, source=f"writer schema id {schema_id}")
            reader = (parsed, _has_logical_type(stripped, NEEDS_PLAIN))
            self._schemas[schema_id] = reader
        return reader

    def writer_schema(self, schema_id: int) -> Any:
        return self._reader(schema_id)[0]

    def _framed_reader(
        self, schema_id: int, fields: tuple[str, ...] | None, where: str
    ) -> FramedReader:
        found = self._readers.get((schema_id, fields))
        if found is None:
            try:
                found = FramedReader(self._reader(schema_id)[0], schema_id, fields)
            except DeserializationError as exc:  # a field asked for is not in the schema
                raise DeserializationError(f"{where}: {exc}") from exc
            self._readers[(schema_id, fields)] = found
        return found

    def decode(
        self,
        data: bytes | None,
        *,
        where: str = "<record>",
        fields: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Decode one framed value; ``where`` (``topic[partition]@offset``) names it in errors.

        With ``fields`` (top-level field names) the record holds only those, and the other
        fields' bytes are skipped unread (not checked either); a field the writer schema
        does not have is a :class:`DeserializationError` naming it.
        """
        if type(data) is bytes:  # the hot path: a compiled decoder known for this header
            try:
                record: dict[str, Any] = self._compiled[(data[:HEADER_SIZE], fields)](data)
                return record
            except Exception:  # first record of its kind, odd bytes: the checked way below
                pass
        return self._decode_checked(data, where, fields)

    def _decode_checked(
        self, data: bytes | None, where: str, fields: Collection[str] | None
    ) -> dict[str, Any]:
        schema_id = schema_id_of(data)
        if schema_id is None:
            raise framing_error(data, f"{where}: ")
        assert data is not None
        wanted = None if fields is None else tuple(fields)
        reader = self._readers.get((schema_id, wanted)) or self._framed_reader(
            schema_id, wanted, where
        )
        try:
            record = reader(data if type(data) is bytes else bytes(data))
        except DeserializationError as exc:
            raise DeserializationError(
                f"{where}: Avro body does not match writer schema id {schema_id}: {exc}"
            ) from exc
        if self._schemas[schema_id][1]:
            return cast("dict[str, Any]", plain(record))
        if reader.fast is not None and isinstance(fields, (tuple, frozenset, type(None))):
            # next time straight to the compiled decoder (it raises on anything it cannot read)
            self._compiled[(bytes(data[:HEADER_SIZE]), fields)] = reader.fast
        return record


def decimal_cents(amount: Decimal) -> int:
    """Money as integer cents, exact (amounts in the contracts have scale 2)."""
    return int((amount * 100).to_integral_exact())


def cents_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def field_defaults(schema_text: str, fields: Collection[str]) -> dict[str, Any]:
    """The defaults the record schema ``schema_text`` gives ``fields``, as a processor reads
    values (:func:`plain`): what a record written before such a field was added reads it
    as, as a consumer reading with this schema would (an added field with a default is a
    change that always goes through). Fields without a default are left out."""
    try:
        document: Any = json.loads(schema_text)
        parsed = parse_schema(without_plain_logical_types(document))
    except (ValueError, SchemaError):
        return {}
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return {}
    converted = with_logical_defaults(parsed)
    return {
        field["name"]: plain(field["default"])
        for field in converted["fields"]
        if field["name"] in fields and "default" in field
    }
