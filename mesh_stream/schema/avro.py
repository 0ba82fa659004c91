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
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
from mesh_stream.schema import strict_json
from mesh_stream.schema.names import NAMED_KINDS
from mesh_stream.schema.spec import DEFAULT_LIMITS, SchemaLimits, check_schema, check_utf8

AvroSchema = avro.schema.Schema

__all__ = [
    "AvroSchema",
    "Incompatibility",
    "SchemaLimits",
    "canonical_form",
    "compatibility_problems",
    "field_docs",
    "fingerprint",
    "incompatibilities",
    "next_major_hint",
    "normalize",
    "parse_schema",
    "type_name",
]


def parse_schema(
    schema: str | Mapping[str, Any] | Sequence[Any],
    *,
    strict: bool = True,
    limits: SchemaLimits = DEFAULT_LIMITS,
    named_types: Sequence[Any] = (),
) -> AvroSchema:
    """Parse Avro schema JSON text (or already-decoded JSON) into an ``avro`` schema object.

    ``named_types`` are the decoded schemas this one references (Confluent schema
    references), dependencies first: their named types resolve by name here.

    ``strict`` (the default) first applies the specification's rules the ``avro`` package
    skips and the cost bounds of ``limits`` (:mod:`mesh_stream.schema.spec`); ``strict=False``
    is for schemas accepted earlier (stored ones), so a stricter release still reads them.
    Every failure becomes :class:`SchemaError` whose message says what is wrong and where,
    because the ``avro`` package raises a mix of its own and builtin exceptions on odd input.
    """
    if strict and isinstance(schema, str):  # before decoding: 50 MB took a minute and a GB
        problem = size_problem(len(schema.encode("utf-8", "surrogatepass")), limits)
        if problem is not None:
            raise SchemaError(f"invalid Avro schema: {problem}")
    document, size = _decode(schema, strict=strict)
    if strict:
        problem = size_problem(size, limits)
        if problem is not None:
            raise SchemaError(f"invalid Avro schema: {problem}")
        try:
            check_schema(document, limits, named_types=named_types)
        except SchemaError as exc:
            raise SchemaError(f"invalid Avro schema: {exc}", loc=exc.loc) from None
    else:
        try:
            check_utf8(document)
        except SchemaError as exc:
            raise SchemaError(f"invalid Avro schema: {exc}") from None
    try:
        names = avro.name.Names(validate_names=True)
        for referenced in named_types:
            avro.schema.make_avsc_object(referenced, names)
        parsed = avro.schema.make_avsc_object(document, names)
    except RecursionError as exc:
        raise SchemaError("invalid Avro schema: nested too deeply") from exc
    except Exception as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc
    if strict:
        try:  # the SDK encodes with fastavro: what it cannot parse must not be registered
            known: dict[str, Any] = {}
            for referenced in named_types:
                fastavro.parse_schema(referenced, named_schemas=known)
            fastavro.parse_schema(document, named_schemas=known)
        except Exception as exc:  # fastavro raises several unrelated types for bad schemas
            raise SchemaError(
                f"invalid Avro schema: fastavro (the SDK's codec) refuses it: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return parsed


def size_problem(size: int, limits: SchemaLimits = DEFAULT_LIMITS) -> str | None:
    """Why a schema of ``size`` bytes of JSON is refused, None when it is not."""
    if limits.max_bytes is None or size <= limits.max_bytes:
        return None
    return (
        f"{size} bytes of JSON, more than the limit of {limits.max_bytes} a schema may have "
        f"(the registry's is MESH_REGISTRY_MAX_SCHEMA_BYTES)"
    )


def _decode(schema: str | Mapping[str, Any] | Sequence[Any], *, strict: bool) -> tuple[Any, int]:
    """The schema as decoded JSON, and its size in bytes of JSON text.

    ``strict`` refuses numbers JSON cannot carry (``NaN``, ``Infinity``, ``1e999``), naming
    their JSON path; lenient decoding keeps reading schemas stored before that rule.
    """
    try:
        if isinstance(schema, str):
            text = schema
            document = strict_json.loads(text) if strict else json.loads(text)
        else:
            document = schema
            found = strict_json.non_finite(document) if strict else None
            if found is not None:
                raise strict_json.NonFiniteNumberError(*found)
            text = json.dumps(schema, ensure_ascii=False)
    except RecursionError as exc:
        raise SchemaError("invalid Avro schema: nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"invalid Avro schema: not valid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}"
        ) from exc
    except strict_json.NonFiniteNumberError as exc:
        raise SchemaError(f"invalid Avro schema: {exc.located}", loc=exc.loc) from None
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"invalid Avro schema: not JSON data: {exc}") from exc
    return document, len(text.encode("utf-8", "surrogatepass"))


