"""The plan's judgement, free of I/O: descriptor and schema diffs, type labels, field lines,
and the ownership and compatibility refusals (each names its policy, file:line and fix).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mesh_stream.descriptor import DataProduct
from mesh_stream.governance import avro_walk
from mesh_stream.governance.evolution import EvolutionVerdict
from mesh_stream.governance.registered import field_line
from mesh_stream.products_plan.model import (
    FieldChange,
    ProductPlan,
    Refusal,
    SchemaChange,
    SchemaField,
)
from mesh_stream.schema.avro import next_major_hint

ADMIN_PRINCIPAL = "admin"
"""The registry's administrator, who may write every domain's products."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to values; a list of objects (the descriptor's ``rules``) item by item,
    by name when each has its own (``rules['has-lines'].expr``), else by index, so a change
    shows where it is, not two long lists cut alike (h44)."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, (list, tuple)) and any(isinstance(item, Mapping) for item in value):
        named = [item.get("name") for item in value if isinstance(item, Mapping)]
        by_name = len(named) == len(value) and all(isinstance(n, str) for n in named)
        by_name = by_name and len(set(named)) == len(named)
        indexed: dict[str, Any] = {}
        for index, item in enumerate(value):
            # by name when every item has its own (rules): one inserted first is not shown
            # as every later one changed (h46)
            label = repr(item["name"]) if by_name else str(index)
            indexed.update(_flatten(item, f"{prefix}[{label}]"))
        return indexed
    return {prefix: list(value) if isinstance(value, tuple) else value}


