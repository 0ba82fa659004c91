"""Read-only walks over a parsed Avro schema (the JSON document, as dicts and lists).

Policies need to visit every record and field, including records nested in unions, arrays
and maps, and to know which fields are marked ``"pii": true``. Field paths are dotted from
the root record (``customer.email``); arrays and maps are transparent in paths. Named types
referenced by name are not followed again: they were visited where they were defined.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh_stream.governance.model import Loc
from mesh_stream.schema.names import PRIMITIVES, Scope


@dataclass(frozen=True)
class RecordSpot:
    """A record definition: its full path from the root (empty for the root) and location."""

    name: str
    path: str
    loc: Loc
    record: Mapping[str, Any]


@dataclass(frozen=True)
class FieldSpot:
    """A field of some record, with its dotted path from the root record."""

    path: str
    loc: Loc
    field: Mapping[str, Any]

    @property
    def is_pii(self) -> bool:
        return marked_pii(self.field)


def marked_pii(field: Mapping[str, Any]) -> bool:
    """Whether ``field`` carries a ``pii`` mark: any value but ``false`` counts, so a mark
    written ``"true"`` or ``1`` is never taken for no mark (the pii-classification policy
    refuses such a mark; masking and lineage treat it as PII meanwhile)."""
    value = field.get("pii", False)
    return value is not None and value is not False


@dataclass(frozen=True)
class LogicalSpot:
    """A type carrying a ``logicalType``, with the dotted path of the field it types."""

    path: str
    loc: Loc
    logical: Any
    """The ``logicalType`` as written (not always a string: the schema is not trusted)."""
    base: Any
    """The type it annotates: ``"long"``, ``"fixed"``, ..."""


def root_name(schema: Mapping[str, Any]) -> str:
    """The root record's name (``?`` when the schema is not a named record)."""
    name = schema.get("name")
    return name if isinstance(name, str) else "?"


def _walk_type(type_: Any, loc: Loc, path: str) -> Iterator[RecordSpot | FieldSpot]:
    if isinstance(type_, list):
        for index, member in enumerate(type_):
            yield from _walk_type(member, (*loc, index), path)
    elif isinstance(type_, Mapping):
        kind = type_.get("type")
        if kind in ("record", "error"):
            yield from _walk_record(type_, loc, path)
        elif kind == "array":
            yield from _walk_type(type_.get("items"), (*loc, "items"), path)
        elif kind == "map":
            yield from _walk_type(type_.get("values"), (*loc, "values"), path)


def _walk_record(
    record: Mapping[str, Any], loc: Loc, path: str
) -> Iterator[RecordSpot | FieldSpot]:
    yield RecordSpot(str(record.get("name", "?")), path, loc, record)
    fields = record.get("fields")
    if not isinstance(fields, list):
        return
    for index, field in enumerate(fields):
        if not isinstance(field, Mapping):
            continue
        field_path = f"{path}.{field.get('name')}" if path else str(field.get("name"))
        field_loc: Loc = (*loc, "fields", index)
        yield FieldSpot(field_path, field_loc, field)
        yield from _walk_type(field.get("type"), (*field_loc, "type"), field_path)


def walk(schema: Mapping[str, Any]) -> Iterator[RecordSpot | FieldSpot]:
    """Every record and field of the schema, parents before children, in document order."""
    yield from _walk_type(schema, (), "")


def fields(schema: Mapping[str, Any]) -> list[FieldSpot]:
    return [spot for spot in walk(schema) if isinstance(spot, FieldSpot)]


def records(schema: Mapping[str, Any]) -> list[RecordSpot]:
    return [spot for spot in walk(schema) if isinstance(spot, RecordSpot)]


def top_level_fields(schema: Mapping[str, Any]) -> list[str]:
    """Names of the root record's own fields."""
    return [spot.path for spot in fields(schema) if "." not in spot.path]


