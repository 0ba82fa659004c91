"""Encode records to Confluent-framed Avro and decode them back, fast and with clear errors.

Hot path: fastavro's schemaless writer/reader with schemas parsed once, one reused output
buffer per encoder and a dict of parsed writer schemas per decoder, so a record costs no
registry lookup and no schema parsing after the first one of its schema id.

fastavro's writer is lenient in a few places (it truncates ``1.5`` into an ``int`` field,
writes ``True`` as ``1``, accepts any object for a ``boolean`` and 64-bit values for a
32-bit ``int``). Such bytes would be wrong for every other Avro reader, so each encoder
carries a small *guard* compiled from the schema that checks exactly those leaks. The full
validator (:func:`schema_problems`) only runs once something failed, to explain it with
the field path, the expected type and the value received. fastavro's own validator would
do the checking too, but costs three times the encoding itself.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro import schemaless_reader, schemaless_writer

from mesh_stream.errors import (
    DeserializationError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    SerializationError,
)
from mesh_stream.schema.wire import header, unframe

__all__ = [
    "ParsedSchema",
    "RecordDecoder",
    "RecordEncoder",
    "SchemaSource",
    "coerce_json",
    "json_default",
    "load_schema_file",
    "parse_schema",
    "schema_name",
    "schema_problems",
]

ParsedSchema = dict[str, Any]
SchemaLike = Mapping[str, Any] | str

INT_RANGE = (-(2**31), 2**31 - 1)
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
LONG_RANGE = (-(2**63), 2**63 - 1)
_MISSING = object()
_PREVIEW = 60


class SchemaSource(Protocol):
    """Where a decoder finds writer schemas by id (``RegistryClient`` is one)."""

    def get_schema(self, schema_id: int) -> str: ...


# -- loading and parsing ---------------------------------------------------------------


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read an ``.avsc`` file; errors name the file (and line:column for bad JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise SchemaError(f"{path}: a product schema must be an Avro record (a JSON object)")
    parse_schema(document, source=str(path))
    return document


def as_document(schema: SchemaLike) -> dict[str, Any]:
    """Schema JSON text or mapping as a plain dict (what the registry and fastavro take)."""
    if isinstance(schema, str):
        try:
            document = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from exc
    else:
        document = json.loads(json.dumps(schema))
    if not isinstance(document, dict):
        raise SchemaError("a product schema must be an Avro record (a JSON object)")
    return document


def parse_schema(schema: SchemaLike, *, source: str = "schema") -> ParsedSchema:
    """fastavro's parsed form of ``schema``; :class:`SchemaError` names ``source`` if invalid."""
    document = as_document(schema)
    try:
        parsed = fastavro.parse_schema(document)
    except Exception as exc:
        raise SchemaError(f"{source}: invalid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SchemaError(f"{source}: a product schema must be an Avro record")
    return parsed


def schema_name(parsed: ParsedSchema) -> str:
    """The full name of a record schema (``namespace.Name``)."""
    return str(parsed.get("name", parsed.get("type", "?")))


def _named(parsed: ParsedSchema) -> dict[str, Any]:
    named: dict[str, Any] = parsed.get("__named_schemas", {})
    return named


# -- validation: the explanation ------------------------------------------------------


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."


def _type_label(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "one of [" + ", ".join(_type_label(branch) for branch in schema) + "]"
    logical = schema.get("logicalType")
    kind = schema.get("type")
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    if logical:
        return f"{logical} ({kind})"
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema.get('name')}"
    if kind == "array":
        return f"array of {_type_label(schema.get('items'))}"
    if kind == "map":
        return f"map of {_type_label(schema.get('values'))}"
    return str(kind)


def _mismatch(path: str, schema: Any, value: Any) -> list[str]:
    return [
        f"{path or '(record)'}: expected {_type_label(schema)}, got "
        f"{type(value).__name__} {_preview(value)}"
    ]


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]


def _logical_problems(schema: Mapping[str, Any], value: Any, path: str) -> list[str] | None:
    """Problems for a logical type, or None when ``schema`` has no logical type we check."""
    logical = schema.get("logicalType")
    base = schema.get("type")
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                   "local-timestamp-micros"):  # fmt: skip
        ok = isinstance(value, dt.datetime) or _is_int(value, LONG_RANGE)
    elif logical == "date":
        ok = (isinstance(value, dt.date) and not isinstance(value, dt.datetime)) or _is_int(
            value, INT_RANGE
        )
    elif logical in ("time-millis", "time-micros"):
        bounds = INT_RANGE if logical == "time-millis" else LONG_RANGE
        ok = isinstance(value, dt.time) or _is_int(value, bounds)
    elif logical == "uuid" and base == "string":
        ok = _uuid_guard(value)
    elif logical == "decimal" and base in ("bytes", "fixed"):
        return _decimal_problems(schema, value, path)
    else:
        return None
    return [] if ok else _mismatch(path, schema, value)


