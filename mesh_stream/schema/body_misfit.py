"""Where an Avro body stops fitting its writer schema, said by field path and byte.

fastavro's reader fails on a damaged body (or one written with another schema) with
exceptions that name no field: an ``IndexError`` for a union branch or enum index out of
range, ``badly formed hexadecimal UUID string``, a bare ``EOFError``. Only then (never on
the hot path) this walk reads the same bytes by the schema without building the record
and says which field the first misfit is in and what it is, for the consumer's and
`mesh tail`'s errors and the dead letters' error header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastavro._read import LOGICAL_READERS  # type: ignore[attr-defined]

from mesh_stream.schema.nesting import read_long

#: How deep the walk follows records, arrays and maps, and how many values it reads (per
#: byte of the body, plus a few), before it gives up and the reader's own words are said:
#: it runs on bodies nobody vouches for, once per bad record.
MAX_DEPTH = 200
STEPS_PER_BYTE = 8

_PREVIEW = 40


class _MisfitError(Exception):
    """The body does not fit the schema at a place; the message says where and how."""


class _GiveUpError(Exception):
    """Too deep or too long to walk."""


def body_misfit(
    data: bytes | memoryview, position: int, schema: Any, named: Mapping[str, Any]
) -> str | None:
    """Where and how the Avro value of ``schema`` (fastavro-parsed, its named types in
    ``named``) at ``position`` of ``data`` fails to fit: ``lines[2].sku: ... (at byte N of
    the body)``; None when it reads, or is too deep or long to walk."""
    walk = _BodyWalk(data, position, named)
    try:
        walk.value(schema, "", 0)
    except _MisfitError as misfit:
        return str(misfit)
    except (_GiveUpError, RecursionError):
        return None
    return None


class _BodyWalk:
    """One walk over a body, reading each value's bytes as the schema says."""

    def __init__(self, data: bytes | memoryview, position: int, named: Mapping[str, Any]):
        self.data = bytes(data)
        self.at = position
        self.start = position
        self.named = named
        self.steps = 0
        self.max_steps = STEPS_PER_BYTE * len(self.data) + 1_000

    def misfit(self, path: str, what: str, at: int) -> _MisfitError:
        return _MisfitError(f"{path or '(record)'}: {what} (at byte {at - self.start} of the body)")

    def value(self, schema: Any, path: str, depth: int) -> None:
        self.steps += 1
        if self.steps > self.max_steps or depth > MAX_DEPTH:
            raise _GiveUpError
        if isinstance(schema, str):
            if schema in self.named:
                self.value(self.named[schema], path, depth)
            else:
                self.primitive(schema, None, path)
            return
        if isinstance(schema, list):
            at = self.at
            branch = self.long(path)
            if not 0 <= branch < len(schema):
                raise self.misfit(
                    path, f"union branch {branch}, but the union has {len(schema)} branches", at
                )
            self.value(schema[branch], path, depth)
            return
        kind = schema.get("type")
        if kind == "record":
            for field in schema["fields"]:
                name = field["name"]
                self.value(field["type"], f"{path}.{name}" if path else name, depth + 1)
        elif kind == "enum":
            at = self.at
            index = self.long(path)
            symbols = schema.get("symbols", [])
            if not 0 <= index < len(symbols):
                raise self.misfit(
                    path,
                    f"enum index {index}, but {schema.get('name')} has {len(symbols)} symbols",
                    at,
                )
        elif kind == "fixed":
            self.take(int(schema["size"]), path, f"fixed {schema.get('name')}")
        elif kind in ("array", "map"):
            self.blocks(schema, kind, path, depth)
        else:
            self.primitive(kind, schema, path)

    def blocks(self, schema: Any, kind: str, path: str, depth: int) -> None:
        index = 0
        while True:
            count = self.long(path)
            if count == 0:
                return
            if count < 0:  # a block that also gives its size in bytes
                count = -count
                self.long(path)
            for _ in range(count):
                if kind == "array":
                    self.value(schema["items"], f"{path}[{index}]", depth + 1)
                else:
                    key = self.text(f"{path}[key {index}]")
                    self.value(schema["values"], f"{path}[{key!r}]", depth + 1)
                index += 1

    def primitive(self, kind: Any, schema: Mapping[str, Any] | None, path: str) -> None:
        at = self.at
        raw: Any
        if kind == "null":
            return
        if kind == "boolean":
            raw = self.take(1, path, "a boolean") != b"\x00"
        elif kind in ("int", "long"):
            raw = self.long(path)
        elif kind == "float":
            raw = self.take(4, path, "a float")
        elif kind == "double":
            raw = self.take(8, path, "a double")
        elif kind == "bytes":
            raw = self.take(self.length(path), path, "bytes")
        elif kind == "string":
            raw = self.text(path)
        else:  # not a type this walk knows: say nothing rather than something wrong
            raise _GiveUpError
        logical = schema.get("logicalType") if schema is not None else None
        convert = LOGICAL_READERS.get(f"{kind}-{logical}") if logical else None
        if convert is None or kind in ("float", "double"):
            return
        try:
            convert(raw, schema, schema)
        except Exception:
            shown = repr(raw)
            if len(shown) > _PREVIEW:
                shown = shown[: _PREVIEW - 3] + "..."
            raise self.misfit(path, f"{kind} {shown} does not read as a {logical}", at) from None

    def long(self, path: str) -> int:
        at = self.at
        if at >= len(self.data):
            raise self.misfit(path, "the body ends before this value", at)
        try:
            value, self.at = read_long(self.data, at)
        except IndexError:
            raise self.misfit(path, "the body ends inside a number", at) from None
        except ValueError:
            raise self.misfit(path, "a number longer than a long's 10 bytes", at) from None
        return value

    def length(self, path: str) -> int:
        at = self.at
        length = self.long(path)
        if length < 0:
            raise self.misfit(path, f"a negative length ({length})", at)
        return length

    def take(self, size: int, path: str, what: str) -> bytes:
        left = len(self.data) - self.at
        if size > left:
            raise self.misfit(
                path,
                f"{what} of {size:,} bytes, but the body ends {left:,} bytes on",
                self.at,
            )
        taken = self.data[self.at : self.at + size]
        self.at += size
        return taken

    def text(self, path: str) -> str:
        at = self.at
        raw = self.take(self.length(path), path, "text")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            said = f"text that is not UTF-8 ({exc.reason} at its byte {exc.start})"
            raise self.misfit(path, said, at) from None
