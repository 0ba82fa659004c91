"""The one processing engine: a :class:`~mesh_stream.processing.spec.Processor` as a faust worker.

A processor module declares ``PROCESSOR = Processor(...)`` and ends with::

    if __name__ == "__main__":
        run(PROCESSOR)

:func:`run` is the worker entry point (``python -m <module> worker -l info``); :func:`build`
makes the faust app alone. The engine owns every invariant, so the processor's functions
stay pure business logic:

* **route** (re-key stage, :mod:`~mesh_stream.processing.rekey`): each input record is decoded,
  projected to its input's ``reads``, keyed by ``key(fields)`` (None drops it), placed in its
  windows (each window is its own state key; the Kafka key is ``str(WindowKey)``) and
  forwarded to the internal topic ``<app id>-by-key``. An undecodable record goes to its
  product's dead-letter topic.
* **update** (aggregate agent): per state key and batch, an event is dropped if it is a
  duplicate by ``processor.dedup`` (:class:`~mesh_stream.processing.dedup.SeenEvents`, with
  its horizon), and applied only if neither its internal record nor its input record was
  applied before the last crash of either stage
  (:func:`~mesh_stream.processing.dedup.apply_once`, always); the seen entries are stored
  before the state that lists them; if any event was a first delivery, ``emit(key, state)``
  is sent to the output product. The engine's bookkeeping lives next to the business state,
  never in it: the stored value is ``{"value": <state apply sees>, "_applied": ..., ...}``.
* **failure**: a record that lacks a declared field, or ``key``/``apply``/``emit`` raising,
  logs one line first (processor, input ``topic[partition]@offset``, exception, field) and
  stops the worker without committing that record. An input whose registered schema lacks a
  field the processor reads stops :func:`run` before faust starts, with one line.

On the internal topic, one record holds one partition's events of a batch, grouped by key, as
JSON: ``[2, layout, [key, [wire, ...]], ...]``. ``layout`` lists each input as
``[product, topic, [reads]]``, so a record names the fields it carries once, and each wire is a
list (:data:`~mesh_stream.processing.rekey.Wire`) holding the values of its input's ``reads``
in that order. Decimals travel as ``{"$decimal": "1.50"}``, bytes as
``{"$bytes": "<latin-1>"}`` and NaN or infinite floats as ``{"$float": "nan"}``, so ``apply``
sees the types ``key`` saw (orjson writes the records). Records of the first
format (one key's events as a JSON list of objects with named entries, the key being the
record's Kafka key; written before December 2026) are still read. With tracing active
(:mod:`mesh_stream.tracing`), a wire also carries its input record's ``traceparent`` (and
``tracestate``), and an output record is published under a span ``<output> aggregate``, child
of the newest input event it reflects, whose context the output's headers carry.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import faust
import orjson
from mode import Service

from mesh_stream import tracing
from mesh_stream.errors import (
    ConfigurationError,
    MeshError,
    ProcessorError,
    SerializationError,
    SettingsError,
)
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.logformat import JsonFormatter, LogFormat
from mesh_stream.processing import faust_seams
from mesh_stream.processing.app import (
    KeyedOutput,
    ProcessorSpec,
    StopOnSendError,
    add_aggregate_agent,
    add_rekey_stage,
    changelogged_table,
    confirmed_flush,
    internal_topic,
    prepare,
    processor_app,
    schema_decoder,
)
from mesh_stream.processing.dedup import SeenEvents, apply_once, input_applied
from mesh_stream.processing.deferred import DeferredTable, StateTooLargeError, defer_writes
from mesh_stream.processing.expiry import WindowExpiry, clock_key
from mesh_stream.processing.lineage import LineageRun
from mesh_stream.processing.metrics import (
    CountingDecoder,
    KafkaWatermarks,
    MetricsServer,
    ProcessorMetrics,
)
from mesh_stream.processing.names import CRASH_NOTE_LIMIT, INTERNAL_TOPIC, processor_app_id
from mesh_stream.processing.outputs import OutputProducer, flush_with_commits
from mesh_stream.processing.reads import check_reads, read_defaults
from mesh_stream.processing.rekey import (
    CLOCK_HEADER,
    ENVELOPES_PER_RECORD,
    RECORD_SPLIT_BYTES,
    TRACE,
    Envelope,
    FatalKafkaStop,
    Route,
    Wire,
    records_of,
)
from mesh_stream.processing.sessions import (
    SESSION_SUFFIX,
    SESSIONS,
    place,
    session_state_key,
)
from mesh_stream.processing.spec import (
    Dedup,
    Event,
    Input,
    Processor,
    Session,
    WindowKey,
    apply_checked,
    check_key,
    emit_checked,
    inputs_problem,
    not_read_error,
    raised_at,
    read_fields,
    shown_key,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings, unsaid_misspelled_settings

__all__ = [
    "Aggregation",
    "build",
    "crash_line",
    "retarget",
    "run",
]

log = logging.getLogger(__name__)

#: Names of the two tables (the internal topic's is names.INTERNAL_TOPIC).
STATE_TABLE = "state"
SEEN_TABLE = "seen"
#: Events of forgotten windows are dropped with a warning at most this often (a count in it).
DROP_WARNING_EVERY_S = 10.0
#: Input records ``key`` may drop, none kept, before the worker warns that nothing is kept.
NOTHING_KEPT_WARNING_AFTER = 1_000
#: Events looked up by the dedup field after which a worker that found most of them copies
#: warns that the field may not be unique (h55: dedup on a shared value lost 17 of 20 events).
DEDUP_WARNING_AFTER = 1_000
#: ... and after this few, when four in five were copies (h55's case: 17 of 20).
DEDUP_EARLY_CHECK = 20
#: Session keys whose values a batch reads after an assignment (to note their times).
SCAN_AT_ONCE = 10_000
#: With a dedup horizon, seen ids are kept per key and this slice of arrival time.
DEDUP_BUCKET_MS = 60_000
#: The stored value's entry holding the state ``apply`` and ``emit`` see.
VALUE = "value"

#: Collector thresholds of a worker process: far fewer collections than Python's (700, 10, 10).
GC_THRESHOLDS = (100_000, 50, 1_000)


# -- the internal topic's records ----------------------------------------------------------

#: First item of an internal record of the current format (the first format has none).
WIRE_FORMAT = 2
_FORMAT_MARK = f"[{WIRE_FORMAT},".encode()


#: orjson's options for internal records: datetimes go to :func:`_encode_value` (which refuses
#: them, as stdlib json did) instead of becoming ISO strings behind the processor's back.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME

#: Value types :func:`_finite` looks into: orjson writes NaN and infinities as null, so those
#: are tagged before encoding (nested ones too); every other type is left as it is.
_LOOK_INTO = frozenset({float, list, dict})


def _encode_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).decode("latin-1")}
    raise TypeError(f"{type(value).__name__} cannot travel on the internal topic")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float tagged as ``{"$float": "nan"}`` (or
    ``"inf"``, ``"-inf"``), at any depth, since JSON has no such numbers."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0 else {"$float": repr(value)}
    if kind is list:
        return [_finite(item) for item in value]
    if kind is dict:
        return {name: _finite(item) for name, item in value.items()}
    return value


def _decode_value(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$decimal" in obj:
            return Decimal(obj["$decimal"])
        if "$bytes" in obj:
            return obj["$bytes"].encode("latin-1")
        if "$float" in obj:
            return float(obj["$float"])
    return obj


def _loads(data: bytes) -> Any:
    if b'"$' in data:  # a tagged value (or a string holding those characters)
        return json.loads(data, object_hook=_decode_value)
    return orjson.loads(data)


def _first_format_envelopes(data: bytes, partition: int, offset: int) -> list[Envelope]:
    """The envelopes of an internal record of the first format: a JSON list of objects
    (``input``, ``topic``, ``partition``, ``offset``, ``arrival_ms``, ``event_ms``,
    ``fields``, ``window``; top-level decimals as text named in ``decimals``)."""
    found = []
    for index, wire in enumerate(_loads(data)):
        fields = wire["fields"]
        for name in wire.get("decimals") or ():
            fields[name] = Decimal(fields[name])
        carried = (tracing.TRACEPARENT, tracing.TRACESTATE)
        trace = {name: wire[name] for name in carried if name in wire} or None
        arrival_ms = wire["arrival_ms"]
        found.append(
            Envelope(
                wire.get("input", ""),
                wire["topic"],
                wire["partition"],
                wire["offset"],
                arrival_ms,
                wire.get("event_ms", arrival_ms),
                fields,
                wire.get("window"),
                trace,
                partition,
                offset,
                index,
            )
        )
    return found


# -- failure ----------------------------------------------------------------------------------


def _parse(
    data: bytes, key: bytes | None, partition: int, offset: int
) -> tuple[list[list[Any]] | None, list[tuple[str, list[Envelope]]]]:
    """The layout (None for the first format) and each key's envelopes of an internal record."""
    if not data.startswith(_FORMAT_MARK):
        return None, [((key or b"").decode(), _first_format_envelopes(data, partition, offset))]
    items = _loads(data)
    inputs = items[1]
    found = []
    index = 0
    for state_key, wires in items[2:]:
        envelopes = []
        for wire in wires:
            product, topic, reads = inputs[wire[0]]
            envelopes.append(
                Envelope(
                    product,
                    topic,
                    wire[1],
                    wire[2],
                    wire[3],
                    wire[4],
                    dict(zip(reads, wire[5], strict=True)),
                    wire[6],
                    wire[TRACE],
                    partition,
                    offset,
                    index,
                )
            )
            index += 1
        found.append((state_key, envelopes))
    return inputs, found