def _decimal_problems(schema: Mapping[str, Any], value: Any, path: str) -> list[str]:
    if not isinstance(value, decimal.Decimal):
        return _mismatch(path, schema, value)
    scale = int(schema.get("scale", 0))
    precision = int(schema["precision"])
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return [f"{path}: expected {_type_label(schema)}, got non-finite Decimal {value}"]
    if -exponent > scale:
        return [
            f"{path}: expected {_type_label(schema)} with at most {scale} decimal place(s), "
            f"got {value}"
        ]
    if len(digits) + max(0, scale + exponent) > precision:
        return [f"{path}: expected {_type_label(schema)} (at most {precision} digits), got {value}"]
    del sign
    return []


def schema_problems(
    schema: Any, value: Any, named: Mapping[str, Any] | None = None, path: str = ""
) -> list[str]:
    """Every way ``value`` fails ``schema`` (fastavro-parsed), each as ``path: expected…, got…``.

    An empty list means the value fits. Used to explain a failed encode, never on the hot
    path. Paths look like ``lines[2].price`` and ``attributes['colour']``.
    """
    named = named if named is not None else (_named(schema) if isinstance(schema, dict) else {})
    if isinstance(schema, str):
        if schema in named:
            return schema_problems(named[schema], value, named, path)
        return _primitive_problems(schema, value, path)
    if isinstance(schema, list):
        for branch in schema:
            if not schema_problems(branch, value, named, path):
                return []
        return _mismatch(path, schema, value)
    logical = _logical_problems(schema, value, path)
    if logical is not None:
        return logical
    kind = schema.get("type")
    if kind == "record":
        return _record_problems(schema, value, named, path)
    if kind == "enum":
        symbols = schema.get("symbols", [])
        if isinstance(value, str) and value in symbols:
            return []
        return [
            f"{path}: expected enum {schema.get('name')} (one of {', '.join(symbols)}), got "
            f"{type(value).__name__} {_preview(value)}"
        ]
    if kind == "fixed":
        size = schema.get("size")
        if isinstance(value, (bytes, bytearray)) and len(value) == size:
            return []
        return [
            f"{path}: expected fixed {schema.get('name')} of {size} bytes, got "
            f"{type(value).__name__} {_preview(value)}"
        ]
    if kind == "array":
        if not isinstance(value, (list, tuple)):
            return _mismatch(path, schema, value)
        problems: list[str] = []
        for index, item in enumerate(value):
            problems += schema_problems(schema["items"], item, named, f"{path}[{index}]")
        return problems
    if kind == "map":
        if not isinstance(value, Mapping):
            return _mismatch(path, schema, value)
        problems = []
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            if not isinstance(key, str):
                problems.append(f"{where}: map keys must be strings, got {type(key).__name__}")
                continue
            problems += schema_problems(schema["values"], item, named, where)
        return problems
    return schema_problems(kind, value, named, path)


def _primitive_problems(kind: str, value: Any, path: str) -> list[str]:
    if kind == "null":
        ok = value is None
    elif kind == "boolean":
        ok = type(value) is bool
    elif kind == "int":
        ok = _is_int(value, INT_RANGE)
    elif kind == "long":
        ok = _is_int(value, LONG_RANGE)
    elif kind in ("float", "double"):
        ok = type(value) in (int, float)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "bytes":
        ok = isinstance(value, (bytes, bytearray))
    else:
        return [f"{path}: unknown Avro type {kind!r} in the schema"]
    if ok:
        return []
    problems = _mismatch(path, kind, value)
    if type(value) is int and kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        problems = [f"{path}: expected {kind} (from {low} to {high}), got {value}"]
    return problems


def _record_problems(
    schema: Mapping[str, Any], value: Any, named: Mapping[str, Any], path: str
) -> list[str]:
    if not isinstance(value, Mapping):
        return _mismatch(path, schema, value)
    prefix = f"{path}." if path else ""
    problems: list[str] = []
    names = set()
    for field in schema["fields"]:
        name = field["name"]
        names.add(name)
        if name not in value:
            if "default" not in field:
                problems.append(
                    f"{prefix}{name}: required field missing (expected "
                    f"{_type_label(field['type'])}; the schema gives it no default)"
                )
            continue
        problems += schema_problems(field["type"], value[name], named, prefix + name)
    for extra in value:
        if extra not in names:
            problems.append(
                f"{prefix}{extra}: not a field of record {schema.get('name')} "
                f"(fields: {', '.join(sorted(names))})"
            )
    return problems