def pii_paths(schema: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the fields marked ``"pii": true``, where each record is defined (see
    :func:`pii_within` for a path through a record used again by name)."""
    return [spot.path for spot in fields(schema) if spot.is_pii]


def has_field(schema: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` names a field, through records used by name and in unions too."""
    return _field_chain(schema, path) is not None


def pii_within(schema: Mapping[str, Any], path: str) -> list[str]:
    """The PII-marked paths that flow with field ``path``: itself, an ancestor or a child,
    following records used again by name (``work.city`` is as personal as ``home.city`` when
    both are an ``Address``) and every union branch that has the field. Children are listed
    once per record type, so a schema that nests one record twice in each of many levels
    costs its size, not 2**levels."""
    chain = _field_chain(schema, path)
    if chain is None:
        return []
    found = [prefix for prefix, fields in chain if any(marked_pii(f) for f, _ in fields)]
    seen: set[int] = set()
    for last, scope in chain[-1][1]:
        for child, field in _fields_below(last.get("type"), scope, path, seen):
            if marked_pii(field) and child not in found:
                found.append(child)
    return found


def _field_chain(
    schema: Mapping[str, Any], path: str
) -> list[tuple[str, list[tuple[Mapping[str, Any], Scope]]]] | None:
    """For each segment of ``path``, its path and the fields it names (one per union
    branch, record use or array item type that has it), each with the scope its type is
    read in; None when some segment is no field anywhere there."""
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        return None
    chain: list[tuple[str, list[tuple[Mapping[str, Any], Scope]]]] = []
    holders: list[tuple[Mapping[str, Any], Scope]] = [(schema, Scope.of(schema))]
    prefix = ""
    for segment in path.split("."):
        prefix = f"{prefix}.{segment}" if prefix else segment
        steps = [
            (field, scope)
            for record, scope in holders
            for field in _record_fields(record)
            if field.get("name") == segment
        ]
        if not steps:
            return None
        chain.append((prefix, steps))
        reached: dict[int, tuple[Mapping[str, Any], Scope]] = {}  # each record type once
        for field, scope in steps:
            for record, inner in _records_in(field.get("type"), scope):
                reached.setdefault(id(record), (record, inner))
        holders = list(reached.values())
    return chain


def selection_problem(schema: Mapping[str, Any], path: Sequence[str]) -> str | None:
    """Why CEL's ``message.<path>`` fails on every record of ``schema``, or None when it
    may not: a segment that no record there has as a field, or a field selected from a value
    that has none (a number, a string, a list). A map takes any key, so a path is not
    checked past one; a union is checked against each of its branches but null."""
    holders: list[tuple[Any, Scope]] = [(schema, Scope.of(schema))]
    shown = "message"
    for segment in path:
        kinds = [kind for type_, scope in holders for kind in _value_kinds(type_, scope)]
        if not kinds or any(name == "map" for name, _, _ in kinds):
            return None  # an unknown name (not ours to judge) or a map's key
        records = [(record, scope) for name, record, scope in kinds if name == "record"]
        if not records:
            names = " or ".join(dict.fromkeys(name for name, _, _ in kinds))
            return f"{shown} is {'an' if names[0] in 'aeiou' else 'a'} {names}, without fields"
        steps = [
            (field.get("type"), scope)
            for record, scope in records
            for field in _record_fields(record)
            if field.get("name") == segment
        ]
        if not steps:
            owners = ", ".join(dict.fromkeys(root_name(record) for record, _ in records))
            at = f" ({shown})" if shown != "message" else ""
            return f"{owners}{at} has no field {segment!r}"
        holders = steps
        shown = f"{shown}.{segment}"
    return None


def _value_kinds(type_: Any, scope: Scope) -> Iterator[tuple[str, Mapping[str, Any], Scope]]:
    """(kind, definition, scope of its fields) for each branch a value of ``type_`` may be,
    null aside: ``record``, ``map``, ``array``, ``enum``, ``fixed`` or a primitive's name."""
    if isinstance(type_, list):
        for member in type_:
            yield from _value_kinds(member, scope)
    elif isinstance(type_, str):
        if type_ in PRIMITIVES:
            if type_ != "null":
                yield type_, {}, scope
        else:
            found = scope.resolve(type_)
            if found is not None:
                yield from _value_kinds(*found)
    elif isinstance(type_, Mapping):
        kind = type_.get("type")
        if isinstance(kind, (list, Mapping)):
            yield from _value_kinds(kind, scope)
        elif kind in ("record", "error"):
            yield "record", type_, scope.inside(type_)
        elif kind in PRIMITIVES:  # a primitive with attributes, such as a logical type
            if kind == "null":
                return
            logical = type_.get("logicalType")
            yield (f"{kind} ({logical})" if isinstance(logical, str) else kind), type_, scope
        elif isinstance(kind, str):
            yield kind, type_, scope


def _record_fields(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fields = record.get("fields")
    return [f for f in fields if isinstance(f, Mapping)] if isinstance(fields, list) else []


def _records_in(type_: Any, scope: Scope) -> Iterator[tuple[Mapping[str, Any], Scope]]:
    """The records a value of ``type_`` may be (through names, unions, arrays and maps), each
    with the scope its fields' types are read in."""
    if isinstance(type_, list):
        for member in type_:
            yield from _records_in(member, scope)
    elif isinstance(type_, str):
        found = scope.resolve(type_)
        if found is not None:
            yield from _records_in(*found)
    elif isinstance(type_, Mapping):
        kind = type_.get("type")
        if kind in ("record", "error"):
            yield type_, scope.inside(type_)
        elif kind == "array":
            yield from _records_in(type_.get("items"), scope)
        elif kind == "map":
            yield from _records_in(type_.get("values"), scope)
        elif isinstance(kind, (list, Mapping)):
            yield from _records_in(kind, scope)


def _fields_below(
    type_: Any, scope: Scope, path: str, seen: set[int]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, field) of the fields under a value of ``type_``, each record type once."""
    for record, inner in _records_in(type_, scope):
        if id(record) in seen:
            continue
        seen.add(id(record))
        for field in _record_fields(record):
            child = f"{path}.{field.get('name')}"
            yield child, field
            yield from _fields_below(field.get("type"), inner, child, seen)


def _logical_in(type_: Any, loc: Loc, path: str) -> Iterator[LogicalSpot]:
    """The logical types in a field's type; records inside are left to :func:`walk`."""
    if isinstance(type_, list):
        for index, member in enumerate(type_):
            yield from _logical_in(member, (*loc, index), path)
    elif isinstance(type_, Mapping):
        kind = type_.get("type")
        if "logicalType" in type_:
            yield LogicalSpot(path, loc, type_["logicalType"], kind)
        if kind == "array":
            yield from _logical_in(type_.get("items"), (*loc, "items"), path)
        elif kind == "map":
            yield from _logical_in(type_.get("values"), (*loc, "values"), path)
        elif isinstance(kind, (list, Mapping)):  # a wrapped type: {"type": {...}}
            yield from _logical_in(kind, (*loc, "type"), path)


def logical_types(schema: Mapping[str, Any]) -> Iterator[LogicalSpot]:
    """Every ``logicalType`` on a field's type (in unions, array items and map values too),
    in document order."""
    for spot in fields(schema):
        yield from _logical_in(spot.field.get("type"), (*spot.loc, "type"), spot.path)