def crash_line(
    output: str,
    where: str,
    exc: BaseException,
    field: str | None = None,
    function: str | None = None,
) -> str:
    """The one line a worker logs before it stops on a record, e.g. ``processor
    analytics.revenue-by-region crashed on orders.order-placed.v1[2]@1041: key raised
    KeyError 'region' (field 'region')``: the processor's ``function`` that failed, if one
    did; a :class:`~mesh_stream.errors.ProcessorError` says what broke in its own words."""
    at = raised_at(exc)  # the line of the team's own code, when it went through some
    if isinstance(exc, ProcessorError):
        head, said, tail = f"processor {output} crashed on {where}: ", str(exc), at
    else:
        if field is None and isinstance(exc, KeyError) and exc.args:
            field = str(exc.args[0])
        involved = f" (field {shown_key(field)})" if field is not None else ""
        raised = f"{function} raised " if function is not None else ""
        head = f"processor {output} crashed on {where}: {raised}{type(exc).__name__} "
        said, tail = str(exc), f"{involved}{at}"
    # the exception's words are cut so that the whole line fits in a crash note, its end
    # (the field, the file and line) included
    return f"{head}{_cut(said, max(200, CRASH_NOTE_LIMIT - len(head) - len(tail)))}{tail}"


#: The most characters of an exception's text a crash line quotes (a KeyError of a huge key).
CRASH_TEXT_LIMIT = 1_000


def _cut(text: str, limit: int = CRASH_TEXT_LIMIT) -> str:
    """``text`` cut short, with its length, when longer than ``limit``: the one crash line
    must stay a line a log shipper takes whole."""
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} characters)"


class _ReportedError(Exception):
    """A failure whose line (``crash_line``) is logged already; carries the original as
    ``__cause__``."""

    crash_line: str = ""


# -- the engine ------------------------------------------------------------------------------


def _first_delivery(
    key_seen: Any, dedup: Dedup | None, envelope: Envelope, position: tuple[int, int, int]
) -> bool:
    """False if ``envelope`` is a copy of an event its key has seen (by ``dedup``'s field);
    an event without the field, or a processor without dedup, is always a first delivery."""
    if key_seen is None or dedup is None:
        return True
    event_id = envelope.fields.get(dedup.field)
    return event_id is None or key_seen.first_delivery(
        str(event_id), *position, arrival_ms=envelope.arrival_ms
    )


def retarget(processor: Processor, spec: ProcessorSpec) -> Processor:
    """``processor`` building ``spec.output`` from ``spec.inputs`` (taken in declaration
    order), e.g. private copies of its products in a benchmark or a test."""
    if len(spec.inputs) != len(processor.inputs):
        raise ConfigurationError(
            f"processor {processor.output} declares {len(processor.inputs)} inputs, but "
            f"{spec.output.name} has {len(spec.inputs)}"
        )
    inputs = tuple(
        dataclasses.replace(declared, product=product.name)
        for declared, product in zip(processor.inputs, spec.inputs, strict=True)
    )
    return dataclasses.replace(processor, output=spec.output.name, inputs=inputs)


def _input_topics(processor: Processor, spec: ProcessorSpec) -> dict[str, str]:
    """Input topic -> the declared input product it holds."""
    if spec.output.name != processor.output:
        raise ConfigurationError(
            f"processor {processor.output} cannot build {spec.output.name}; run it for its "
            f"own output (or retarget it)"
        )
    products = {product.name: product for product in spec.inputs}
    topics: dict[str, str] = {}
    for declared in processor.inputs:
        product = products.get(declared.product)
        if product is None:
            raise ConfigurationError(
                f"processor {processor.output} reads {declared.product}, which is not in the "
                f"inputs of {spec.output.name} ({', '.join(products) or 'none'}); add it to "
                f"the descriptor's `inputs`"
            )
        topics[product.topic] = declared.product
    problem = inputs_problem(processor, list(products), spec.output.name)
    if problem is not None:  # the re-key stage reads every input the spec holds
        raise ConfigurationError(problem)
    return topics


