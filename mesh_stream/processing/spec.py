"""A processor, declared: its output product, its inputs, and three pure functions.

A team writes what is particular to its product and nothing else::

    PROCESSOR = Processor(
        output="analytics.revenue-by-region",
        inputs=(Input("orders.order-placed", key=by_region,
                      reads=("event_id", "region", "total_amount", "currency", "placed_at"),
                      event_time="placed_at"),),
        apply=add_order,          # (state, event) -> None: fold one event into its key's state
        emit=window_record,       # (key, state) -> the output record of that key
        window=Tumbling(size_ms=60_000, grace_ms=30_000),
        dedup=Dedup(field="event_id"),
    )

The engine (:mod:`mesh_stream.processing.engine`) turns the declaration into a faust worker
and owns every invariant: each event is applied once despite duplicates (``dedup``) and
replays after a crash, state is stored before offsets are committed, outputs are sent before
offsets are committed, undecodable records go to the input's dead-letter topic, and a send
Kafka refuses stops the worker. :func:`mesh_stream.processing.reference.recompute` runs the
same functions over a list of inputs in one pass, which is what ``mesh verify`` compares a
worker's outputs with.

What the functions may rely on, and what they must keep:

* ``key(fields)`` sees only the input's declared ``reads`` (the engine decodes and forwards
  nothing else, which also keeps PII a processor does not read out of its state); it returns
  the key, or None to drop the record. Timestamps arrive as int epoch milliseconds, decimals
  as :class:`decimal.Decimal`.
* ``apply(state, event)`` changes ``state`` (a dict of JSON values, ``{}`` for a new key) in
  place and returns nothing. It must not depend on the order in which events of *different*
  input partitions arrive (counts, sums, min/max, latest-by-timestamp are fine): the engine
  keeps each partition's order, nothing more. Keys starting with ``_`` are the engine's.
* ``emit(key, state)`` returns the output record for ``key``; for a windowed processor
  ``key`` is a :class:`WindowKey` (its ``str`` is the Kafka key, ``<key>@<window start>``).
* ``merge(into, other)``, for :class:`Session` windows only, folds the state of a session
  into the state of another (``into``, changed in place) when an event bridges the two. It
  must leave ``into`` as if it had been given every event of both: ``mesh verify`` compares
  the merged result with one fold of all the session's events.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh_stream.descriptor import product_name_problem
from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.processing.names import processor_app_id, sources_group

__all__ = [
    "Dedup",
    "Event",
    "Hopping",
    "Input",
    "Processor",
    "Session",
    "Tumbling",
    "Window",
    "WindowKey",
    "apply_checked",
    "check_key",
    "emit_checked",
    "inputs_problem",
    "key_field_differs",
    "not_read_error",
    "raised_at",
    "read_fields",
    "shown_key",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One input record as ``apply`` sees it."""

    #: The input product's name, e.g. ``orders.order-placed``.
    input: str
    #: The record's declared ``reads`` fields (only those). Each application gets its own
    #: (under a Hopping window, each window's), so a change made in one reaches no other.
    fields: Mapping[str, Any]
    #: When the record reached Kafka (its record timestamp), epoch ms.
    arrival_ms: int
    #: The event time (the input's ``event_time`` field; ``arrival_ms`` when it has none).
    event_ms: int


