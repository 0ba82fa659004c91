"""Avro contracts: parse, normalise, fingerprint, and check compatibility between versions.

Parsing and the reader/writer compatibility rules come from the ``avro`` package (Apache
Avro's own Python implementation); nothing here re-types Avro's rules. This module adds:

* :func:`normalize` — the form the registry stores. Whitespace and JSON key order vanish, docs,
  defaults and custom properties stay, so re-registering a re-formatted schema is idempotent.
* :func:`canonical_form` / :func:`fingerprint` — Avro's *Parsing Canonical Form* and its
  CRC-64-AVRO or SHA-256 fingerprint (docs and defaults dropped: identical wire shape).
* :func:`compatibility_problems` — the seven Confluent compatibility levels expressed as
  reader/writer checks over the registered versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import avro.name
import avro.schema
import fastavro
from avro.compatibility import (
    CompatibleResult,
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
    incompatible,
    merge,
)

from mesh_stream.descriptor import Compatibility
from mesh_stream.errors import SchemaError
from mesh_stream.schema.spec import DEFAULT_LIMITS, SchemaLimits, check_schema, check_utf8

AvroSchema = avro.schema.Schema

__all__ = [
    "AvroSchema",
    "SchemaLimits",
    "canonical_form",
    "compatibility_problems",
    "field_docs",
    "fingerprint",
    "normalize",
    "parse_schema",
]


def parse_schema(
    schema: str | Mapping[str, Any] | Sequence[Any],
    *,
    strict: bool = True,
    limits: SchemaLimits = DEFAULT_LIMITS,
) -> AvroSchema:
    """Parse Avro schema JSON text (or already-decoded JSON) into an ``avro`` schema object.

    ``strict`` (the default) first applies the specification's rules the ``avro`` package
    skips and the cost bounds of ``limits`` (:mod:`mesh_stream.schema.spec`); ``strict=False``
    is for schemas accepted earlier (stored ones), so a stricter release still reads them.
    Every failure becomes :class:`SchemaError` whose message says what is wrong and where,
    because the ``avro`` package raises a mix of its own and builtin exceptions on odd input.
    """
    document, size = _decode(schema)
    if strict:
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise SchemaError(
                f"invalid Avro schema: {size} bytes of JSON, more than the limit of "
                f"{limits.max_bytes} (max_bytes)"
            )
        try:
            check_schema(document, limits)
        except SchemaError as exc:
            raise SchemaError(f"invalid Avro schema: {exc}", loc=exc.loc) from None
    else:
        try:
            check_utf8(document)
        except SchemaError as exc:
            raise SchemaError(f"invalid Avro schema: {exc}") from None
    try:
        parsed = avro.schema.make_avsc_object(document, avro.name.Names(validate_names=True))
    except RecursionError as exc:
        raise SchemaError("invalid Avro schema: nested too deeply") from exc
    except Exception as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc
    if strict:
        try:  # the SDK encodes with fastavro: what it cannot parse must not be registered
            fastavro.parse_schema(document)
        except Exception as exc:  # fastavro raises several unrelated types for bad schemas
            raise SchemaError(
                f"invalid Avro schema: fastavro (the SDK's codec) refuses it: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return parsed


def _decode(schema: str | Mapping[str, Any] | Sequence[Any]) -> tuple[Any, int]:
    """The schema as decoded JSON, and its size in bytes of JSON text."""
    try:
        if isinstance(schema, str):
            text = schema
            document = json.loads(text)
        else:
            document = schema
            text = json.dumps(schema, ensure_ascii=False)
    except RecursionError as exc:
        raise SchemaError("invalid Avro schema: nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"invalid Avro schema: not valid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"invalid Avro schema: not JSON data: {exc}") from exc
    return document, len(text.encode("utf-8", "surrogatepass"))


def _lenient(schema: str | Mapping[str, Any]) -> AvroSchema:
    """The forms below describe a schema, they do not judge it: schemas a registry stored
    earlier (or another registry serves) still get their normal form and fingerprint."""
    return parse_schema(schema, strict=False)


def normalize(schema: str | Mapping[str, Any] | AvroSchema) -> str:
    """Compact JSON of the parsed schema: stable under whitespace and key-order changes."""
    parsed = schema if isinstance(schema, avro.schema.Schema) else _lenient(schema)
    return json.dumps(parsed.to_json(), separators=(",", ":"), ensure_ascii=False)


def canonical_form(schema: str | Mapping[str, Any] | AvroSchema) -> str:
    """Avro's Parsing Canonical Form (the wire shape only: no docs, defaults or aliases)."""
    parsed = schema if isinstance(schema, avro.schema.Schema) else _lenient(schema)
    return str(parsed.canonical_form)


