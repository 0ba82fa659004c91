"""How deep a record of a recursive type nests, and how many items that take no bytes it
claims, checked before fastavro writes or reads it.

fastavro's compiled writer and reader recurse in C, one level per nested record, array or
map, outside Python's recursion limit: a record of a recursive type (a ``Node`` holding
``Node`` children) nested a few thousand levels deep ended the process with a segmentation
fault, in a publisher and in every consumer that read the record again after a restart (an
SDK campaign: a 40 KB record). A schema without a recursive type cannot nest deeper than it
is written, so only records of recursive types are measured: a value by walking its dicts
and lists, bytes by walking the Avro encoding, both with a stack of their own, and refused
beyond :data:`MAX_NESTING` levels.

An array whose items take no bytes (null, a fixed of size 0, a record of only such fields)
holds as many items as its count says: six bytes claiming a billion made every reader build
a billion-item list and run out of memory. The registry refuses such arrays in new schemas;
records of a schema stored before that rule, or read from another registry, are walked the
same way and refused beyond :data:`MAX_EMPTY_ITEMS` such items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mesh_stream.schema.names import RECORD_KINDS

__all__ = [
    "MAX_EMPTY_ITEMS",
    "MAX_NESTING",
    "bytes_nest_deeper",
    "bytes_refusal",
    "holds_empty_item_arrays",
    "recursive_names",
    "value_nests_deeper",
]

#: The most levels of records, arrays and maps one record of a recursive type may nest.
#: fastavro's C stack took a few thousand; a tree of comments or a parsed document rarely
#: needs fifty.
MAX_NESTING = 200

#: The most array items that take no bytes one record may hold, all arrays together: each
#: is still a list slot (or an empty dict) in every reader's memory.
MAX_EMPTY_ITEMS = 100_000

#: Bytes each fixed-size primitive takes.
_FIXED_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
#: Steps the byte walk may take beyond those its bytes allow (see :class:`_Walk`).
_BASE_STEPS = 10_000


def recursive_names(named: Mapping[str, Any]) -> frozenset[str]:
    """The named types (fastavro's parsed ``__named_schemas``) that can hold themselves."""
    edges = {name: _names_in(schema, named) for name, schema in named.items()}
    found = set()
    for start, reached in edges.items():
        stack, seen = list(reached), set()
        while stack:
            name = stack.pop()
            if name == start:
                found.add(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(edges.get(name, ()))
    return frozenset(found)


def holds_empty_item_arrays(schema: Any, named: Mapping[str, Any]) -> bool:
    """Whether any array of ``schema`` (fastavro's parsed form, a record or not) or of its
    named types (``__named_schemas``) has items that take no bytes."""
    return any(
        isinstance(node, Mapping)
        and node.get("type") == "array"
        and _zero_size(node.get("items"), named, frozenset())
        for root in (schema, *named.values())
        for node in _types_within(root)
    )


def _names_in(schema: Any, named: Mapping[str, Any]) -> set[str]:
    """The named types ``schema`` refers to, directly or inside its own nested types."""
    return {node for node in _types_within(schema) if isinstance(node, str) and node in named}


def _types_within(schema: Any) -> Iterator[Any]:
    """``schema`` and every type written inside it (a record's fields, an array's items, a
    map's values, a union's branches, a wrapped type); a name is yielded, not followed."""
    stack = [schema]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, Mapping):
            kind = item.get("type")
            if kind in RECORD_KINDS:
                stack.extend(field.get("type") for field in item.get("fields", ()))
            elif kind == "array":
                stack.append(item.get("items"))
            elif kind == "map":
                stack.append(item.get("values"))
            elif isinstance(kind, (list, Mapping, str)):
                stack.append(kind)


def value_nests_deeper(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests dicts, lists and tuples more than ``limit`` deep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def bytes_refusal(
    data: bytes | memoryview, position: int, schema: Any, named: Mapping[str, Any]
) -> str | None:
    """Why fastavro must not read the Avro value of ``schema`` at ``position`` of ``data``
    (nested past :data:`MAX_NESTING`, or more than :data:`MAX_EMPTY_ITEMS` array items that
    take no bytes), or None. Bytes that end early or make no sense give None, as in
    :func:`bytes_nest_deeper`, and the reader says what is wrong with them."""
    walk = _Walk(data, position, named, MAX_NESTING, empty_items=MAX_EMPTY_ITEMS)
    try:
        deeper = walk.deeper(schema)
    except _TooManyEmptyItemsError as exc:
        return (
            f"the record claims {exc.args[0]:,} or more items of arrays whose items take no "
            f"bytes, beyond the {MAX_EMPTY_ITEMS:,} a record may hold (a few bytes could "
            f"otherwise make every reader build a billion)"
        )
    except _TooMuchWorkError:
        deeper = True
    except (IndexError, KeyError, TypeError, ValueError, RecursionError):
        return None
    if not deeper:
        return None
    return (
        f"the record nests records, arrays and maps more than {MAX_NESTING} levels deep (or "
        f"is too damaged to measure); a record of a recursive type may nest at most "
        f"{MAX_NESTING}"
    )


def bytes_nest_deeper(
    data: bytes | memoryview,
    position: int,
    schema: Any,
    named: Mapping[str, Any],
    limit: int = MAX_NESTING,
) -> bool:
    """Whether the Avro value of ``schema`` at ``position`` of ``data`` nests records,
    arrays and maps more than ``limit`` deep. It reads the bytes without building values;
    bytes that end early or make no sense give False, and the reader then says what is
    wrong with them. Bytes that take more steps than any valid encoding of their size give
    True: nothing valid does, so the reader is never handed them."""
    try:
        return _Walk(data, position, named, limit).deeper(schema)
    except _TooMuchWorkError:
        return True
    except (IndexError, KeyError, TypeError, ValueError, RecursionError):
        return False


class _TooMuchWorkError(Exception):
    """The walk took more steps than a valid encoding of the bytes allows."""


class _TooManyEmptyItemsError(Exception):
    """The record claims more array items that take no bytes than its walk allows."""


def read_long(data: bytes | memoryview, position: int) -> tuple[int, int]:
    """The zig-zag varint (Avro's int and long) at ``position`` of ``data`` and the position
    after it: an ``IndexError`` when the bytes end inside it, a ``ValueError`` when it runs
    past a long's 10 bytes."""
    shift = raw = 0
    while True:
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


class _Walk:
    """One walk over Avro bytes with an explicit stack (see :func:`bytes_nest_deeper`)."""

    def __init__(
        self,
        data: bytes | memoryview,
        position: int,
        named: Mapping[str, Any],
        limit: int,
        *,
        empty_items: int | None = None,
    ) -> None:
        self.data = data
        self.position = position
        self.named = named
        self.limit = limit
        # Every step reads a byte or more, but for the fields of a record taking none (null)
        # and the zero-size items of an array or map, which are skipped by their count: so
        # a valid encoding takes at most this many steps.
        self.steps = _BASE_STEPS + (4 + _most_fields(named)) * len(data)
        self._zero: dict[int, bool] = {}
        #: Array items that take no bytes the walk may still meet (None: any number).
        self.empty_items = empty_items
        self._claimed = 0

    def long(self) -> int:
        """A zig-zag varint (Avro's int and long)."""
        value, self.position = read_long(self.data, self.position)
        return value

    def skip(self, size: int) -> None:
        if size < 0 or self.position + size > len(self.data):
            raise ValueError("past the end")
        self.position += size

    def zero_size(self, schema: Any) -> bool:
        """Whether every value of ``schema`` is encoded in no bytes (null, fixed of size 0,
        a record of such fields)."""
        known = self._zero.get(id(schema))
        if known is None:
            known = self._zero[id(schema)] = _zero_size(schema, self.named, frozenset())
        return known

    def deeper(self, schema: Any) -> bool:
        # ("v", schema, depth): a value; ("b", items, depth, left, is_map): an array's or
        # map's items, ``left`` in the current block
        stack: list[tuple[Any, ...]] = [("v", schema, 0)]
        while stack:
            self.steps -= 1
            if self.steps < 0:
                raise _TooMuchWorkError
            task = stack.pop()
            if task[0] == "b":
                _, items, depth, left, is_map = task
                if left == 0:
                    left = self.long()
                    if left == 0:
                        continue  # the container ends
                    if left < 0:
                        left = -left
                        self.long()  # the block's size in bytes
                if not is_map and self.zero_size(items):
                    if self.empty_items is not None:
                        self._claimed += left
                        if self._claimed > self.empty_items:
                            raise _TooManyEmptyItemsError(self._claimed)
                    stack.append(("b", items, depth, 0, is_map))  # the block, skipped whole
                    continue
                stack.append(("b", items, depth, left - 1, is_map))
                stack.append(("v", items, depth))
                if is_map:
                    stack.append(("v", "string", depth))
                continue
            _, kind, depth = task
            if isinstance(kind, str) and kind in self.named:
                kind = self.named[kind]
            if isinstance(kind, Sequence) and not isinstance(kind, str):
                branch = self.long()
                if branch < 0:
                    raise ValueError("negative union index")
                stack.append(("v", kind[branch], depth))
                continue
            if isinstance(kind, Mapping):
                name = kind.get("type")
                if name in RECORD_KINDS:
                    if depth + 1 > self.limit:
                        return True
                    fields = kind["fields"]
                    stack.extend(("v", field["type"], depth + 1) for field in reversed(fields))
                    continue
                if name in ("array", "map"):
                    if depth + 1 > self.limit:
                        return True
                    items = kind["items"] if name == "array" else kind["values"]
                    stack.append(("b", items, depth + 1, 0, name == "map"))
                    continue
                if name == "enum":
                    self.long()
                    continue
                if name == "fixed":
                    self.skip(int(kind["size"]))
                    continue
                stack.append(("v", name, depth))  # a logical type: its underlying type
                continue
            if kind in ("int", "long"):
                self.long()
            elif kind in ("bytes", "string"):
                self.skip(self.long())
            else:
                self.skip(_FIXED_SIZES[kind])
        return False


def _zero_size(schema: Any, named: Mapping[str, Any], seen: frozenset[str]) -> bool:
    if isinstance(schema, str):
        if schema in named:
            return schema not in seen and _zero_size(named[schema], named, seen | {schema})
        return schema == "null"
    if not isinstance(schema, Mapping):
        return False  # a union: its index takes a byte
    kind = schema.get("type")
    if kind == "fixed":
        return bool(schema.get("size") == 0)
    if kind in RECORD_KINDS:
        name = schema.get("name")
        inner = seen | {name} if isinstance(name, str) else seen
        return all(_zero_size(f.get("type"), named, inner) for f in schema.get("fields", ()))
    if kind in ("array", "map", "enum"):
        return False
    return _zero_size(kind, named, seen)


def _most_fields(named: Mapping[str, Any]) -> int:
    """The most fields any record of the schema's named types has."""
    return max(
        (
            len(schema.get("fields", ()))
            for schema in named.values()
            if isinstance(schema, Mapping) and schema.get("type") in RECORD_KINDS
        ),
        default=0,
    )