class Aggregation:
    """What the engine does with a processor's records, free of faust and Kafka.

    :meth:`route` is the re-key stage's function, :meth:`update` the aggregate agent's; the
    tables are plain mappings (faust tables in a worker) and ``publish`` sends an output
    record. Unit tests drive it directly and compare with
    :func:`~mesh_stream.processing.reference.recompute`.
    """

    def __init__(
        self,
        processor: Processor,
        topics: Mapping[str, str],
        states: MutableMapping[str, Any],
        seen_table: MutableMapping[str, Any] | None,
        publish: Callable[[str, Mapping[str, Any] | None, int], None],
        partition_of: Callable[[str], int] | None = None,
        input_partitions: Mapping[str, int] | None = None,
        app_id: str | None = None,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``topics`` maps each input topic to the declared input product it holds;
        ``defaults`` each input product's defaults of the fields it reads (a record written
        before a field was added with a default reads it as that, see
        :func:`~mesh_stream.processing.codec.field_defaults`);
        ``seen_table`` is needed when the processor declares dedup. With ``partition_of``
        (a state key's partition of the internal topic) and ``input_partitions`` (each input
        topic's partition count), a windowed processor's closed windows are deleted
        ``retain_ms`` after they closed (:mod:`.expiry`)."""
        self.processor = processor
        self._defaults = defaults or {}
        #: The worker's app id (its consumer group; its internal topic's prefix).
        self.app_id = app_id or processor_app_id(processor.output)
        #: Input topic -> (its place in the records' layout, its declaration).
        self.by_topic: dict[str, tuple[int, Input]] = {}
        layout: list[list[Any]] = []
        for topic, product in topics.items():
            declared = processor.input(product)
            self.by_topic[topic] = (len(layout), declared)
            layout.append([declared.product, topic, list(declared.reads)])
        #: Each input's topic, by its place in the layout.
        self._topics = [topic for _product, topic, _reads in layout]
        #: The layout this version writes; a record with another one is checked (see unpack).
        self._layout = layout
        #: What every internal record starts with: the format, then each input's fields.
        self._head = _FORMAT_MARK + json.dumps(layout, separators=(",", ":")).encode() + b","
        self.states = states
        self.publish = publish
        #: The span outputs are published under, when tracing is active (asked once).
        self.trace = tracing.ProcessTrace(processor.output) if tracing.active() else None
        self.seen: SeenEvents | None = None
        dedup = processor.dedup
        if dedup is not None:
            if seen_table is None:
                raise ConfigurationError(f"processor {processor.output}: dedup needs a table")
            horizon = dedup.horizon_ms
            self.seen = SeenEvents(
                seen_table,
                horizon_ms=horizon,
                bucket_ms=DEDUP_BUCKET_MS if horizon is None else min(DEDUP_BUCKET_MS, horizon),
            )
        window = processor.window
        self.expiry: WindowExpiry | None = None
        #: Windows forgotten, and events dropped for reaching one, since the worker started.
        self.forgotten = self.dropped = 0
        #: Events that arrived after every window holding them closed, since the start.
        self.late = 0
        self._next_late_warning = 0.0  # monotonic time the next late event may be logged
        #: Internal partitions whose forgetting an idle input partition holds back, told once.
        self._held_back_told: set[int] = set()
        self._next_drop_warning = 0.0  # monotonic time the next drop may be logged
        #: Records ``key`` dropped (returned None) while it has kept none, up to the warning.
        self._dropped_by_key = 0
        self._kept_any = False
        #: Events dedup dropped as copies of ones their key had seen, and events it looked
        #: up, since the worker started (the first till the warning's check).
        self.duplicates = 0
        self._deduped = 0 if processor.dedup is not None else DEDUP_WARNING_AFTER
        self._copy_seen: Envelope | None = None  # the latest copy, for the warning
        self._empty_key_told = False
        #: Writes the expiry clock ahead of any kept (deferred) write (see expiry.py).
        self._write_now: Callable[[str, Any], None] = (
            states.write_now if isinstance(states, DeferredTable) else states.__setitem__
        )
        if window is not None and partition_of is not None and input_partitions is not None:
            sources = [(t, p) for t, count in input_partitions.items() for p in range(count)]
            self.expiry = WindowExpiry(window, partition_of, sources)
        #: The Session window, when the processor's window is one.
        self.sessions = window if isinstance(window, Session) else None
        #: The session keys still to read after an assignment, and the expiry's generation
        #: they were listed in (see _scan_states).
        self._session_scan: Iterator[str] | None = None
        self._scan_generation = -1

    def _fail(
        self,
        where: str,
        exc: BaseException,
        field: str | None = None,
        function: str | None = None,
    ) -> _ReportedError:
        line = crash_line(self.processor.output, where, exc, field, function)
        log.error("%s", line)
        reported = _ReportedError(_cut(str(exc)))  # in mode's "Crashed reason=..." line too
        reported.crash_line = line  # noted in Kafka for the product monitor (rekey.crash_text)
        return reported

    def _with_defaults(
        self, declared: Input, record: Mapping[str, Any], where: str
    ) -> dict[str, Any]:
        """The fields ``declared`` reads of a record written before some were added: those
        get their defaults from the input's latest schema; one without a default stops the
        worker, saying so."""
        try:
            return read_fields(declared.reads, record, self._defaults.get(declared.product, {}))
        except KeyError as lacking:
            name = str(lacking.args[0])
            missing = ProcessorError(
                f"field {name!r} of {declared.product} is not in the record: its writer "
                f"schema lacks it, and the latest schema gives it no default (give the "
                f"field a default in {declared.product}'s schema, or leave it out of "
                f"`reads`)"
            )
            raise self._fail(where, missing, name) from lacking

    def route(
        self, topic: str, partition: int, offset: int, record: dict[str, Any], arrival_ms: int
    ) -> Iterable[tuple[str, Wire]]:
        """The (internal key, wire) pairs of one decoded input record."""
        index, declared = self.by_topic[topic]
        try:
            fields = {name: record[name] for name in declared.reads}
        except KeyError:
            fields = self._with_defaults(declared, record, f"{topic}[{partition}]@{offset}")
        window = self.processor.window
        function = "key"
        try:
            key = declared.key(fields)
            if key is None:
                if not self._kept_any:
                    self._warn_if_nothing_kept(f"{topic}[{partition}]@{offset}")
                return ()
            check_key(key)
            if not key and not self._empty_key_told:
                self._warn_empty_key(f"{topic}[{partition}]@{offset}")
            self._kept_any = True
            # what Processor.keys does, without an Event per record
            function = "event_time"
            event_ms = declared.event_ms(fields, arrival_ms)
            function = "window"
            windows = (
                list(window.windows(key, event_ms, arrival_ms))
                if window is not None and not isinstance(window, Session)
                else []
            )
        except Exception as exc:
            where = f"{topic}[{partition}]@{offset}"
            not_read = not_read_error(declared, exc) if function == "key" else None
            raise self._fail(where, not_read or exc, None, function) from exc
        values = list(fields.values())
        if not _LOOK_INTO.isdisjoint(map(type, values)):
            values = [_finite(value) for value in values]
        if window is None:
            return ((key, [index, partition, offset, arrival_ms, event_ms, values, None, None]),)
        if isinstance(window, Session):  # the session is found among the key's, by update
            if not window.on_time(event_ms, arrival_ms):
                self._left_out_late(f"{topic}[{partition}]@{offset}", event_ms, arrival_ms)
                return ()
            wire = [index, partition, offset, arrival_ms, event_ms, values, None, None]
            return ((session_state_key(key), wire),)
        if not windows:
            self._left_out_late(f"{topic}[{partition}]@{offset}", event_ms, arrival_ms)
            return ()
        head = [index, partition, offset, arrival_ms, event_ms, values]
        return [(str(w), [*head, [w.key, w.start_ms, w.end_ms], None]) for w in windows]

    def _left_out_late(self, where: str, event_ms: int, arrival_ms: int) -> None:
        """An event that arrived after every window holding it closed (its grace) is left
        out, as windows promise; counted (``mesh_processor_late_events_dropped``) and said at
        most every :data:`DROP_WARNING_EVERY_S`, so a team tuning ``grace_ms`` sees it."""
        self.late += 1
        now = time.monotonic()
        if now < self._next_late_warning:
            return
        self._next_late_warning = now + DROP_WARNING_EVERY_S
        window = self.processor.window
        closed = (
            f"gap_ms + grace_ms ({window.gap_ms} + {window.grace_ms}) after it, when a "
            f"session holding it would have closed"
            if isinstance(window, Session)
            else f"after every window holding it closed (grace_ms {getattr(window, 'grace_ms', 0)})"
        )
        log.warning(
            "processor %s left out %s: it arrived %d ms after its event time, %s; %d late "
            "event(s) left out since the worker started (said at most every %.0f s)",
            self.processor.output,
            where,
            arrival_ms - event_ms,
            closed,
            self.late,
            DROP_WARNING_EVERY_S,
        )

    def _count_duplicate(self, envelope: Envelope, stored: Mapping[str, Any]) -> None:
        """Count a copy dedup dropped (not an event the re-key stage sent again after a
        restart: its input record was applied already), and check the first lookups."""
        source = (envelope.topic, envelope.source_partition, envelope.source_offset)
        if input_applied(stored, source):
            return
        self.duplicates += 1
        self._copy_seen = envelope
        if self._deduped < DEDUP_WARNING_AFTER:
            self._note_lookup()

    def _note_lookup(self) -> None:
        """One more of the first events looked up by the dedup field: when most of the first
        20 (four in five) or of the first 1,000 (over half) were copies, warn once. A dedup
        field events share (a status, a type) drops all but the first of each value and key,
        silently, and ``mesh verify``'s generated input, unique in that field, cannot show
        it."""
        self._deduped += 1
        looked = self._deduped
        copies, copy = self.duplicates, self._copy_seen
        dedup = self.processor.dedup
        if copy is None or dedup is None or looked not in (DEDUP_EARLY_CHECK, DEDUP_WARNING_AFTER):
            return
        if copies * 5 < looked * 4 and (looked < DEDUP_WARNING_AFTER or copies * 2 <= looked):
            return
        self._deduped = DEDUP_WARNING_AFTER  # said once
        log.warning(
            "processor %s: dedup dropped %d of the first %d events as copies of events their "
            "key had seen (by field %r, e.g. %s at %s): if %r is not unique to each event (an "
            "event id), those events are lost; dedup on a field no two events share",
            self.processor.output,
            copies,
            looked,
            dedup.field,
            shown_key(copy.fields.get(dedup.field)),
            copy.where,
            dedup.field,
        )

    def _warn_if_nothing_kept(self, where: str) -> None:
        """A ``key`` that drops every record is legal but rarely meant: say so once, since
        such a processor would otherwise run with no output and no sign of why."""
        self._dropped_by_key += 1
        if self._dropped_by_key == NOTHING_KEPT_WARNING_AFTER:
            log.warning(
                "processor %s: key returned None for each of the first %d input records (the "
                "last %s), so none reached apply or the output; None drops a record: check "
                "key if it should keep some",
                self.processor.output,
                NOTHING_KEPT_WARNING_AFTER,
                where,
            )

    def _warn_empty_key(self, where: str) -> None:
        """An empty key is legal but rarely meant (a field looked up with a default of ""):
        every such record folds into one key, silently. Said once per worker."""
        self._empty_key_told = True
        log.warning(
            "processor %s: key returned an empty string for %s; every record given that key "
            "is folded into one state and one output record: return None to drop a record, "
            "else a non-empty identifier",
            self.processor.output,
            where,
        )

    def encode(self, groups: Sequence[tuple[str, list[Wire]]]) -> bytes:
        """One internal record's value: each key's wires, after the record's head (format,
        layout)."""
        try:
            body = orjson.dumps(groups, default=_encode_value, option=_ORJSON_OPTIONS)
        except TypeError as exc:  # orjson's own words; ours (naming the type) is the cause
            raise TypeError(str(exc.__cause__ or exc)) from exc
        return self._head + body[1:]

    def encode_records(
        self,
        groups: list[tuple[str, list[Wire]]],
        max_bytes: int,
        *,
        most: int = ENVELOPES_PER_RECORD,
        split_bytes: int = RECORD_SPLIT_BYTES,
    ) -> list[bytes]:
        """``groups`` (one internal partition's keys of a batch, each with its wires) as the
        values of internal records, in order: at most ``most`` events each, and a record over
        ``split_bytes`` split in two until it fits or holds one event. An event alone over
        ``max_bytes`` (what the producer sends) stops the worker, naming its input record,
        rather than leaving Kafka to refuse the record again at every restart."""
        encoded: list[bytes] = []
        pending = list(records_of(groups, most))
        pending.reverse()
        while pending:
            record = pending.pop()
            data = self.encode(record)
            if len(data) <= split_bytes:
                encoded.append(data)
                continue
            events = sum(len(wires) for _key, wires in record)
            if events > 1:
                first, second = records_of(record, (events + 1) // 2)
                pending += (second, first)
                continue
            if len(data) > max_bytes:
                wire = record[0][1][0]
                index, partition, offset = wire[0], wire[1], wire[2]
                declared = self.by_topic[self._topics[index]][1]
                key_bytes = len(record[0][0].encode("utf-8", "surrogatepass"))
                too_large = ProcessorError(
                    f"its event takes {len(data):,} bytes on the internal topic, over the "
                    f"{max_bytes:,} one internal record may hold: "
                    + (
                        f"its key (what key returned, with its window) is {key_bytes:,} "
                        f"bytes; key must return a short identifier"
                        if key_bytes * 2 > len(data)
                        else f"declare fewer or smaller fields in the reads of input "
                        f"{declared.product} ({', '.join(declared.reads)})"
                    )
                )
                raise self._fail(f"{self._topics[index]}[{partition}]@{offset}", too_large)
            encoded.append(data)
        return encoded

    def _check_layout(self, layout: list[list[Any]], partition: int, offset: int) -> None:
        """A record written by another version of the processor (other inputs or ``reads``,
        e.g. records it left behind when it stopped) must hold every field this version
        reads; apply would otherwise fail on a field that the input record has."""
        for product, _topic, reads in layout:
            try:
                declared = self.processor.input(product)
            except ConfigurationError:
                missing, what = [], f"input {product}, which this version does not declare"
            else:
                missing = [name for name in declared.reads if name not in reads]
                what = f"{product}'s fields {reads}, without {missing}, which this version reads"
            if missing or not isinstance(reads, list):
                raise self._fail(
                    f"internal record {partition}@{offset}",
                    ProcessorError(
                        f"it was written by an earlier version of this processor, reading "
                        f"{what}; its events cannot be read again from the input (the re-key "
                        f"stage committed them). Run the earlier version until consumer group "
                        f"{self.app_id} has no lag on {self.app_id}-{INTERNAL_TOPIC}, then this "
                        f"one; if the earlier version stops on one of them, run it fixed without "
                        f"the new fields first (docs: write a processor, Changing a processor)"
                    ),
                )

    @staticmethod
    def envelopes(
        data: bytes, key: bytes | None, partition: int, offset: int
    ) -> list[tuple[str, list[Envelope]]]:
        """Each key's envelopes in the internal record ``data`` (Kafka key ``key``, needed for
        the first format only) at ``partition``/``offset``."""
        return _parse(data, key, partition, offset)[1]

    def unpack(
        self,
        data: bytes,
        key: bytes | None,
        partition: int,
        offset: int,
        headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
    ) -> list[tuple[str, list[Envelope]]]:
        """:meth:`envelopes`, the record's arrivals noted for the window clock: its
        ``headers``' bounds (:data:`~.rekey.CLOCK_HEADER`), or for a record written without
        them (an older worker's) its events' own arrivals."""
        try:
            layout, found = _parse(data, key, partition, offset)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            unreadable = ProcessorError(
                f"the internal record cannot be read ({type(exc).__name__}: {exc}); it was "
                f"not written by this engine's re-key stage as this version reads it"
            )
            raise self._fail(f"internal record {partition}@{offset}", unreadable) from exc
        if layout is not None and layout != self._layout:
            try:
                self._check_layout(layout, partition, offset)
            except (ValueError, TypeError) as exc:  # a layout of another shape altogether
                unreadable = ProcessorError(
                    f"the internal record cannot be read ({type(exc).__name__}: {exc}); it "
                    f"was not written by this engine's re-key stage as this version reads it"
                )
                raise self._fail(f"internal record {partition}@{offset}", unreadable) from exc
        expiry = self.expiry
        if expiry is None:
            return found
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        bounds = next((v for k, v in pairs if k == CLOCK_HEADER), None)
        if bounds is not None and layout is not None:
            try:
                for index, source, arrival_ms in json.loads(bounds):
                    expiry.arrived(partition, (layout[index][1], source), arrival_ms)
                return found
            except (ValueError, TypeError, IndexError) as exc:
                where = f"internal record {partition}@{offset}"
                raise self._fail(where, exc, CLOCK_HEADER) from exc
        for _key, envelopes in found:
            for envelope in envelopes:
                source = (envelope.topic, envelope.source_partition)
                expiry.arrived(partition, source, envelope.arrival_ms)
        return found

    def update(self, kafka_key: str, envelopes: list[Envelope]) -> None:
        """Apply one key's envelopes of a batch (each once), store, emit if any was fresh.

        All envelopes of a call come from one partition of the internal topic (the key's),
        whose event is the current one in a worker. Once every key of the batch in that
        partition is updated, :meth:`settle` moves its window clock.
        """
        if self.sessions is not None:
            self._update_sessions(self.sessions, kafka_key, envelopes)
            return
        if self.expiry is not None and not self._within_retention(
            self.expiry, kafka_key, envelopes
        ):
            return
        processor, dedup = self.processor, self.processor.dedup
        stored: dict[str, Any] = dict(self.states.get(kafka_key) or {})
        value: dict[str, Any] = stored.setdefault(VALUE, {})
        key_seen = self.seen.for_key(kafka_key, stored) if self.seen is not None else None
        fresh = changed = False
        newest_input_ms = 0  # the newest input record an output of this batch reflects
        reflected: list[dict[str, str]] | None = [] if self.trace is not None else None
        for envelope in envelopes:
            position = (envelope.partition, envelope.offset, envelope.index)
            if not _first_delivery(key_seen, dedup, envelope, position):
                self._count_duplicate(envelope, stored)
                continue
            if self._deduped < DEDUP_WARNING_AFTER:
                self._note_lookup()
            fresh = True
            newest_input_ms = max(newest_input_ms, envelope.arrival_ms)
            if reflected is not None:  # every event counts in the span, traced or not
                reflected.append(envelope.trace or {})
            source = (envelope.topic, envelope.source_partition, envelope.source_offset)
            if apply_once(stored, *position, source=source):
                event = Event(
                    envelope.input, envelope.fields, envelope.arrival_ms, envelope.event_ms
                )
                try:
                    apply_checked(processor.apply, value, event)
                except Exception as exc:
                    declared = processor.input(envelope.input)
                    not_read = not_read_error(declared, exc, "apply")
                    raise self._fail(envelope.where, not_read or exc, None, "apply") from exc
                changed = True
        self._store(kafka_key, stored, key_seen, envelopes, changed)
        if fresh:
            last = envelopes[-1]
            window_of = last.window
            state_key: Any = WindowKey(*window_of) if window_of is not None else kafka_key
            try:
                record = emit_checked(processor.emit, state_key, value)
            except Exception as exc:
                raise self._fail(last.where, exc, None, "emit") from exc
            self._publish(kafka_key, record, newest_input_ms, reflected, last)

    def _store(
        self,
        state_key: str,
        stored: dict[str, Any],
        key_seen: Any,
        envelopes: list[Envelope],
        changed: bool,
    ) -> bool:
        """Store a key's seen entries, then (if either changed) the state listing them; a
        state that is not JSON or too large for a changelog record stops the worker, naming
        the batch's last input record. Whether the state was written."""
        if key_seen is not None:
            newest = max(envelope.arrival_ms for envelope in envelopes)
            try:
                changed = key_seen.store(now_ms=newest) or changed  # seen entries first ...
            except StateTooLargeError as exc:  # ids too long for a slot of them
                raise self._fail(envelopes[-1].where, exc) from exc
        if changed:
            try:
                self.states[state_key] = stored  # ... then the state listing them
            except (TypeError, StateTooLargeError) as exc:  # not JSON, or too much of it
                raise self._fail(envelopes[-1].where, exc) from exc
        return changed

    def _update_sessions(self, window: Session, state_key: str, envelopes: list[Envelope]) -> None:
        """:meth:`update` for a Session window: each event (once) joins, starts or merges the
        key's sessions (:func:`~.sessions.place`) and is applied to its session; every session
        an event reached is emitted under ``<key>@<start>``, and a tombstone is published for
        each start no longer a session's (merged, or grown earlier). A session reached again
        by a replayed event sends its retired starts' tombstones again: its state may have
        reached the changelog while the batch's outputs were lost."""
        processor, dedup = self.processor, self.processor.dedup
        key = state_key[: -len(SESSION_SUFFIX)]
        partition = envelopes[0].partition
        clock = self._clock_before_batch(partition)
        stored: dict[str, Any] = dict(self.states.get(state_key) or {})
        sessions: list[list[Any]] = [list(item) for item in stored.get(SESSIONS) or ()]
        stored[SESSIONS] = sessions
        published = {session[0] for session in sessions}
        key_seen = self.seen.for_key(state_key, stored) if self.seen is not None else None
        merge = processor.merge
        assert merge is not None  # the Processor declaration requires it with a Session
        #: Each session an event reached, with that event (for emit's errors), in order.
        reached: list[tuple[list[Any], Envelope]] = []
        #: Sessions reached by a replayed event: their retired starts are deleted again.
        replayed: list[list[Any]] = []
        changed = False
        newest_input_ms = 0
        reflected: list[dict[str, str]] | None = [] if self.trace is not None else None
        too_old: list[Envelope] = []
        for envelope in envelopes:
            if clock is not None and window.too_old(envelope.event_ms, clock):
                too_old.append(envelope)
                continue
            position = (envelope.partition, envelope.offset, envelope.index)
            if not _first_delivery(key_seen, dedup, envelope, position):
                self._count_duplicate(envelope, stored)
                continue
            if self._deduped < DEDUP_WARNING_AFTER:
                self._note_lookup()
            newest_input_ms = max(newest_input_ms, envelope.arrival_ms)
            if reflected is not None:
                reflected.append(envelope.trace or {})
            source = (envelope.topic, envelope.source_partition, envelope.source_offset)
            event_ms = envelope.event_ms
            if not apply_once(stored, *position, source=source):
                # applied before a crash: its session is emitted again, as it stands
                holding = [s for s in sessions if s[0] <= event_ms <= s[1]]
                reached += [(session, envelope) for session in holding]
                replayed += holding
                continue
            event = Event(envelope.input, envelope.fields, envelope.arrival_ms, event_ms)
            function = "merge"
            try:
                session = place(window, sessions, event_ms, merge, key)
                function = "apply"
                apply_checked(processor.apply, session[2], event)
            except Exception as exc:
                declared = processor.input(envelope.input)
                not_read = not_read_error(declared, exc, "apply") if function == "apply" else None
                raise self._fail(envelope.where, not_read or exc, None, function) from exc
            reached.append((session, envelope))
            changed = True
        if too_old and clock is not None:
            self._dropped_too_old(state_key, too_old, clock)
        seen = key_seen if len(too_old) < len(envelopes) else None
        written = self._store(state_key, stored, seen, envelopes, changed)
        if written and self.expiry is not None and sessions:
            self.expiry.note(partition, state_key, window.forget_at_ms(sessions[0][1]))
        live = {id(session) for session in sessions}
        emitted: dict[int, Envelope] = {}
        for session, envelope in reversed(reached):  # each session blames its last event
            if id(session) in live and id(session) not in emitted:
                emitted[id(session)] = envelope
        for session in sessions:
            blamed = emitted.get(id(session))
            if blamed is None:
                continue
            window_key = WindowKey(key, session[0], session[1])
            try:
                record = emit_checked(processor.emit, window_key, session[2])
            except Exception as exc:
                where = f"{blamed.where} (session {shown_key(str(window_key))})"
                raise self._fail(where, exc, None, "emit") from exc
            self._publish(str(window_key), record, newest_input_ms, reflected, blamed)
        starts = {session[0] for session in sessions}
        gone = published - starts
        for session in replayed:
            if id(session) in live:
                gone.update(start for start in session[3] if start not in starts)
        for start in sorted(gone):
            self._publish(f"{key}@{start}", None, newest_input_ms, reflected, envelopes[-1])

    def _publish(
        self,
        kafka_key: str,
        record: Mapping[str, Any] | None,
        newest_input_ms: int,
        reflected: list[dict[str, str]] | None,
        last: Envelope,
    ) -> None:
        """Publish ``record`` (None: a tombstone) under ``kafka_key``, under the aggregate's
        span when tracing; what Kafka cannot take of ``emit``'s record stops the worker."""
        try:
            if reflected is None or self.trace is None:
                self.publish(kafka_key, record, newest_input_ms)
            else:  # under a span, child of the newest input event's, the output's headers
                with self.trace.processing(reflected):
                    self.publish(kafka_key, record, newest_input_ms)
        except (SerializationError, ProcessorError) as exc:  # what emit returned
            shown = shown_key(kafka_key)
            unfit = ProcessorError(f"emit returned a record for key {shown}: {exc}")
            raise self._fail(last.where, unfit) from exc

    def _clock_before_batch(self, partition: int) -> int | None:
        """``partition``'s window clock as it was before this batch (its saved clock read and
        the tables' keys scanned first, after an assignment); None without one."""
        expiry = self.expiry
        if expiry is None:
            return None
        if expiry.needs_restore(partition):
            expiry.restore(partition, self.states.get(clock_key(partition)))
        if expiry.needs_scan():
            self._scan_states(expiry)
        return expiry.clock(partition)

    def _scan_states(self, expiry: WindowExpiry) -> None:
        """Note every state key the tables hold (a session key by its oldest session). A
        session key's time is in its value, so those are read :data:`SCAN_AT_ONCE` a batch
        (the rest at the next batches), never all at once on the event loop."""
        window = self.sessions
        if window is None:
            expiry.scan(list(self.states))
            return
        if self._session_scan is None or self._scan_generation != expiry.generation:
            self._session_scan = iter([k for k in self.states if k.endswith(SESSION_SUFFIX)])
            self._scan_generation = expiry.generation
        timed = []
        read = 0
        for state_key in itertools.islice(self._session_scan, SCAN_AT_ONCE):
            read += 1
            # by get: a faust table lists keys of partitions it cannot read now (not assigned)
            stored = self.states.get(state_key)
            sessions = stored.get(SESSIONS) if isinstance(stored, dict) else None
            if sessions:
                timed.append((window.forget_at_ms(sessions[0][1]), state_key))
        done = read < SCAN_AT_ONCE
        if done:
            self._session_scan = None
        expiry.scan_timed(timed, done=done)

    def _dropped_too_old(self, state_key: str, envelopes: list[Envelope], clock: int) -> None:
        """Events that could join a session the clock may have deleted are dropped (and
        counted), said at most every :data:`DROP_WARNING_EVERY_S`."""
        self.dropped += len(envelopes)
        now = time.monotonic()
        if now < self._next_drop_warning:
            return
        self._next_drop_warning = now + DROP_WARNING_EVERY_S
        window = self.sessions
        assert window is not None
        first = envelopes[0]
        log.warning(
            "processor %s dropped %d event(s) of key %s, the first at %s (event time %d): "
            "more than gap_ms + grace_ms + retain_ms (%d + %d + %d ms) behind the clock "
            "(%d, every input partition's newest arrival), so a session they could join may "
            "be deleted already (%d dropped since the worker started; this is said at most "
            "every %.0f s)",
            self.processor.output,
            len(envelopes),
            shown_key(state_key[: -len(SESSION_SUFFIX)]),
            first.where,
            first.event_ms,
            window.gap_ms,
            window.grace_ms,
            window.retain_ms,
            clock,
            self.dropped,
            DROP_WARNING_EVERY_S,
        )

    def _within_retention(self, expiry: WindowExpiry, key: str, envelopes: list[Envelope]) -> bool:
        """False (the envelopes are dropped, with a warning) if ``key``'s window is past its
        retention by the partition's clock as it was before this batch."""
        partition = envelopes[0].partition
        self._clock_before_batch(partition)
        if expiry.accepts(partition, key):
            return True
        # Its state, if still there, goes with the partition's other due windows (forget_due).
        self.dropped += len(envelopes)
        now = time.monotonic()
        if now >= self._next_drop_warning:  # old records replayed in bulk: not a line each
            self._next_drop_warning = now + DROP_WARNING_EVERY_S
            log.warning(
                "processor %s dropped %d event(s) of window %s, the first at %s: the "
                "window closed more than retain_ms (%d ms) before every input "
                "partition's newest arrival; what is left of its state is deleted with the "
                "partition's other closed windows once their outputs are in Kafka (%d "
                "dropped since the worker started; this is said at most every %.0f s)",
                self.processor.output,
                len(envelopes),
                key,
                envelopes[0].where,
                expiry.window.retain_ms,
                self.dropped,
                DROP_WARNING_EVERY_S,
            )
        return False

    @property
    def generation(self) -> int:
        """Changes at every revoke (see :meth:`WindowExpiry.forget_partitions`)."""
        return self.expiry.generation if self.expiry is not None else 0

    def settle(self, partition: int) -> bool:
        """A batch's keys of ``partition`` are updated: move the partition's clock. True if
        windows are now past retention there, for :meth:`forget_due` once the outputs
        published so far are acknowledged (see :func:`~.app.handle_batch`)."""
        expiry = self.expiry
        if expiry is None or expiry.needs_restore(partition):
            return False
        expiry.advance(partition)
        if partition not in self._held_back_told and (held := expiry.held_back_by(partition)):
            self._held_back_told.add(partition)
            log.warning(
                "processor %s keeps windows of internal partition %d past retain_ms: %s "
                "brought it no event yet, and the clock waits for every input partition",
                self.processor.output,
                partition,
                ", ".join(f"{topic}[{source}]" for topic, source in held),
            )
        return expiry.has_due(partition)

    def save_clock(self, partition: int) -> None:
        """Write ``partition``'s clock to its state table at once (in a worker, under one of
        its events), before :meth:`forget_due` deletes what it judged past retention; the
        writes kept until then go first, so a restored clock never runs ahead of the states
        it judged (a session's replayed events would be judged by it one by one, h47)."""
        if self.expiry is not None:
            if isinstance(self.states, DeferredTable):
                self.states.flush_all()
            self._write_now(clock_key(partition), self.expiry.saved(partition))

    def forget_due(self, partition: int) -> None:
        """Delete ``partition``'s windows past their retention (in a worker, under one of its
        events), once :meth:`save_clock` wrote the clock that judged them."""
        expiry = self.expiry
        if expiry is None:
            return
        for forgotten in expiry.due(partition):
            if self.sessions is None:
                self.forget(forgotten)
                self.forgotten += 1
            else:
                self.forgotten += self._forget_sessions(self.sessions, expiry, partition, forgotten)

    def _forget_sessions(
        self, window: Session, expiry: WindowExpiry, partition: int, state_key: str
    ) -> int:
        """Delete ``state_key``'s sessions past their retention by ``partition``'s clock (the
        whole key when none is left; else the key is noted again for its oldest one); how
        many were deleted."""
        stored = self.states.get(state_key)
        clock = expiry.clock(partition)
        if not isinstance(stored, dict) or clock is None:
            return 0
        sessions = stored.get(SESSIONS) or []
        kept = [s for s in sessions if window.forget_at_ms(s[1]) > clock]
        if not kept:
            self.forget(state_key)
            return len(sessions)
        if len(kept) < len(sessions):
            self.states[state_key] = {**stored, SESSIONS: kept}
        expiry.note(partition, state_key, window.forget_at_ms(kept[0][1]))
        return len(sessions) - len(kept)

    def forget(self, key: str) -> None:
        """Delete ``key``'s state and seen entries (the seen entries first: a crash in
        between leaves a state listing slots that are gone, which reads as no ids)."""
        stored = self.states.get(key)
        if stored is None:
            return
        if self.seen is not None:
            self.seen.forget(key, stored)
        del self.states[key]


def build(
    processor: Processor,
    spec: ProcessorSpec,
    *,
    on_crash: Callable[[BaseException], None] | None = None,
    metrics: ProcessorMetrics | None = None,
) -> faust.App:
    """The faust app of ``processor`` over the products ``spec`` resolved.

    ``on_crash`` is told when the worker stops on a failure, before faust stops (the entry
    point arms a hard exit with it). With ``metrics``, route, update, publish and the
    decoder are counted into it and its readiness follows the re-key stage; without, the
    hot path carries nothing extra.
    """
    topics = _input_topics(processor, spec)
    app = processor_app(spec)
    by_key = internal_topic(app, spec, INTERNAL_TOPIC)
    # Writes wait for faust's commits (deferred.py); seen entries reach the changelog before
    # the states that list them.
    names = (SEEN_TABLE, STATE_TABLE) if processor.dedup is not None else (STATE_TABLE,)
    tables = defer_writes(
        app,
        *(changelogged_table(app, spec, name) for name in names),
        flush_at=spec.settings.processor_state_flush_at,
    )
    states, seen = tables[-1], (tables[0] if len(tables) == 2 else None)
    faust_seams.start_tables_at_once(app)  # every table is declared: no wait for late ones
    outputs = OutputProducer(spec.connection, spec.app_id)
    flush_with_commits(app, outputs, spec.output.topic)
    output = KeyedOutput(spec, outputs)
    partitions = spec.output.partitions
    input_partitions = {product.topic: product.partitions for product in spec.inputs}
    defaults = read_defaults(processor, spec.input_schemas)

    def partition_of(key: str) -> int:
        return key_partition(key, partitions)

    route: Route
    update: Callable[[str, list[Envelope]], None]
    if metrics is None:
        aggregation = Aggregation(
            processor,
            topics,
            states,
            seen,
            output.publish,
            partition_of,
            input_partitions,
            app_id=spec.app_id,
            defaults=defaults,
        )
        route, update, decoder = aggregation.route, aggregation.update, schema_decoder(spec)
    else:
        publish = metrics.counted_publish(output.publish)
        aggregation = Aggregation(
            processor,
            topics,
            states,
            seen,
            publish,
            partition_of,
            input_partitions,
            app_id=spec.app_id,
            defaults=defaults,
        )
        route = metrics.counted_route(aggregation.route)
        update = metrics.counted_update(aggregation.update)
        decoder = CountingDecoder(RegistryClient.from_settings(spec.settings).get_schema, metrics)
    windowed = aggregation.expiry is not None
    stage = add_rekey_stage(
        app, spec, by_key, route, decoder, aggregation.encode_records, on_crash, clocked=windowed
    )
    refusals = StopOnSendError(spec.app_id, stage)
    app.sensors.add(refusals)
    outputs.on_refused = partial(refusals.on_send_error, None, state=None)
    forgetting = aggregation if windowed else None
    flush = confirmed_flush(app, refusals, outputs)
    unpack = aggregation.unpack
    add_aggregate_agent(app, spec, by_key, update, unpack, stage.crash, forgetting, flush)
    expiry = aggregation.expiry
    if expiry is not None:

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's handler type is narrow
        async def read_windows_again(sender: Any, *args: Any, **kwargs: Any) -> None:
            del sender, args, kwargs
            expiry.forget_partitions()

    if metrics is not None:
        metrics.ready = lambda: _stage_readiness(stage)
        if aggregation.expiry is not None:
            metrics.forgetting = lambda: (aggregation.forgotten, aggregation.dropped)
        if processor.window is not None:
            metrics.late_events = lambda: aggregation.late
        if processor.dedup is not None:
            metrics.duplicates = lambda: aggregation.duplicates
    return app


def _stage_readiness(stage: Service) -> tuple[bool, str]:
    """Ready while the re-key stage reads the inputs (started after the tables recovered)."""
    if stage.crashed:
        return False, "the worker crashed"
    if stage.should_stop:
        return False, "the worker is stopping"
    if not stage.started:
        return False, "recovering its tables (the re-key stage has not started)"
    return True, "reading its inputs"


# -- the worker entry point ---------------------------------------------------------------


#: Longest a crashed worker may take to stop before its process exits with status 1 (armed by
#: :func:`run`, the worker entry point, never by the library).
CRASH_EXIT_S = 5.0


def exit_if_still_running(seconds: float, why: str) -> None:
    """Exit the process with status 1 in ``seconds`` unless it has exited by then.

    Process-wide, so only the worker entry point (:func:`run`) arms it, from the
    ``on_crash`` it gives :func:`build`: faust's stop waits for its agents to acknowledge
    the events they hold, which an agent interrupted by a crash may never do.
    """

    def exit_now() -> None:
        log.critical("%s; not stopped after %.0f s, exiting", why, seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def run(
    processor: Processor,
    argv: list[str] | None = None,
    *,
    spec: ProcessorSpec | None = None,
) -> None:
    """Run faust's command line (e.g. ``worker -l info``) for ``processor``'s worker.

    The entry point of a processor module, and the only place that touches the process:
    it reads ``MESH_*`` settings (a bad one: exit status 2, a misspelled name: a warning),
    resolves and checks the products (:func:`prepare`; a problem is one line on stderr and
    exit status 1, no traceback), arms a hard exit for a
    worker that crashes but cannot stop within ``CRASH_EXIT_S``, raises the garbage
    collector's thresholds, chooses the event loop (``processor_event_loop``), sets the root
    logger to the requested level (its lines JSON objects with ``MESH_LOG_FORMAT=json``, once
    faust has set up logging) and hands faust ``argv`` (default: ``sys.argv[1:]``). Give
    ``spec`` to run over other products than the processor's own (see :func:`retarget`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    for warning in unsaid_misspelled_settings(again=True):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        settings = MeshSettings()
    except SettingsError as exc:  # a usage error, as the CLI's exit status says
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        use_event_loop(settings.processor_event_loop)
        if spec is None:
            spec = prepare(settings, processor.output, processor=processor)
        else:
            check_reads(processor, spec.input_schemas)
        app_id = spec.app_id
        lineage = LineageRun.for_worker(spec)  # None unless an OpenLineage transport is set

        def arm_hard_exit(reason: BaseException) -> None:
            _STOPPING_AFTER_CRASH.set()
            cause = reason.__cause__ if isinstance(reason, _ReportedError) else reason
            if lineage is not None:
                lineage.fail(cause or reason)
            exit_if_still_running(CRASH_EXIT_S, f"{app_id} crashed: {cause!r}")

        metrics = _serve_metrics(settings, spec)
        app = build(processor, spec, on_crash=arm_hard_exit, metrics=metrics)
        if lineage is not None:
            lineage.attach(app)
    except MeshError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, SettingsError) else 1) from None
    except OSError as exc:  # the state folder under MESH_DATA_DIR cannot be made or used
        print(
            f"error: {exc.strerror or exc}: {exc.filename or settings.data_dir}; check "
            f"MESH_DATA_DIR ({settings.data_dir}), where the worker keeps its state",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    _run_faust(app, args, settings.log_format)


def use_event_loop(choice: str) -> str:
    """Make ``choice`` (a ``processor_event_loop``) the process's event loop policy, before
    faust creates its loops (its own and its consumer thread's); the loop used, by name.

    Through mode's ``mode.loop.use``, as faust's own ``--loop`` option does.
    """
    if choice == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ConfigurationError(
                "MESH_PROCESSOR_EVENT_LOOP=uvloop, but uvloop is not installed: install "
                "mesh-stream[processing] (uvloop is not built for Windows), or set it to auto"
            )
        return "asyncio"
    import mode.loop

    mode.loop.use("uvloop")
    return "uvloop"


def _serve_metrics(settings: MeshSettings, spec: ProcessorSpec) -> ProcessorMetrics | None:
    """With ``processor_metrics_port`` set: the worker's metrics, served from now on."""
    port = settings.processor_metrics_port
    if port is None:
        return None
    watermarks = KafkaWatermarks(spec.connection, f"{spec.app_id}-metrics")
    metrics = ProcessorMetrics(spec.output.name, watermarks)
    try:
        server = MetricsServer(metrics, "", port)
    except OSError as exc:
        raise ConfigurationError(
            f"processor {spec.output.name} cannot serve its metrics on port {port}: "
            f"{exc.strerror}; choose another MESH_PROCESSOR_METRICS_PORT (0 picks a free one)"
        ) from exc
    server.start()
    print(
        f"processor {spec.output.name}: metrics on http://0.0.0.0:{server.port}/metrics, "
        f"health on /health/live and /health/ready",
        file=sys.stderr,
    )
    return metrics


def _run_faust(app: faust.App, args: list[str], log_format: LogFormat = "text") -> None:
    web_options = ("--with-web", "--without-web", "--web-port")
    # faust's web server binds port 6066 by default, and several processors run side by side.
    if args[:1] == ["worker"] and not any(arg.startswith(web_options) for arg in args):
        args.insert(1, "--without-web")
    level = _requested_level(args)

    async def honour_log_level() -> None:
        # mode leaves the root logger at DEBUG and filters in the handler, so every debug
        # call of aiokafka and faust still builds a LogRecord: a tenth of the CPU per event.
        root = logging.getLogger()
        root.setLevel(level)
        for handler in root.handlers:  # faust set up its handlers by now
            handler.addFilter(_without_reported_tracebacks)
            if log_format == "json":  # JSON lines from here on
                handler.setFormatter(JsonFormatter())

    app.task(honour_log_level)
    # Python's default collector thresholds (700 allocations) made the worker walk its
    # long-lived objects (faust's internals, the dedup index) so often that, with a backlog,
    # a fifth of its CPU per event went to the garbage collector.
    gc.set_threshold(*GC_THRESHOLDS)
    sys.argv = [sys.argv[0], *args]
    app.main()


#: Set once the worker crashed: what its stop then trips over is not news.
_STOPPING_AFTER_CRASH = threading.Event()


#: What mode's worker logs (CRITICAL) as it stops on a crash: after the crash line, this one
#: is about the same failure.
_RERAISING = "We experienced a crash! Reraising original exception"


def _without_reported_tracebacks(record: logging.LogRecord) -> bool:
    """Keep faust's lines about a crash the worker already reported in one line (its
    ``Crashed reason=...`` and its agents' cancellation), without their tracebacks: those
    repeated the same failure through five chained exceptions after the crash line. So for
    mode's ``Error while stopping child`` of a crashed worker whose event loop is closed
    (it read as a second bug after the crash line; a new team's campaign). These lines, and
    mode's "We experienced a crash!", are logged at INFO: one crash is one error in the log
    (the live view counted four per crash, h45)."""
    same_failure = False
    if record.exc_info and (
        _reported(record.exc_info[1])
        or (_STOPPING_AFTER_CRASH.is_set() and _loop_closed(record.exc_info[1]))
    ):
        record.exc_info = None
        record.exc_text = None
        same_failure = True
    elif _STOPPING_AFTER_CRASH.is_set() and _RERAISING in str(record.msg):
        same_failure = True
    if same_failure and record.levelno > logging.INFO:
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def _loop_closed(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)


def _reported(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was raised while handling, an error already logged in one line
    (a record's :class:`_ReportedError`, the re-key stage's :class:`FatalKafkaStop`)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (_ReportedError, FatalKafkaStop)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _requested_level(args: list[str]) -> int:
    """The level given with ``-l``/``--loglevel`` (faust's default: WARNING)."""
    for flag in ("-l", "--loglevel"):
        if flag in args[:-1]:
            value = logging.getLevelName(args[args.index(flag) + 1].upper())
            if isinstance(value, int):
                return value
    return logging.WARNING