def _lenient(schema: str | Mapping[str, Any]) -> AvroSchema:
    """The forms below describe a schema, they do not judge it: schemas a registry stored
    earlier (or another registry serves) still get their normal form and fingerprint."""
    return parse_schema(schema, strict=False)


def normalize(
    schema: str | Mapping[str, Any] | AvroSchema, *, named_types: Sequence[Any] = ()
) -> str:
    """Compact JSON of the parsed schema: stable under whitespace and key-order changes.

    Types defined in ``named_types`` (the referenced schemas, as for :func:`parse_schema`)
    stay references by name rather than being written out.
    """
    names = avro.name.Names()
    for referenced in named_types:
        avro.schema.make_avsc_object(referenced, names)
    parsed = (
        schema
        if isinstance(schema, avro.schema.Schema)
        else parse_schema(schema, strict=False, named_types=named_types)
    )
    written = _defined_once(parsed.to_json(names), None, set())
    return json.dumps(written, separators=(",", ":"), ensure_ascii=False)


def _defined_once(node: Any, namespace: str | None, defined: set[str]) -> Any:
    """``node`` (avro's JSON of a parsed schema) with every named type written out once and
    named after: avro writes a fixed decimal out in full at each use, a schema that then
    defines its name twice and that no parser takes."""
    if isinstance(node, list):
        return [_defined_once(item, namespace, defined) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if isinstance(kind, str) and kind in NAMED_KINDS and isinstance(node.get("name"), str):
        name = node["name"]
        space = node.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
        short = name.rpartition(".")[2]
        full = f"{space}.{short}" if space else short
        if full in defined:
            return short if (space or None) == (namespace or None) else full
        defined.add(full)
        namespace = space
    return {key: _defined_once(value, namespace, defined) for key, value in node.items()}


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


@dataclass(frozen=True)
class _Break:
    """Where avro's checker found a reader/writer pair incompatible: the field path (empty
    for the record itself), the two fields (None when absent) and avro's incompatibility
    kinds there."""

    path: tuple[str, ...]
    reader: Any
    writer: Any
    kinds: frozenset[SchemaIncompatibilityType]
    reader_type: AvroSchema
    writer_type: AvroSchema


class _IndexedChecker(ReaderWriterCompatibilityChecker):
    """Avro's checker, with each writer record's fields indexed once per record pair, and
    every incompatible field remembered (:attr:`breaks`) so the message can name it.

    ``RecordSchema.fields_dict`` rebuilds its dict on every access and avro's checker reads
    it once per reader field, so one check was quadratic in fields (9,000 fields: 36 s of
    CPU). The rules are avro's own, unchanged: same lookup by name then by reader alias.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path: list[str] = []
        self.breaks: list[_Break] = []

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
            if writer_field is None and reader_field.has_default:
                continue
            self.path.append(reader_field.name)
            before = len(self.breaks)
            if writer_field is not None:
                found = self.get_compatibility(reader_field.type, writer_field.type, "type", where)
            elif reader_field.type.type == "enum" and reader_field.type.props.get("default"):
                found = self.get_compatibility(reader_field.type, writer, "type", where)
            else:
                found = incompatible(
                    SchemaIncompatibilityType.reader_field_missing_default_value,
                    reader_field.name,
                    where,
                )
            # nothing deeper named the break: this field did
            if found.compatibility is SchemaCompatibilityType.incompatible and (
                len(self.breaks) == before
            ):
                self.breaks.append(
                    _Break(
                        tuple(self.path),
                        reader_field,
                        writer_field,
                        frozenset(found.incompatibilities),
                        reader_field.type,
                        writer_field.type if writer_field is not None else writer,
                    )
                )
            self.path.pop()
            result = merge(result, found)
        return result


@dataclass(frozen=True)
class Incompatibility:
    """One way a candidate schema breaks a compatibility level, said for people: the field,
    what changed, which side can no longer read which records, and the fix."""

    field: str | None
    """Dotted field path from the root record (``customer.email``); None: the record."""
    change: str
    why: str
    fix: str
    versions: tuple[int, ...]

    def __str__(self) -> str:
        where = f"field {self.field}" if self.field else "the record"
        return f"{where}: {self.change}; {self.why}; fix: {self.fix}"


def type_name(schema: AvroSchema) -> str:
    """A short, readable name of an Avro type: ``string``, ``["null", "string"]``,
    ``array of Line``, ``long (timestamp-millis)``, a named type's full name."""
    kind = schema.type
    if isinstance(schema, avro.schema.UnionSchema):
        return "[" + ", ".join(json.dumps(type_name(b)) for b in schema.schemas) + "]"
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{kind} {schema.fullname}"
    if isinstance(schema, avro.schema.ArraySchema):
        return f"array of {type_name(schema.items)}"
    if isinstance(schema, avro.schema.MapSchema):
        return f"map of {type_name(schema.values)}"
    logical = schema.props.get("logicalType")
    return f"{kind} ({logical})" if isinstance(logical, str) else str(kind)


def _enum_symbols(schema: AvroSchema) -> set[str]:
    """The symbols of the enum ``schema`` is or holds as a union branch."""
    if isinstance(schema, avro.schema.EnumSchema):
        return set(schema.symbols)
    if isinstance(schema, avro.schema.UnionSchema):
        return {s for branch in schema.schemas for s in _enum_symbols(branch)}
    return set()


def next_major_hint(subject: str | None) -> str:
    """How to publish a breaking change: a new major version, named when ``subject`` is a
    product's ``<domain>.<product>.v<N>-value``."""
    topic = (subject or "").removesuffix("-value")
    match = re.fullmatch(r"(?P<name>.+)\.v(?P<major>[0-9]+)", topic)
    if match is None:
        return "publish a new major version (a new topic and subject)"
    major = int(match["major"]) + 1
    return (
        f"publish a new major version {match['name']}.v{major} (`version: {major}` in the "
        f"descriptor)"
    )


_PROMOTIONS = "Avro promotes only int -> long -> float -> double and string <-> bytes"


def _explain(found: _Break, backward: bool, subject: str | None) -> tuple[str, str, str]:
    """``(change, why, fix)`` for one incompatible spot. ``backward``: the reader is the new
    schema and the writer an old version; otherwise the reader is the old version."""
    new, old = (
        (found.reader_type, found.writer_type)
        if backward
        else (
            found.writer_type,
            found.reader_type,
        )
    )
    major = next_major_hint(subject)
    if backward:
        why = "consumers reading with the new schema cannot read old records ({versions})"
    else:
        why = "old consumers (reading with {versions}) cannot read new records"
    kinds = found.kinds
    if SchemaIncompatibilityType.reader_field_missing_default_value in kinds and (
        found.writer is None
    ):
        field_type = type_name(found.reader_type)
        if backward:
            return (
                "added without a default",
                f"{why}, which lack it",
                f'give it a default, or make it optional: ["null", {json.dumps(field_type)}] '
                f"with default null",
            )
        return (
            "removed (the registered version has no default for it)",
            f"{why}, which lack it",
            f"keep the field and deprecate it in its doc, or {major}",
        )
    if kinds == {SchemaIncompatibilityType.missing_enum_symbols}:
        symbols = ", ".join(
            sorted(_enum_symbols(found.writer_type) - _enum_symbols(found.reader_type))
        )
        if backward:
            return (
                f"enum symbols removed: {symbols}",
                f"{why} that carry them",
                "keep the symbols (deprecate them in the doc), or give the new enum a "
                "`default` symbol",
            )
        return (
            f"enum symbols added: {symbols}",
            f"{why} that carry them (the registered enum has no `default` symbol)",
            f"drop the new symbols, or {major}",
        )
    if kinds == {SchemaIncompatibilityType.name_mismatch}:
        return (
            f"named type renamed from {type_name(old)} to {type_name(new)}",
            why,
            "keep the old name, or list the old full name in the new type's `aliases`",
        )
    if (
        not backward
        and isinstance(new, avro.schema.UnionSchema)
        and any(branch.canonical_form == old.canonical_form for branch in new.schemas)
    ):
        return (
            f"made optional: type changed from {type_name(old)} to {type_name(new)}",
            why,
            f"keep it required (old consumers expect a value in every record), or {major}",
        )
    return (
        f"type changed from {type_name(old)} to {type_name(new)}",
        why,
        f"keep the type ({_PROMOTIONS}); or add a new field with the new type and deprecate "
        f"this one in its doc; or {major}",
    )


def _reader_breaks(reader: AvroSchema, writer: AvroSchema) -> list[_Break]:
    """Where ``reader`` cannot read data written with ``writer`` (empty when it can)."""
    if reader is writer:
        # Always compatible, and avro's memo hashes a pair as id(reader) ^ id(writer): every
        # pair of a schema with itself hashes to 0, which made this quadratic.
        return []
    checker = _IndexedChecker()
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    if checker.breaks:
        return checker.breaks
    return [_Break((), None, None, frozenset(result.incompatibilities), reader, writer)]


def incompatibilities(
    candidate: AvroSchema,
    registered: Sequence[tuple[int, AvroSchema]],
    level: Compatibility | str,
    *,
    subject: str | None = None,
) -> list[Incompatibility]:
    """Every way ``candidate`` breaks ``level`` against ``registered`` (oldest first), one
    entry per field and change with the versions it breaks.

    ``registered`` holds ``(version, schema)`` pairs of the live versions of a subject. The
    non-transitive levels look at the newest version only, the ``_TRANSITIVE`` ones at all.
    BACKWARD: the new schema reads old data; FORWARD: old schemas read new data; FULL: both.
    ``subject`` only names the next major version in the fixes.
    """
    level = Compatibility(level)
    if level is Compatibility.NONE or not registered:
        return []
    transitive = level.value.endswith("_TRANSITIVE")
    previous = registered if transitive else registered[-1:]
    directions = []
    if level.value.startswith(("BACKWARD", "FULL")):
        directions.append(True)
    if level.value.startswith(("FORWARD", "FULL")):
        directions.append(False)
    found: dict[tuple[str | None, str, str], dict[str, list[int]]] = {}
    for version, old in previous:
        for backward in directions:
            reader, writer = (candidate, old) if backward else (old, candidate)
            for spot in _reader_breaks(reader, writer):
                change, why, fix = _explain(spot, backward, subject)
                whys = found.setdefault((".".join(spot.path) or None, change, fix), {})
                whys.setdefault(why, []).append(version)
    return [
        Incompatibility(
            field,
            change,
            "; and ".join(why.format(versions=_versions(v)) for why, v in whys.items()),
            fix,
            tuple(sorted({n for v in whys.values() for n in v})),
        )
        for (field, change, fix), whys in found.items()
    ]


def _versions(numbers: Sequence[int]) -> str:
    listed = ", ".join(str(n) for n in numbers)
    return f"version{'s' if len(numbers) > 1 else ''} {listed}"


def compatibility_problems(
    candidate: AvroSchema,
    registered: Sequence[tuple[int, AvroSchema]],
    level: Compatibility | str,
    *,
    subject: str | None = None,
) -> list[str]:
    """:func:`incompatibilities` as one line each: field, what changed, why, the fix."""
    return [str(i) for i in incompatibilities(candidate, registered, level, subject=subject)]


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
