"""The Avro specification's rules that the ``avro`` and ``fastavro`` parsers leave unchecked.

Each parser accepts some schemas the specification forbids: field names such as ``1abc``
or ``a-b``, ``"symbols": "A"``, an ``int`` default of ``"x"``, ``null`` or 2**40, a union
default that does not match the union's *first* branch, ``"aliases": "x"``. A registry that stores
such a schema hands every Avro implementation a contract some of them refuse, so
:func:`check_schema` walks the JSON document once and refuses them, naming the field path
(``orders.OrderPlaced.items[].sku: default "x" is not an int``).

It also bounds what one schema may cost: bytes, fields, named types and nesting depth
(:class:`SchemaLimits`), because the parsers are recursive and super-linear in the number
of fields, and strings that cannot be encoded as UTF-8 (lone
surrogates such as ``"\\ud800"``), which would fail later when the schema is stored or sent,
and arrays whose items take no bytes (``null``, a zero-size ``fixed``, a record of only such):
six bytes of a record could claim a billion items, which fastavro's reader (and Java's)
would build until memory runs out, so one hostile record could stop every consumer.
It refuses what no record could ever be written to, which a producer would only find out at
its first send: an enum without symbols, and a record that needs itself again through
fields that must have a value (:meth:`_Checker.check_finite`).

Paths: a record's full name, then ``.field`` per field, ``[]`` into array items and ``{}``
into map values (union branches add nothing: a field's record branch is still ``.field``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mesh_stream.errors import SchemaError
from mesh_stream.schema.names import NAMED_KINDS, RECORD_KINDS

__all__ = ["MAX_SCHEMA_BYTES", "MAX_SCHEMA_DEPTH", "MAX_SCHEMA_FIELDS", "MAX_SCHEMA_NAMED_TYPES"]
__all__ += ["DEFAULT_LIMITS", "UNLIMITED", "SchemaLimits", "check_schema", "check_utf8"]

#: 1 MiB of schema JSON: the largest real contracts are a few hundred KiB.
MAX_SCHEMA_BYTES = 1024 * 1024
#: Record fields over the whole schema. The ``avro`` parser is quadratic in a record's
#: fields (it checks names against a list: 9,000 fields cost about a second of CPU), so the
#: bound keeps one strict parse (this walk, avro and fastavro) under a second.
MAX_SCHEMA_FIELDS = 5_000
#: Records, enums and fixed types defined in one schema.
MAX_SCHEMA_NAMED_TYPES = 1_000
#: Types nested in types (record -> field -> array -> record ...); the parsers recurse per level.
MAX_SCHEMA_DEPTH = 64

PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ORDERS = frozenset(("ascending", "descending", "ignore"))
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
#: The largest fixed size: Java's Avro (Kafka Connect's, Confluent's Java serdes') reads an int.
MAX_FIXED = 2**31 - 1
#: JSON nesting allowed inside a default or a custom property (values, not types).
MAX_VALUE_DEPTH = 100


LOGICAL_TYPES: dict[str, tuple[str, ...]] = {
    "date": ("int",),
    "decimal": ("bytes", "fixed"),
    "local-timestamp-micros": ("long",),
    "local-timestamp-millis": ("long",),
    "time-micros": ("long",),
    "time-millis": ("int",),
    "timestamp-micros": ("long",),
    "timestamp-millis": ("long",),
    "uuid": ("string",),
}
"""The logical types the SDK's codec (fastavro) converts, with the types each applies to."""


@dataclass(frozen=True)
class SchemaLimits:
    """What one schema may cost; ``None`` switches a bound off (schemas stored earlier)."""

    max_bytes: int | None = MAX_SCHEMA_BYTES
    max_fields: int | None = MAX_SCHEMA_FIELDS
    max_named_types: int | None = MAX_SCHEMA_NAMED_TYPES
    max_depth: int | None = MAX_SCHEMA_DEPTH


DEFAULT_LIMITS = SchemaLimits()
UNLIMITED = SchemaLimits(None, None, None, None)