# -- validation: the guard on the hot path --------------------------------------------

Guard = Callable[[Any], bool]


def _inline(guard: Guard, expression: str) -> Guard:
    """Remember a Python expression over ``v`` equivalent to ``guard`` (for record guards)."""
    guard.inline = expression  # type: ignore[attr-defined]
    return guard


def _range_guard(bounds: tuple[int, int]) -> Guard:
    low, high = bounds

    def guard(value: Any) -> bool:
        return type(value) is int and low <= value <= high

    return _inline(guard, f"(type(v) is int and {low} <= v <= {high})")


def _bool_guard(value: Any) -> bool:
    return type(value) is bool


def _number_guard(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _uuid_guard(value: Any) -> bool:
    """A UUID, or its canonical 36-character text (what Java's ``UUID.fromString`` reads)."""
    if type(value) is str:
        return UUID_TEXT.fullmatch(value) is not None
    return isinstance(value, uuid.UUID)


def _timestamp_guard(value: Any) -> bool:
    return (type(value) is int and LONG_RANGE[0] <= value <= LONG_RANGE[1]) or isinstance(
        value, dt.datetime
    )


_inline(_bool_guard, "(type(v) is bool)")
_inline(_number_guard, "(type(v) is float or type(v) is int)")
_inline(_uuid_guard, "((type(v) is str and _uuid_text(v) is not None) or isinstance(v, _UUID))")
_inline(
    _timestamp_guard,
    f"((type(v) is int and {LONG_RANGE[0]} <= v <= {LONG_RANGE[1]}) or isinstance(v, _datetime))",
)


def _compile_guard(schema: Any, named: Mapping[str, Any], seen: frozenset[str]) -> Guard | None:
    """A cheap check for the values fastavro would write wrongly, or None if none can occur.

    Unions, enums, strings and bytes need none: fastavro checks those itself.
    """
    if isinstance(schema, str):
        if schema in named:
            if schema in seen:  # recursive type: leave it to fastavro and the explainer
                return None
            return _compile_guard(named[schema], named, seen | {schema})
        return {
            "int": _range_guard(INT_RANGE),
            "long": _range_guard(LONG_RANGE),
            "boolean": _bool_guard,
            "float": _number_guard,
            "double": _number_guard,
        }.get(schema)
    if isinstance(schema, list):
        return None
    logical = schema.get("logicalType")
    kind = schema.get("type")
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                   "local-timestamp-micros"):  # fmt: skip
        return _timestamp_guard
    if logical == "uuid":
        return _uuid_guard
    if logical is not None:
        return None  # fastavro type-checks the other logical types itself
    if kind == "record":
        return _record_guard(schema, named, seen)
    if kind == "array":
        item = _compile_guard(schema["items"], named, seen)
        if item is None:
            return None

        def array_guard(value: Any) -> bool:
            return not isinstance(value, (list, tuple)) or all(map(item, value))

        return array_guard
    if kind == "map":
        entry = _compile_guard(schema["values"], named, seen)
        if entry is None:
            return None

        def map_guard(value: Any) -> bool:
            return not isinstance(value, Mapping) or all(map(entry, value.values()))

        return map_guard
    if kind in ("enum", "fixed"):
        return None
    return _compile_guard(kind, named, seen)


