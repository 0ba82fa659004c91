"""A record's Kafka key: the text of its ``key_field``, the same whatever form the value took.

A key decides a record's partition (its order among the key's records) and what compaction
keeps, so one value must always give one key, in any client. The key is therefore the text
of the value Avro writes for the field (fastavro's own conversion of a logical type, the one
the record's encoding used), not of the Python object given: a ``timestamp-millis`` field's
key is its epoch milliseconds whether a ``datetime`` or an ``int`` was given, a ``date`` its
day number, a ``time-millis`` its milliseconds since midnight, an ``int``/``long`` its
decimal digits, a ``string`` (``uuid`` included: a ``UUID`` is written as its canonical
text, a string as given) or enum symbol itself.

Types with no such text (floats, booleans, bytes, fixed, decimals, arrays, maps, records,
unions of several types) should not key a product: :func:`key_field_problem` says why, for
the ``key-field`` policy. A field that may be null keys a record with no key (Kafka then
picks its partition), which a compacted topic refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastavro.write import LOGICAL_WRITERS

from mesh_stream.schema.names import NAMED_KINDS, Scope

__all__ = ["KeyType", "field_key_text", "key_field_problem", "key_text", "key_type"]

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
#: Why each kind of type has no one text as a key.
_NO_ONE_TEXT = {
    "float": "a float has no one text (1.5 and 1.50, rounding)",
    "double": "a double has no one text (1.5 and 1.50, rounding)",
    "boolean": "a boolean keys at most two partitions' worth of records",
    "bytes": "bytes are no text",
    "fixed": "bytes are no text",
    "decimal": "a decimal has no one text (1.5 and 1.50)",
    "record": "a record's text depends on the client that prints it",
    "array": "a list's text depends on the client that prints it",
    "map": "a map's text depends on the client that prints it",
    "union": "a union's values have several types",
}


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
    scope = Scope.of(schema)
    for item in schema.get("fields", ()):
        if isinstance(item, Mapping) and item.get("name") == field:
            return _type_of(item.get("type"), scope)
    return None


def key_field_problem(kind: KeyType) -> str | None:
    """Why a field of type ``kind`` cannot key a product well (None when it can)."""
    if (kind.avro_type, kind.logical_type) in KEYABLE:
        return None
    reason = _NO_ONE_TEXT.get(kind.logical_type or "") or _NO_ONE_TEXT.get(
        kind.avro_type, "its values have no one text as a key"
    )
    return (
        f"its type is {kind.label}: {reason}, so the same value could key records "
        f"differently and other clients could not reproduce the key; key by a string, uuid, "
        f"enum, int, long, date, time or timestamp field"
    )


def key_text(kind: KeyType | None) -> Callable[[Any], str | bytes]:
    """The key of a (non-null) value of a field of type ``kind``, as Kafka gets it: the text
    of what Avro writes for it."""
    if kind is None or (kind.avro_type, kind.logical_type) not in KEYABLE:
        return _plain
    if kind.logical_type is None:
        return _number if kind.avro_type in ("int", "long") else _plain
    write = LOGICAL_WRITERS[f"{kind.avro_type}-{kind.logical_type}"]

    def written(value: Any) -> str | bytes:
        return _plain(write(value, {}))

    return written


def field_key_text(schema: Mapping[str, Any], field: str | None) -> Callable[[Any], str | bytes]:
    """:func:`key_text` of ``field`` of record ``schema`` (no ``key_field``: plain text)."""
    return key_text(key_type(schema, field) if field is not None else None)


def _plain(value: Any) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else str(value)


def _number(value: Any) -> str | bytes:
    return str(int(value)) if isinstance(value, int) else _plain(value)


def _type_of(node: Any, scope: Scope) -> KeyType:
    if isinstance(node, list):
        branches = [branch for branch in node if branch != "null"]
        nullable = len(branches) < len(node)
        if len(branches) != 1:
            labels = tuple(_type_of(b, scope).label for b in branches)
            return KeyType("union", nullable=nullable, union_of=labels)
        inner = _type_of(branches[0], scope)
        return KeyType(inner.avro_type, inner.logical_type, nullable or inner.nullable)
    if isinstance(node, str):
        found = scope.resolve(node)  # a named type defined before: its definition
        return _type_of(found[0], found[1]) if found is not None else KeyType(node)
    if isinstance(node, Mapping):
        kind = node.get("type")
        logical = node.get("logicalType")
        if isinstance(kind, str) and (kind in NAMED_KINDS or kind in ("array", "map")):
            if kind == "fixed" and logical == "decimal":
                return KeyType("fixed", "decimal")
            return KeyType(str(kind))
        inner = _type_of(kind, scope)
        applied = isinstance(logical, str) and f"{inner.avro_type}-{logical}" in LOGICAL_WRITERS
        return KeyType(inner.avro_type, logical if applied else None)  # Avro ignores the rest
    return KeyType(type(node).__name__)
