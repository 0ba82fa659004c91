"""An Avro schema as people read it: a flat field table, and what changed between two versions.

The product page shows every field of a product's schema, nested ones as dotted paths
(``items.sku``, the same paths search and governance use), with a readable type
(``null | string``, ``array<OrderLine>``, ``map<string, long>``), its doc, its PII mark
(``"pii": true`` on the field), its default and its logical type. Two versions are compared
field by field (:func:`diff_fields`) and as JSON text (:func:`json_line_diff`). Pure functions
over decoded schema JSON: no registry, no HTTP, so every rule is tested on plain documents.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: Deeper nesting than this is not walked (registered schemas are bounded far below it).
MAX_DEPTH = 32
#: Longest rendering of a default value before it is cut (a huge default must not bloat pages).
MAX_DEFAULT_CHARS = 200
#: Most lines the raw JSON diff shows (two 5,000-field versions would make megabytes).
MAX_DIFF_LINES = 2000
#: Most JSON lines of the two versions together the line diff compares: difflib's cost grows
#: faster than their length (two 5,000-field versions took 8 s of CPU, h54).
MAX_DIFF_INPUT_LINES = 12_000
NAMED_KINDS = ("record", "enum", "fixed")


@dataclass(frozen=True)
class FieldRow:
    """One field of the table."""

    path: str
    type: str
    doc: str | None
    pii: bool
    has_default: bool
    #: the default as JSON text ("" without one)
    default: str
    logical_type: str | None
    #: 0 for a top-level field, 1 for a field of a nested record, ...
    depth: int


@dataclass(frozen=True)
class FieldChange:
    """One field in both versions, and each aspect that differs: (aspect, before, after)."""

    path: str
    changes: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[FieldRow, ...]
    removed: tuple[FieldRow, ...]
    changed: tuple[FieldChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True)
class DiffLine:
    """A line of the raw JSON diff; ``kind`` picks its style."""

    kind: Literal["add", "del", "same", "hunk", "file"]
    text: str


def short_name(name: str) -> str:
    """``io.meshstream.orders.OrderLine`` -> ``OrderLine``: the part people recognise."""
    return name.rsplit(".", 1)[-1]


def type_text(node: Any, depth: int = 0) -> str:
    """A readable Avro type: primitives as they are, ``a | b`` for unions, ``array<T>``,
    ``map<string, T>``, named types by their short name (enums with their symbols); a
    logical type shows as its underlying type (see :func:`logical_type`)."""
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(node, str):
        return short_name(node)
    if isinstance(node, list):
        return " | ".join(type_text(branch, depth + 1) for branch in node) or "(empty union)"
    if isinstance(node, Mapping):
        kind = node.get("type")
        if kind == "array":
            return f"array<{type_text(node.get('items'), depth + 1)}>"
        if kind == "map":
            return f"map<string, {type_text(node.get('values'), depth + 1)}>"
        name = node.get("name")
        if kind == "enum" and isinstance(name, str):
            symbols = node.get("symbols")
            shown = ", ".join(str(s) for s in symbols) if isinstance(symbols, list) else ""
            return f"enum {short_name(name)} {{{shown}}}"
        if kind == "fixed" and isinstance(name, str):
            return f"fixed {short_name(name)} ({node.get('size')} bytes)"
        if kind == "record" and isinstance(name, str):  # "record" said only at the top
            return f"record {short_name(name)}" if depth == 0 else short_name(name)
        if isinstance(kind, (str, list, Mapping)):
            return type_text(kind, depth + 1)
    return json.dumps(node)[:80]


def logical_type(node: Any, depth: int = 0) -> str | None:
    """The logical type(s) of a field's type, e.g. ``timestamp-millis`` or
    ``decimal(12, 2)``; those of a union's branches joined with ``|``; None without one."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, list):
        found = [text for b in node if (text := logical_type(b, depth + 1)) is not None]
        return " | ".join(found) or None
    if not isinstance(node, Mapping):
        return None
    name = node.get("logicalType")
    if isinstance(name, str):
        if name == "decimal":
            return f"decimal({node.get('precision')}, {node.get('scale', 0)})"
        return name
    kind = node.get("type")
    if isinstance(kind, (list, Mapping)):
        return logical_type(kind, depth + 1)
    return None