def fingerprint(
    schema: str | Mapping[str, Any] | AvroSchema, algorithm: str = "CRC-64-AVRO"
) -> str:
    """Hex fingerprint of the Parsing Canonical Form (``CRC-64-AVRO`` or e.g. ``sha256``)."""
    parsed = schema if isinstance(schema, avro.schema.Schema) else _lenient(schema)
    try:
        digest: bytes = parsed.fingerprint(algorithm)
    except Exception as exc:
        raise SchemaError(f"unknown fingerprint algorithm {algorithm!r}") from exc
    return digest.hex()


class _IndexedChecker(ReaderWriterCompatibilityChecker):
    """Avro's checker, with each writer record's fields indexed once per record pair.

    ``RecordSchema.fields_dict`` rebuilds its dict on every access and avro's checker reads
    it once per reader field, so one check was quadratic in fields (9,000 fields: 36 s of
    CPU). The rules are avro's own, unchanged: same lookup by name then by reader alias.
    """

    def check_reader_writer_record_fields(  # type: ignore[no-untyped-def]
        self, reader, writer, location
    ) -> SchemaCompatibilityResult:
        by_name = writer.fields_dict
        result = CompatibleResult
        for index, reader_field in enumerate(reader.fields):
            writer_field = by_name.get(reader_field.name)
            aliases = reader_field.props.get("aliases")
            if writer_field is None and isinstance(aliases, list):
                writer_field = next((by_name[a] for a in aliases if a in by_name), None)
            where = [*location, "fields", str(index)]
            if writer_field is not None:
                found = self.get_compatibility(reader_field.type, writer_field.type, "type", where)
            elif reader_field.has_default:
                continue
            elif reader_field.type.type == "enum" and reader_field.type.props.get("default"):
                found = self.get_compatibility(reader_field.type, writer, "type", where)
            else:
                found = incompatible(
                    SchemaIncompatibilityType.reader_field_missing_default_value,
                    reader_field.name,
                    where,
                )
            result = merge(result, found)
        return result


def _reader_problems(reader: AvroSchema, writer: AvroSchema, label: str) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (empty when it can)."""
    if reader is writer:
        # Always compatible, and avro's memo hashes a pair as id(reader) ^ id(writer): every
        # pair of a schema with itself hashes to 0, which made this quadratic.
        return []
    checker = _IndexedChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    locations = ", ".join(sorted(result.locations))
    kinds = ", ".join(sorted({kind.name for kind in result.incompatibilities}))
    messages = "; ".join(sorted(result.messages))
    return [f"{label}: {kinds} at {locations}: {messages}"]


def compatibility_problems(
    candidate: AvroSchema,
    registered: Sequence[tuple[int, AvroSchema]],
    level: Compatibility | str,
) -> list[str]:
    """Reasons why ``candidate`` breaks ``level`` against ``registered`` (oldest first).

    ``registered`` holds ``(version, schema)`` pairs of the live versions of a subject. The
    non-transitive levels look at the newest version only, the ``_TRANSITIVE`` ones at all.
    BACKWARD: the new schema reads old data; FORWARD: old schemas read new data; FULL: both.
    """
    level = Compatibility(level)
    if level is Compatibility.NONE or not registered:
        return []
    transitive = level.value.endswith("_TRANSITIVE")
    previous = registered if transitive else registered[-1:]
    backward = level in (
        Compatibility.BACKWARD,
        Compatibility.BACKWARD_TRANSITIVE,
        Compatibility.FULL,
        Compatibility.FULL_TRANSITIVE,
    )
    forward = level in (
        Compatibility.FORWARD,
        Compatibility.FORWARD_TRANSITIVE,
        Compatibility.FULL,
        Compatibility.FULL_TRANSITIVE,
    )
    problems: list[str] = []
    for version, old in previous:
        if backward:
            problems += _reader_problems(
                candidate, old, f"new schema cannot read data written with version {version}"
            )
        if forward:
            problems += _reader_problems(
                old, candidate, f"version {version} cannot read data written with the new schema"
            )
    return problems


def _walk_fields(node: Any, prefix: str) -> Iterator[tuple[str, str | None]]:
    if isinstance(node, dict):
        if node.get("type") == "record" and isinstance(node.get("fields"), list):
            for field in node["fields"]:
                if not isinstance(field, dict) or "name" not in field:
                    continue
                path = f"{prefix}{field['name']}"
                doc = field.get("doc")
                yield path, doc if isinstance(doc, str) else None
                yield from _walk_fields(field.get("type"), f"{path}.")
        elif node.get("type") == "array":
            yield from _walk_fields(node.get("items"), prefix)
        elif node.get("type") == "map":
            yield from _walk_fields(node.get("values"), prefix)
        elif isinstance(node.get("type"), (dict, list)):
            yield from _walk_fields(node["type"], prefix)
    elif isinstance(node, list):
        for branch in node:
            yield from _walk_fields(branch, prefix)


def field_docs(schema_json: Any) -> list[tuple[str, str | None]]:
    """Every field of a parsed schema document as ``(dotted.path, doc)``, nested ones too."""
    return list(_walk_fields(schema_json, ""))
