"""Encode records to Confluent-framed Avro and decode them back, fast and with clear errors.

Hot path: for each schema an encoder and a decoder are compiled to straight-line Python
(``_compile_fast_encoder`` / ``_compile_fast_decoder``): a dict lookup, an exact type test
and the Avro bytes per field, nested records, arrays, maps, byte decimals, uuids and
timestamps included, with fastavro's own writer/reader only for what they do not cover
(recursive types, unions of several types, fixed decimals, datetimes given to the encoder).
They write and read exactly what fastavro does (tests/unit/sdk/test_fast_paths.py and
test_codec_nested.py) at a half to a third of its CPU, because fastavro's compiled code
still walks the schema generically for every record and calls a function per logical
value. A decoder can also read a projection (:class:`FramedReader` with ``fields``): the
fields asked for, the others skipped without building their values.

Anything they do not take (a missing field that has a default, an extra field, a value of
the wrong type, a damaged body) raises inside them and goes the checked way: fastavro's
writer behind a small *guard* compiled from the schema, which refuses what fastavro would
silently write wrongly (``1.5`` or ``True`` in an ``int``, 64-bit values in an ``int``,
anything in a ``boolean``, a value for ``null``, a malformed ``uuid``, a finite value beyond
32 bits in a ``float``, a naive datetime in a ``timestamp-*``, a datetime in a ``date``,
a sequence other than a list or tuple as an array), and on failure the
full validator (:func:`schema_problems`) explains it with the field path, the expected type
and the value received. A schema with a union fastavro may write under the wrong branch
(:func:`misrouting_unions`) has no compiled encoder: its records name their branches.
Schemas are parsed once and writer schemas cached by id, so a
record costs no registry lookup.
"""

from __future__ import annotations

import array
import contextlib
import copy
import datetime as dt
import decimal
import io
import json
import re
import struct
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro import schemaless_writer

# fastavro's compiled read/write entry points (pinned version; tests/unit/sdk/test_fast_paths.py
# checks they agree with schemaless_reader/-writer): calling them skips per-record set-up.
from fastavro._read import LOGICAL_READERS  # type: ignore[attr-defined]
from fastavro._read import _read_data as fastavro_read_data  # type: ignore[attr-defined]
from fastavro._write import write_data as fastavro_write_data  # type: ignore[attr-defined]
from fastavro.schema import UnknownType

from mesh_stream.errors import (
    DeserializationError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    SerializationError,
)
from mesh_stream.files import not_utf8, read_regular_text
from mesh_stream.schema import strict_json
from mesh_stream.schema.body_misfit import body_misfit
from mesh_stream.schema.nesting import (
    MAX_NESTING,
    bytes_refusal,
    holds_empty_item_arrays,
    recursive_names,
    value_nests_deeper,
)
from mesh_stream.schema.wire import HEADER_SIZE, header, unframe, unpack_schema_id

__all__ = [
    "READ_OPTIONS",
    "DecodePlan",
    "FramedReader",
    "ParsedSchema",
    "RecordDecoder",
    "RecordEncoder",
    "SchemaSource",
    "SubjectSchemaSource",
    "coerce_json",
    "decimal_problem",
    "fastavro_read_data",
    "json_default",
    "load_schema_file",
    "parse_schema",
    "read_body",
    "read_data",
    "schema_name",
    "schema_problems",
    "trailing_bytes_error",
]

ParsedSchema = dict[str, Any]
SchemaLike = Mapping[str, Any] | str
#: How to read records of one writer schema id: (writer, named types, reader or None, the
#: compiled decoder for framed ``bytes`` or None). The first three are what fastavro's reader
#: takes; the compiled decoder exists when no reader schema is set.
DecodePlan = tuple[ParsedSchema, dict[str, Any], ParsedSchema | None, Callable[[bytes], Any] | None]
#: fastavro's ``schemaless_reader`` defaults, built once instead of once per record.
READ_OPTIONS: dict[str, Any] = {
    "return_record_name": False,
    "return_record_name_override": False,
    "handle_unicode_errors": "strict",
    "return_named_type": False,
    "return_named_type_override": False,
}

INT_RANGE = (-(2**31), 2**31 - 1)
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
LONG_RANGE = (-(2**63), 2**63 - 1)
#: A float (double) at or beyond this magnitude has no 32-bit float: it would round to
#: infinity (what ``struct.pack("<f")`` refuses and fastavro writes). 2**128 - 2**103 is
#: float32's largest value plus half a step.
FLOAT32_LIMIT = float(2**128 - 2**103)
#: The same bound for ints, which become a double first: those within half a double's step
#: (2**74) of FLOAT32_LIMIT round up to it.
FLOAT32_INT_LIMIT = 2**128 - 2**103 - 2**74
#: Logical types holding an instant: a datetime for them must say which (be aware).
INSTANTS = ("timestamp-millis", "timestamp-micros")
#: The logical types fastavro applies, as ``<base type>-<logicalType>``. Any other
#: ``logicalType`` (unknown, or on another base type: ``timestamp-millis`` on a string, ``uuid``
#: on a fixed) is ignored, as the Avro specification says: the value is its base type's.
APPLIED_LOGICAL = frozenset(
    {
        "bytes-decimal",
        "fixed-decimal",
        "int-date",
        "int-time-millis",
        "long-time-micros",
        "long-timestamp-millis",
        "long-timestamp-micros",
        "long-local-timestamp-millis",
        "long-local-timestamp-micros",
        "string-uuid",
    }
)
#: Milliseconds (and microseconds) in a day: a time of day is below it, and not negative.
DAY_MS = 86_400_000
DAY_US = DAY_MS * 1000
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_999  # 0001-01-01 .. 9999-12-31
#: The numbers a timestamp or date may hold: those a reader's datetime (Python's, years 1 to
#: 9999) can hold. Avro's long allows more, but a consumer would dead-letter such a record;
#: nanoseconds given to a millisecond field land far beyond.
STAMP_RANGES: dict[str, tuple[int, int]] = {
    "timestamp-millis": (_FIRST_MS, _LAST_MS),
    "timestamp-micros": (_FIRST_MS * 1000, _LAST_MS * 1000 + 999),
    "local-timestamp-millis": (_FIRST_MS, _LAST_MS),
    "local-timestamp-micros": (_FIRST_MS * 1000, _LAST_MS * 1000 + 999),
}
DATE_RANGE = (-719_162, 2_932_896)  # days from 1970-01-01 to 0001-01-01 and 9999-12-31
_MISSING = object()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PREVIEW = 60


class SchemaSource(Protocol):
    """Where a decoder finds writer schemas by id (``RegistryClient`` is one)."""

    def get_schema(self, schema_id: int) -> str: ...


class SubjectSchemaSource(SchemaSource, Protocol):
    """A schema source that also says under which subjects an id is registered."""

    def get_schema_subjects(self, schema_id: int) -> list[str]: ...