@dataclass(frozen=True, slots=True)
class Input:
    """An input product, the fields the processor reads from it, and how its records are keyed."""

    product: str
    key: Callable[[Mapping[str, Any]], str | None]
    #: Top-level fields the processor reads; checked against the registered schema at start-up.
    reads: tuple[str, ...]
    #: The field holding the event time (int ms) that windows use; None: the arrival time.
    event_time: str | None = None
    #: The major version read (its topic ``<product>.v<major>`` and that subject's latest
    #: schema); None: the product's current major, followed when a new one is published.
    major: int | None = None

    def __post_init__(self) -> None:
        _check_product_name("Input product", self.product)
        where = f"Input {self.product}:"
        if self.major is not None and (
            isinstance(self.major, bool) or not isinstance(self.major, int) or self.major < 1
        ):
            raise ConfigurationError(
                f"{where} major must be a whole number from 1 (the major version to read, "
                f"e.g. major=1 for {self.product}.v1) or None for the current one, "
                f"got {_shown(self.major)}"
            )
        _check_callable(where, "key", self.key, "record")
        object.__setattr__(self, "reads", _field_names(where, self.reads))
        if not self.reads:
            raise ConfigurationError(f"{where} `reads` names no field")
        if self.event_time is not None and not isinstance(self.event_time, str):
            raise ConfigurationError(
                f"{where} event_time must be the name of one of `reads` (a str) or None, "
                f"got {_shown(self.event_time)}"
            )
        if self.event_time is not None and self.event_time not in self.reads:
            raise ConfigurationError(
                f"{where} event_time {self.event_time!r} is not in `reads` "
                f"{list(self.reads)}; add it there"
            )

    def event_ms(self, fields: Mapping[str, Any], arrival_ms: int) -> int:
        """The event time of a record with these ``fields`` (the ``event_time`` field), or
        its arrival time when the input has none or the record leaves it empty."""
        if self.event_time is None:
            return arrival_ms
        value = fields.get(self.event_time)
        return arrival_ms if value is None else int(value)


@dataclass(frozen=True, slots=True)
class WindowKey:
    """The key of one window of one aggregate key. For a :class:`Session`, ``start_ms`` and
    ``end_ms`` are the event times of its first and last events (both included)."""

    key: str
    start_ms: int
    end_ms: int

    def __str__(self) -> str:
        return f"{self.key}@{self.start_ms}"


#: How long a closed window's state is kept by default (as Kafka Streams and faust do: a day).
DEFAULT_RETAIN_MS = 24 * 60 * 60 * 1000
#: The longest a window's size, grace or retention may be (its advance is at most its size):
#: a hundred years. Window starts and ends are epoch milliseconds stored as JSON and Avro
#: longs; a size of 2**62 made window keys past 2**64 that no state could hold.
MAX_WINDOW_MS = 100 * 365 * 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Tumbling:
    """Fixed, non-overlapping event-time windows of ``size_ms``.

    A window ``[start, start + size)`` accepts an event until ``start + size + grace_ms`` in
    *arrival* time (the record timestamp). Deciding lateness by each record's own arrival time
    makes the decision the same on a replay as on the first run, whatever the interleaving of
    partitions: that is what lets a restarted worker converge to exact values.

    Once closed, a window's state (and its seen event ids) is kept ``retain_ms`` longer, then
    deleted, so state grows with the windows still open, not with every window ever seen. The
    clock is arrival time per internal partition, the oldest of the newest arrivals each input
    partition brought there (:mod:`mesh_stream.processing.expiry`); an event that still
    reaches a deleted window (its record timestamp that far behind the clock) is dropped,
    since counting it would emit that window again from nothing.
    """

    size_ms: int
    grace_ms: int = 0
    retain_ms: int = DEFAULT_RETAIN_MS

    def __post_init__(self) -> None:
        _check_window(self)

    @property
    def advance_ms(self) -> int:
        return self.size_ms

    def windows(self, key: str, event_ms: int, arrival_ms: int) -> Iterator[WindowKey]:
        """The windows of ``key`` that accept an event of time ``event_ms`` arriving at
        ``arrival_ms`` (none when it is late for all)."""
        return _windows(self.size_ms, self.advance_ms, self.grace_ms, key, event_ms, arrival_ms)

    def forget_at_ms(self, start_ms: int) -> int:
        """The arrival time from which the window starting at ``start_ms`` is deleted."""
        return start_ms + self.size_ms + self.grace_ms + self.retain_ms


