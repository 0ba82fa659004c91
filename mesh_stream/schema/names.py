"""Named Avro types as Avro resolves them, for exporters that list nested fields.

A record defined once may be used again by its name (``"work": "Address"``, ``["null",
"Address"]``); every use is that record, so every use lists its fields. A record used inside
itself is listed once: its inner use names it without unfolding it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The most record uses a document lists with their fields; beyond it, a record is named
#: without its fields, as a record inside itself is.
MAX_UNFOLDED = 2_000

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
#: The types whose values are records (Avro's ``error`` is a record too).
RECORD_KINDS = frozenset({"record", "error"})


def full_name(schema: Mapping[str, Any], namespace: str | None) -> str:
    """``namespace.name`` of a named type written inside ``namespace``."""
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    own = schema.get("namespace", namespace)
    return f"{own}.{name}" if own else name


def namespace_of(name: str) -> str | None:
    return name.rpartition(".")[0] or None


class NamedTypes:
    """Records, enums and fixed types by full name, so a later reference finds its definition."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.types: dict[str, Mapping[str, Any]] = {}
        #: Records :meth:`Scope.enter` has unfolded in this document so far.
        self.unfolded = 0
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
            return
        if not isinstance(schema, Mapping):
            return
        kind = schema.get("type")
        if kind in NAMED_KINDS and "name" in schema:
            full = full_name(schema, namespace)
            self.types.setdefault(full, schema)
            namespace = namespace_of(full)
        for field in schema.get("fields", []) if kind in ("record", "error") else []:
            self._collect(field.get("type"), namespace)
        for key in ("items", "values"):
            if key in schema:
                self._collect(schema[key], namespace)
        if isinstance(kind, (Mapping, list)):
            self._collect(kind, namespace)

    def lookup(self, name: str, namespace: str | None) -> tuple[str, Mapping[str, Any]] | None:
        """(full name, definition) of ``name`` referenced inside ``namespace``; a short name
        defined in another namespace is still found (the registry accepted the schema)."""
        if "." not in name and namespace:
            found = self.types.get(f"{namespace}.{name}")
            if found is not None:
                return f"{namespace}.{name}", found
        if name in self.types:
            return name, self.types[name]
        return next(
            ((full, t) for full, t in self.types.items() if full.rpartition(".")[2] == name), None
        )

    def resolve(self, name: str, namespace: str | None) -> Mapping[str, Any] | None:
        found = self.lookup(name, namespace)
        return found[1] if found is not None else None


@dataclass(frozen=True)
class Scope:
    """Where a type is read: the schema's named types, the enclosing namespace, and the
    records being listed around it (outermost first)."""

    names: NamedTypes
    namespace: str | None
    records: tuple[str, ...] = ()

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> Scope:
        """Inside the top-level record ``schema``."""
        top = full_name(schema, None)
        return cls(NamedTypes(schema), namespace_of(top), (top,))

    def resolve(self, name: str) -> tuple[Mapping[str, Any], Scope] | None:
        """The definition ``name`` refers to, and the scope to read it in (None for a
        primitive or an unknown name)."""
        if name in PRIMITIVES:
            return None
        found = self.names.lookup(name, self.namespace)
        if found is None:
            return None
        full, definition = found
        return definition, Scope(self.names, namespace_of(full), self.records)

    def enter(self, record: Mapping[str, Any]) -> Scope | None:
        """The scope of ``record``'s fields; None when it is already being listed around
        here (a recursive type), or when the document has unfolded :data:`MAX_UNFOLDED`
        records already (a valid schema nesting one record twice in each of 20 levels
        would otherwise list a million fields), so its fields are not unfolded again."""
        full = full_name(record, self.namespace)
        if full in self.records or self.names.unfolded >= MAX_UNFOLDED:
            return None
        self.names.unfolded += 1
        return Scope(self.names, namespace_of(full), (*self.records, full))

    def inside(self, record: Mapping[str, Any]) -> Scope:
        """The scope of ``record``'s fields, for reading them (names resolve in its
        namespace), with no guard: for walks that follow one path, not every use."""
        full = full_name(record, self.namespace)
        return Scope(self.names, namespace_of(full), self.records)