# -- loading and parsing ---------------------------------------------------------------


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read an ``.avsc`` file; errors name the file (and line:column for bad JSON)."""
    try:
        text = read_regular_text(path)
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: schema file is {not_utf8(exc)}; save it as UTF-8") from exc
    try:
        document = strict_json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    except strict_json.NonFiniteNumberError as exc:
        raise SchemaError(f"{path}: invalid Avro schema: {exc.located}", loc=exc.loc) from None
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
    except UnknownType as exc:
        raise SchemaError(
            f"{source}: invalid Avro schema: unknown type {exc.name!r} (neither a primitive "
            f"type nor a named type defined earlier in the schema)"
        ) from exc
    except Exception as exc:
        raise SchemaError(f"{source}: invalid Avro schema: {type(exc).__name__}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SchemaError(f"{source}: a product schema must be an Avro record")
    return parsed


def applied_logical(schema: Any) -> str | None:
    """The logical type of ``schema`` that applies (see :data:`APPLIED_LOGICAL`), or None."""
    if not isinstance(schema, Mapping):
        return None
    logical = schema.get("logicalType")
    if logical is None or f"{schema.get('type')}-{logical}" not in APPLIED_LOGICAL:
        return None
    return str(logical)


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


def _given(value: Any) -> str:
    """A refused value as an error says it: its type and a preview; None as ``null``, the
    word both a JSON line (`mesh publish`) and an Avro schema use (not ``NoneType None``)."""
    return "null" if value is None else f"{type(value).__name__} {_preview(value)}"


def _type_label(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "one of [" + ", ".join(_type_label(branch) for branch in schema) + "]"
    logical = applied_logical(schema)
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


def _only_branch_for(union: list[Any], value: Any) -> Any:
    """The one non-null branch of ``union`` when ``value`` is not None (a nullable type),
    else None."""
    if value is None:
        return None
    others = [branch for branch in union if branch != "null"]
    return others[0] if len(others) == 1 else None


def _kind_of(schema: Any, named: Mapping[str, Any]) -> Any:
    """The Avro type of ``schema`` (``record``, ``map``, ``string``...), names resolved."""
    if isinstance(schema, str):
        return _kind_of(named[schema], named) if schema in named else schema
    return schema.get("type") if isinstance(schema, Mapping) else None


def _mismatch(path: str, schema: Any, value: Any) -> list[str]:
    return [f"{path or '(record)'}: expected {_type_label(schema)}, got {_given(value)}"]


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]


def _logical_problems(schema: Mapping[str, Any], value: Any, path: str) -> list[str] | None:
    """Problems for a logical type, or None when ``schema`` has no logical type we check."""
    logical = applied_logical(schema)
    base = schema.get("type")
    if logical in INSTANTS and isinstance(value, dt.datetime) and value.utcoffset() is None:
        return [
            f"{path or '(record)'}: a timestamp needs a timezone-aware datetime (e.g. "
            f"datetime.now(timezone.utc); in JSON an offset, e.g. 2026-01-02T03:04:05Z), got "
            f"naive {value}"
        ]
    if (
        logical in STAMP_RANGES
        and logical not in INSTANTS
        and isinstance(value, dt.datetime)
        and value.utcoffset() is not None
    ):
        return [
            f"{path or '(record)'}: a local timestamp holds a wall-clock time without a zone, "
            f"got aware {value}, whose offset would be dropped; give the wall time it means "
            f"(.replace(tzinfo=None), or .astimezone(zone).replace(tzinfo=None) for another "
            f"zone's; in JSON no offset, e.g. 2026-01-02T03:04:05), or make the field a "
            f"timestamp-* for an instant"
        ]
    if logical in INSTANTS and isinstance(value, dt.datetime) and not _utc_fits(value):
        return [
            f"{path or '(record)'}: expected {_type_label(schema)}, got {value}, beyond the "
            f"years 1 to 9999 in UTC, which no reader's datetime holds"
        ]
    if logical in STAMP_RANGES or logical == "date":
        if logical == "date" and isinstance(value, dt.datetime):
            return [
                f"{path or '(record)'}: expected {_type_label(schema)}, got datetime {value}, "
                f"whose time of day would be dropped; give its .date()"
            ]
        low, high = STAMP_RANGES.get(logical, DATE_RANGE)
        if type(value) is int and not low <= value <= high:
            hint = "; nanoseconds where milliseconds belong?" if logical.endswith("millis") else ""
            return [
                f"{path or '(record)'}: expected {_type_label(schema)}, got {value}, beyond "
                f"the years 1 to 9999 (from {low} to {high}), which no reader's datetime "
                f"holds{hint}"
            ]
        kind = dt.date if logical == "date" else dt.datetime
        ok = isinstance(value, kind) or type(value) is int
    elif logical in ("time-millis", "time-micros"):
        end = DAY_MS if logical == "time-millis" else DAY_US
        if type(value) is int and not 0 <= value < end:
            return [
                f"{path or '(record)'}: expected {_type_label(schema)} (a time of day: 0 to "
                f"{end - 1}), got {value}"
            ]
        ok = isinstance(value, dt.time) or type(value) is int
    elif logical == "uuid" and base == "string":
        ok = _uuid_guard(value)
    elif logical == "decimal" and base in ("bytes", "fixed"):
        return _decimal_problems(schema, value, path)
    else:
        return None
    return [] if ok else _mismatch(path, schema, value)


def _decimal_problems(schema: Mapping[str, Any], value: Any, path: str) -> list[str]:
    problem = decimal_problem(schema, value)
    if problem is None:
        return []
    if not isinstance(value, decimal.Decimal):
        return _mismatch(path, schema, value)
    return [f"{path}: {problem}"]


def decimal_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """Why ``value`` does not fit the decimal ``schema`` (None: it fits).

    The one place that decides decimal validity: the explainer, the encoder's guard (so
    every encoder: the SDK's publishers, ``mesh publish``, the processors) and the
    compiled fast path (which takes only values with exactly the schema's scale and falls
    back to the guard for the rest) all follow it. A value is counted at the schema's
    scale, its exponent included: ``1e12`` in a ``decimal(12,2)`` needs 15 digits
    (``1000000000000.00``) and is refused like ``1000000000000.00`` is. More fraction
    digits than the scale is refused whatever the notation (``1.234``, ``-1e-5``,
    ``0E-10``), never rounded; NaN and infinities are refused; a negative zero is zero.
    """
    if not isinstance(value, decimal.Decimal):
        return f"expected {_type_label(schema)}, got {_given(value)}"
    scale = int(schema.get("scale", 0))
    precision = int(schema["precision"])
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return f"expected {_type_label(schema)}, got non-finite Decimal {value}"
    if -exponent > scale:
        return f"expected {_type_label(schema)} with at most {scale} decimal place(s), got {value}"
    if digits == (0,):  # digits never has leading zeros, except the single 0 of a zero
        if _sign and schema.get("type") == "fixed":
            return (
                f"expected {_type_label(schema)}, got negative zero {value}: give 0 (fastavro "
                f"would store it in a fixed as {decimal.Decimal(-2).scaleb(-scale)})"
            )
        return None
    needed = len(digits) + scale + exponent
    if needed > precision:
        return f"expected {_type_label(schema)} (at most {precision} digits), got {value}"
    return None


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
        only = _only_branch_for(schema, value)
        if only is None and isinstance(value, Mapping):  # the one branch a dict can be
            takers = [b for b in schema if _kind_of(b, named) in ("record", "map")]
            only = takers[0] if len(takers) == 1 else None
        if only is not None:  # the branch the value was meant for: what is wrong as that type
            explained = schema_problems(only, value, named, path)
            if explained != _mismatch(path, only, value):
                return explained
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
            f"{_given(value)}"
        ]
    if kind == "fixed":
        size = schema.get("size")
        if isinstance(value, (bytes, bytearray)) and len(value) == size:
            return []
        return [f"{path}: expected fixed {schema.get('name')} of {size} bytes, got {_given(value)}"]
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
        if ok and not (_float_fits(value) if kind == "float" else _double_fits(value)):
            limit = " (32 bits: up to ±3.4028235e+38; a double holds more)"
            return [
                f"{path or '(record)'}: {_preview(value)} is outside the range of an Avro "
                f"{kind}{limit if kind == 'float' else ''}"
            ]
    elif kind == "string":
        if isinstance(value, str):
            return _text_problems(value, path)
        ok = False
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


def _text_problems(value: str, path: str) -> list[str]:
    """A string Avro can carry is UTF-8: a lone surrogate (JSON's ``"\\ud800"``) is not."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return [
            f"{path or '(record)'}: expected string (Unicode text), got a lone surrogate "
            f"{value[exc.start]!r} at character {exc.start + 1}, which UTF-8 cannot encode"
        ]
    return []


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


def _null_guard(value: Any) -> bool:
    """fastavro writes nothing for ``null`` whatever the value: anything else would vanish."""
    return value is None


