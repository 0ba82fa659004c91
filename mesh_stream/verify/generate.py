"""Inputs for `mesh verify`, generated from each input product's Avro schema.

The records are made to exercise what goes wrong after a crash, not to look real: values of
a field come from a small pool shared by every input holding a field of that name (so keys
repeat and inputs join on ids), the dedup field is unique per record except for copies a
retrying publisher would send shortly after the first, event times spread over many windows,
and some records arrive late (within the grace period) or too late. Everything follows from
the seed, so a failing run can be repeated exactly.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.processing.reference import InputRecord, project_fields
from mesh_stream.processing.spec import Processor, Session, Window, check_key, not_read_error

__all__ = ["GeneratedInput", "InputStats", "generate_inputs", "keyed_share"]

#: Share of records published twice (the copy arrives shortly after the first).
COPY_SHARE = 0.1
#: Shares of records of a windowed processor arriving late but within grace, and too late.
LATE_SHARE = 0.08
TOO_LATE_SHARE = 0.05
#: For a Session window, the share arriving late but on time: about one in six of those
#: falls between two sessions of its key and merges them.
SESSION_LATE_SHARE = 0.25
#: Longest delay between an event and its arrival, for records on time.
PROMPT_DELAY_MS = 2_000


@dataclass
class InputStats:
    """What was generated for one input product."""

    records: int = 0
    copies: int = 0
    late: int = 0
    too_late: int = 0
    keyed: int = 0


@dataclass
class GeneratedInput:
    """Records to publish, ordered by arrival time (their Kafka timestamps)."""

    records: list[InputRecord] = field(default_factory=list)
    stats: dict[str, InputStats] = field(default_factory=dict)


class _Values:
    """Values for Avro types; named types are remembered as they are met."""

    def __init__(self, rng: random.Random, records: int) -> None:
        self.rng = rng
        #: Values per field: ids (uuid strings) many, so per-id keys get a few events
        #: each; other values few, so keys such as a region aggregate many events.
        self.id_pool = max(3, min(500, records // 5))
        self.pool_size = max(3, min(30, records // 50))
        self.named: dict[str, Any] = {}
        self.pools: dict[str, list[Any]] = {}

    def remember(self, schema: Any, namespace: str | None) -> None:
        """Record the named types defined inside ``schema`` (records, enums, fixed)."""
        if isinstance(schema, list):
            for branch in schema:
                self.remember(branch, namespace)
            return
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = str(schema["name"])
            space = schema.get("namespace", namespace)
            full = name if "." in name or not space else f"{space}.{name}"
            self.named[full] = schema
            self.named[name] = schema
            namespace = space
        if kind in ("record", "error"):
            for item in schema.get("fields", []):
                self.remember(item["type"], namespace)
        elif kind == "array":
            self.remember(schema["items"], namespace)
        elif kind == "map":
            self.remember(schema["values"], namespace)
        elif isinstance(kind, (dict, list)):
            self.remember(kind, namespace)

    def pooled(self, name: str, make: Any, size: int | None = None) -> Any:
        """A value from the pool of field ``name`` (filled on first use by ``make()``)."""
        pool = self.pools.get(name)
        if pool is None:
            pool = self.pools[name] = [make() for _ in range(size or self.pool_size)]
        return self.rng.choice(pool)

    def value(self, schema: Any, name: str, around_ms: int) -> Any:
        """A value of ``schema`` for a field called ``name``; times near ``around_ms``."""
        rng = self.rng
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if not branches or (len(branches) < len(schema) and rng.random() < 0.1):
                return None
            return self.value(rng.choice(branches), name, around_ms)
        if isinstance(schema, str):
            if schema in self.named:
                return self.value(self.named[schema], name, around_ms)
            schema = {"type": schema}
        kind = schema.get("type")
        if isinstance(kind, (dict, list)):
            return self.value(kind, name, around_ms)
        logical = schema.get("logicalType")
        if kind == "null":
            return None
        if kind == "boolean":
            return rng.random() < 0.5
        if logical in ("timestamp-millis", "local-timestamp-millis"):
            return around_ms + rng.randint(-60_000, 120_000)
        if logical in ("timestamp-micros", "local-timestamp-micros"):
            return (around_ms + rng.randint(-60_000, 120_000)) * 1000
        if logical == "date":
            return around_ms // 86_400_000
        if logical == "decimal":
            return self._decimal(schema)
        if kind in ("int", "long"):
            return self.pooled(name, lambda: rng.randint(1, 1000)) if name else rng.randint(1, 5)
        if kind in ("float", "double"):
            return round(rng.uniform(0, 100), 2)
        if kind == "string":
            if logical == "uuid":
                make = lambda: str(uuid.UUID(int=rng.getrandbits(128)))  # noqa: E731
                return self.pooled(name, make, self.id_pool)
            return self.pooled(name, lambda: f"{name or 'value'}-{rng.randrange(10**6):06d}")
        if kind == "bytes":
            return rng.randbytes(8)
        if kind == "fixed":
            return rng.randbytes(int(schema["size"]))
        if kind == "enum":
            return rng.choice(list(schema["symbols"]))
        if kind == "array":
            return [self.value(schema["items"], "", around_ms) for _ in range(rng.randint(1, 3))]
        if kind == "map":
            return {
                f"k{i}": self.value(schema["values"], "", around_ms)
                for i in range(rng.randint(0, 2))
            }
        if kind in ("record", "error"):
            return {
                item["name"]: self.value(item["type"], item["name"], around_ms)
                for item in schema.get("fields", [])
            }
        if isinstance(kind, str) and kind in self.named:
            return self.value(self.named[kind], name, around_ms)
        raise ConfigurationError(f"cannot generate a value of Avro type {kind!r} (field {name!r})")

    def _decimal(self, schema: Mapping[str, Any]) -> Decimal:
        scale = int(schema.get("scale", 0))
        digits = max(1, min(int(schema.get("precision", 6)), 7))
        return Decimal(self.rng.randint(1, 10**digits - 1)).scaleb(-scale)

    def unique(self, schema: Any) -> Any:
        """A value no other record gets (for the dedup field)."""
        while isinstance(schema, list):
            schema = next((b for b in schema if b != "null"), "string")
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if kind in ("int", "long"):
            return self.rng.getrandbits(31)
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _fields(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {item["name"]: item["type"] for item in schema.get("fields", [])}


def _windows_span(processor: Processor) -> int:
    """The span of event times, in ms: many windows, or for sessions forty gaps, so a key
    holding a few dozen events has several sessions that late events bridge."""
    window = processor.window
    if window is None:
        return 10 * 60_000
    if isinstance(window, Session):
        return 40 * window.gap_ms
    return max(20 * window.advance_ms, window.size_ms * 4)


def _closes(window: Window, event_ms: int) -> tuple[int, int]:
    """When an event at ``event_ms`` stops being on time (arrival ms), and how far past that
    a too-late copy of it may arrive."""
    if isinstance(window, Session):
        return event_ms + window.gap_ms + window.grace_ms, window.gap_ms
    size_ms = window.size_ms
    return event_ms - event_ms % size_ms + size_ms + window.grace_ms, size_ms


def generate_inputs(
    processor: Processor,
    schemas: Mapping[str, Mapping[str, Any]],
    *,
    records: int,
    seed: int,
    start_ms: int,
) -> GeneratedInput:
    """``records`` records per input of ``processor`` (plus copies), from ``schemas``
    (product name -> parsed Avro record schema), event times from ``start_ms`` on."""
    if records < 1:
        raise ConfigurationError(f"--records must be at least 1, got {records}")
    rng = random.Random(seed)
    values = _Values(rng, records)
    span_ms = _windows_span(processor)
    window = processor.window
    dedup = processor.dedup
    generated = GeneratedInput()
    for spec in processor.inputs:
        schema = schemas[spec.product]
        values.remember(dict(schema), schema.get("namespace"))
        fields = _fields(schema)
        missing = [name for name in spec.reads if name not in fields]
        if missing:
            raise ConfigurationError(
                f"processor of {processor.output}: input {spec.product} reads field "
                f"{missing[0]!r}, which its schema ({schema.get('name')}) does not have"
            )
        stats = generated.stats[spec.product] = InputStats()
        for _ in range(records):
            event_ms = start_ms + rng.randrange(span_ms)
            record = {name: values.value(kind, name, event_ms) for name, kind in fields.items()}
            if dedup is not None and dedup.field in fields:
                record[dedup.field] = values.unique(fields[dedup.field])
            arrival = event_ms + rng.randint(0, PROMPT_DELAY_MS)
            if spec.event_time is not None:
                record[spec.event_time] = _event_time_value(fields[spec.event_time], event_ms)
                if window is not None:
                    closes, beyond = _closes(window, event_ms)
                    # late but on time: within the grace; for a session, in the last quarter
                    # before it closes, after most of its neighbours (so that it bridges
                    # sessions, grace or not)
                    lateness = (
                        (closes - arrival) // 4 if isinstance(window, Session) else window.grace_ms
                    )
                    late_share = SESSION_LATE_SHARE if isinstance(window, Session) else LATE_SHARE
                    draw = rng.random()
                    if draw < late_share and lateness > 0:
                        arrival = closes - rng.randint(1, lateness)
                        stats.late += 1
                    elif draw < late_share + TOO_LATE_SHARE:
                        arrival = closes + rng.randint(0, beyond)
                        stats.too_late += 1
            stats.records += 1
            where = f"generated record #{stats.records} of {spec.product}"
            item = InputRecord(spec.product, record, arrival, where)
            if _keyed(processor, item):
                stats.keyed += 1
            generated.records.append(item)
            if rng.random() < COPY_SHARE:
                limit = PROMPT_DELAY_MS
                if dedup is not None and dedup.horizon_ms is not None:
                    limit = max(1, min(limit, dedup.horizon_ms // 10))
                copy_arrival = arrival + rng.randint(1, limit)
                copy = InputRecord(spec.product, record, copy_arrival, f"a copy of {where}")
                generated.records.append(copy)
                stats.copies += 1
    generated.records.sort(key=lambda item: item.arrival_ms)
    return generated


def _keyed(processor: Processor, item: InputRecord) -> bool:
    """Whether the input's ``key`` gives ``item`` a key; a :class:`ProcessorError` naming the
    record (``where``) when it raises or returns neither a str nor None."""
    declared = processor.input(item.product)
    fields = project_fields(processor, item)
    try:
        key = declared.key(fields)
        check_key(key)
    except Exception as exc:
        not_read = not_read_error(declared, exc)
        if not_read is not None or isinstance(exc, ProcessorError):
            what = str(not_read or exc)
        else:
            what = f"key raised {type(exc).__name__} {exc}"
        raise ProcessorError(f"processor {processor.output} on {item.where}: {what}") from exc
    return key is not None


def _event_time_value(schema: Any, event_ms: int) -> int:
    """The event time as the field stores it (micros for a timestamp-micros field)."""
    for branch in schema if isinstance(schema, list) else [schema]:
        if isinstance(branch, dict) and branch.get("logicalType") == "timestamp-micros":
            return event_ms * 1000
    return event_ms


def keyed_share(stats: Iterable[InputStats]) -> float:
    """The share of generated records (copies aside) that got a key."""
    items = list(stats)
    total = sum(s.records for s in items)
    return sum(s.keyed for s in items) / total if total else 0.0