@dataclass(frozen=True)
class Hopping:
    """Overlapping event-time windows of ``size_ms`` starting every ``advance_ms``; an event
    counts in every window holding it that it reaches in time, and a closed window is kept
    ``retain_ms`` (see :class:`Tumbling`)."""

    size_ms: int
    advance_ms: int
    grace_ms: int = 0
    retain_ms: int = DEFAULT_RETAIN_MS

    def __post_init__(self) -> None:
        _check_window(self)

    def windows(self, key: str, event_ms: int, arrival_ms: int) -> Iterator[WindowKey]:
        return _windows(self.size_ms, self.advance_ms, self.grace_ms, key, event_ms, arrival_ms)

    def forget_at_ms(self, start_ms: int) -> int:
        """The arrival time from which the window starting at ``start_ms`` is deleted."""
        return start_ms + self.size_ms + self.grace_ms + self.retain_ms


@dataclass(frozen=True)
class Session:
    """Event-time sessions: a key's events at most ``gap_ms`` apart in event time share a
    session, which an event bridging two of them merges into one (``Processor.merge``).

    An event is on time if it reaches Kafka less than ``gap_ms + grace_ms`` after its event
    time (a session stays open ``gap_ms`` after its last event, plus the grace), else it is
    left out. As for :class:`Tumbling`, deciding by each record's own times makes the
    decision the same on a replay as on the first run, so the sessions a worker ends with are
    those of the accepted events, however they interleaved.

    Each session has its own output record, keyed ``<key>@<session start>``; when a session
    grows earlier or is merged into an earlier one, the record of its old start is deleted
    (a tombstone: a record with that key and no value). A session is deleted from the state
    ``retain_ms`` after no on-time event can reach it any more (``forget_at_ms``); an event
    arriving that far behind the clock is dropped (see :class:`Tumbling`).
    """

    gap_ms: int
    grace_ms: int = 0
    retain_ms: int = DEFAULT_RETAIN_MS

    def __post_init__(self) -> None:
        _check_window(self)

    def on_time(self, event_ms: int, arrival_ms: int) -> bool:
        """Whether an event of time ``event_ms`` arriving at ``arrival_ms`` is taken."""
        return arrival_ms < event_ms + self.gap_ms + self.grace_ms

    def touches(self, start_ms: int, end_ms: int, event_ms: int) -> bool:
        """Whether an event at ``event_ms`` joins the session ``[start_ms, end_ms]``."""
        return start_ms - self.gap_ms <= event_ms <= end_ms + self.gap_ms

    def forget_at_ms(self, end_ms: int) -> int:
        """The arrival time from which a session ending at ``end_ms`` is deleted: an on-time
        event joining it is at most ``end_ms + gap_ms``, so it arrives before ``end_ms + 2 *
        gap_ms + grace_ms``; the session is kept ``retain_ms`` after that."""
        return end_ms + 2 * self.gap_ms + self.grace_ms + self.retain_ms

    def too_old(self, event_ms: int, clock_ms: int) -> bool:
        """Whether an event at ``event_ms`` could join a session already deleted by the clock
        ``clock_ms`` (every session it could join ends at or after ``event_ms - gap_ms``)."""
        return self.forget_at_ms(event_ms - self.gap_ms) <= clock_ms


Window = Tumbling | Hopping | Session


#: The most windows one event may fall in (``size_ms / advance_ms``, rounded up, for a
#: :class:`Hopping` window): each is a state the event is applied to, so a hop of 1 ms over a
#: day would have every event apply 86,400,000 times, and the worker never get through one.
MAX_WINDOWS_PER_EVENT = 1_000


