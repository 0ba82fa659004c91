"""A record's Kafka key: the text of its ``key_field``, the same whatever form the value took.

A key decides a record's partition (its order among the key's records) and what compaction
keeps, so one value must always give one key, in any client. The key is therefore the text
of the value Avro writes for the field, not of the Python object given: a
``timestamp-millis`` field's key is its epoch milliseconds whether a ``datetime`` or an
``int`` was given, a ``date`` its day number, a ``uuid`` the canonical lowercase form, an
``int``/``long`` its decimal digits, a ``string`` or enum symbol itself.

Types with no such text (floats, booleans, bytes, fixed, decimals, arrays, maps, records,
unions of several types) cannot key a product: :func:`key_field_problem` says why, for the
``key-field`` policy. A field that may be null keys a record with no key (Kafka then picks
its partition), which a compacted topic refuses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KeyType", "key_field_problem", "key_text", "key_type"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)
_US = dt.timedelta(microseconds=1)

#: The (Avro type, logical type) pairs a key may have.
KEYABLE = frozenset(
    {
        ("string", None),
        ("string", "uuid"),
        ("int", None),
        ("long", None),
        ("enum", None),
        ("int", "date"),
        ("int", "time-millis"),
        ("long", "time-micros"),
        ("long", "timestamp-millis"),
        ("long", "timestamp-micros"),
        ("long", "local-timestamp-millis"),
        ("long", "local-timestamp-micros"),
    }
)


@dataclass(frozen=True)
class KeyType:
    """What a key field holds: its Avro type, logical type, and whether it may be null."""

    avro_type: str
    logical_type: str | None = None
    nullable: bool = False
    union_of: tuple[str, ...] = ()
    """The branches of a union of several non-null types (no key type then)."""

    @property
    def label(self) -> str:
        if self.union_of:
            return f"a union of {', '.join(self.union_of)}"
        shown = f"{self.avro_type} ({self.logical_type})" if self.logical_type else self.avro_type
        return f"{shown} or null" if self.nullable else shown


def key_type(schema: Mapping[str, Any], field: str) -> KeyType | None:
    """The type of top-level ``field`` of record ``schema`` (None: no such field)."""
    named = dict(_named_types(schema, schema.get("namespace")))
    for item in schema.get("fields", ()):
        if isinstance(item, Mapping) and item.get("name") == field:
            return _type_of(item.get("type"), named, schema.get("namespace"))
    return None


def key_field_problem(kind: KeyType) -> str | None:
    """Why a field of type ``kind`` cannot key a product (None when it can)."""
    if (kind.avro_type, kind.logical_type) in KEYABLE:
        return None
    return (
        f"its type is {kind.label}, which has no one text as a Kafka key (the same value "
        f"could key records differently, e.g. 1.5 and 1.50, and other clients could not "
        f"reproduce it); key by a string, uuid, enum, int, long, date or timestamp field"
    )


def key_text(kind: KeyType | None) -> Callable[[Any], str | bytes]:
    """The key of a (non-null) value of a field of type ``kind``, as Kafka gets it."""
    if kind is None:
        return _plain
    convert = _CONVERTERS.get((kind.avro_type, kind.logical_type))
    return convert if convert is not None else _plain


def _plain(value: Any) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else str(value)


def _uuid(value: Any) -> str:
    if type(value) is str and _canonical_uuid(value):  # the common case, without parsing
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _canonical_uuid(text: str) -> bool:
    return (
        len(text) == 36
        and text[8] == text[13] == text[18] == text[23] == "-"
        and text == text.lower()
    )


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, int) else str(value)


def _timestamp(unit: dt.timedelta, epoch: dt.datetime) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if isinstance(value, dt.datetime):
            return str((value - epoch) // unit)
        return _number(value)

    return text


def _date(value: Any) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return str((value - _EPOCH_DAY).days)
    return _number(value)


def _time(unit: dt.timedelta) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if isinstance(value, dt.time):
            since_midnight = dt.timedelta(
                hours=value.hour,
                minutes=value.minute,
                seconds=value.second,
                microseconds=value.microsecond,
            )
            return str(since_midnight // unit)
        return _number(value)

    return text


_CONVERTERS: dict[tuple[str, str | None], Callable[[Any], str | bytes]] = {
    ("string", "uuid"): _uuid,
    ("int", None): _number,
    ("long", None): _number,
    ("int", "date"): _date,
    ("int", "time-millis"): _time(_MS),
    ("long", "time-micros"): _time(_US),
    ("long", "timestamp-millis"): _timestamp(_MS, _EPOCH),
    ("long", "timestamp-micros"): _timestamp(_US, _EPOCH),
    ("long", "local-timestamp-millis"): _timestamp(_MS, _NAIVE_EPOCH),
    ("long", "local-timestamp-micros"): _timestamp(_US, _NAIVE_EPOCH),
}


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _named_types(node: Any, namespace: str | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every named type (record, enum, fixed) under ``node``, by full and short name."""
    if isinstance(node, list):
        for branch in node:
            yield from _named_types(branch, namespace)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if kind in ("record", "error", "enum", "fixed") and isinstance(node.get("name"), str):
        space = node.get("namespace", namespace)
        full = _full_name(node["name"], space if isinstance(space, str) else None)
        yield full, node
        yield full.rsplit(".", 1)[-1], node
        namespace = full.rsplit(".", 1)[0] if "." in full else namespace
    if kind in ("record", "error"):
        for item in node.get("fields", ()):
            if isinstance(item, Mapping):
                yield from _named_types(item.get("type"), namespace)
    elif kind == "array":
        yield from _named_types(node.get("items"), namespace)
    elif kind == "map":
        yield from _named_types(node.get("values"), namespace)
    elif isinstance(kind, (Mapping, list)):
        yield from _named_types(kind, namespace)


def _type_of(node: Any, named: Mapping[str, Mapping[str, Any]], namespace: str | None) -> KeyType:
    if isinstance(node, list):
        branches = [branch for branch in node if branch != "null"]
        nullable = len(branches) < len(node)
        if len(branches) != 1:
            labels = tuple(_type_of(b, named, namespace).label for b in branches)
            return KeyType("union", nullable=nullable, union_of=labels)
        inner = _type_of(branches[0], named, namespace)
        return KeyType(inner.avro_type, inner.logical_type, nullable or inner.nullable)
    if isinstance(node, str):
        found = named.get(_full_name(node, namespace)) or named.get(node)
        return _type_of(found, named, namespace) if found is not None else KeyType(node)
    if isinstance(node, Mapping):
        kind = node.get("type")
        logical = node.get("logicalType")
        if kind in ("record", "error", "enum", "fixed", "array", "map"):
            if kind == "fixed" and logical == "decimal":
                return KeyType("fixed", "decimal")
            return KeyType(str(kind))
        inner = _type_of(kind, named, namespace)
        return KeyType(inner.avro_type, logical if isinstance(logical, str) else None)
    return KeyType(type(node).__name__)