def descriptor_changes(
    registered: Mapping[str, Any], local: Mapping[str, Any]
) -> list[FieldChange]:
    """Each descriptor field (dotted path) whose value differs, in path order."""
    before, after = _flatten(registered), _flatten(local)
    return [
        FieldChange(path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def type_label(avro_type: Any) -> str:
    """A short readable form of an Avro type: ``string``, ``null|string``, ``long
    (timestamp-millis)``, ``bytes (decimal(12,2))``, ``array<OrderLine>``, ``enum
    SalesChannel``."""
    if isinstance(avro_type, list):
        return "|".join(type_label(member) for member in avro_type)
    if not isinstance(avro_type, Mapping):
        return str(avro_type)
    kind = avro_type.get("type")
    logical = avro_type.get("logicalType")
    if logical == "decimal":  # precision and scale are the value's meaning: shown
        precision, scale = avro_type.get("precision"), avro_type.get("scale", 0)
        return f"{type_label(kind)} (decimal({precision},{scale}))"
    if logical:
        return f"{type_label(kind)} ({logical})"
    if kind in ("record", "error"):
        return str(avro_type.get("name", "record"))
    if kind in ("enum", "fixed"):
        return f"{kind} {avro_type.get('name', '')}".strip()
    if kind == "array":
        return f"array<{type_label(avro_type.get('items'))}>"
    if kind == "map":
        return f"map<{type_label(avro_type.get('values'))}>"
    return type_label(kind)


_SCALE = re.compile(r"decimal\(\d+,(\d+)\)")


def rescaled(before: str | None, after: str | None) -> bool:
    """Whether a type change moves a decimal to another scale (labels of :func:`type_label`):
    the same bytes then mean another number to a reader resolving with the new schema."""
    old, new = _SCALE.search(before or ""), _SCALE.search(after or "")
    return old is not None and new is not None and old.group(1) != new.group(1)


_PRECISION = re.compile(r"decimal\((\d+),\d+\)")


def narrowed(before: str | None, after: str | None) -> bool:
    """Whether a type change lowers a decimal's precision: values the old one took (and
    readers expect) no longer fit, so producers sending them are refused."""
    old, new = _PRECISION.search(before or ""), _PRECISION.search(after or "")
    return old is not None and new is not None and int(new.group(1)) < int(old.group(1))


def renamed_by_alias(schema: Mapping[str, Any], changes: Sequence[SchemaChange]) -> list[str]:
    """``new (was old)`` for each added field whose ``aliases`` name a removed one: Avro
    resolves the two by the alias, so the check accepts it, but an old reader of new records
    finds no field of its name and takes its default, silently."""
    removed = {c.field for c in changes if c.change == "removed"}
    found = []
    for spot in avro_walk.walk(schema):
        if not isinstance(spot, avro_walk.FieldSpot):
            continue
        field = spot.field
        if not isinstance(field.get("aliases"), list):
            continue
        prefix = spot.path.rpartition(".")[0]
        for alias in field["aliases"]:
            old = f"{prefix}.{alias}" if prefix else str(alias)
            if old in removed:
                found.append(f"{spot.path} (was {old})")
    return found


def accepted_but_silent(
    subject: str, changes: Sequence[SchemaChange], local: Mapping[str, Any]
) -> list[str]:
    """Warnings for changes the registry's compatibility check accepts that still change what
    some reader gets without a word: a decimal rescaled or its precision lowered, a field
    renamed through its aliases."""
    retyped = [c for c in changes if c.change == "type changed"]
    return [
        *(
            f"{subject}: field {c.field} is rescaled ({c.before} -> {c.after}): the registry's "
            f"check accepts it, but a reader resolving old records with the new schema (Java's, "
            f"or a deserializer given a reader schema) reads their digits at the new scale "
            f"(99.90 as 0.9990); mesh-stream's readers use the writer's. Prefer a new field, or "
            f"a new major version"
            for c in retyped
            if rescaled(c.before, c.after)
        ),
        *(
            f"{subject}: field {c.field}'s precision is lowered ({c.before} -> {c.after}): the "
            f"registry's check accepts it, but values the old precision took are refused from "
            f"now on, and readers that copy them into their own decimals may expect the old "
            f"range. Keep the precision, or make it a new field or major version"
            for c in retyped
            if narrowed(c.before, c.after)
        ),
        *(
            f"{subject}: field {renamed} is renamed through its aliases: the registry's check "
            f"accepts it, but a reader still on the old schema finds no field of the old name "
            f"in new records and reads its default, silently. Prefer a new field beside the "
            f"old one"
            for renamed in renamed_by_alias(local, changes)
        ),
    ]


def schema_fields(schema: Mapping[str, Any]) -> list[SchemaField]:
    """Every field of a record schema (nested ones as dotted paths), in document order."""
    return [
        SchemaField(
            spot.path,
            type_label(spot.field.get("type")),
            doc if isinstance(doc := spot.field.get("doc"), str) else None,
            spot.is_pii,
        )
        for spot in avro_walk.fields(schema)
    ]


def schema_changes(registered: Mapping[str, Any], local: Mapping[str, Any]) -> list[SchemaChange]:
    """What changed from the registered schema to the local one: fields added, removed,
    retyped, given another default or doc, and the record's own name, doc and field order."""
    fields_before, fields_after = schema_fields(registered), schema_fields(local)
    before = {f.name: f.type for f in fields_before}
    after = {f.name: f.type for f in fields_after}
    changes = [
        SchemaChange(name, "removed", before=before[name]) for name in before if name not in after
    ]
    inside_before, inside_after = _enums_and_fixed(registered), _enums_and_fixed(local)
    for name, kind in after.items():
        if name not in before:
            changes.append(SchemaChange(name, "added", after=kind))
        elif before[name] != kind:
            changes.append(SchemaChange(name, "type changed", before[name], kind))
        else:
            inside = _inside_change(inside_before.get(name, {}), inside_after.get(name, {}))
            if inside:  # the same label, another enum's symbols or fixed's size
                changes.append(SchemaChange(name, "type changed", kind, f"{kind} ({inside})"))
    defaults_before, defaults_after = _defaults(registered), _defaults(local)
    for name in before.keys() & after.keys():
        old, new = defaults_before.get(name, _NO_DEFAULT), defaults_after.get(name, _NO_DEFAULT)
        if old != new:  # what a reader fills in for records without the field (h44: unshown)
            changes.append(
                SchemaChange(name, "default changed", _default_text(old), _default_text(new))
            )
    docs_before = {f.name: f.doc for f in fields_before}
    docs_after = {f.name: f.doc for f in fields_after}
    changes += [
        SchemaChange(name, "doc changed", _doc_text(docs_before[name]), _doc_text(doc))
        for name, doc in docs_after.items()
        if name in docs_before and docs_before[name] != doc
    ]
    changes += _record_changes(registered, local)
    if not changes and registered != local:  # aliases, a custom attribute, ...: not nothing
        changes.append(SchemaChange(WHOLE_SCHEMA, "changed elsewhere"))
    return sorted(changes, key=lambda c: c.field)


#: What a change of the schema itself (not of one of its fields) is listed under.
WHOLE_SCHEMA = "(schema)"


def _record_changes(registered: Mapping[str, Any], local: Mapping[str, Any]) -> list[SchemaChange]:
    """The changes of the record itself a plan lists (a changed schema listed nothing when
    only its name, namespace, doc or field order had changed)."""
    found: list[SchemaChange] = []
    old_name, new_name = _full_name(registered), _full_name(local)
    if old_name != new_name:  # readers resolving by name (Java's specific records) notice
        found.append(SchemaChange(WHOLE_SCHEMA, "renamed", old_name, new_name))
    if registered.get("doc") != local.get("doc"):
        found.append(
            SchemaChange(
                WHOLE_SCHEMA,
                "doc changed",
                _doc_text(registered.get("doc")),
                _doc_text(local.get("doc")),
            )
        )
    fields_before, fields_after = _top_level_names(registered), _top_level_names(local)
    kept = set(fields_before) & set(fields_after)
    order_before = [name for name in fields_before if name in kept]
    order_after = [name for name in fields_after if name in kept]
    if order_before != order_after:  # the binary layout changes; resolution is by name
        moved = next(a for a, b in zip(order_before, order_after, strict=True) if a != b)
        found.append(
            SchemaChange(
                WHOLE_SCHEMA,
                "fields reordered",
                f"{moved} was field {order_before.index(moved) + 1}",
                f"field {order_after.index(moved) + 1}",
            )
        )
    return found


def _top_level_names(schema: Mapping[str, Any]) -> list[str]:
    """The record's own fields, in order (a nested record's order is "changed elsewhere")."""
    fields = schema.get("fields")
    if not isinstance(fields, list):
        return []
    return [str(f.get("name")) for f in fields if isinstance(f, Mapping)]


def _full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _doc_text(doc: Any) -> str:
    """A doc as a plan line shows it: quoted, cut to 40 characters."""
    if not isinstance(doc, str):
        return "(no doc)"
    return json.dumps(doc if len(doc) <= 40 else doc[:39] + "…", ensure_ascii=False)


_NO_DEFAULT = "(none)"


def _defaults(schema: Mapping[str, Any]) -> dict[str, str]:
    """Per field path, its default as canonical JSON (fields without one left out); a whole
    float as the int (``0.0`` and ``0`` are the same default of a double, h46)."""
    return {
        spot.path: json.dumps(_whole(spot.field["default"]), sort_keys=True)
        for spot in avro_walk.walk(schema)
        if isinstance(spot, avro_walk.FieldSpot) and "default" in spot.field
    }


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _default_text(value: str) -> str:
    return value if value == _NO_DEFAULT else f"default {value}"


def _enums_and_fixed(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per field path, the enums (name -> symbols) and fixed types (name -> size) its type
    defines, through unions, arrays and maps: what a type label leaves out."""
    found: dict[str, dict[str, Any]] = {}

    def collect(node: Any, into: dict[str, Any]) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch, into)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            if kind == "enum":
                into[str(node.get("name"))] = list(node.get("symbols") or [])
            elif kind == "fixed":
                into[str(node.get("name"))] = node.get("size")
            elif kind == "array":
                collect(node.get("items"), into)
            elif kind == "map":
                collect(node.get("values"), into)

    for spot in avro_walk.fields(schema):
        inner: dict[str, Any] = {}
        collect(spot.field.get("type"), inner)
        if inner:
            found[spot.path] = inner
    return found


def _inside_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What changed inside same-named enums and fixed types: symbols added and removed, or
    a size ("" when nothing did)."""
    said: list[str] = []
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            added = [str(s) for s in new if s not in old]
            removed = [str(s) for s in old if s not in new]
            parts = [f"+ {', '.join(added)}"] if added else []
            parts += [f"- {', '.join(removed)}"] if removed else []
            said.append(f"symbols {'; '.join(parts) or 'reordered'}")
        else:
            said.append(f"size {old} -> {new}")
    return "; ".join(said)


def ownership_refusal(
    product: DataProduct, principal: str | None, descriptor_file: str, domain_line: int | None
) -> Refusal | None:
    """A refusal when ``principal`` may not write ``product`` (the registry would answer 403)."""
    if principal is None or principal in (ADMIN_PRINCIPAL, product.domain):
        return None
    return Refusal(
        policy="ownership",
        message=f"product {product.name} belongs to domain {product.domain}, but "
        f"MESH_REGISTRY_PRINCIPAL is {principal}: the registry answers 403 to writes of "
        f"another domain's products",
        fix=f"apply with {product.domain}'s credential (MESH_REGISTRY_PRINCIPAL={product.domain}"
        f" and its MESH_REGISTRY_TOKEN), or move the descriptor to {product.domain}'s project",
        file=descriptor_file,
        line=domain_line,
        product=product.name,
    )


def compatibility_refusal(
    plan: ProductPlan,
    messages: Sequence[str],
    schema_text: str,
    next_version: int,
    registered_text: str | None = None,
) -> Refusal:
    """The refusal of an incompatible schema change, at the line of the first change that
    can break the level (a retype, say; not an optional field added beside it, h58)."""
    suspects = breaking_suspects(
        plan.schema_changes, schema_text, plan.compatibility_level, registered_text
    )
    first = suspects[0] if suspects else None
    line = field_line(schema_text, first.field) if first is not None else None
    changed = "; ".join(c.describe() for c in suspects) or "the schema"
    return Refusal(
        policy="schema-compatibility",
        message=f"{plan.subject}: {changed} breaks {plan.compatibility_level} against the "
        f"registered version {plan.registered_version} ({'; '.join(messages)})",
        fix="give a new field a default, keep removed fields (or give them defaults), keep "
        f"field types; or make it a new major version (`version: {next_version}` in the "
        "descriptor: a new topic and subject)",
        file=plan.schema_file,
        line=line or 1,
        product=plan.name,
    )


#: Avro's promotions: a reader of the key's type reads data written as any of its values.
_READS_PROMOTED = {
    "long": {"int"},
    "float": {"int", "long"},
    "double": {"int", "long", "float"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _promoted(before: str | None, after: str | None) -> bool:
    """Whether a reader of ``after`` reads data written as ``before`` by promotion alone
    (``int -> long``, ``null|int -> null|long``), branch by branch."""
    if before is None or after is None:
        return False
    old, new = before.split("|"), after.split("|")
    return len(old) == len(new) and all(
        a == b or a in _READS_PROMOTED.get(b, ()) for a, b in zip(old, new, strict=True)
    )


def breaking_suspects(
    changes: Sequence[SchemaChange],
    schema_text: str,
    level: str | None,
    registered_text: str | None = None,
) -> list[SchemaChange]:
    """The ``changes`` that can break compatibility ``level``, fields first: a retype (not a
    promotion, at a BACKWARD level) or a renaming; a field added without a default where new
    readers must fill it in (BACKWARD, FULL), unless its record was added with it; a field
    removed that had no default where old readers need it (FORWARD, FULL). All of them when
    none of these is there: the registry's verdict stands either way, this only chooses what
    a refusal points at and calls breaking."""
    level = (level or "BACKWARD").upper()
    backward = level.startswith(("BACKWARD", "FULL"))
    forward = level.startswith(("FORWARD", "FULL"))
    local_defaults = _parsed_defaults(schema_text)
    registered_defaults = _parsed_defaults(registered_text)
    added = [c.field for c in changes if c.change == "added"]
    removed = [c.field for c in changes if c.change == "removed"]

    def inside(path: str, fields: Sequence[str]) -> bool:
        return any(path.startswith(f"{other}.") for other in fields)

    def suspect(change: SchemaChange) -> bool:
        if change.change == "type changed":
            return forward or not _promoted(change.before, change.after)
        if change.change == "added":
            return (
                backward and change.field not in local_defaults and not inside(change.field, added)
            )
        if change.change == "removed":
            return (
                forward
                and change.field not in registered_defaults
                and not inside(change.field, removed)
            )
        return change.change == "renamed"

    suspects = [change for change in changes if suspect(change)]
    return sorted(suspects or changes, key=lambda c: c.field == WHOLE_SCHEMA)


def _parsed_defaults(schema_text: str | None) -> dict[str, str]:
    if schema_text is None:
        return {}
    try:
        return _defaults(json.loads(schema_text))
    except (ValueError, TypeError, AttributeError):
        return {}


def consumer_refusal(plan: ProductPlan, verdict: EvolutionVerdict, schema_text: str) -> Refusal:
    """The refusal of a change that breaks the products reading this one (the registry's
    409), at the line of the first field it names (line 1 when that field was removed)."""
    fields = [b.field for b in verdict.lineage] + [p.field for p in verdict.problems if p.field]
    line = field_line(schema_text, fields[0]) if fields else None
    return Refusal(
        policy="compatibility-with-consumers",
        message=verdict.message(),
        fix="each reason above names its fix; a change every registered version reads (a new "
        "optional field with a default) is always accepted, otherwise "
        + next_major_hint(verdict.subject),
        file=plan.schema_file,
        line=line or 1,
        product=plan.name,
    )
