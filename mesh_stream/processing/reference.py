"""What a processor's outputs must be: its own pure functions run over its inputs in one pass.

No Kafka, no faust, no crash: each input record is keyed, windowed and deduplicated exactly as
the declaration says, then folded into its key's state; the result is the final output record
of every key. A worker that crashes, restarts, rebalances and replays must end with the same
latest record per key; ``mesh verify`` and the processors' integration tests check exactly
that, so a processor whose ``apply`` counts a replay twice, or whose dedup does not hold, is
found by comparison rather than by reading its code.

For a :class:`~mesh_stream.processing.spec.Session` window, each key's accepted events are
cut into sessions once all are read, and each session is folded with ``apply`` alone: the
processor's ``merge``, which a worker uses as late events bridge sessions, is judged against
that fold, never used to make it.

Dedup here keeps each id's first arrival and drops a copy arriving less than the horizon
after it. The engine keeps ids at least that long and forgets them later (by minutes of
arrival, once no write touched them for the horizon in its own time), so a copy arriving at
or past the horizon may count there or not: ``past_horizon`` collects the keys of such
copies, for which ``mesh verify`` also accepts the result with the copy dropped (with
several, any result).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.processing.sessions import sessionize
from mesh_stream.processing.spec import (
    Event,
    Input,
    Processor,
    Session,
    WindowKey,
    apply_checked,
    check_key,
    emit_checked,
    not_read_error,
    raised_at,
    read_fields,
    state_json,
)

__all__ = ["InputRecord", "project_fields", "recompute"]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One decoded input record, as read from (or written to) its product's topic."""

    product: str
    record: Mapping[str, Any]
    #: Its Kafka record timestamp, epoch ms.
    arrival_ms: int
    #: Where it was read, for error messages (e.g. ``orders.order-placed.v1[2]@1041``).
    where: str = ""