def _record_guard(
    schema: Mapping[str, Any], named: Mapping[str, Any], seen: frozenset[str]
) -> Guard | None:
    """One straight-line function per record type: a dict lookup and an inline type test
    per field that needs one (about 0.1 µs a field; a loop of guard calls costs 3x that).
    """
    name = schema.get("name")
    inner = seen | {name} if isinstance(name, str) else seen
    checks: list[tuple[str, Guard]] = []
    for field in schema["fields"]:
        guard = _compile_guard(field["type"], named, inner)
        if guard is not None:
            checks.append((field["name"], guard))
    if not checks:
        return None
    namespace: dict[str, Any] = {
        "_M": _MISSING,
        "_datetime": dt.datetime,
        "_UUID": uuid.UUID,
        "_uuid_text": UUID_TEXT.fullmatch,
    }
    # Fast variant: every field present (r[key]); a missing field (it may have a default)
    # falls back to the lenient variant that skips absent fields.
    fast = [
        "def record_guard(r):",
        "    if type(r) is not dict:",
        "        return _other_mapping(r)",
        "    try:",
    ]
    lenient = ["def lenient_guard(r):", "    get = r.get"]
    for index, (key, guard) in enumerate(checks):
        expression = getattr(guard, "inline", None)
        if expression is None:
            namespace[f"_g{index}"] = guard
            expression = f"_g{index}(v)"
        fast += [
            f"        v = r[{key!r}]",
            f"        if not {expression}:",
            "            return False",
        ]
        lenient += [
            f"    v = get({key!r}, _M)",
            f"    if v is not _M and not {expression}:",
            "        return False",
        ]
    fast += ["    except KeyError:", "        return lenient_guard(r)", "    return True"]
    lenient.append("    return True")
    lines = lenient + fast

    def other_mapping(value: Any) -> bool:
        return isinstance(value, Mapping) and bool(namespace["record_guard"](dict(value)))

    namespace["_other_mapping"] = other_mapping
    exec(compile("\n".join(lines), f"<guard of {name}>", "exec"), namespace)
    record_guard: Guard = namespace["record_guard"]
    return record_guard


# -- encoder ---------------------------------------------------------------------------


class RecordEncoder:
    """Turns records of one schema into Confluent-framed Avro bytes.

    The schema is parsed once and the 5-byte header built once; the guard compiled from the
    schema rejects what fastavro would write wrongly. Safe to share between threads.
    """

    __slots__ = ("_guard", "_header", "document", "name", "parsed", "schema_id")

    def __init__(self, schema: SchemaLike, schema_id: int) -> None:
        self.document = as_document(schema)
        self.parsed = parse_schema(self.document)
        self.schema_id = schema_id
        self.name = schema_name(self.parsed)
        self._guard = _compile_guard(self.parsed, _named(self.parsed), frozenset())
        self._header = header(schema_id)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Framed bytes for ``record``; :class:`SerializationError` names every bad field."""
        guard = self._guard
        if guard is not None and not guard(record):
            raise self.error(record)
        buffer = BytesIO()  # a fresh one is cheaper than truncating a reused one
        buffer.write(self._header)
        try:
            schemaless_writer(buffer, self.parsed, record, strict_allow_default=True)
        except Exception as exc:
            raise self.error(record, exc) from exc
        return buffer.getvalue()

    def problems(self, record: Any) -> list[str]:
        """Why ``record`` does not fit the schema (empty if it does)."""
        return schema_problems(self.parsed, record, _named(self.parsed))

    def error(self, record: Any, cause: BaseException | None = None) -> SerializationError:
        """The error to raise for ``record``: field path, expected type, received value."""
        problems = self.problems(record)
        if not problems:
            problems = [f"(record): {cause}" if cause else "(record): rejected by the encoder"]
        error = SerializationError(
            f"record does not fit schema {self.name}: " + "; ".join(problems)
        )
        error.problems = problems  # type: ignore[attr-defined]
        return error


# -- decoder ---------------------------------------------------------------------------


class RecordDecoder:
    """Decodes Confluent-framed Avro with the writer schema found by its id.

    Each writer schema is fetched from ``registry`` once and kept parsed. With a
    ``reader_schema`` records are resolved to it (Avro schema evolution: added fields get
    their defaults, removed ones vanish); without one they come out as written.
    """

    def __init__(self, registry: SchemaSource, reader_schema: SchemaLike | None = None) -> None:
        self.registry = registry
        self.reader: ParsedSchema | None = (
            parse_schema(reader_schema, source="reader schema")
            if reader_schema is not None
            else None
        )
        self._reader_form = _canonical(self.reader) if self.reader is not None else None
        # schema id -> (parsed writer schema, reader schema or None when identical)
        self._schemas: dict[int, tuple[ParsedSchema, ParsedSchema | None]] = {}

    def schemas_for(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        """(writer, reader-or-None) for ``schema_id``; a registry call only the first time."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        try:
            text = self.registry.get_schema(schema_id)
        except SchemaNotFoundError as exc:
            raise DeserializationError(
                f"schema id {schema_id} is not in the registry ({exc}); the record was written "
                f"against another registry or its schema was deleted"
            ) from exc
        except RegistryUnavailableError:
            raise
        writer = parse_schema(text, source=f"writer schema id {schema_id}")
        reader = self.reader
        if reader is not None and _canonical(writer) == self._reader_form:
            reader = None  # identical: skip fastavro's per-record resolution
        if reader is not None:
            _check_resolvable(writer, reader, schema_id)
        found = (writer, reader)
        self._schemas[schema_id] = found
        return found

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The record in ``data`` as a dict (resolved to the reader schema if one is set)."""
        return self.decode_with_id(data)[1]

    def decode_with_id(self, data: bytes | bytearray | memoryview) -> tuple[int, dict[str, Any]]:
        """(writer schema id, record) for framed ``data``."""
        schema_id, body = unframe(data)
        writer, reader = self.schemas_for(schema_id)
        try:
            value = schemaless_reader(io.BytesIO(body), writer, reader)
        except Exception as exc:
            raise DeserializationError(
                f"cannot decode {len(body)}-byte Avro body with writer schema id {schema_id} "
                f"({schema_name(writer)}): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise DeserializationError(
                f"schema id {schema_id} decodes to {type(value).__name__}, not a record"
            )
        return schema_id, value


def _canonical(parsed: ParsedSchema) -> str:
    return json.dumps(
        {k: v for k, v in parsed.items() if not k.startswith("__")}, sort_keys=True, default=str
    )


def _check_resolvable(writer: ParsedSchema, reader: ParsedSchema, schema_id: int) -> None:
    """Fail early, with Avro's own checker, when the reader cannot read this writer."""
    from mesh_stream.schema.avro import compatibility_problems
    from mesh_stream.schema.avro import parse_schema as avro_parse

    clean = {k: v for k, v in writer.items() if not k.startswith("__")}
    wanted = {k: v for k, v in reader.items() if not k.startswith("__")}
    problems = compatibility_problems(
        avro_parse(wanted), [(schema_id, avro_parse(clean))], "BACKWARD"
    )
    if problems:
        raise DeserializationError(
            f"the reader schema {schema_name(reader)} cannot read records written with schema "
            f"id {schema_id}: {'; '.join(problems)}"
        )