def _check_window(window: Tumbling | Hopping | Session) -> None:
    """A window's parameters are ints (not bools, floats or strs) in their ranges, and an
    event falls in at most :data:`MAX_WINDOWS_PER_EVENT` of its windows."""
    name = type(window).__name__
    first = "gap_ms" if isinstance(window, Session) else "size_ms"
    size_ms = _whole_ms(name, first, getattr(window, first), "> 0")
    if size_ms <= 0:
        raise ConfigurationError(f"{name} {first} must be > 0, got {size_ms}")
    if isinstance(window, Hopping):
        bounds = f"in 1..size_ms ({size_ms})"
        advance_ms = _whole_ms(name, "advance_ms", window.advance_ms, bounds)
        if advance_ms <= 0 or advance_ms > size_ms:  # above size_ms: gaps no window holds
            raise ConfigurationError(f"{name} advance_ms must be {bounds}, got {advance_ms}")
        per_event = -(-size_ms // advance_ms)
        if per_event > MAX_WINDOWS_PER_EVENT:
            raise ConfigurationError(
                f"{name}(size_ms={size_ms}, advance_ms={advance_ms}) puts every event in "
                f"{per_event} windows, more than MAX_WINDOWS_PER_EVENT "
                f"({MAX_WINDOWS_PER_EVENT}); raise advance_ms to at least "
                f"{-(-size_ms // MAX_WINDOWS_PER_EVENT)}"
            )
    for parameter in ("grace_ms", "retain_ms"):
        value = _whole_ms(name, parameter, getattr(window, parameter), ">= 0")
        if value < 0:
            raise ConfigurationError(f"{name} {parameter} must be >= 0, got {value}")
    for parameter in (first, "grace_ms", "retain_ms"):
        value = getattr(window, parameter)
        if value > MAX_WINDOW_MS:
            raise ConfigurationError(
                f"{name} {parameter} must be at most {MAX_WINDOW_MS} (100 years), got {value}"
            )


def _whole_ms(owner: str, parameter: str, value: object, bounds: str) -> int:
    """``value`` if it is an int (a bool, a float, even 60000.0, a str or None is refused,
    naming ``owner``, ``parameter`` and the value; ``bounds`` says the range)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"{owner} {parameter} must be a whole number of milliseconds {bounds}, "
            f"got {_shown(value)}"
        )
    return value


def _shown(value: object) -> str:
    """``value`` for a message: ``nan``, ``None``, ``5``, else with its type
    (``the str '60'``, ``the bool True``), cut short when long."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    if value is None or type(value) is int:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return f"the {type(value).__name__} {text}"


def _check_output(output: object) -> None:
    """``output`` is a product name (``<domain>.<product>``, the descriptors' own check) that
    does not end as a re-key stage's consumer group does: the worker of ``<d>.<p>-rekey``
    would share its group with the re-key stage of ``<d>.<p>``'s."""
    _check_product_name("Processor output", output)
    suffix = sources_group("")
    if isinstance(output, str) and output.endswith(suffix):
        other = output.removesuffix(suffix)
        raise ConfigurationError(
            f"Processor output {output!r} may not end in {suffix!r}: its worker's consumer "
            f"group, {processor_app_id(output)}, is the one the re-key stage of a processor "
            f"of {other} commits as; name the product otherwise (e.g. {other}-rekeyed)"
        )


def _check_product_name(what: str, value: object) -> None:
    """``value`` is a product name (``<domain>.<product>``, the descriptors' own check)."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{what} must be a product name (a str `<domain>.<product>`), got {_shown(value)}"
        )
    problem = product_name_problem(value)
    if problem is not None:
        raise ConfigurationError(f"{what} {problem}")


def _check_callable(where: str, parameter: str, value: object, *arguments: str) -> None:
    """``value`` is a function that takes ``arguments`` positionally: a mistake in its
    parameters is told where the processor is declared, not at the first record."""
    if not callable(value):
        raise ConfigurationError(
            f"{where} {parameter} must be a function (callable), got {_shown(value)}"
        )
    call = getattr(value, "__call__", None)  # noqa: B004 - an object's async __call__ too
    if any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (value, call)):
        # faust's agents are async: a team used to them writes `async def` here too
        name = getattr(value, "__name__", parameter)
        raise ConfigurationError(
            f"{where} {parameter} must be a plain function, not async: {name} is declared "
            f"with `async def`, and the engine calls it for each record without awaiting; "
            f"write `def {name}(...)` (it runs between the engine's own awaits)"
        )
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # a builtin or C function: no signature to read
        return
    try:
        signature.bind(*arguments)
    except TypeError as exc:
        name = getattr(value, "__name__", parameter)
        empty = inspect.Parameter.empty
        bare = [p.replace(annotation=empty) for p in signature.parameters.values()]
        signature = signature.replace(parameters=bare, return_annotation=empty)
        raise ConfigurationError(
            f"{where} {parameter} must be callable as {parameter}({', '.join(arguments)}); "
            f"{name}{signature} cannot be: {exc}"
        ) from None


def _field_names(where: str, reads: object) -> tuple[str, ...]:
    """``reads`` as a tuple of non-empty field names (a list is taken too); a bare str, which
    would be read letter by letter, is refused with the tuple to write instead."""
    if isinstance(reads, str):
        raise ConfigurationError(
            f"{where} reads must be a tuple of field names, got {_shown(reads)}; "
            f"write reads=({reads!r},)"
        )
    if not isinstance(reads, (tuple, list)):
        raise ConfigurationError(
            f"{where} reads must be a tuple of field names, got {_shown(reads)}"
        )
    for name in reads:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"{where} reads must be a tuple of field names (non-empty strs), "
                f"got {_shown(name)} in it"
            )
    repeated = sorted({name for name in reads if reads.count(name) > 1})
    if repeated:  # each read field travels once per event on the internal topic
        raise ConfigurationError(f"{where} reads names {repeated[0]!r} more than once")
    return tuple(reads)


def _windows(
    size_ms: int, advance_ms: int, grace_ms: int, key: str, event_ms: int, arrival_ms: int
) -> Iterator[WindowKey]:
    last_start = event_ms - event_ms % advance_ms
    start = last_start
    while start > event_ms - size_ms:
        end = start + size_ms
        if arrival_ms < end + grace_ms:
            yield WindowKey(key, start, end)
        start -= advance_ms
    # windows come newest first; callers treat them as a set


@dataclass(frozen=True)
class Dedup:
    """Count an event once per value of ``field`` (e.g. a retried publish's ``event_id``).

    Inputs that do not read ``field`` (e.g. a profile whose updates are idempotent anyway),
    and records whose ``field`` is null, are not deduplicated.

    With ``horizon_ms`` a copy is recognised when it arrives within that long of the first
    (ids are kept at least that long and forgotten some time after, so state stays bounded);
    without, ids are kept per key for as long as the key lives, which suits keys that stop
    receiving events (closed windows).
    """

    field: str = "event_id"
    horizon_ms: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ConfigurationError(
                f"Dedup field must be a field name (a non-empty str), got {_shown(self.field)}"
            )
        if self.horizon_ms is not None:
            bounds = "> 0, or None"
            horizon_ms = _whole_ms("Dedup", "horizon_ms", self.horizon_ms, bounds)
            if horizon_ms <= 0:
                raise ConfigurationError(f"Dedup horizon_ms must be {bounds}, got {horizon_ms}")


def _inputs(where: str, inputs: object) -> tuple[Input, ...]:
    """``inputs`` as a tuple of :class:`Input` (a list is taken too)."""
    if isinstance(inputs, Input):
        raise ConfigurationError(
            f"{where} inputs must be a tuple of Input(...), got one Input ({inputs.product}); "
            f"write inputs=(Input(...),) with the trailing comma"
        )
    if not isinstance(inputs, (tuple, list)):
        raise ConfigurationError(
            f"{where} inputs must be a tuple of Input(...), got {_shown(inputs)}"
        )
    for item in inputs:
        if not isinstance(item, Input):
            raise ConfigurationError(
                f"{where} inputs must be a tuple of Input(...), got {_shown(item)} in it"
            )
    return tuple(inputs)


@dataclass(frozen=True)
class Processor:
    """A processor's declaration: what it builds, from what, and how (see the module doc)."""

    output: str
    inputs: tuple[Input, ...]
    apply: Callable[[dict[str, Any], Event], None]
    emit: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]]
    window: Window | None = None
    dedup: Dedup | None = None
    #: Free text for `mesh verify` and logs.
    description: str = field(default="")
    #: ``merge(into, other)``: folds one session's state into another's (Session windows).
    merge: Callable[[dict[str, Any], Mapping[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        _check_output(self.output)
        where = f"Processor of {self.output}:"
        object.__setattr__(self, "inputs", _inputs(where, self.inputs))
        if not self.inputs:
            raise ConfigurationError(f"{where} no inputs declared")
        names = [spec.product for spec in self.inputs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigurationError(f"{where} input {repeated[0]} is declared twice")
        _check_callable(where, "apply", self.apply, "state", "event")
        _check_callable(where, "emit", self.emit, "key", "state")
        if self.window is not None and not isinstance(self.window, (Tumbling, Hopping, Session)):
            raise ConfigurationError(
                f"{where} window must be Tumbling(...), Hopping(...) or Session(...), got "
                f"{_shown(self.window)}"
            )
        if isinstance(self.window, Session):
            if self.merge is None:
                raise ConfigurationError(
                    f"{where} a Session window needs merge=<function(into, other)>, which "
                    f"folds one session's state into another's when an event bridges them"
                )
            _check_callable(where, "merge", self.merge, "into", "other")
        elif self.merge is not None:
            raise ConfigurationError(
                f"{where} merge is for Session windows only (sessions merge; other windows "
                f"and keys do not); remove it, or declare window=Session(gap_ms=...)"
            )
        if self.dedup is not None and not isinstance(self.dedup, Dedup):
            raise ConfigurationError(
                f"{where} dedup must be Dedup(...) or None, got {_shown(self.dedup)}; "
                f'e.g. dedup=Dedup(field="event_id")'
            )
        if not isinstance(self.description, str):
            raise ConfigurationError(
                f"{where} description must be a str, got {_shown(self.description)}"
            )
        if self.dedup is not None:
            missing = [spec.product for spec in self.inputs if self.dedup.field not in spec.reads]
            if len(missing) == len(self.inputs):  # an input without it is not deduplicated
                raise ConfigurationError(
                    f"{where} dedup field {self.dedup.field!r} is not in "
                    f"`reads` of {', '.join(missing)}; add it there (or dedup by another field)"
                )

    def majors(self) -> dict[str, int]:
        """The inputs read at a major of their own choosing (product name -> major)."""
        return {item.product: item.major for item in self.inputs if item.major is not None}

    def input(self, product: str) -> Input:
        for spec in self.inputs:
            if spec.product == product:
                return spec
        raise ConfigurationError(f"Processor of {self.output}: {product} is not one of its inputs")

    def event(self, product: str, fields: Mapping[str, Any], arrival_ms: int) -> Event:
        """The :class:`Event` ``apply`` gets for a record of ``product`` (its reads only)."""
        return Event(product, fields, arrival_ms, self.input(product).event_ms(fields, arrival_ms))

    def keys(self, event: Event, key: str) -> list[Any]:
        """The state keys ``event`` (keyed ``key`` by its input) is applied to: ``key``
        itself, or each window of it that accepts the event (for a :class:`Session`, ``key``
        if the event is on time: its session depends on the key's other events)."""
        if self.window is None:
            return [key]
        if isinstance(self.window, Session):  # the session is found among the key's own
            return [key] if self.window.on_time(event.event_ms, event.arrival_ms) else []
        return list(self.window.windows(key, event.event_ms, event.arrival_ms))


# -- what the engine and the reference check of a processor's own functions ----------------


def not_read_error(declared: Input, exc: Exception, function: str = "key") -> ProcessorError | None:
    """For a KeyError of a name that ``reads`` does not declare (only declared fields are
    given to the processor): an error saying so, else None. ``key`` looks up only fields;
    ``apply`` may also have missed a key of its state, so its message says both."""
    if not isinstance(exc, KeyError) or not exc.args or exc.args[0] in declared.reads:
        return None
    name = exc.args[0]
    if function == "key":
        error = ProcessorError(
            f"key raised KeyError {name!r}: field {name!r} of {declared.product} is not in "
            f"the input's `reads` (only those are given to the processor); add it there"
        )
    else:
        error = ProcessorError(
            f"{function} raised KeyError {name!r}: {name!r} is not one of the fields "
            f"{function} is given of {declared.product}, its `reads` "
            f"({', '.join(declared.reads)}); if it is a field of {declared.product}, add it there"
        )
    error.__cause__ = exc  # where it was raised (:func:`raised_at`)
    return error


#: Where library code lives: mesh-stream's own package, the standard library, the
#: interpreter's site-packages (any other ``site-packages``/``dist-packages`` folder too).
_LIBRARY_DIRS = tuple(
    os.path.normcase(os.path.abspath(folder)) + os.sep
    for folder in {
        os.path.dirname(os.path.dirname(__file__)),  # mesh_stream/
        *(sysconfig.get_paths().get(name) for name in ("stdlib", "platstdlib", "purelib")),
        sysconfig.get_paths().get("platlib"),
    }
    if folder
)
_PACKAGE_FOLDERS = frozenset({"site-packages", "dist-packages"})


def _library_code(filename: str) -> bool:
    if not filename or filename.startswith("<"):  # <string>, <frozen ...>: no file to show
        return True
    path = os.path.normcase(os.path.abspath(filename))
    return path.startswith(_LIBRARY_DIRS) or not _PACKAGE_FOLDERS.isdisjoint(path.split(os.sep))


def raised_at(exc: BaseException) -> str:
    """`` (raised at FILE:LINE)``: the last line of the team's own code ``exc`` (or the
    exception it was raised from) went through, relative to the current folder when inside
    it; "" when none did. A crash line names the processor's function that failed, this the
    line in it (h55: a long ``apply`` left the team guessing), without a traceback."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        own = [
            frame
            for frame in traceback.extract_tb(current.__traceback__)
            if not _library_code(frame.filename)
        ]
        if own:
            path = os.path.abspath(own[-1].filename)
            try:
                inside = os.path.relpath(path)
            except ValueError:  # another drive (Windows)
                inside = path
            shown = path if inside.startswith(os.pardir) else inside
            return f" (raised at {shown}:{own[-1].lineno})"
        current = current.__cause__ or current.__context__
    return ""


def shown_key(key: object, limit: int = 80) -> str:
    """``repr(key)`` for a message, cut short with its length when long: a key of a megabyte
    must not make the one crash line a megabyte too (log shippers drop or split such lines)."""
    text = repr(key)
    if len(text) <= limit:
        return text
    if isinstance(key, bytes):
        return f"{text[: limit - 3]}... ({len(key):,} bytes)"
    length = len(key) if isinstance(key, str) else len(text)
    return f"{text[: limit - 3]}... ({length:,} characters)"


def check_key(key: object) -> None:
    """``key``'s return value is a str or None; a :class:`ProcessorError` otherwise."""
    if key is not None and not isinstance(key, str):
        raise ProcessorError(
            f"key returned {type(key).__name__} {shown_key(key)}; it must return a str (or None to "
            f"drop the record)"
        )


def apply_checked(
    apply: Callable[[dict[str, Any], Event], object], state: dict[str, Any], event: Event
) -> None:
    """``apply(state, event)``, which changes the state in place: a ProcessorError if it
    returns anything, which would be lost."""
    returned = apply(state, event)
    if returned is not None:
        raise ProcessorError(
            f"apply returned {type(returned).__name__}, which would be lost; it must change "
            f"the state it is given in place and return None"
        )


def emit_checked(
    emit: Callable[[Any, dict[str, Any]], Mapping[str, Any]], key: Any, state: dict[str, Any]
) -> dict[str, Any]:
    """``emit(key, state)`` as a dict: a ProcessorError if it returns anything but a mapping
    (None, a list), which is no output record."""
    record = emit(key, state)
    if not isinstance(record, Mapping):
        raise ProcessorError(
            f"emit returned {_shown(record)} for key {shown_key(str(key))}; it must return the "
            f"output record (a dict of its fields)"
        )
    return dict(record)


def state_json(key: str, value: Any) -> bytes:
    """``value``, a state stored under ``key``, as the JSON the engine stores; a TypeError
    naming the key when it is no JSON a restart reads back the same (a Decimal, a set, a
    datetime, NaN, a dict key that is not a string). ``recompute`` holds states to it too.

    Values orjson would write as something else than JSON's own types (a datetime as a
    string, a dataclass as a dict) are refused, so a state reads back as it was written; so
    are NaN and infinities, which JSON has none of and orjson writes as null. orjson is the
    processing extra's, imported here: the spec module loads without it (a core install).
    """
    import orjson

    strict = (
        orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
    try:
        text = orjson.dumps(value, option=strict)
        if b"null" in text:  # perhaps a NaN or an infinity, which orjson writes as null
            json.dumps(value, allow_nan=False)  # raises ValueError if so
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"the state of key {shown_key(key)} cannot be stored: {exc}; keep JSON values in it "
            f"(numbers, strings, lists, dicts; e.g. integer cents for a decimal)"
        ) from exc
    return text


def key_field_differs(
    key_field: str, key: str, record: Mapping[str, Any], key_text: Callable[[Any], str | bytes]
) -> bool:
    """Whether ``record`` holds the output's ``key_field`` with a value other than ``key``,
    the Kafka key it is published under (readers and compaction go by that key). The value
    matches as ``key_text`` gives it (:func:`mesh_stream.schema.keys.key_text` of the field's
    type, as the SDK keys a record) or as ``str()`` gives it (how processors keyed before)."""
    if key_field not in record:
        return False
    value = record[key_field]
    return value is None or key not in (key_text(value), str(value))


def inputs_problem(processor: Processor, listed: Sequence[str], output: str) -> str | None:
    """Why ``processor`` cannot build ``output``, whose descriptor lists ``listed`` as its
    ``inputs``: it reads one the descriptor does not list, or the descriptor lists one it
    does not read (a worker reads every listed input, and the lineage must say what the
    product is built from; one left unread crashed the worker at its first record). None
    when they agree."""
    declared = [item.product for item in processor.inputs]
    undeclared = [name for name in declared if name not in listed]
    if undeclared:
        return (
            f"processor of {output} reads {', '.join(undeclared)}, which its descriptor does "
            f"not list in `inputs`; add it there"
        )
    unread = [name for name in listed if name not in declared]
    if unread:
        return (
            f"{output} lists {', '.join(unread)} in its descriptor's `inputs`, which its "
            f"processor does not read: add an Input for it, or remove it from the "
            f"descriptor's `inputs` (its lineage says what the product is built from)"
        )
    return None


def read_fields(
    reads: Sequence[str], record: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``reads`` of a decoded record, as the engine and its reference both read them: a
    field the record's writer schema lacks takes its value from ``defaults`` (the input's
    latest schema's defaults: a field added with one). A field missing without a default
    raises ``KeyError`` naming it."""
    fields: dict[str, Any] = {}
    for name in reads:
        if name in record:
            fields[name] = record[name]
        elif name in defaults:
            fields[name] = defaults[name]
        else:
            raise KeyError(name)
    return fields