def project_fields(
    processor: Processor,
    item: InputRecord,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The declared ``reads`` of ``item`` (what the engine forwards), a field its writer
    schema lacks taking the input's default from ``defaults`` (input product -> field ->
    value, :func:`~mesh_stream.processing.codec.field_defaults`) as the engine does; a field
    missing without one is an error naming the processor, the input, the field and where
    the record is."""
    reads = processor.input(item.product).reads
    try:
        return read_fields(reads, item.record, (defaults or {}).get(item.product, {}))
    except KeyError as missing:
        where = f" at {item.where}" if item.where else ""
        raise ConfigurationError(
            f"processor of {processor.output}: a record of {item.product}{where} has no "
            f"field {missing.args[0]!r}, which the processor declares in `reads`"
        ) from None


def recompute(
    processor: Processor,
    records: Iterable[InputRecord],
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    past_horizon: dict[str, list[str]] | None = None,
    newest_inputs: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The final output record per Kafka key (``str`` of the state key) after ``records``
    (``defaults`` as for :func:`project_fields`). ``past_horizon``, when given, gets each
    key whose result depends on a copy that arrived at or past the dedup horizon after its
    first, with each such copy described (see the module). ``newest_inputs``, when given,
    gets per key where the newest record its state took was (``topic[partition]@offset``):
    the record to look at when the output record is wrong.

    Records are taken in the order given; give each input partition's records in offset
    order (``apply`` may not depend on anything more). The processor's own functions are
    held to what the engine holds them to: a ``key``, ``apply`` or ``emit`` that raises or
    breaks its contract is a :class:`~mesh_stream.errors.ProcessorError` naming it and the
    record.
    """
    states: dict[Any, dict[str, Any]] = {}
    first_arrivals: dict[Any, dict[Any, int]] = {}
    last_of: dict[Any, InputRecord] = {}  # the newest record each state saw, for emit's errors
    dedup = processor.dedup
    window = processor.window
    #: For a Session window: each key's accepted events, sessionized once all are read.
    session_events: dict[str, list[tuple[int, tuple[Event, InputRecord]]]] = {}
    for item in records:
        fields = project_fields(processor, item, defaults)
        declared = processor.input(item.product)
        with _blamed(processor, "key", item, declared):
            key = declared.key(fields)
            check_key(key)
        if key is None:
            continue
        with _blamed(processor, "event_time", item):
            event = processor.event(item.product, fields, item.arrival_ms)
        with _blamed(processor, "window", item):
            state_keys = list(processor.keys(event, key))
        for state_key in state_keys:
            # each application its own fields, as the engine reads each window's event from
            # the internal topic: a change apply makes reaches no other window, nor the input
            event = dataclasses.replace(event, fields=copy.deepcopy(fields))
            if dedup is not None:
                value = event.fields.get(dedup.field)
                if value is not None:
                    seen = first_arrivals.setdefault(state_key, {})
                    first = seen.get(value)
                    within = first is not None and (
                        dedup.horizon_ms is None or item.arrival_ms - first < dedup.horizon_ms
                    )
                    if within:
                        continue
                    if first is not None and past_horizon is not None:
                        past_horizon.setdefault(str(state_key), []).append(
                            f"{dedup.field} {value!r} arrived again {item.arrival_ms - first:,} "
                            f"ms after its first copy{f' ({item.where})' if item.where else ''}"
                            f", at or past horizon_ms {dedup.horizon_ms:,}: a worker may "
                            f"still remember it and drop it",
                        )
                    seen[value] = item.arrival_ms
            if isinstance(window, Session):
                session_events.setdefault(state_key, []).append((event.event_ms, (event, item)))
                continue
            with _blamed(processor, "apply", item, processor.input(item.product)):
                state = states.setdefault(state_key, {})
                apply_checked(processor.apply, state, event)
                state_json(str(state_key), state)  # what the engine could not store
            last_of[state_key] = item
    if isinstance(window, Session):
        _fold_sessions(processor, window, session_events, states, last_of)
    outputs: dict[str, dict[str, Any]] = {}
    for state_key, state in states.items():
        with _blamed(processor, "emit", last_of[state_key]):
            outputs[str(state_key)] = emit_checked(processor.emit, state_key, state)
        if newest_inputs is not None and last_of[state_key].where:
            newest_inputs[str(state_key)] = last_of[state_key].where
    return outputs


def _fold_sessions(
    processor: Processor,
    window: Session,
    session_events: Mapping[str, list[tuple[int, tuple[Event, InputRecord]]]],
    states: dict[Any, dict[str, Any]],
    last_of: dict[Any, InputRecord],
) -> None:
    """Each key's sessions, each folded from nothing with ``apply`` over its events (never
    ``merge``: a worker's merged states must equal these), into ``states`` by
    :class:`WindowKey`."""
    for key, events in session_events.items():
        for start, end, members in sessionize(window, events):
            state_key = WindowKey(key, start, end)
            state = states[state_key] = {}
            for event, item in members:
                with _blamed(processor, "apply", item, processor.input(item.product)):
                    apply_checked(processor.apply, state, event)
                    state_json(str(state_key), state)
                last_of[state_key] = item


@contextmanager
def _blamed(
    processor: Processor, function: str, item: InputRecord, declared: Input | None = None
) -> Iterator[None]:
    """Any exception of the block as a ProcessorError naming ``function`` and ``item``."""
    try:
        yield
    except ProcessorError as exc:
        raise ProcessorError(f"{_on(processor, item)}: {exc}") from exc
    except Exception as exc:
        not_read = not_read_error(declared, exc, function) if declared is not None else None
        what = str(not_read) if not_read else f"{function} raised {type(exc).__name__} {exc}"
        raise ProcessorError(f"{_on(processor, item)}: {what}{raised_at(exc)}") from exc


def _on(processor: Processor, item: InputRecord) -> str:
    where = item.where or f"a record of {item.product}"
    return f"processor {processor.output} on {where}"