def _default_text(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_DEFAULT_CHARS else text[: MAX_DEFAULT_CHARS - 1] + "…"


def _full_name(node: Mapping[str, Any], namespace: str) -> str:
    name = str(node.get("name"))
    if "." in name:
        return name
    own = node.get("namespace")
    space = own if isinstance(own, str) else namespace
    return f"{space}.{name}" if space else name


class _Walker:
    """Walks a record's fields; a record referenced by name again later (``Address`` used
    twice) is expanded again, a record inside itself (a recursive type) is not."""

    def __init__(self) -> None:
        self.named: dict[str, Mapping[str, Any]] = {}

    def learn(self, node: Mapping[str, Any], namespace: str) -> str:
        full = _full_name(node, namespace)
        self.named.setdefault(full, node)
        self.named.setdefault(short_name(full), node)
        return full

    def records_within(
        self, node: Any, namespace: str, depth: int
    ) -> Iterator[tuple[Mapping[str, Any], str]]:
        """The records inside a field's type (through unions, arrays, maps and names), each
        with its full name."""
        if depth > MAX_DEPTH:
            return
        if isinstance(node, str):
            found = self.named.get(node) or self.named.get(f"{namespace}.{node}")
            if found is not None and found.get("type") == "record":
                yield found, _full_name(found, namespace)
        elif isinstance(node, list):
            for branch in node:
                yield from self.records_within(branch, namespace, depth + 1)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            if kind in NAMED_KINDS and isinstance(node.get("name"), str):
                full = self.learn(node, namespace)
                if kind == "record" and isinstance(node.get("fields"), list):
                    yield node, full
            elif kind == "array":
                yield from self.records_within(node.get("items"), namespace, depth + 1)
            elif kind == "map":
                yield from self.records_within(node.get("values"), namespace, depth + 1)
            elif isinstance(kind, (list, Mapping)):
                yield from self.records_within(kind, namespace, depth + 1)

    def walk(
        self, record: Mapping[str, Any], full: str, prefix: str, depth: int, inside: frozenset[str]
    ) -> Iterator[FieldRow]:
        namespace = full.rpartition(".")[0]
        for field in record.get("fields") or ():
            if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
                continue
            path = f"{prefix}{field['name']}"
            doc = field.get("doc")
            kind = field.get("type")
            yield FieldRow(
                path=path,
                type=type_text(kind),
                doc=doc if isinstance(doc, str) else None,
                pii=field.get("pii") is True,
                has_default="default" in field,
                default=_default_text(field["default"]) if "default" in field else "",
                logical_type=logical_type(kind),
                depth=depth,
            )
            if depth >= MAX_DEPTH:
                continue
            for nested, name in list(self.records_within(kind, namespace, 0)):
                if name not in inside:
                    yield from self.walk(nested, name, f"{path}.", depth + 1, inside | {name})


def schema_fields(schema: Any) -> list[FieldRow]:
    """Every field of ``schema`` (decoded JSON), nested records' fields after their parent.

    A schema that is not a record (a bare type) has no fields: an empty list.
    """
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return []
    walker = _Walker()
    full = walker.learn(schema, "")
    return list(walker.walk(schema, full, "", 0, frozenset({full})))


def _aspects(row: FieldRow) -> dict[str, str]:
    return {
        "type": row.type,
        "default": row.default if row.has_default else "(none)",
        "doc": row.doc or "",
        "logical type": row.logical_type or "",
        "PII": "yes" if row.pii else "no",
    }


def diff_fields(old: Any, new: Any) -> SchemaDiff:
    """Fields added, removed and changed (type, default, doc, logical type, PII) from schema
    ``old`` to schema ``new``, matched by dotted path; each list in the new schema's order
    (removed ones in the old schema's)."""
    before = {row.path: row for row in schema_fields(old)}
    after = {row.path: row for row in schema_fields(new)}
    added = tuple(row for path, row in after.items() if path not in before)
    removed = tuple(row for path, row in before.items() if path not in after)
    changed = []
    for path, row in after.items():
        if path not in before:
            continue
        was, now = _aspects(before[path]), _aspects(row)
        differences = tuple(
            (aspect, was[aspect], now[aspect]) for aspect in now if was[aspect] != now[aspect]
        )
        if differences:
            changed.append(FieldChange(path, differences))
    return SchemaDiff(added, removed, tuple(changed))


def pretty_json(schema: Any) -> list[str]:
    """``schema`` as indented JSON lines (the form the raw diff compares)."""
    return json.dumps(schema, indent=2, ensure_ascii=False).splitlines()


def json_line_diff(
    old: Any, new: Any, *, old_label: str, new_label: str, context: int = 3
) -> list[DiffLine]:
    """A unified diff of the two schemas' indented JSON (``difflib``), line by line, at most
    :data:`MAX_DIFF_LINES` of them and then one saying how many more there are. Versions
    longer than :data:`MAX_DIFF_INPUT_LINES` together get that one line alone."""
    before, after = pretty_json(old), pretty_json(new)
    if len(before) + len(after) > MAX_DIFF_INPUT_LINES:
        return [
            DiffLine(
                "hunk",
                f"… the two versions' JSON is {len(before) + len(after):,} lines, too long to "
                f"compare line by line here; the field changes above are complete",
            )
        ]
    lines: Sequence[str] = list(
        difflib.unified_diff(
            before,
            after,
            fromfile=old_label,
            tofile=new_label,
            n=context,
            lineterm="",
        )
    )
    found: list[DiffLine] = []
    for line in lines[:MAX_DIFF_LINES]:
        if line.startswith(("---", "+++")):
            found.append(DiffLine("file", line))
        elif line.startswith("@@"):
            found.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            found.append(DiffLine("add", line))
        elif line.startswith("-"):
            found.append(DiffLine("del", line))
        else:
            found.append(DiffLine("same", line))
    if len(lines) > MAX_DIFF_LINES:
        found.append(DiffLine("hunk", f"… {len(lines) - MAX_DIFF_LINES} more lines not shown"))
    return found