# -- JSON in and out (CLI) -------------------------------------------------------------


def coerce_json(schema: Any, value: Any, named: Mapping[str, Any] | None = None) -> Any:
    """Turn plain JSON into what the encoder takes: ISO strings into datetimes, numbers
    and strings into Decimals, strings into bytes (Avro's JSON convention: one char per byte).
    Anything that does not fit is left alone for the validator to report.
    """
    named = named if named is not None else (_named(schema) if isinstance(schema, dict) else {})
    if isinstance(schema, str):
        if schema in named:
            return coerce_json(named[schema], value, named)
        if schema == "bytes" and isinstance(value, str):
            return _latin1(value)
        return value
    if isinstance(schema, list):
        for branch in schema:
            candidate = coerce_json(branch, value, named)
            if not schema_problems(branch, candidate, named):
                return candidate
        return value
    logical = schema.get("logicalType")
    kind = schema.get("type")
    if logical is not None and isinstance(value, (str, int, float)):
        converted = _coerce_logical(logical, value)
        if converted is not None:
            return converted
    if kind == "record" and isinstance(value, Mapping):
        fields = {field["name"]: field["type"] for field in schema["fields"]}
        return {
            key: coerce_json(fields[key], item, named) if key in fields else item
            for key, item in value.items()
        }
    if kind == "array" and isinstance(value, list):
        return [coerce_json(schema["items"], item, named) for item in value]
    if kind == "map" and isinstance(value, Mapping):
        return {key: coerce_json(schema["values"], item, named) for key, item in value.items()}
    if kind == "fixed" and isinstance(value, str):
        return _latin1(value)
    if isinstance(kind, (str, dict, list)) and kind not in ("record", "array", "map", "enum"):
        return coerce_json(kind, value, named)
    return value


def _latin1(text: str) -> bytes | str:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text


def _coerce_logical(logical: str, value: str | int | float) -> Any:
    try:
        if logical == "decimal" and not isinstance(value, bool):
            return decimal.Decimal(str(value))
        if isinstance(value, str):
            if logical.startswith(("timestamp-", "local-timestamp-")):
                stamp = dt.datetime.fromisoformat(value)
                if logical.startswith("timestamp-") and stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=dt.UTC)
                return stamp
            if logical == "date":
                return dt.date.fromisoformat(value)
            if logical.startswith("time-"):
                return dt.time.fromisoformat(value)
    except (ValueError, decimal.InvalidOperation):
        return None
    return None


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for decoded Avro values (the inverse of :func:`coerce_json`)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