def _number_guard(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _float_fits(value: float | int) -> bool:
    """Whether a number has a 32-bit float: finite within its range, or NaN or an infinity
    (written as they are)."""
    if type(value) is int:
        return -FLOAT32_INT_LIMIT < value < FLOAT32_INT_LIMIT
    return -FLOAT32_LIMIT < value < FLOAT32_LIMIT or value - value != 0  # inf - inf is NaN


def _double_fits(value: float | int) -> bool:
    """Whether a number has a double (ints beyond 2**1024 have none)."""
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _float_guard(value: Any) -> bool:
    """fastavro writes a value beyond 32 bits into a ``float`` as an infinity."""
    return (type(value) is float or type(value) is int) and _float_fits(value)


def _uuid_guard(value: Any) -> bool:
    """A UUID, or its canonical 36-character text (what Java's ``UUID.fromString`` reads)."""
    if type(value) is str:
        return UUID_TEXT.fullmatch(value) is not None
    return isinstance(value, uuid.UUID)


def _stamp_guard(logical: str) -> Guard:
    """A ``timestamp-*``: a number within :data:`STAMP_RANGES`, or an aware datetime
    (fastavro takes a naive one as the host's local time, so the instant stored would depend
    on the machine's time zone; a tzinfo whose offset is None passes: fastavro refuses it, and
    the explainer names it). A ``local-timestamp-*`` takes a naive datetime only: it holds a
    wall-clock time without a zone, and fastavro would drop an aware one's offset."""
    low, high = STAMP_RANGES[logical]
    if logical in INSTANTS:

        def instant(value: Any) -> bool:
            return (type(value) is int and low <= value <= high) or (
                isinstance(value, dt.datetime)
                and value.tzinfo is not None
                and (1 < value.year < 9999 or _utc_fits(value))
            )

        return _inline(
            instant,
            f"((type(v) is int and {low} <= v <= {high}) or (isinstance(v, _datetime) and "
            "v.tzinfo is not None and (1 < v.year < 9999 or _utc_fits(v))))",
        )

    def local(value: Any) -> bool:
        return (type(value) is int and low <= value <= high) or (
            isinstance(value, dt.datetime) and value.utcoffset() is None
        )

    return _inline(
        local,
        f"((type(v) is int and {low} <= v <= {high}) or "
        "(isinstance(v, _datetime) and v.utcoffset() is None))",
    )


_STAMP_GUARDS = {logical: _stamp_guard(logical) for logical in STAMP_RANGES}


def _utc_fits(value: dt.datetime) -> bool:
    """Whether an aware datetime of the year 1 or 9999 is still within them in UTC (year 1 at
    +05:00 is not: it is written, and no Python reader reads it back)."""
    try:
        value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return False
    return True


def _date_guard(value: Any) -> bool:
    """A ``date``: a date (not a datetime, whose time of day fastavro drops) or an int day
    within :data:`DATE_RANGE` (not a bool or a float, which fastavro would write as 1 or
    truncate)."""
    return (type(value) is int and DATE_RANGE[0] <= value <= DATE_RANGE[1]) or (
        isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    )


def _time_millis_guard(value: Any) -> bool:
    """A ``time-millis``: a time, or an int within a day."""
    return (type(value) is int and 0 <= value < DAY_MS) or isinstance(value, dt.time)


def _time_micros_guard(value: Any) -> bool:
    """A ``time-micros``: a time, or an int within a day."""
    return (type(value) is int and 0 <= value < DAY_US) or isinstance(value, dt.time)


_inline(_bool_guard, "(type(v) is bool)")
_inline(_null_guard, "(v is None)")
_inline(_number_guard, "(type(v) is float or type(v) is int)")
_inline(
    _float_guard,
    f"((type(v) is float and (-{FLOAT32_LIMIT!r} < v < {FLOAT32_LIMIT!r} or v - v != 0)) "
    f"or (type(v) is int and -{FLOAT32_INT_LIMIT} < v < {FLOAT32_INT_LIMIT}))",
)
_inline(
    _date_guard,
    f"((type(v) is int and {DATE_RANGE[0]} <= v <= {DATE_RANGE[1]}) "
    "or (isinstance(v, _date) and not isinstance(v, _datetime)))",
)
_inline(_time_millis_guard, f"((type(v) is int and 0 <= v < {DAY_MS}) or isinstance(v, _time))")
_inline(_time_micros_guard, f"((type(v) is int and 0 <= v < {DAY_US}) or isinstance(v, _time))")
_inline(_uuid_guard, "((type(v) is str and _uuid_text(v) is not None) or isinstance(v, _UUID))")


def _nullable_guard(other: Guard) -> Guard:
    """The guard of a ``[null, X]`` union: None, or what X's guard lets through."""

    def guard(value: Any) -> bool:
        return value is None or other(value)

    expression = getattr(other, "inline", None)
    return guard if expression is None else _inline(guard, f"(v is None or {expression})")


def _array_union_guard(array_guard: Guard | None, byte_sizes: frozenset[int | None]) -> Guard:
    """The guard of a union whose one guarded branch is an array: a list or tuple is the
    array's (no other branch takes one); bytes go to a ``bytes`` branch (size None in
    ``byte_sizes``) or a ``fixed`` of their length, which fastavro tries first (a union
    with the array first is written by named branches instead, see
    :func:`misrouting_unions`); any other sequence but a str is refused, which fastavro
    would write as an array (``b"ab"`` as ``[97, 98]``)."""

    def guard(value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return array_guard is None or array_guard(value)
        if isinstance(value, (bytes, bytearray)):
            return None in byte_sizes or len(value) in byte_sizes
        return isinstance(value, str) or not isinstance(value, (Sequence, array.array))

    return guard


def _byte_sizes(union: list[Any], named: Mapping[str, Any]) -> frozenset[int | None]:
    """What plain bytes a union's branches take: None for a ``bytes`` branch, the size of
    each ``fixed`` (a decimal aside: it takes a Decimal; other logical types on bytes or
    fixed, ``duration`` say, take bytes)."""
    sizes: set[int | None] = set()
    for branch in union:
        resolved = named.get(branch, branch) if isinstance(branch, str) else branch
        if resolved == "bytes":
            sizes.add(None)
        elif isinstance(resolved, Mapping) and applied_logical(resolved) != "decimal":
            if resolved.get("type") == "bytes":
                sizes.add(None)
            elif resolved.get("type") == "fixed" and isinstance(resolved.get("size"), int):
                sizes.add(resolved["size"])
    return frozenset(sizes)


def _decimal_guard(schema: Mapping[str, Any]) -> Guard:
    """fastavro writes a Decimal of any size or exponent into a decimal: :func:`decimal_problem`
    decides instead (``1e12`` in a ``decimal(12,2)`` would be written as 15 digits)."""

    def guard(value: Any) -> bool:
        return decimal_problem(schema, value) is None

    return guard


#: Logical types whose values fastavro may write wrongly inside a union (see _mentions_guarded).
_GUARDED_LOGICAL = frozenset({"decimal", "date", "time-millis", "time-micros", *STAMP_RANGES})


def _mentions_guarded(schema: Any, named: Mapping[str, Any], seen: frozenset[str]) -> bool:
    """Whether ``schema`` holds a type whose values fastavro writes wrongly even when a union
    branch takes them: a decimal (of any size), a float (beyond 32 bits), a timestamp (a naive
    datetime; a local one, an aware datetime), a date (a datetime) or an array (any sequence:
    bytes as their ints). Through
    named types, not recursing twice."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _mentions_guarded(named[schema], named, seen | {schema})
        return schema == "float"
    if isinstance(schema, list):
        return any(_mentions_guarded(branch, named, seen) for branch in schema)
    if not isinstance(schema, Mapping):
        return False
    if applied_logical(schema) in _GUARDED_LOGICAL:
        return True
    name = schema.get("name")
    inner = seen | {name} if isinstance(name, str) else seen
    kind = schema.get("type")
    if kind == "record":
        return any(_mentions_guarded(f["type"], named, inner) for f in schema["fields"])
    if kind == "array":
        return True
    if kind == "map":
        return _mentions_guarded(schema["values"], named, inner)
    return kind == "float" or (
        isinstance(kind, (dict, list)) and _mentions_guarded(kind, named, inner)
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
            "null": _null_guard,
            "float": _float_guard,
            "double": _number_guard,
        }.get(schema)
    if isinstance(schema, list):
        if len(schema) == 2 and "null" in schema:  # a nullable type: its type's guard
            branch = schema[1 - schema.index("null")]
            if _mentions_guarded(branch, named, seen):
                other = _compile_guard(branch, named, seen)
                if other is not None:
                    return _nullable_guard(other)
        if not any(_mentions_guarded(branch, named, seen) for branch in schema):
            return None
        arrays = [branch for branch in schema if _kind_of(branch, named) == "array"]
        others = [branch for branch in schema if branch not in arrays]
        if len(arrays) == 1 and not any(_mentions_guarded(b, named, seen) for b in others):
            return _array_union_guard(
                _compile_guard(arrays[0], named, seen), _byte_sizes(list(schema), named)
            )
        union = list(schema)

        def union_guard(value: Any) -> bool:  # fastavro writes any Decimal in a decimal, ...
            return not schema_problems(union, value, named)

        return union_guard
    logical = applied_logical(schema)  # any other logicalType is ignored: the base type's
    kind = schema.get("type")
    if logical in _STAMP_GUARDS:
        return _STAMP_GUARDS[logical]
    if logical == "date":
        return _date_guard
    if logical == "time-millis":
        return _time_millis_guard
    if logical == "time-micros":
        return _time_micros_guard
    if logical == "uuid":
        return _uuid_guard
    if logical == "decimal":
        return _decimal_guard(schema)
    if kind == "record":
        return _record_guard(schema, named, seen)
    if kind == "array":
        # Always guarded: fastavro writes any iterable as an array, a str letter by letter, a
        # dict by its keys, a set in no given order (an SDK campaign: "vw" stored as v, w).
        item = _compile_guard(schema["items"], named, seen)

        def array_guard(value: Any) -> bool:
            return isinstance(value, (list, tuple)) and (item is None or all(map(item, value)))

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


def _is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _record_guard(
    schema: Mapping[str, Any], named: Mapping[str, Any], seen: frozenset[str]
) -> Guard | None:
    """One straight-line function per record type: a dict lookup and an inline type test
    per field that needs one (about 0.1 µs a field; a loop of guard calls costs 3x that).
    """
    name = schema.get("name")
    inner = seen | {name} if isinstance(name, str) else seen
    checks: list[tuple[str, Guard, bool]] = []
    for field in schema["fields"]:
        guard = _compile_guard(field["type"], named, inner)
        if guard is not None:
            checks.append((field["name"], guard, "default" in field))
    if not checks:  # no field needs a check, the record itself does: fastavro writes a list
        return _is_mapping  # given for a record without fields as that record
    namespace: dict[str, Any] = {
        "_M": _MISSING,
        "_datetime": dt.datetime,
        "_date": dt.date,
        "_time": dt.time,
        "_utc_fits": _utc_fits,
        "_UUID": uuid.UUID,
        "_uuid_text": UUID_TEXT.fullmatch,
    }
    # Fast variant: every field without a default present (r[key]), one with a default
    # (often left out) looked up with get; a missing field without a default falls back to
    # the lenient variant that skips absent fields (fastavro then names it missing).
    fast = [
        "def record_guard(r):",
        "    if type(r) is not dict:",
        "        return _other_mapping(r)",
        "    try:",
    ]
    lenient = ["def lenient_guard(r):", "    get = r.get"]
    for index, (key, guard, optional) in enumerate(checks):
        expression = getattr(guard, "inline", None)
        if expression is None:
            namespace[f"_g{index}"] = guard
            expression = f"_g{index}(v)"
        fast += (
            [
                f"        v = r.get({key!r}, _M)",
                f"        if v is not _M and not {expression}:",
                "            return False",
            ]
            if optional
            else [
                f"        v = r[{key!r}]",
                f"        if not {expression}:",
                "            return False",
            ]
        )
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


# -- unions fastavro would write under the wrong branch ----------------------------------

#: Avro types written by name in fastavro's (branch name, value) notation.
_NAMED_KINDS = frozenset({"record", "enum", "fixed", "error"})


#: The kinds of later union branches whose values fastavro writes under an earlier branch of
#: each logical type (its preparation takes them; found by trying every pair).
_TAKEN_BY_LOGICAL: dict[str, tuple[str, ...]] = {
    "decimal": ("bytes", "fixed"),
    "date": ("string", "enum", "long"),
    "time-millis": ("long",),
    "time-micros": ("int",),
    "timestamp-millis": ("int",),
    "timestamp-micros": ("int",),
    "local-timestamp-millis": ("int",),
    "local-timestamp-micros": ("int",),
    "uuid": ("enum",),
}
#: What a value of a logical type is in Python; any other value is its base type's.
_LOGICAL_VALUES = (decimal.Decimal, dt.date, dt.time, uuid.UUID)


def misrouting_unions(schema: Any, named: Mapping[str, Any], seen: frozenset[str]) -> bool:
    """Whether ``schema`` holds a union in which fastavro may write a valid value under the
    wrong branch. fastavro's union writer takes the first branch whose check passes, and
    some checks pass more than their type:
    - an array's passes any sequence, so ``b"ab"`` meant for a later ``bytes`` or ``fixed``
      branch was written as the array ``[97, 98]``;
    - a logical type's passes its base type's values and more (:data:`_TAKEN_BY_LOGICAL`):
      in ``[date, string]`` the text ``"2020-01-01"`` came back as a date and ``"hello"`` was
      refused, in ``[uuid, enum]`` a symbol was written as an unreadable uuid, in
      ``[timestamp-millis, int]`` the int 5 came back as a datetime.
    Through named types, not recursing twice."""
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return misrouting_unions(named[schema], named, seen | {schema})
        return False
    if isinstance(schema, list):
        kinds = [_kind_of(branch, named) for branch in schema]
        if "array" in kinds and any(
            kind in ("bytes", "fixed") for kind in kinds[kinds.index("array") + 1 :]
        ):
            return True
        for index, branch in enumerate(schema):
            resolved = named.get(branch, branch) if isinstance(branch, str) else branch
            taken = _TAKEN_BY_LOGICAL.get(str(applied_logical(resolved)), ())
            if any(kind in taken for kind in kinds[index + 1 :]):
                return True
        return any(misrouting_unions(branch, named, seen) for branch in schema)
    if not isinstance(schema, Mapping):
        return False
    name = schema.get("name")
    inner = seen | {name} if isinstance(name, str) else seen
    kind = schema.get("type")
    if kind == "record":
        return any(misrouting_unions(f["type"], named, inner) for f in schema["fields"])
    if kind == "array":
        return misrouting_unions(schema["items"], named, inner)
    if kind == "map":
        return misrouting_unions(schema["values"], named, inner)
    return isinstance(kind, (dict, list)) and misrouting_unions(kind, named, inner)


def _branch_name(branch: Any) -> Any:
    """How fastavro's (branch name, value) notation names ``branch``."""
    if isinstance(branch, str):
        return branch
    kind = branch.get("type")
    return branch.get("name") if kind in _NAMED_KINDS else kind


def with_explicit_branches(schema: Any, value: Any, named: Mapping[str, Any]) -> Any:
    """``value`` (which fits ``schema``: :func:`schema_problems` found nothing) ready for
    fastavro's writer with its (branch name, value) notation on: every union value names
    the first branch it fits (a ``double`` after a fitting ``float`` preferred, as fastavro
    does), and every array is a list, so that no tuple reads as that notation."""
    if isinstance(schema, str):
        if schema in named:
            return with_explicit_branches(named[schema], value, named)
        return value
    if isinstance(schema, list):
        fitting = [b for b in schema if not schema_problems(b, value, named)]
        if not isinstance(value, _LOGICAL_VALUES):  # a plain value: a plain branch first
            plain = [
                b
                for b in fitting
                if applied_logical(named.get(b, b) if isinstance(b, str) else b) is None
            ]
            fitting = plain or fitting
        branch = fitting[0]  # the value fits the union, so one branch at least
        if _kind_of(branch, named) == "float":
            branch = next((b for b in fitting if _kind_of(b, named) == "double"), branch)
        return (_branch_name(branch), with_explicit_branches(branch, value, named))
    kind = schema.get("type")
    if applied_logical(schema) is not None:
        return value  # a logical value
    if kind == "record":
        fields = {f["name"]: f["type"] for f in schema["fields"]}
        return {
            key: with_explicit_branches(fields[key], item, named) if key in fields else item
            for key, item in value.items()
        }
    if kind == "array":
        return [with_explicit_branches(schema["items"], item, named) for item in value]
    if kind == "map":
        return {
            key: with_explicit_branches(schema["values"], item, named)
            for key, item in value.items()
        }
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
        return with_explicit_branches(kind, value, named)
    return value


# -- encoder: the compiled fast path ----------------------------------------------------

_ZIGZAG_TABLE_SIZE = 4096


def _zigzag(value: int) -> bytes:
    """Avro's zig-zag varint of a 64-bit ``value`` (what fastavro writes for int and long)."""
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


#: zig-zag bytes of 0..4095: lengths, enum indexes and small numbers without a loop.
_SMALL = tuple(_zigzag(number) for number in range(_ZIGZAG_TABLE_SIZE))
_SIMPLE_TYPES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")
#: Decimals up to this precision are written inline (their digits never need rounding).
_DECIMAL_INLINE_PRECISION = 28


class _FallbackError(Exception):
    """Raised inside a compiled encoder: let the checked path decide about this record."""


class _EncoderSource:
    """Builds the source of one compiled record encoder (see :func:`_compile_fast_encoder`)."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.namespace: dict[str, Any] = {
            "_F": _FallbackError,
            "_S": _SMALL,
            "_SN": _ZIGZAG_TABLE_SIZE,
            "_zz": _zigzag,
            "_pf": struct.Struct("<f").pack,
            "_pd": struct.Struct("<d").pack,
            "_uuid_text": UUID_TEXT.fullmatch,
            "_datetime": dt.datetime,
            "_date": dt.date,
            "_time": dt.time,
            "_utc_fits": _utc_fits,
            "_UUID": uuid.UUID,
            "_Decimal": decimal.Decimal,
            "_w": fastavro_write_data,
            "_N": named,
            "_O": {"strict": False, "strict_allow_default": True, "disable_tuple_notation": True},
        }
        self.lines: list[str] = []
        self.counter = 0

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def emit(self, indent: int, *lines: str) -> None:
        self.lines += [" " * indent + line for line in lines]

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        return schema

    def fresh(self, prefix: str) -> str:
        """A variable name no other part of the generated function uses."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def value(self, schema: Any, indent: int, expanding: frozenset[str] = frozenset()) -> None:
        """Code that checks ``v`` against ``schema`` and appends its Avro bytes to ``b``.

        ``expanding`` holds the named records being written around this value: a record
        inside itself (a recursive type) goes to fastavro's writer instead of unrolling.
        """
        if isinstance(schema, str) and schema in self.named:
            if schema in expanding:
                self.delegate(schema, indent)
                return
            schema = self.named[schema]
        logical = applied_logical(schema)  # any other logicalType: the base type's value
        if isinstance(schema, dict) and logical is None:
            kind = schema.get("type")
            if kind == "enum":
                table = {symbol: _SMALL[i] for i, symbol in enumerate(schema["symbols"])}
                self.emit(indent, f"b += {self.constant(table)}[v]")
                return
            if kind == "record":
                self.record(schema, indent, expanding)
                return
            if kind == "array":
                self.array(schema["items"], indent, expanding)
                return
            if kind == "map":
                self.mapping(schema["values"], indent, expanding)
                return
            if isinstance(kind, str) and kind in _SIMPLE_TYPES:
                schema = kind
        if isinstance(schema, str) and schema in _SIMPLE_TYPES:
            self.primitive(schema, indent)
        elif isinstance(schema, list) and len(schema) == 2 and "null" in schema:
            # fastavro writes None as the null branch and anything else as the other one
            # (or refuses it): the same here, and a value the other branch refuses falls back.
            other = schema[1 - schema.index("null")]
            self.emit(
                indent,
                "if v is None:",
                f"    b += {_SMALL[schema.index('null')]!r}",
                "else:",
                f"    b += {_SMALL[1 - schema.index('null')]!r}",
            )
            self.value(other, indent + 4, expanding)
        elif logical in STAMP_RANGES:
            low, high = STAMP_RANGES[logical]
            self.emit(indent, f"if type(v) is int and {low} <= v <= {high}:")
            self.varint(indent + 4)
            if logical in INSTANTS:  # a naive datetime: the checked path refuses
                self.emit(
                    indent,
                    "elif isinstance(v, _datetime) and v.tzinfo is not None and "
                    "(1 < v.year < 9999 or _utc_fits(v)):",
                )
            else:  # an aware datetime: the checked path refuses
                self.emit(indent, "elif isinstance(v, _datetime) and v.utcoffset() is None:")
            self.delegate(schema, indent + 4, guarded=True)
            self.emit(indent, "else:", "    raise _F")
        elif logical == "uuid":
            self.emit(indent, "if type(v) is str and _uuid_text(v) is not None:")
            self.text(indent + 4)
            self.emit(indent, "elif isinstance(v, _UUID):", "    v = str(v)")  # as fastavro does
            self.text(indent + 4)
            self.emit(indent, "else:", "    raise _F")
        elif (
            isinstance(schema, dict)
            and logical == "decimal"
            and schema.get("type") == "bytes"
            and isinstance(schema.get("precision"), int)
            and 0 < schema["precision"] <= _DECIMAL_INLINE_PRECISION
        ):
            self.decimal(schema, indent)
        else:
            self.delegate(schema, indent)

    def record(self, schema: Mapping[str, Any], indent: int, expanding: frozenset[str]) -> None:
        """A nested record: exactly its fields, each written inline (anything else falls back,
        so the checked path applies defaults or names the extra field)."""
        fields = schema["fields"]
        name = schema.get("name")
        inner = expanding | {name} if isinstance(name, str) else expanding
        record = self.fresh("r")
        self.emit(
            indent,
            f"if type(v) is not dict or len(v) != {len(fields)}:",
            "    raise _F",
            f"{record} = v",
        )
        for field in fields:
            self.emit(indent, f"v = {record}[{field['name']!r}]")
            self.value(field["type"], indent, inner)

    def array(self, items: Any, indent: int, expanding: frozenset[str]) -> None:
        """One block holding every item, then the empty block (what fastavro writes)."""
        array, item = self.fresh("a"), self.fresh("i")
        self.emit(
            indent,
            "if type(v) is not list:",
            "    raise _F",
            f"{array} = v",
            "n = len(v)",
            "if n:",
            "    b += _S[n] if n < _SN else _zz(n)",
            f"    for {item} in {array}:",
            f"        v = {item}",
        )
        self.value(items, indent + 8, expanding)
        self.emit(indent, "b += b'\\x00'")

    def mapping(self, values: Any, indent: int, expanding: frozenset[str]) -> None:
        """Like an array, each entry a string key then its value."""
        table, key = self.fresh("m"), self.fresh("k")
        self.emit(
            indent,
            "if type(v) is not dict:",
            "    raise _F",
            f"{table} = v",
            "n = len(v)",
            "if n:",
            "    b += _S[n] if n < _SN else _zz(n)",
            f"    for {key}, v in {table}.items():",
            f"        if type({key}) is not str:",
            "            raise _F",
            f"        e = {key}.encode()",
            "        n = len(e)",
            "        b += _S[n] if n < _SN else _zz(n)",
            "        b += e",
        )
        self.value(values, indent + 8, expanding)
        self.emit(indent, "b += b'\\x00'")

    def decimal(self, schema: Mapping[str, Any], indent: int) -> None:
        """A Decimal with exactly the schema's scale, as fastavro's ``prepare_bytes_decimal``
        writes it (big-endian two's complement, one spare sign bit); any other exponent, too
        many digits or another type falls back to fastavro."""
        scale, precision = int(schema.get("scale", 0)), int(schema["precision"])
        quantum = self.constant(decimal.Decimal(1).scaleb(-scale))
        context = self.constant(decimal.Context(prec=precision))
        self.emit(
            indent,
            f"if type(v) is not _Decimal or not v.same_quantum({quantum}):",
            "    raise _F",
            f"x = int(v.scaleb({scale}, {context}))",
            f"if not {-(10**precision)} < x < {10**precision}:",
            "    raise _F",
            "e = x.to_bytes((x.bit_length() + 8) // 8, 'big', signed=True)",
            "n = len(e)",
            "b += _S[n] if n < _SN else _zz(n)",
            "b += e",
        )

    def primitive(self, kind: str, indent: int) -> None:
        if kind == "null":
            self.emit(indent, "if v is not None:", "    raise _F")
        elif kind == "boolean":
            self.emit(
                indent,
                "if v is True:",
                "    b += b'\\x01'",
                "elif v is False:",
                "    b += b'\\x00'",
                "else:",
                "    raise _F",
            )
        elif kind in ("int", "long"):
            low, high = INT_RANGE if kind == "int" else LONG_RANGE
            self.emit(indent, f"if type(v) is not int or not {low} <= v <= {high}:", "    raise _F")
            self.varint(indent)
        elif kind in ("float", "double"):
            pack = "_pf" if kind == "float" else "_pd"
            self.emit(
                indent,
                "if type(v) is not float and type(v) is not int:",
                "    raise _F",
                f"b += {pack}(v)",
            )
        elif kind == "string":
            self.emit(indent, "if type(v) is not str:", "    raise _F")
            self.text(indent)
        else:  # bytes
            self.emit(
                indent,
                "if type(v) is not bytes:",
                "    raise _F",
                "n = len(v)",
                "b += _S[n] if n < _SN else _zz(n)",
                "b += v",
            )

    def varint(self, indent: int) -> None:
        self.emit(indent, "b += _S[v] if 0 <= v < _SN else _zz(v)")

    def text(self, indent: int) -> None:
        self.emit(
            indent, "e = v.encode()", "n = len(e)", "b += _S[n] if n < _SN else _zz(n)", "b += e"
        )

    def delegate(self, schema: Any, indent: int, *, guarded: bool = False) -> None:
        """Hand ``v`` to fastavro's own writer, after the guard for what it would mangle."""
        if not guarded:
            guard = _compile_guard(schema, self.named, frozenset())
            if guard is not None:
                self.emit(indent, f"if not {self.constant(guard)}(v):", "    raise _F")
        self.emit(indent, f"_w(b, v, {self.constant(schema)}, _N, '', _O)")


def _compile_fast_encoder(
    parsed: ParsedSchema, named: Mapping[str, Any], frame: bytes
) -> Callable[[Any], bytes] | None:
    """A function specialised to one record schema: framed bytes for a valid plain dict.

    Fields of simple types (primitives, enums, nullable primitives, uuid text, timestamps
    given as numbers) are checked and written by generated straight-line code (about half
    of what fastavro's generic writer costs); other fields go through fastavro's writer
    after their guard. It raises on anything unusual (not a dict, a missing or extra
    field, a value of the wrong type): the caller then takes the checked path, which
    applies defaults or explains the error. So it only ever returns bytes identical to
    what the checked path writes.
    """
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return None
    source = _EncoderSource(named)
    fields = parsed["fields"]
    source.emit(0, "def fast_encode(r):")
    source.emit(4, f"if type(r) is not dict or len(r) != {len(fields)}:", "    raise _F")
    source.emit(4, f"b = bytearray({frame!r})")
    expanding = frozenset({schema_name(parsed)})
    for field in fields:
        source.emit(4, f"v = r[{field['name']!r}]")
        source.value(field["type"], 4, expanding)
    source.emit(4, "return bytes(b)")
    code = compile("\n".join(source.lines), f"<encoder of {schema_name(parsed)}>", "exec")
    exec(code, source.namespace)
    fast_encode: Callable[[Any], bytes] = source.namespace["fast_encode"]
    return fast_encode


# -- encoder ---------------------------------------------------------------------------


class RecordEncoder:
    """Turns records of one schema into Confluent-framed Avro bytes.

    The schema is parsed once and the 5-byte header built once. A valid plain dict takes
    the encoder compiled for the schema (:func:`_compile_fast_encoder`); anything else takes
    the checked path: the guard compiled from the schema rejects what fastavro would write
    wrongly, then fastavro writes (applying defaults). Safe to share between threads.
    """

    __slots__ = (
        "_empty_items",
        "_fast",
        "_guard",
        "_header",
        "_misrouting",
        "_recursive",
        "document",
        "name",
        "parsed",
        "schema_id",
    )

    def __init__(self, schema: SchemaLike, schema_id: int) -> None:
        self.document = as_document(schema)
        self.parsed = parse_schema(self.document)
        self.schema_id = schema_id
        self.name = schema_name(self.parsed)
        named = _named(self.parsed)
        self._guard = _compile_guard(self.parsed, named, frozenset())
        self._header = header(schema_id)
        self._fast = _compile_fast_encoder(self.parsed, named, self._header)
        #: A recursive type: a record's nesting is measured first (see schema/nesting.py).
        self._recursive = bool(recursive_names(named))
        #: An array of items that take no bytes: a written record's count of them is
        #: checked as every reader checks it (see schema/nesting.py).
        self._empty_items = holds_empty_item_arrays(self.parsed, named)
        #: A union fastavro may write under the wrong branch: every record names its
        #: branches (:func:`misrouting_unions`), so neither fast path applies.
        self._misrouting = misrouting_unions(self.parsed, named, frozenset())
        if self._misrouting:
            self._fast = None

    @property
    def fast(self) -> Callable[[Any], bytes] | None:
        """The compiled encoder: framed bytes, or any exception meaning "use :meth:`encode`".
        None for a schema with a recursive type, whose records :meth:`encode` measures first
        (the compiled encoder hands the recursion to fastavro's C writer), or with a union
        fastavro may write under the wrong branch, or with an array of items that take no
        bytes, whose records :meth:`encode` counts."""
        return None if self._recursive or self._empty_items else self._fast

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Framed bytes for ``record``; :class:`SerializationError` names every bad field."""
        if self._recursive and value_nests_deeper(record):
            raise self.too_deep()
        fast = self.fast
        if fast is not None:
            try:
                return fast(record)
            except Exception:  # the checked path below decides
                pass
        return self.encode_checked(record)

    def encode_checked(self, record: Mapping[str, Any]) -> bytes:
        """:meth:`encode` without the compiled encoder: guard, then fastavro's writer."""
        if self._recursive and value_nests_deeper(record):
            raise self.too_deep()
        if self._misrouting:
            framed = self._encode_explicitly(record)
            return self._counted(framed) if self._empty_items else framed
        guard = self._guard
        if guard is not None and not guard(record):
            raise self.error(record)
        buffer = BytesIO()  # a fresh one is cheaper than truncating a reused one
        buffer.write(self._header)
        try:
            # a tuple is an array's items, never fastavro's (branch name, value) notation
            schemaless_writer(
                buffer,
                self.parsed,
                record,
                strict_allow_default=True,
                disable_tuple_notation=True,
            )
        except Exception as exc:
            raise self.error(record, exc) from exc
        if self._empty_items:
            return self._counted(buffer.getvalue())
        return buffer.getvalue()

    def _counted(self, framed: bytes) -> bytes:
        """``framed`` if its arrays of items that take no bytes hold no more than every
        reader takes (:data:`~.nesting.MAX_EMPTY_ITEMS`); else the error."""
        refusal = bytes_refusal(framed, HEADER_SIZE, self.parsed, _named(self.parsed))
        if refusal is None:
            return framed
        problem = f"(record): {refusal.removeprefix('the record ')}"
        error = SerializationError(f"record does not fit schema {self.name}: {problem}")
        error.problems = [problem]  # type: ignore[attr-defined]
        raise error

    def _encode_explicitly(self, record: Mapping[str, Any]) -> bytes:
        """A record of a schema with a misrouting union: checked in full, then written with
        each union value's branch named (about 10x the checked path's cost; such unions
        are rare)."""
        named = _named(self.parsed)
        if schema_problems(self.parsed, record, named):
            raise self.error(record)
        buffer = BytesIO()
        buffer.write(self._header)
        try:
            explicit = with_explicit_branches(self.parsed, record, named)
            schemaless_writer(buffer, self.parsed, explicit, strict_allow_default=True)
        except Exception as exc:
            raise self.error(record, exc) from exc
        return buffer.getvalue()

    def too_deep(self) -> SerializationError:
        """The error for a record nested past :data:`MAX_NESTING` (fastavro's C writer, and
        every reader's, would crash the process on it)."""
        problem = (
            f"(record): nests records, arrays and maps more than {MAX_NESTING} levels deep; "
            f"a record of a recursive type may nest at most {MAX_NESTING}"
        )
        error = SerializationError(f"record does not fit schema {self.name}: {problem}")
        error.problems = [problem]  # type: ignore[attr-defined]
        return error

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


# -- decoder: the compiled fast path ---------------------------------------------------


#: The value of each one-byte zig-zag varint (0, -1, 1, -2, ... for bytes 0..127).
_ONE_BYTE_ZIGZAG = tuple((byte >> 1) ^ -(byte & 1) for byte in range(0x80))


def _varint_tail(data: bytes, position: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``first`` (>= 0x80) was read: (raw, next position).

    Refuses (IndexError/_FallbackError) what fastavro would read differently: a varint
    longer than 10 bytes or beyond 64 bits.
    """
    number = first & 0x7F
    shift = 7
    while True:
        byte = data[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            if number >> 64:
                raise _FallbackError
            return number, position
        shift += 7
        if shift > 63:
            raise _FallbackError


class _DecoderSource:
    """Builds the source of one compiled record decoder (see :func:`_compile_fast_decoder`)."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.namespace: dict[str, Any] = {
            "_F": _FallbackError,
            "_tail": _varint_tail,
            "_Z": _ONE_BYTE_ZIGZAG,
            "_uf": struct.Struct("<f").unpack_from,
            "_ud": struct.Struct("<d").unpack_from,
            "_read": read_data,  # a recursive type's nesting is measured first
            "_BytesIO": BytesIO,
            "_N": {"writer": named, "reader": {}},
            "_O": READ_OPTIONS,
            "_epoch": _EPOCH,
            "_ms": dt.timedelta(milliseconds=1),
            "_us": dt.timedelta(microseconds=1),
            "_UUID": uuid.UUID,
            "_new": object.__new__,
            "_set_int": uuid.UUID.__dict__["int"].__set__,
            "_set_safe": uuid.UUID.__dict__["is_safe"].__set__,
            "_unknown": uuid.SafeUUID.unknown,
            "_int": int.from_bytes,
        }
        self.lines: list[str] = []
        self.counter = 0

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def fresh(self, prefix: str) -> str:
        """A variable name no other part of the generated function uses."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, *lines: str) -> None:
        self.lines += [" " * indent + line for line in lines]

    def number(self, indent: int, target: str) -> None:
        """Code that reads one zig-zag varint at ``p`` into ``target``."""
        self.emit(
            indent,
            "n = d[p]",
            "if n < 0x80:",  # one byte (lengths, indexes, small numbers): a table lookup
            f"    {target} = _Z[n]",
            "    p += 1",
            "else:",
            "    n, p = _tail(d, p + 1, n)",
            f"    {target} = (n >> 1) ^ -(n & 1)",
        )

    def sized(self, indent: int, target: str, *, text: bool) -> None:
        self.number(indent, "n")
        self.emit(indent, "e = p + n", "if n < 0 or e > L:", "    raise _F")
        self.emit(indent, f"{target} = d[p:e].decode()" if text else f"{target} = d[p:e]")
        self.emit(indent, "p = e")

    def resolve(self, schema: Any, expanding: frozenset[str]) -> Any:
        """The definition of a named type, or None for one being read around itself."""
        if isinstance(schema, str) and schema in self.named:
            return None if schema in expanding else self.named[schema]
        return schema

    def value(
        self, schema: Any, indent: int, target: str, expanding: frozenset[str] = frozenset()
    ) -> None:
        """Code that reads a value of ``schema`` at ``p`` into ``target``, as fastavro would."""
        resolved = self.resolve(schema, expanding)
        if resolved is None:  # a recursive type: fastavro reads this level
            self.delegate(schema, indent, target)
            return
        schema = resolved
        if isinstance(schema, dict):
            kind = schema.get("type")
            logical = schema.get("logicalType")
            if logical is not None:
                self.logical(schema, indent, target)
                return
            if kind == "enum":
                symbols = tuple(schema["symbols"])
                self.number(indent, "i")
                self.emit(indent, f"if not 0 <= i < {len(symbols)}:", "    raise _F")
                self.emit(indent, f"{target} = {self.constant(symbols)}[i]")
                return
            if kind == "record":
                self.record(schema, indent, target, expanding)
                return
            if kind in ("array", "map"):
                self.blocks(schema, indent, target, expanding)
                return
            if kind == "fixed":
                size = int(schema["size"])
                self.emit(indent, f"e = p + {size}", "if e > L:", "    raise _F")
                self.emit(indent, f"{target} = d[p:e]", "p = e")
                return
            if isinstance(kind, str) and kind in _SIMPLE_TYPES:
                schema = kind
        if schema == "null":
            self.emit(indent, f"{target} = None")
        elif schema == "boolean":
            self.emit(indent, f"{target} = d[p] != 0", "p += 1")
        elif schema in ("int", "long"):
            self.number(indent, target)
        elif schema in ("float", "double"):
            unpack, size = ("_uf", 4) if schema == "float" else ("_ud", 8)
            self.emit(indent, f"{target} = {unpack}(d, p)[0]", f"p += {size}")
        elif schema in ("string", "bytes"):
            self.sized(indent, target, text=schema == "string")
        elif isinstance(schema, list) and len(schema) == 2 and "null" in schema:
            null = schema.index("null")
            self.number(indent, "i")
            self.emit(indent, f"if i == {null}:", f"    {target} = None", f"elif i == {1 - null}:")
            self.value(schema[1 - null], indent + 4, target, expanding)
            self.emit(indent, "else:", "    raise _F")
        else:
            self.delegate(schema, indent, target)

    def logical(self, schema: Mapping[str, Any], indent: int, target: str) -> None:
        """A logical type: its underlying value, converted to what fastavro returns."""
        kind, logical = schema.get("type"), schema.get("logicalType")
        reader = LOGICAL_READERS.get(f"{kind}-{logical}")
        if reader is None or kind not in _SIMPLE_TYPES:
            self.delegate(schema, indent, target)
            return
        if logical == "uuid" and kind == "string":
            # what UUID(text) does, read from the UTF-8 bytes: text with "urn:", "uuid:",
            # braces or anything but ASCII keeps a non-hex byte and falls back; the slots
            # set as UUID.__init__ sets them, without its argument parsing
            self.sized(indent, target, text=False)
            self.emit(
                indent,
                f"h = {target}.replace(b'-', b'')",
                "if len(h) != 32:",
                "    raise _F",
                f"{target} = _new(_UUID)",
                f"_set_int({target}, int(h, 16))",
                f"_set_safe({target}, _unknown)",
            )
            return
        self.value(kind, indent, target)
        if logical == "timestamp-millis" and kind == "long":
            # fastavro: epoch + timedelta(microseconds=ms * 1000), the same exact value
            self.emit(indent, f"{target} = _epoch + _ms * {target}")
        elif logical == "timestamp-micros" and kind == "long":
            self.emit(indent, f"{target} = _epoch + _us * {target}")
        elif logical == "decimal" and kind == "bytes" and isinstance(schema.get("precision"), int):
            # fastavro: its context at the schema's precision creates the unscaled integer,
            # then scales it; the same with a context of our own per schema
            context = decimal.Context(prec=int(schema["precision"]))
            scale = int(schema.get("scale", 0))
            create, ctx = self.constant(context.create_decimal), self.constant(context)
            self.emit(
                indent,
                f"{target} = {create}(_int({target}, 'big', signed=True)).scaleb({-scale}, {ctx})",
            )
        else:
            self.emit(
                indent,
                f"{target} = {self.constant(reader)}({target}, {self.constant(schema)}, None)",
            )

    def record(
        self, schema: Mapping[str, Any], indent: int, target: str, expanding: frozenset[str]
    ) -> None:
        name = schema.get("name")
        inner = expanding | {name} if isinstance(name, str) else expanding
        parts = []
        for field in schema["fields"]:
            variable = self.fresh("f")
            self.value(field["type"], indent, variable, inner)
            parts.append(f"{field['name']!r}: {variable}")
        self.emit(indent, f"{target} = {{" + ", ".join(parts) + "}")

    def blocks(
        self, schema: Mapping[str, Any], indent: int, target: str, expanding: frozenset[str]
    ) -> None:
        """An array or a map: blocks of items until an empty one (a negative count is
        followed by the block's size in bytes). A count larger than the bytes left falls
        back (fastavro then reads or refuses it), so damaged bytes never loop for long."""
        is_map = schema["type"] == "map"
        collected, count, item = self.fresh("a"), self.fresh("c"), self.fresh("x")
        self.emit(indent, f"{collected} = {{}}" if is_map else f"{collected} = []")
        self.number(indent, count)
        self.emit(indent, f"while {count}:")
        body = indent + 4
        self.emit(body, f"if {count} < 0:", f"    {count} = -{count}")
        self.number(body + 4, "n")
        self.emit(body, f"if {count} > L:", "    raise _F", f"for _ in range({count}):")
        if is_map:
            key = self.fresh("k")
            self.sized(body + 4, key, text=True)
            self.value(schema["values"], body + 4, item, expanding)
            self.emit(body + 4, f"{collected}[{key}] = {item}")
        else:
            self.value(schema["items"], body + 4, item, expanding)
            self.emit(body + 4, f"{collected}.append({item})")
        self.number(body, count)
        self.emit(indent, f"{target} = {collected}")

    def skip(self, schema: Any, indent: int, expanding: frozenset[str] = frozenset()) -> None:
        """Code that moves ``p`` past a value of ``schema`` without building it. Skipped
        bytes are not checked (a bad enum index or bad UTF-8 there goes unnoticed)."""
        resolved = self.resolve(schema, expanding)
        if resolved is None:
            self.delegate(schema, indent, "_")
            return
        schema = resolved
        if isinstance(schema, dict):
            kind = schema.get("type")
            if kind == "record":
                name = schema.get("name")
                inner = expanding | {name} if isinstance(name, str) else expanding
                for field in schema["fields"]:
                    self.skip(field["type"], indent, inner)
                return
            if kind in ("array", "map"):
                count = self.fresh("c")
                self.number(indent, count)
                self.emit(indent, f"while {count}:")
                self.emit(indent + 4, f"if {count} < 0:")
                self.number(indent + 8, "n")  # the block's size in bytes: jump over it
                self.emit(indent + 8, "if n < 0:", "    raise _F", "p += n")
                self.emit(indent + 4, "else:")
                self.emit(indent + 8, f"if {count} > L:", "    raise _F")
                self.emit(indent + 8, f"for _ in range({count}):")
                if kind == "map":
                    self.skip("string", indent + 12, expanding)
                    self.skip(schema["values"], indent + 12, expanding)
                else:
                    self.skip(schema["items"], indent + 12, expanding)
                self.number(indent + 4, count)
                return
            if kind == "enum":
                self.number(indent, "_")
                return
            if kind == "fixed":
                self.emit(indent, f"p += {int(schema['size'])}")
                return
            schema = kind
            if isinstance(schema, (dict, list)):
                self.skip(schema, indent, expanding)
                return
        if isinstance(schema, list):
            self.number(indent, "i")
            for index, branch in enumerate(schema):
                self.emit(indent, f"{'if' if index == 0 else 'elif'} i == {index}:")
                self.emit(indent + 4, "pass")
                self.skip(branch, indent + 4, expanding)
            self.emit(indent, "else:", "    raise _F")
        elif schema in ("int", "long"):
            self.number(indent, "_")
        elif schema == "boolean":
            self.emit(indent, "p += 1")
        elif schema in ("float", "double"):
            self.emit(indent, f"p += {4 if schema == 'float' else 8}")
        elif schema in ("string", "bytes"):
            self.number(indent, "n")
            self.emit(indent, "if n < 0:", "    raise _F", "p += n")
        elif schema != "null":
            self.delegate(schema, indent, "_")

    def delegate(self, schema: Any, indent: int, target: str) -> None:
        """fastavro's own reader for this value, from where we are in the body."""
        self.emit(
            indent,
            "f = _BytesIO(d)",
            "f.seek(p)",
            f"{target} = _read(f, {self.constant(schema)}, _N, None, _O)",
            "p = f.tell()",
        )


def _compile_fast_decoder(
    writer: ParsedSchema, named: Mapping[str, Any], fields: Collection[str] | None = None
) -> Callable[[bytes], Any] | None:
    """A function specialised to one writer schema: the record in framed bytes.

    Every field is read by generated straight-line code: primitives, enums, fixed, nullable
    values, nested records, arrays and maps inline, logical values converted as fastavro's
    own functions convert them (timestamps, uuids and byte decimals inline, the rarer ones
    by calling fastavro's function); a recursive type or a union of more than null and one
    type by fastavro's reader from the current position. With ``fields`` only those
    top-level fields are built, the others skipped (see :meth:`_DecoderSource.skip`).
    Anything unusual (truncated body, bytes left after the body, an index out of range, a
    varint longer than fastavro reads, bad UTF-8) raises, and the caller then reads with
    fastavro, which gives the real error: so it only ever returns what fastavro returns.
    Without a reader schema only.
    """
    if not isinstance(writer, dict) or writer.get("type") != "record":
        return None
    if holds_empty_item_arrays(writer, named):
        # read_data counts such items over the whole record before fastavro builds any; the
        # compiled code hands recursive values to it one by one, each counted apart
        return None
    source = _DecoderSource(named)
    source.emit(0, "def fast_decode(d):", f"    p = {HEADER_SIZE}", "    L = len(d)")
    expanding = frozenset({schema_name(writer)})
    names = []
    for index, field in enumerate(writer["fields"]):
        if fields is None or field["name"] in fields:
            names.append((field["name"], f"v{index}"))
            source.value(field["type"], 4, f"v{index}", expanding)
        else:
            source.skip(field["type"], 4, expanding)
    source.emit(4, "if p != L:", "    raise _F")  # short, or bytes after the body
    source.emit(4, "return {" + ", ".join(f"{name!r}: {var}" for name, var in names) + "}")
    code = compile("\n".join(source.lines), f"<decoder of {schema_name(writer)}>", "exec")
    exec(code, source.namespace)
    fast_decode: Callable[[bytes], Any] = source.namespace["fast_decode"]
    return fast_decode


# -- decoder ---------------------------------------------------------------------------


class RecordDecoder:
    """Decodes Confluent-framed Avro with the writer schema found by its id.

    Each writer schema is fetched from ``registry`` once and kept parsed. With a
    ``reader_schema`` records are resolved to it (Avro schema evolution: added fields get
    their defaults, removed ones vanish); without one they come out as written.

    Decoding is strict: bytes left after the Avro body, a schema id whose schema is not a
    record, and (with ``subject``, the product's value subject) a *foreign* schema id, one
    not registered under ``subject``, are :class:`DeserializationError`. The subject check
    costs one registry call per new schema id, not per record. Refusals that cannot change
    (not a record, a reader that cannot read the writer) are remembered for good; a
    foreign id is asked again after ``recheck_seconds`` (the product may register the
    same schema later, which gives it the same id), and the old answer stands while the
    registry is unreachable. ``RegistryUnavailableError`` (and other registry errors)
    propagate: they say nothing about the record, so the caller decides whether to wait.
    """

    def __init__(
        self,
        registry: SchemaSource,
        reader_schema: SchemaLike | None = None,
        *,
        subject: str | None = None,
        recheck_seconds: float = 60.0,
    ) -> None:
        if subject is not None and not callable(getattr(registry, "get_schema_subjects", None)):
            # refused here rather than as an AttributeError at the first record
            raise TypeError(
                f"a decoder checking subject {subject!r} needs a schema source that says an "
                f"id's subjects (get_schema_subjects, as RegistryClient has); "
                f"{type(registry).__name__} has none"
            )
        self.registry = registry
        self.subject = subject
        self.recheck_seconds = recheck_seconds
        self.reader: ParsedSchema | None = (
            parse_schema(reader_schema, source="reader schema")
            if reader_schema is not None
            else None
        )
        self._reader_form = _canonical(self.reader) if self.reader is not None else None
        #: The reader schema as fastavro reads with it (logical defaults converted), made once.
        self._reading: ParsedSchema | None = None
        # schema id -> (parsed writer schema, reader schema or None when identical)
        self._schemas: dict[int, tuple[ParsedSchema, ParsedSchema | None]] = {}
        # schema id -> what fastavro's reader takes for it (read on the consumer's hot path)
        self.plans: dict[int, DecodePlan] = {}
        # schema id -> (the refusal, monotonic time to ask again or None for never)
        self._refused: dict[int, tuple[DeserializationError, float | None]] = {}
        # (schema id, fields) -> the reader of just those fields (decode with ``fields``)
        self._projections: dict[tuple[int, tuple[str, ...]], FramedReader] = {}

    def schemas_for(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        """(writer, reader-or-None) for ``schema_id``; a registry call only the first time."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        refused = self._refused.get(schema_id)
        if refused is not None and (refused[1] is None or time.monotonic() < refused[1]):
            raise _again(refused[0])
        try:
            return self._resolve(schema_id)
        except RegistryUnavailableError:
            if refused is None:
                raise
            self._refused[schema_id] = (refused[0], time.monotonic() + self.recheck_seconds)
            raise _again(refused[0])  # noqa: B904 - the refusal's own cause is kept

    def _resolve(self, schema_id: int) -> tuple[ParsedSchema, ParsedSchema | None]:
        try:
            text = self.registry.get_schema(schema_id)
        except SchemaNotFoundError as exc:
            said = str(exc)  # the registry's words, with the id named once
            missing = (
                said
                if f"schema id {schema_id} " in said
                else (f"schema id {schema_id} is not in the registry ({said})")
            )
            raise DeserializationError(
                f"{missing}; the record was written against another registry or its schema "
                f"was deleted"
            ) from exc
        try:
            writer = parse_schema(text, source=f"writer schema id {schema_id}")
        except SchemaError as exc:
            raise self._refuse(
                schema_id,
                f"schema id {schema_id} cannot decode a product record: {exc}",
                exc,
                forever=True,
            ) from exc
        if self.subject is not None:
            self._check_subject(schema_id)
        reader = self.reader
        if reader is not None and _canonical(writer) == self._reader_form:
            reader = None  # identical: skip fastavro's per-record resolution
        if reader is not None:
            try:
                _check_resolvable(writer, reader, schema_id)
            except DeserializationError as exc:
                raise self._refuse(schema_id, str(exc), exc.__cause__, forever=True)  # noqa: B904
            except Exception as exc:  # Avro's checker refused the writer schema itself
                raise self._refuse(
                    schema_id,
                    f"the reader schema {schema_name(reader)} cannot be checked against writer "
                    f"schema id {schema_id}: {type(exc).__name__}: {exc}",
                    exc,
                    forever=True,
                ) from exc
        if reader is not None:
            if self._reading is None:
                self._reading = with_logical_defaults(reader)
            reader = self._reading
        named = {"writer": _named(writer), "reader": _named(reader) if reader is not None else {}}
        fast = None
        if reader is None:
            # Should the compiler fail on a schema, fastavro's reader alone reads it (slower).
            with contextlib.suppress(Exception):
                fast = _compile_fast_decoder(writer, named["writer"])
        found = (writer, self.reader if reader is not None else None)
        self._schemas[schema_id] = found
        self._refused.pop(schema_id, None)
        self.plans[schema_id] = (writer, named, reader, fast)
        return found

    def _check_subject(self, schema_id: int) -> None:
        """Refuse a foreign schema id: one not registered under this product's subject."""
        source: SubjectSchemaSource = self.registry  # type: ignore[assignment]
        try:
            subjects = source.get_schema_subjects(schema_id)
        except SchemaNotFoundError:  # deleted since its schema was read: under no subject
            subjects = []
        if self.subject in subjects:
            return
        raise self._refuse(
            schema_id,
            f"foreign schema id {schema_id}: it is registered under "
            f"{', '.join(sorted(subjects)) or 'no subject'}, not under {self.subject}; the "
            f"record was written for another product",
            None,
            forever=False,
        )

    def _refuse(
        self, schema_id: int, message: str, cause: BaseException | None, *, forever: bool
    ) -> DeserializationError:
        error = DeserializationError(message)
        error.__cause__ = cause
        until = None if forever else time.monotonic() + self.recheck_seconds
        self._refused[schema_id] = (error, until)
        return error

    def plan_for(self, schema_id: int) -> DecodePlan:
        """How to read records of ``schema_id`` (see :data:`DecodePlan`); a registry call
        the first time.

        Reading through this skips what ``schemaless_reader`` redoes per record (re-walking
        both parsed schemas, building its options), and the compiled decoder skips
        fastavro's generic walk of the schema too.
        """
        plan = self.plans.get(schema_id)
        if plan is None:
            self.schemas_for(schema_id)
            plan = self.plans[schema_id]
        return plan

    def decode(
        self, data: bytes | bytearray | memoryview, *, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The record in ``data`` as a dict (resolved to the reader schema if one is set).

        With ``fields`` (top-level names) only those are decoded and returned, the others
        skipped unread (see :class:`FramedReader`); a field the record's schema lacks is a
        :class:`DeserializationError` naming it.
        """
        if fields is not None:
            return self._decode_fields(data, tuple(fields))
        if type(data) is bytes:  # the hot path: a known schema id with a compiled decoder
            try:
                fast = self.plans[unpack_schema_id(data, 1)[0]][3] if data[0] == 0 else None
                if fast is not None:
                    record: dict[str, Any] = fast(data)
                    return record
            except Exception:  # new id, short or damaged bytes: decode_with_id decides
                pass
        return self.decode_with_id(data)[1]

    def _decode_fields(
        self, data: bytes | bytearray | memoryview, fields: tuple[str, ...]
    ) -> dict[str, Any]:
        schema_id, _ = unframe(data)
        writer, _named_types, reader, _fast = self.plan_for(schema_id)
        if reader is not None:  # resolved to the reader schema first, then cut down
            record = self.decode_with_id(data)[1]
            missing = [name for name in fields if name not in record]
            if missing:
                raise DeserializationError(
                    f"the reader schema {schema_name(reader)} has no field "
                    f"{', '.join(map(repr, missing))}"
                )
            return {name: record[name] for name in fields}
        projection = self._projections.get((schema_id, fields))
        if projection is None:
            projection = self._projections[(schema_id, fields)] = FramedReader(
                writer, schema_id, fields
            )
        return projection(data if type(data) is bytes else bytes(data))

    def decode_with_id(self, data: bytes | bytearray | memoryview) -> tuple[int, dict[str, Any]]:
        """(writer schema id, record) for framed ``data``."""
        schema_id, body = unframe(data)
        writer, named, reader, fast = self.plan_for(schema_id)
        if fast is not None and type(data) is bytes:
            try:
                return schema_id, fast(data)
            except Exception:  # fastavro below reads it or says what is wrong
                pass
        return schema_id, read_body(body, schema_id, writer, named, reader)


class FramedReader:
    """Reads framed records of one writer schema (no reader schema): the compiled decoder,
    and fastavro's reader whenever it declines, which reads the record or says what is wrong.

    With ``fields`` only those top-level fields are decoded, the others skipped without
    building their values (a processor reads a few fields of each record); skipped bytes are
    not checked, so a record damaged only there still yields the fields asked for. A field
    the writer schema does not have is refused here, once, not on every record.
    """

    __slots__ = ("fast", "fields", "named", "schema_id", "writer")

    def __init__(
        self, writer: ParsedSchema, schema_id: int, fields: Collection[str] | None = None
    ) -> None:
        self.writer = writer
        self.schema_id = schema_id
        self.named = {"writer": _named(writer), "reader": {}}
        self.fields = None if fields is None else tuple(fields)
        if self.fields is not None:
            have = [field["name"] for field in writer.get("fields", ())]
            missing = [name for name in self.fields if name not in have]
            if missing:
                raise DeserializationError(
                    f"writer schema id {schema_id} ({schema_name(writer)}) has no field "
                    f"{', '.join(map(repr, missing))} (its fields: {', '.join(have)}); the "
                    f"product's schema no longer carries what is read from it"
                )
        self.fast: Callable[[bytes], Any] | None = None
        with contextlib.suppress(Exception):  # fastavro alone reads what cannot be compiled
            self.fast = _compile_fast_decoder(writer, self.named["writer"], self.fields)

    def __call__(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The record (or its ``fields``) in framed ``data``; :class:`DeserializationError`
        for bytes that are not a record of this schema."""
        fast = self.fast
        if fast is not None and type(data) is bytes:
            try:
                record: dict[str, Any] = fast(data)
                return record
            except Exception:  # fastavro below reads it or says what is wrong
                pass
        schema_id, body = unframe(data)
        if schema_id != self.schema_id:
            raise DeserializationError(
                f"the record carries schema id {schema_id}, not {self.schema_id} "
                f"({schema_name(self.writer)}) this reader was made for"
            )
        value = read_body(body, schema_id, self.writer, self.named, None)
        if self.fields is None:
            return value
        return {name: value[name] for name in self.fields}


def read_body(
    body: memoryview | bytes,
    schema_id: int,
    writer: ParsedSchema,
    named: dict[str, Any],
    reader: ParsedSchema | None,
) -> dict[str, Any]:
    """A whole Avro body read by fastavro: the record, or :class:`DeserializationError`
    naming the schema id (bytes left after the body included)."""
    buffer = io.BytesIO(body)
    try:
        value = read_data(buffer, writer, named, reader, READ_OPTIONS)
    except Exception as exc:
        raise DeserializationError(
            f"cannot decode {len(body)}-byte Avro body with writer schema id {schema_id} "
            f"({schema_name(writer)}): {read_failure(exc, body, 0, writer, named)}"
        ) from exc
    if buffer.tell() != len(body):
        raise trailing_bytes_error(len(body) - buffer.tell(), schema_id, writer)
    if not isinstance(value, dict):
        raise DeserializationError(
            f"schema id {schema_id} decodes to {type(value).__name__}, not a record"
        )
    return value


#: id of a parsed writer schema -> (the schema, whether its records are walked first: a
#: recursive type, or an array of items that take no bytes).
_WALKED: dict[int, tuple[Any, bool]] = {}
#: The most schemas :data:`_WALKED` keeps (a process building decoders over and over).
_WALKED_KEPT = 1_000


def read_data(
    body: io.BytesIO,
    writer: Any,
    named: dict[str, Any],
    reader: Any,
    options: dict[str, Any],
) -> Any:
    """fastavro's reader (its arguments), after walking the bytes of a record whose schema
    has a recursive type or an array of items that take no bytes (a ``ValueError`` past
    :data:`MAX_NESTING` levels or :data:`MAX_EMPTY_ITEMS` such items: see
    schema/nesting.py)."""
    known = _WALKED.get(id(writer))
    if known is None or known[0] is not writer:
        if len(_WALKED) >= _WALKED_KEPT:  # schemas of decoders long gone: start again
            _WALKED.clear()
        types = named["writer"]
        walked = bool(recursive_names(types)) or holds_empty_item_arrays(writer, types)
        known = _WALKED[id(writer)] = (writer, walked)
    if known[1]:
        with body.getbuffer() as view:
            refusal = bytes_refusal(view, body.tell(), writer, named["writer"])
        if refusal is not None:
            raise ValueError(refusal)
    return fastavro_read_data(body, writer, named, reader, options)


def read_failure(
    exc: BaseException,
    data: bytes | memoryview,
    position: int,
    writer: Any,
    named: Mapping[str, Any],
) -> str:
    """Why the body at ``position`` of ``data`` could not be read, for an error and a dead
    letter's error header: the field and byte where it stops fitting the writer schema
    (:func:`~mesh_stream.schema.body_misfit.body_misfit`) when the bytes are the cause,
    else the reader's exception; a body cut short (fastavro's bare ``EOFError``) is said
    as such."""
    if isinstance(exc, (EOFError, IndexError, OverflowError, UnicodeDecodeError, ValueError)):
        misfit = body_misfit(data, position, writer, named.get("writer", {}))
        if misfit is not None:
            return f"{misfit}; the body is damaged, or was written with another schema"
    if isinstance(exc, EOFError) and not str(exc):
        return "the body ends before the record does (EOFError: truncated or not this schema)"
    if isinstance(exc, (IndexError, OverflowError, UnicodeDecodeError)):
        return (
            f"a length, union branch, enum index or text in the body does not fit the schema "
            f"(damaged, or written with another schema): {type(exc).__name__}: {exc}"
        )
    return f"{type(exc).__name__}: {exc}"


def trailing_bytes_error(extra: int, schema_id: int, writer: ParsedSchema) -> DeserializationError:
    """The error for ``extra`` bytes left after a complete Avro body."""
    return DeserializationError(
        f"{extra} byte(s) left after the Avro body of writer schema id {schema_id} "
        f"({schema_name(writer)}): the record was not written with this schema (or was "
        f"damaged)"
    )


def _again(refusal: DeserializationError) -> DeserializationError:
    """A fresh error with a remembered refusal's text and cause (its traceback stays small)."""
    error = DeserializationError(str(refusal))
    error.__cause__ = refusal.__cause__
    return error


def _canonical(parsed: ParsedSchema) -> str:
    return json.dumps(
        {k: v for k, v in parsed.items() if not k.startswith("__")}, sort_keys=True, default=str
    )


def with_logical_defaults(reader: ParsedSchema) -> ParsedSchema:
    """A copy of ``reader`` whose field defaults of a logical type are the values a written
    one reads as. fastavro hands a default over as its JSON: a field added with a decimal
    default read back as the str of its byte code points, a timestamp's as an int, a
    uuid's as a str, where every written value is a Decimal, a datetime, a UUID."""
    converted: ParsedSchema = copy.deepcopy(reader)
    named = _named(converted)
    done: set[str] = set()

    def walk(schema: Any) -> None:
        if isinstance(schema, str):
            if schema in named and schema not in done:
                done.add(schema)
                walk(named[schema])
            return
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
            return
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if kind == "record":
            done.add(str(schema.get("name")))
            for field in schema["fields"]:
                if field.get("default") is not None:
                    field["default"] = _logical_default(field["type"], field["default"], named)
                walk(field["type"])
        elif kind == "array":
            walk(schema["items"])
        elif kind == "map":
            walk(schema["values"])
        elif isinstance(kind, (dict, list)):
            walk(kind)

    walk(converted)
    return converted


def _logical_default(schema: Any, default: Any, named: Mapping[str, Any]) -> Any:
    """``default`` (JSON) of a field of type ``schema`` as a written value reads: a logical
    type's value converted, through records, arrays and maps (a union's default is of its
    first branch); anything else as it is."""
    if isinstance(schema, list):
        return _logical_default(schema[0], default, named) if schema else default
    if isinstance(schema, str):
        schema = named.get(schema)
    if not isinstance(schema, Mapping) or default is None:
        return default
    logical = applied_logical(schema)
    kind = schema.get("type")
    if logical is not None:
        raw = default.encode("latin-1") if kind in ("bytes", "fixed") else default
        try:
            return LOGICAL_READERS[f"{kind}-{logical}"](raw, schema, schema)
        except Exception:  # a default the schema's checks let through but fastavro cannot read
            return default
    if kind == "record" and isinstance(default, Mapping):
        types = {field["name"]: field["type"] for field in schema["fields"]}
        return {
            name: _logical_default(types[name], value, named) if name in types else value
            for name, value in default.items()
        }
    if kind == "array" and isinstance(default, list):
        return [_logical_default(schema["items"], item, named) for item in default]
    if kind == "map" and isinstance(default, Mapping):
        return {key: _logical_default(schema["values"], v, named) for key, v in default.items()}
    if isinstance(kind, (Mapping, list)) or (isinstance(kind, str) and kind in named):
        return _logical_default(kind, default, named)
    return default


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
        only = _only_branch_for(schema, value)  # a nullable type: coerced as that type, so
        return value if only is None else coerce_json(only, value, named)  # its error says why
    logical = applied_logical(schema)
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
            number = decimal.Decimal(str(value))
            return number.copy_abs() if number.is_zero() else number  # JSON -0 is 0
        if isinstance(value, str):
            if logical.startswith(("timestamp-", "local-timestamp-")):
                # A timestamp without an offset stays naive, so the encoder refuses it as the
                # SDK does: which zone was meant cannot be told (it was taken as UTC).
                return dt.datetime.fromisoformat(value)
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
