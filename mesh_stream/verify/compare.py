"""Expected against actual: the latest output record of every key, field by field.

The expected records are what ``emit`` returned in the recomputation; before comparing they
are written and read back with the output's schema, as the worker's records were, so a
value the schema stores differently (a float, a decimal's scale, a timestamp) compares
as the consumer of the product would see it. An expected record the engine would refuse to
publish (it does not fit the schema, or its ``key_field`` value is not its key) is the
processor's error, not a difference: the worker crashes on that record too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ProcessorError, SerializationError
from mesh_stream.processing.codec import FramedAvroDecoder, FramedAvroEncoder
from mesh_stream.processing.spec import key_field_differs
from mesh_stream.schema import keys

__all__ = ["Comparison", "FieldDifference", "KeyDifference", "as_written", "compare", "render"]


@dataclass(frozen=True)
class FieldDifference:
    """One field whose value differs (``path`` is dotted for nested records)."""

    path: str
    expected: Any
    got: Any


@dataclass(frozen=True)
class KeyDifference:
    """A key present on both sides whose final records differ."""

    key: str
    fields: tuple[FieldDifference, ...]


@dataclass
class Comparison:
    """The outcome of comparing the expected and the actual final records."""

    expected: Mapping[str, Mapping[str, Any]]
    got: Mapping[str, Mapping[str, Any]]
    differing: list[KeyDifference] = field(default_factory=list)
    #: Keys the recomputation has and the output never had.
    missing: list[str] = field(default_factory=list)
    #: Keys the output has and the recomputation does not.
    unexpected: list[str] = field(default_factory=list)
    #: Keys whose output differs but is allowed, with why: it hangs on duplicates that
    #: arrived past the dedup horizon, which a worker may still remember and drop (see
    #: reference.recompute): the recomputation with that copy dropped, or, for several
    #: such copies, any result.
    not_judged: dict[str, str] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.differing or self.missing or self.unexpected)


def as_written(
    schema: str,
    records: Mapping[str, Mapping[str, Any]],
    output: DataProduct | None = None,
    newest_inputs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``records`` (``emit``'s, per Kafka key) encoded with ``schema`` and decoded again
    (what a consumer would read).

    A record the engine would refuse to publish is a :class:`ProcessorError` naming the key
    (and, from ``newest_inputs``, the newest input record its state took): one that does not
    fit ``schema``, and (given ``output``) one whose value of the output's ``key_field`` is
    not its Kafka key.
    """
    newest_inputs = newest_inputs or {}
    name = f"processor {output.name}" if output is not None else "the processor"
    key_field = output.key_field if output is not None else None
    key_text = keys.field_key_text(json.loads(schema), key_field)
    encoder = FramedAvroEncoder(schema, 0)
    decoder = FramedAvroDecoder(lambda _schema_id: schema)
    written: dict[str, Any] = {}
    for key, record in records.items():
        newest = newest_inputs.get(key)
        after = f" (after its state took {newest})" if newest else ""
        if key_field is not None and key_field_differs(key_field, key, record, key_text):
            raise ProcessorError(
                f"{name}: emit's record of key {key!r}{after} has {key_field} = "
                f"{record[key_field]!r}; the record is published under its key and its "
                f"{key_field!r} (the output's key_field) must equal it, so the engine refuses it"
            )
        try:
            encoded = encoder.encode(record)
        except SerializationError as exc:
            problems = getattr(exc.__cause__, "problems", None) or [str(exc)]
            raise ProcessorError(
                f"{name}: emit's record of key {key!r}{after} does not fit the output's schema "
                f"({encoder.schema.get('name', 'its record')}): {'; '.join(problems)}; the "
                f"engine cannot publish it (record: {_shown(dict(record))})"
            ) from exc
        written[key] = decoder.decode(encoded, where=f"expected key {key}")
    return written


def _differences(expected: Any, got: Any, path: str) -> Iterator[FieldDifference]:
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        for name in [*expected, *(k for k in got if k not in expected)]:
            inner = f"{path}.{name}" if path else str(name)
            yield from _differences(expected.get(name), got.get(name), inner)
    elif not _same(expected, got):
        yield FieldDifference(path or "<record>", expected, got)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind; an int and a float or Decimal of one value are the same
    number, but True is not 1."""
    if a != b:
        return False
    if type(a) is type(b):
        return True
    numbers = (int, float, Decimal)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    )


def compare(
    expected: Mapping[str, Mapping[str, Any]],
    got: Mapping[str, Mapping[str, Any]],
    allowed: Mapping[str, tuple[str, Mapping[str, Any] | None]] | None = None,
) -> Comparison:
    """Every key whose final record differs, is missing or is unexpected, in key order.
    ``allowed`` gives a key another result it may end with, and why (key -> (why, record),
    record None: any result): a key that differs from ``expected`` but is allowed is in
    ``not_judged``."""
    result = Comparison(expected, got)
    for key in sorted(expected):
        if key not in got:
            result.missing.append(key)
            continue
        differences = tuple(_differences(expected[key], got[key], ""))
        other = allowed.get(key) if allowed is not None else None
        if (
            differences
            and other is not None
            and (other[1] is None or not any(_differences(other[1], got[key], "")))
        ):
            result.not_judged[key] = other[0]
        elif differences:
            result.differing.append(KeyDifference(key, differences))
    result.unexpected = sorted(key for key in got if key not in expected)
    return result


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


def render(comparison: Comparison, *, limit: int = 20) -> list[str]:
    """Lines for a person: each differing key (up to ``limit``) with its fields, then the
    missing and unexpected keys, then a one-line summary."""
    lines: list[str] = []
    shown = 0
    for difference in comparison.differing:
        if shown >= limit:
            break
        shown += 1
        lines.append(f"key {difference.key}: differs")
        for item in difference.fields:
            lines.append(
                f"    {item.path}: expected {_shown(item.expected)}, got {_shown(item.got)}"
            )
    for key in comparison.missing:
        if shown >= limit:
            break
        shown += 1
        lines.append(f"key {key}: missing (expected {_shown(dict(comparison.expected[key]))})")
    for key in comparison.unexpected:
        if shown >= limit:
            break
        shown += 1
        lines.append(f"key {key}: unexpected (got {_shown(dict(comparison.got[key]))})")
    wrong = len(comparison.differing) + len(comparison.missing) + len(comparison.unexpected)
    if wrong > shown:
        lines.append(f"... and {wrong - shown} more keys (--show N lists more)")
    for key, why in list(comparison.not_judged.items())[:limit]:
        lines.append(f"key {key}: differs, allowed: {why}")
    lines.append(summary(comparison))
    return lines


def summary(comparison: Comparison) -> str:
    """One line: how many keys, and how many of them are wrong in which way."""
    head = f"{len(comparison.expected)} keys expected, {len(comparison.got)} in the output"
    aside = (
        f" ({len(comparison.not_judged)} other key(s) allowed: a duplicate that arrived past "
        f"the dedup horizon, which a worker may count or drop)"
        if comparison.not_judged
        else ""
    )
    if comparison.equal:
        every = "every other" if comparison.not_judged else "every"
        return f"{head}: {every} key's final record equals the recomputation{aside}"
    return (
        f"{head}: {len(comparison.differing)} differ, {len(comparison.missing)} missing, "
        f"{len(comparison.unexpected)} unexpected{aside}"
    )