def _show(value: Any, limit: int = 60) -> str:
    """A value as JSON for a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_utf8(document: Any, root: str = "(schema)") -> None:
    """Refuse any string (key or value) that UTF-8 cannot encode, e.g. a lone surrogate.

    Iterative, so a deeply nested document cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str]] = [(document, root)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            _utf8(node, where)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if isinstance(key, str):
                    _utf8(key, f"{where}: key")
                stack.append((value, f"{where}.{key}" if isinstance(key, str) else where))
        elif isinstance(node, (list, tuple)):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))


def _utf8(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        raise SchemaError(
            f"{where}: the string {_show(text, 40)} holds U+{bad:04X} at character "
            f"{exc.start + 1}, which UTF-8 cannot encode (a lone surrogate); use the "
            f"character itself or a valid surrogate pair"
        ) from None


def _value_depth(value: Any) -> int:
    """Nesting depth of a JSON value, stopping early once it exceeds the bound."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
        if deepest > MAX_VALUE_DEPTH:
            break
    return deepest


class _Checker:
    """One walk over a schema document: names, types, defaults and the limits."""

    def __init__(self, limits: SchemaLimits) -> None:
        self.limits = limits
        self.named: dict[str, Mapping[str, Any]] = {}
        self.fields = 0
        self.loc: list[str | int] = []  # JSON path of the node being checked
        #: Whether the walk is in the schema judged (not in one it references).
        self.own_types = True
        #: Each record of the schema judged: (full name, path, JSON path), in definition order.
        self.own_records: list[tuple[str, str, tuple[str | int, ...]]] = []

    @contextmanager
    def at(self, *parts: str | int) -> Iterator[None]:
        self.loc.extend(parts)
        try:
            yield
        finally:
            del self.loc[-len(parts) :]

    def error(self, message: str, *more: str | int) -> SchemaError:
        """A refusal carrying the JSON path of the problem (``mesh lint`` shows its line)."""
        return SchemaError(message, loc=(*self.loc, *more))

    # -- names ------------------------------------------------------------------------

    def _fullname(self, node: Mapping[str, Any], namespace: str, where: str) -> tuple[str, str]:
        """(full name, namespace for nested definitions) of a named type, checked."""
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise self.error(f"{where}: a {node.get('type')} needs a `name` (a string)")
        own = node.get("namespace")
        if own is not None and not isinstance(own, str):
            raise self.error(f"{where}: namespace {_show(own)} is not a string")
        if "." in name:
            space, _, short = name.rpartition(".")
        else:
            space, short = (own if own is not None else namespace), name
            if own == "" and namespace and self.own_types:
                raise self.error(
                    f'{where}: `namespace: ""` (the null namespace) inside namespace '
                    f"{namespace!r}: the registry's Avro parser would keep the type as "
                    f"{namespace}.{short}, so the schema served would name another type than "
                    f"the one written; give the type a namespace of its own, or define it "
                    f"outside every namespace",
                    "namespace",
                )
        self._check_name(short, where, "name")
        if space:
            for part in space.split("."):
                if not NAME.match(part):
                    raise self.error(
                        f"{where}: namespace {_show(space)} is not dot-separated names "
                        f"([A-Za-z_][A-Za-z0-9_]* each)"
                    )
        if short in PRIMITIVES:
            raise self.error(f"{where}: {short!r} is a primitive type and cannot name a type")
        full = f"{space}.{short}" if space else short
        if full in self.named:
            raise self.error(f"{where}: the name {full!r} is already defined in this schema")
        return full, space

    def _check_name(self, name: object, where: str, what: str) -> None:
        if not isinstance(name, str) or not NAME.match(name):
            raise self.error(
                f"{where}: {what} {_show(name)} is not a valid Avro name (a letter or `_`, "
                f"then letters, digits or `_`)"
            )

    def _check_aliases(self, node: Mapping[str, Any], where: str, *, dotted: bool) -> None:
        if "aliases" not in node:
            return
        aliases = node["aliases"]
        if not isinstance(aliases, list):
            raise self.error(f"{where}: aliases {_show(aliases)} must be a list of names")
        for alias in aliases:
            parts = alias.split(".") if dotted and isinstance(alias, str) else [alias]
            for part in parts:
                self._check_name(part, where, f"alias {_show(alias)}:")

    def _check_doc(self, node: Mapping[str, Any], where: str) -> None:
        if "doc" in node and not isinstance(node["doc"], str):
            raise self.error(f"{where}: doc {_show(node['doc'])} must be a string")

    def resolve(self, name: str, namespace: str) -> Mapping[str, Any] | None:
        if "." not in name and namespace:
            found = self.named.get(f"{namespace}.{name}")
            if found is not None:
                return found
        return self.named.get(name)

    # -- types ------------------------------------------------------------------------

    def schema(self, node: Any, where: str, namespace: str, depth: int) -> None:
        """Check one type (primitive name, reference, union or complex type)."""
        limit = self.limits.max_depth
        if limit is not None and depth > limit:
            raise self.error(
                f"{where}: types nested more than {limit} levels deep (max_depth {limit})"
            )
        if isinstance(node, str):
            if node not in PRIMITIVES and self.resolve(node, namespace) is None:
                raise self.error(
                    f"{where}: unknown type {_show(node)} (neither a primitive type nor a "
                    f"named type defined earlier in the schema)"
                )
        elif isinstance(node, list):
            self._union(node, where, namespace, depth)
        elif isinstance(node, Mapping):
            self._complex(node, where, namespace, depth)
        else:
            raise self.error(
                f"{where}: {_show(node)} is not a schema (a type name, a JSON object or a "
                f"union list)"
            )

    def _union(self, branches: list[Any], where: str, namespace: str, depth: int) -> None:
        if not branches:
            raise self.error(f"{where}: a union needs at least one branch (`[]` holds no value)")
        seen: set[str] = set()
        for index, branch in enumerate(branches):
            if isinstance(branch, list):
                raise self.error(f"{where}: union branch {index + 1} is a union (not allowed)")
            with self.at(index):
                self.schema(branch, where, namespace, depth + 1)
            key = self._branch_key(branch, namespace)
            if key in seen:
                raise self.error(
                    f"{where}: union has two branches of type {key!r} (branch {index + 1})"
                )
            seen.add(key)

    def _branch_key(self, branch: Any, namespace: str) -> str:
        """What must be unique in a union: the type, or the full name of a named type."""
        if isinstance(branch, str):
            if branch in PRIMITIVES:
                return branch
            found = self.resolve(branch, namespace)
            return str(found.get("__fullname", branch)) if found is not None else branch
        kind = branch.get("type")
        if kind in NAMED_KINDS:
            return self.named_fullname(branch, namespace)
        if isinstance(kind, str) and kind not in PRIMITIVES and kind not in ("array", "map"):
            return self._branch_key(kind, namespace)
        return str(kind)

    def _takes_no_bytes(self, node: Any, namespace: str, seen: frozenset[str]) -> bool:
        """Whether every value of ``node`` (walked already, so its named types are known) is
        encoded in zero bytes; names resolve as the walk resolved them."""
        found: Mapping[str, Any] | None = None
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node == "null"
            found = self.resolve(node, namespace)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            if isinstance(kind, (list, Mapping)):
                return self._takes_no_bytes(kind, namespace, seen)
            if kind == "null":
                return True
            if kind in NAMED_KINDS:
                found = self.resolve(self.named_fullname(node, namespace), "")
            elif isinstance(kind, str) and kind not in PRIMITIVES and kind not in ("array", "map"):
                return self._takes_no_bytes(kind, namespace, seen)
        if found is None or str(found["__fullname"]) in seen:
            return False  # a union (its branch index takes a byte), or a type that does
        inner, space = seen | {str(found["__fullname"])}, str(found["__namespace"])
        if found.get("type") == "fixed":
            return found.get("size") == 0
        return found.get("type") == "record" and all(
            isinstance(field, Mapping) and self._takes_no_bytes(field.get("type"), space, inner)
            for field in found.get("fields", ())
        )

    @staticmethod
    def named_fullname(node: Mapping[str, Any], namespace: str) -> str:
        name = str(node.get("name", ""))
        if "." in name:
            return name
        space = node.get("namespace", namespace)
        return f"{space}.{name}" if space else name

    def _complex(self, node: Mapping[str, Any], where: str, namespace: str, depth: int) -> None:
        kind = node.get("type")
        if isinstance(kind, (list, Mapping)):
            # {"type": {...}} or {"type": [...]}: a type wrapped in an object, which the avro
            # package (and so this registry) cannot read: said here with the path
            with self.at("type"):
                raise self.error(
                    f"{where}: `type` holds a type ({_show(kind)}), not a type name; write "
                    f"that type in place of the object around it"
                )
        if not isinstance(kind, str):
            raise self.error(f"{where}: `type` {_show(kind)} is not a type name")
        self._check_doc(node, where)
        if node.get("logicalType") == "decimal":
            self._check_decimal(node, where)
        if kind in PRIMITIVES:
            return
        if kind == "array":
            if "items" not in node:
                raise self.error(f"{where}: an array needs `items`")
            with self.at("items"):
                self.schema(node["items"], f"{where}[]", namespace, depth + 1)
                if self.own_types and self._takes_no_bytes(node["items"], namespace, frozenset()):
                    raise self.error(
                        f"{where}: an array of items that take no bytes (null, a fixed of size "
                        f"0, a record of only such fields): a record of a few bytes could "
                        f"claim a billion of them, which every reader would build; hold a "
                        f"count (an int) instead"
                    )
        elif kind == "map":
            if "values" not in node:
                raise self.error(f"{where}: a map needs `values`")
            with self.at("values"):
                self.schema(node["values"], f"{where}{{}}", namespace, depth + 1)
        elif kind in NAMED_KINDS:
            self._named(node, kind, where, namespace, depth)
        elif self.resolve(kind, namespace) is None:
            raise self.error(
                f"{where}: unknown type {_show(kind)} (neither a primitive type nor a named "
                f"type defined earlier in the schema)"
            )

    def _check_decimal(self, node: Mapping[str, Any], where: str) -> None:
        """A decimal's precision and scale: fastavro (the SDK's codec) refuses bad ones, where
        the specification would ignore the logical type and change what values mean."""
        precision, scale = node.get("precision"), node.get("scale", 0)
        if (
            isinstance(precision, bool)
            or not isinstance(precision, int)
            or not 1 <= precision <= MAX_FIXED
        ):
            raise self.error(
                f"{where}: decimal precision {_show(precision)} must be an integer from 1 to "
                f"{MAX_FIXED} (Java's Avro, Kafka Connect's, reads it as an int)"
            )
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= precision:
            raise self.error(
                f"{where}: decimal scale {_show(scale)} must be an integer from 0 to the "
                f"precision ({precision})"
            )
        size = node.get("size")
        if node.get("type") == "fixed" and isinstance(size, int) and not isinstance(size, bool):
            # the most digits a signed two's-complement number of that many bytes always holds
            most = len(str(2 ** (8 * size - 1) - 1)) - 1 if 0 < size <= 1024 else None
            if size == 0 or (most is not None and precision > most):
                raise self.error(
                    f"{where}: decimal precision {precision} does not fit a fixed of {size} "
                    f"bytes (at most {most or 0} digits); make the fixed larger or the "
                    f"precision smaller"
                )

    def _named(
        self, node: Mapping[str, Any], kind: str, where: str, namespace: str, depth: int
    ) -> None:
        full, space = self._fullname(node, namespace, where)
        where = full if where == "(schema)" else where
        limit = self.limits.max_named_types
        if limit is not None and len(self.named) >= limit:
            raise self.error(
                f"{where}: more than {limit} named types (records, enums, fixed) in one schema "
                f"(max_named_types {limit})"
            )
        self._check_aliases(node, where, dotted=True)
        # Defined before its fields are walked: a record may refer to itself.
        self.named[full] = {**node, "__fullname": full, "__namespace": space}
        if kind == "enum":
            self._enum(node, where)
        elif kind == "fixed":
            size = node.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FIXED:
                raise self.error(
                    f"{where}: fixed size {_show(size)} must be an integer from 0 to "
                    f"{MAX_FIXED} (Java's Avro, Kafka Connect's, reads it as an int)"
                )
        else:
            if self.own_types:
                self.own_records.append((full, where, tuple(self.loc)))
            self._record(node, where, space, depth)

    def _enum(self, node: Mapping[str, Any], where: str) -> None:
        symbols = node.get("symbols")
        if not isinstance(symbols, list):
            raise self.error(f"{where}: enum symbols {_show(symbols)} must be a list of names")
        if not symbols and self.own_types:
            raise self.error(f"{where}: an enum needs a symbol (one without any holds no value)")
        seen: set[str] = set()
        for symbol in symbols:
            self._check_name(symbol, where, "enum symbol")
            if symbol in seen:
                raise self.error(f"{where}: enum symbol {symbol!r} appears twice")
            seen.add(symbol)
        if "default" in node and node["default"] not in seen:
            raise self.error(
                f"{where}: enum default {_show(node['default'])} is not one of its symbols"
            )

    def _record(self, node: Mapping[str, Any], where: str, namespace: str, depth: int) -> None:
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise self.error(f"{where}: a record needs `fields`, a list of field objects")
        names: set[str] = set()
        for index, field in enumerate(fields):
            with self.at("fields", index):
                self._field(field, index, where, names, namespace, depth)

    def _field(
        self,
        field: Any,
        index: int,
        where: str,
        names: set[str],
        namespace: str,
        depth: int,
    ) -> None:
        if not isinstance(field, Mapping):
            raise self.error(f"{where}: field {index + 1} is not a JSON object")
        name = field.get("name")
        self._check_name(name, f"{where}: field {index + 1}", "name")
        assert isinstance(name, str)
        path = f"{where}.{name}"
        if name in names:
            raise self.error(f"{path}: the record has two fields named {name!r}")
        names.add(name)
        self.fields += 1
        limit = self.limits.max_fields
        if limit is not None and self.fields > limit:
            raise self.error(f"{path}: more than {limit} fields in one schema (max_fields {limit})")
        self._check_doc(field, path)
        self._check_aliases(field, path, dotted=False)
        if "order" in field and field["order"] not in ORDERS:
            raise self.error(
                f"{path}: order {_show(field['order'])} is not ascending, descending or ignore"
            )
        if "type" not in field:
            raise self.error(f"{path}: the field has no `type`")
        with self.at("type"):
            self.schema(field["type"], path, namespace, depth + 1)
        if "default" in field:
            if _value_depth(field["default"]) > MAX_VALUE_DEPTH:
                raise self.error(f"{path}: default nested more than {MAX_VALUE_DEPTH} deep")
            problem = self.default_problem(field["type"], field["default"], namespace, "")
            if problem is not None:
                raise self.error(f"{path}: {problem}", "default")

    # -- values -----------------------------------------------------------------------

    def check_finite(self) -> None:
        """Refuse a record of the schema that cannot hold a value: each one needs a value of
        itself, directly or through other records (``Node.next: Node``, not nullable, not an
        array). No producer could ever write one; readers are fine, so schemas stored before
        this rule still read. A record holds a value once each of its fields does, and a
        field once any record it may hold does (or it may hold something else): found from
        the records whose fields need none, outwards, each field looked at once."""
        records = [n for n in self.named.values() if n.get("type") in RECORD_KINDS]
        pending: dict[str, int] = {}  # record -> its fields not known to hold a value yet
        waiting: dict[str, list[tuple[str, int]]] = {}  # record -> fields it would settle
        needs: dict[tuple[str, int], frozenset[str]] = {}
        finite: list[str] = []
        for record in records:
            full, space = str(record["__fullname"]), str(record["__namespace"])
            pending[full] = 0
            for index, field in enumerate(record.get("fields") or ()):
                wanted = self._needs(field.get("type"), space)
                if wanted is None:
                    continue
                needs[(full, index)] = wanted
                pending[full] += 1
                for name in wanted:
                    waiting.setdefault(name, []).append((full, index))
            if pending[full] == 0:
                finite.append(full)
        settled: set[tuple[str, int]] = set()
        for name in finite:  # grows while walked
            for holder in waiting.get(name, ()):
                if holder in settled:
                    continue
                settled.add(holder)
                pending[holder[0]] -= 1
                if pending[holder[0]] == 0:
                    finite.append(holder[0])
        # innermost first: a nested record that needs itself is where the fix goes, not the
        # records around it (which cannot hold a value either, because of it)
        for full, where, loc in reversed(self.own_records):
            if pending[full] == 0:
                continue
            index = min(i for (r, i) in needs if r == full and (r, i) not in settled)
            field = self.named[full]["fields"][index]
            kind = self._type_label(field["type"], str(self.named[full]["__namespace"]))
            raise SchemaError(
                f"{where}.{field['name']}: record {full} cannot hold a value: its field "
                f"{field['name']!r} ({kind}) needs a record that, through fields that must "
                f"have a value, needs itself again: no finite {full} exists, so none could "
                f'ever be published; make a field of that cycle nullable (["null", ...] with '
                f"default null) or an array",
                loc=(*loc, "fields", index, "type"),
            )

    def _needs(self, node: Any, namespace: str) -> frozenset[str] | None:
        """The records one of which ``node`` (walked already) must hold, or None when it may
        hold something else (a primitive, an enum or fixed, an array or map, which may be
        empty, or a union with such a branch)."""
        if isinstance(node, list):
            found: set[str] = set()
            for branch in node:
                wanted = self._needs(branch, namespace)
                if wanted is None:
                    return None
                found |= wanted
            return frozenset(found)
        named: Mapping[str, Any] | None = None
        if isinstance(node, str) and node not in PRIMITIVES:
            named = self.resolve(node, namespace)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            if kind in RECORD_KINDS:
                named = self.resolve(self.named_fullname(node, namespace), "")
            elif isinstance(kind, str) and kind not in PRIMITIVES and kind not in NAMED_KINDS:
                named = None if kind in ("array", "map") else self.resolve(kind, namespace)
        if named is None or named.get("type") not in RECORD_KINDS:
            return None
        return frozenset({str(named["__fullname"])})

    # -- defaults ---------------------------------------------------------------------

    def default_problem(self, schema: Any, value: Any, namespace: str, at: str) -> str | None:
        """Why ``value`` is not a valid default for ``schema`` (JSON encoding), or None."""
        if isinstance(schema, list):
            if not schema:
                return "a union without branches cannot have a default"
            problem = self.default_problem(schema[0], value, namespace, at)
            if problem is None:
                return None
            first = self._type_label(schema[0], namespace)
            return (
                f"default{at} {_show(value)} does not match the union's first branch "
                f"({first}); a union's default must be of its first type, so list that "
                f"type first"
            )
        if isinstance(schema, str) and schema not in PRIMITIVES:
            found = self.resolve(schema, namespace)
            if found is None:
                return None  # reported by the type walk
            return self.default_problem(found, value, str(found["__namespace"]), at)
        if isinstance(schema, Mapping):
            kind = schema.get("type")
            if isinstance(kind, (list, Mapping)):
                return self.default_problem(kind, value, namespace, at)
            if kind in NAMED_KINDS:
                space = str(schema.get("__namespace", namespace))
                if "__fullname" not in schema:
                    found = self.resolve(self.named_fullname(schema, namespace), "")
                    schema, space = (found, str(found["__namespace"])) if found else (schema, space)
                return self._named_default(schema, str(kind), value, space, at)
            if kind == "array":
                if not isinstance(value, list):
                    return f"default{at} {_show(value)} is not an array"
                for index, item in enumerate(value):
                    problem = self.default_problem(
                        schema.get("items"), item, namespace, f"{at}[{index}]"
                    )
                    if problem is not None:
                        return problem
                return None
            if kind == "map":
                if not isinstance(value, Mapping):
                    return f"default{at} {_show(value)} is not a JSON object (map)"
                for key, item in value.items():
                    problem = self.default_problem(
                        schema.get("values"), item, namespace, f"{at}[{_show(key)}]"
                    )
                    if problem is not None:
                        return problem
                return None
            schema = kind
        return self._primitive_default(str(schema), value, at)

    @staticmethod
    def _primitive_default(kind: str, value: Any, at: str) -> str | None:
        ok: bool
        if kind == "null":
            ok, what = value is None, "null"
        elif kind == "boolean":
            ok, what = isinstance(value, bool), "a boolean"
        elif kind in ("int", "long"):
            low, high = INT_RANGE if kind == "int" else LONG_RANGE
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
            bits = 32 if kind == "int" else 64
            what = f"an {kind}" if kind == "int" else f"a {kind}"
            what += f" ({bits}-bit integer, {low}..{high})"
        elif kind in ("float", "double"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(value, int):
                ok = math.isfinite(float(value)) if abs(value) < 2**1024 else False
            what = f"a {kind} (a JSON number)"
        elif kind == "string":
            ok, what = isinstance(value, str), "a string"
        elif kind == "bytes":
            ok = isinstance(value, str) and all(ord(c) < 256 for c in value)
            what = "bytes (a string of code points U+0000..U+00FF)"
        else:
            return None  # an unknown type: reported by the type walk
        if ok:
            return None
        return f"default{at} {_show(value)} is not {what}"

    def _named_default(
        self, schema: Mapping[str, Any], kind: str, value: Any, namespace: str, at: str
    ) -> str | None:
        if kind == "enum":
            symbols = schema.get("symbols") or []
            if isinstance(value, str) and value in symbols:
                return None
            return f"default{at} {_show(value)} is not one of the enum symbols {_show(symbols)}"
        if kind == "fixed":
            size = schema.get("size")
            if isinstance(value, str) and len(value) == size and all(ord(c) < 256 for c in value):
                return None
            return (
                f"default{at} {_show(value)} is not a fixed of {size} bytes (a string of "
                f"{size} code points U+0000..U+00FF)"
            )
        if not isinstance(value, Mapping):
            return f"default{at} {_show(value)} is not a JSON object (record)"
        for field in schema.get("fields") or []:
            name = field.get("name")
            if name in value:
                problem = self.default_problem(
                    field.get("type"), value[name], namespace, f"{at}.{name}"
                )
                if problem is not None:
                    return problem
            elif "default" not in field:
                return f"default{at} lacks field {name!r}, which has no default of its own"
        return None

    def _type_label(self, schema: Any, namespace: str) -> str:
        if isinstance(schema, str):
            return schema
        if isinstance(schema, Mapping):
            kind = schema.get("type")
            if kind in NAMED_KINDS:
                return f"{kind} {self.named_fullname(schema, namespace)}"
            return str(kind)
        return "union"


def check_schema(
    document: Any, limits: SchemaLimits = DEFAULT_LIMITS, *, named_types: Sequence[Any] = ()
) -> None:
    """Refuse ``document`` (decoded schema JSON) where it breaks the specification or a limit.

    ``named_types`` are the decoded schemas it references (Confluent schema references),
    walked first so their named types resolve. Raises :class:`SchemaError` whose message
    starts with the field path of the problem.
    """
    check_utf8(document)
    checker = _Checker(limits)
    checker.own_types = False  # a referenced schema was judged when it was registered
    for index, referenced in enumerate(named_types):
        checker.schema(referenced, f"(reference {index})", "", 1)
    checker.own_types = True
    checker.schema(document, "(schema)", "", 1)
    checker.check_finite()
