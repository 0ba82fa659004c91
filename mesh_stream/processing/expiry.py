"""Which closed windows a worker may forget, per partition of its state.

A windowed processor makes a state key per key and window (``<key>@<window start>``), and a
window stops taking events once closed (``end + grace_ms`` in arrival time). Kept for ever,
those states would make the tables, their changelogs and a restarted worker's recovery grow
with every window ever seen; :class:`WindowExpiry` says when each may go, ``retain_ms``
after it closed (:meth:`~mesh_stream.processing.spec.Tumbling.forget_at_ms`).

The clock is kept per partition of the internal topic, the partition a state key's table
writes and changelog records go to (a worker deletes a key only while handling that
partition, so the deletion lands in the key's own changelog partition). It is the *oldest* of
the newest arrival times each input partition has brought there: a worker catching up on a
backlog reads some input partitions ahead of others, and a clock driven by the fastest would
forget windows the slower ones still have events for. Until every input partition has brought
an event to a partition since the worker started, its clock is unknown and nothing there is
forgotten or dropped. The clock moves by the bounds the re-key stage puts on its records (a
batch's oldest arrivals until its last record, then its newest), once a batch is handled
(:meth:`WindowExpiry.arrived`, :meth:`WindowExpiry.advance`), so an event is dropped only when
the input partition it comes from already brought, in an earlier re-key batch, an event
stamped ``retain_ms`` past its window's close (record timestamps that far out of order,
e.g. a backfill mixed into live data), like Kafka Streams' expired-window records.

A session processor's state key holds all of an aggregate key's sessions (``<key>@session``,
see :mod:`~mesh_stream.processing.sessions`), so its time is in its value: the key is noted
by its oldest session's :meth:`~mesh_stream.processing.spec.Session.forget_at_ms`, and when
that comes, the sessions past it are deleted and the key noted again for the oldest left (or
deleted whole when none is).

A worker knows the keys it updated; the keys its tables hold from before (a restart, a
partition handed over) are read in one pass over the table at the first batch after each
assignment.

The clock is durable. Deleting a window deletes its replay marks with it, and its tombstone
may reach the changelog before the input offsets of the events that made it due are
committed; a crash or a rebalance then replays events of a window that is gone, and a clock
started afresh would take them onto an empty state and publish the window again with only
part of its events. So before a partition deletes anything, its clock is written to the state
table under :func:`clock_key` (at once, ahead of the kept tombstones, in the same changelog
partition), and a worker taking the partition (after a restart or any rebalance) starts from
it: the replayed events of a forgotten window meet the clock that forgot it, and are dropped,
as the last output of their window already counts them. For that, the output must be in Kafka
before the clock: the aggregate agent forgets only after flushing faust's producer
(:func:`~mesh_stream.processing.app.handle_batch`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable

from mesh_stream.processing.spec import Window

__all__ = ["WindowExpiry", "clock_key", "window_start"]

#: Most state keys one call of :meth:`WindowExpiry.due` names (and hashes); more wait.
FORGET_AT_ONCE = 2_000

Saved = list[list[str | int]]
"""A partition's clock as the state table keeps it: ``[topic, partition, newest arrival]``
per input partition."""


def clock_key(partition: int) -> str:
    """The state-table key of ``partition``'s clock; no window's (those end in ``@<start>``),
    so scans and retention pass it by."""
    return f"mesh.window-clock/{partition}"


def window_start(state_key: str) -> int | None:
    """The window start a state key ``<key>@<start>`` names; None for another key."""
    _, at, start = state_key.rpartition("@")
    if not at or not start.lstrip("-").isdigit():
        return None
    return int(start)


class WindowExpiry:
    """Per partition: the arrival clock, and the state keys by when they may be forgotten."""

    def __init__(
        self,
        window: Window,
        partition_of: Callable[[str], int],
        sources: Collection[tuple[str, int]],
    ) -> None:
        """``partition_of`` gives a state key's partition (the internal topic's, where its
        table writes go); ``sources`` are the input partitions, ``(topic, partition)``, each
        of which must have brought an event to a partition before its clock is known."""
        self.window = window
        self.partition_of = partition_of
        self.sources = frozenset(sources)
        #: partition -> input (topic, partition) -> newest arrival it brought there
        self._newest: dict[int, dict[tuple[str, int], int]] = {}
        #: the same, for the batch being handled: the clock takes it in :meth:`advance`
        self._arriving: dict[int, dict[tuple[str, int], int]] = {}
        #: partition -> heap of (forget at, state key)
        self._due: dict[int, list[tuple[int, str]]] = {}
        #: heap of (forget at, state key) read by a scan, partition not worked out yet
        self._unplaced: list[tuple[int, str]] = []
        #: state key -> the earliest time it is noted to be forgotten at
        self._known: dict[str, int] = {}
        self._scanned = False
        self._restored: set[int] = set()
        #: Counts revokes: work begun before one is not to be finished after it.
        self.generation = 0

    def needs_scan(self) -> bool:
        """True until :meth:`scan` has read the tables' keys since the last assignment."""
        return not self._scanned

    def scan(self, keys: Iterable[str]) -> None:
        """Note the window keys among ``keys`` (every key of the state table, all assigned
        partitions'). A key's partition (a pure-Python murmur2, ~4 µs) is worked out only
        once a clock reaches its time, so a large table does not hold the event loop up for
        seconds after every assignment: the hashing is spread over the windows' expiry."""
        forget_at, known = self.window.forget_at_ms, self._known
        for key in keys:
            if key not in known:
                start = window_start(key)
                if start is not None:
                    self._unplaced.append((forget_at(start), key))
                    known[key] = forget_at(start)
        heapq.heapify(self._unplaced)
        self._scanned = True

    def scan_timed(self, timed: Iterable[tuple[int, str]], *, done: bool = True) -> None:
        """Like :meth:`scan`, for state keys whose time is in their value, not their name
        (a session processor's): ``(forget at, state key)`` pairs, perhaps a part of them
        (``done`` False: more come, and :meth:`needs_scan` stays True)."""
        known, unplaced = self._known, self._unplaced
        for forget_at, key in timed:
            if key not in known:
                heapq.heappush(unplaced, (forget_at, key))  # a heap between the parts too
                known[key] = forget_at
        self._scanned = done

    def note(self, partition: int, key: str, forget_at: int) -> None:
        """Forget ``key`` of ``partition`` once its clock reaches ``forget_at`` (unless it is
        noted for that time or earlier already: a session key, looked at again when due, is
        noted again then; one given an earlier session is noted for it too)."""
        known = self._known.get(key)
        if known is None or forget_at < known:
            heapq.heappush(self._due.setdefault(partition, []), (forget_at, key))
            self._known[key] = forget_at

    def needs_restore(self, partition: int) -> bool:
        """True until :meth:`restore` has started ``partition``'s clock since it was assigned."""
        return partition not in self._restored

    def forget_partitions(self) -> None:
        """Partitions were revoked: read the keys and each partition's saved clock again
        when next handled (another worker may have moved them on meanwhile)."""
        self.generation += 1
        self._newest.clear()
        self._arriving.clear()
        self._due.clear()
        self._unplaced.clear()
        self._known.clear()
        self._scanned = False
        self._restored.clear()

    def saved(self, partition: int) -> Saved:
        """``partition``'s clock as it is to be kept (see :func:`clock_key`)."""
        newest = self._newest.get(partition, {})
        return [[topic, source, ms] for (topic, source), ms in sorted(newest.items())]

    def restore(self, partition: int, saved: object) -> None:
        """Start ``partition``'s clock from what :meth:`saved` gave (anything else: nothing)."""
        self._restored.add(partition)
        if not isinstance(saved, list):
            return
        for item in saved:
            if isinstance(item, list) and len(item) == 3:
                topic, source, ms = item
                if isinstance(topic, str) and isinstance(source, int) and isinstance(ms, int):
                    self.observe(partition, (topic, source), ms)

    def observe(self, partition: int, source: tuple[str, int], arrival_ms: int) -> None:
        """An event of input partition ``source`` arrived at ``arrival_ms`` and reached
        ``partition``: its clock moves now."""
        newest = self._newest.setdefault(partition, {})
        if arrival_ms > newest.get(source, -1):
            newest[source] = arrival_ms

    def arrived(self, partition: int, source: tuple[str, int], arrival_ms: int) -> None:
        """Like :meth:`observe`, for the batch being handled: the clock moves at
        :meth:`advance`, once the batch is. The re-key stage groups its batches by key, so
        ``arrival_ms`` is to be the bound its record carries
        (:data:`~mesh_stream.processing.rekey.CLOCK_HEADER`): a clock moved by a record's
        newest arrival would judge a window by arrivals that came after its own on-time events
        (an event of the next window ahead of a straggler in the grace, in an earlier record
        or key), and drop them."""
        arriving = self._arriving.setdefault(partition, {})
        if arrival_ms > arriving.get(source, -1):
            arriving[source] = arrival_ms

    def advance(self, partition: int) -> None:
        """The batch is handled: ``partition``'s clock takes its arrivals."""
        for source, arrival_ms in self._arriving.pop(partition, {}).items():
            self.observe(partition, source, arrival_ms)

    def clock(self, partition: int) -> int | None:
        """``partition``'s clock: the oldest newest arrival among the input partitions, or
        None while one has brought it nothing."""
        newest = self._newest.get(partition)
        if newest is None or not self.sources <= newest.keys():
            return None
        return min(newest[source] for source in self.sources)

    def accepts(self, partition: int, key: str) -> bool:
        """False if ``key``'s window is past its retention by ``partition``'s clock (its
        events are to be dropped); else note the key, to forget it when its time comes."""
        start = window_start(key)
        if start is None:
            return True
        clock = self.clock(partition)
        if clock is not None and self.window.forget_at_ms(start) <= clock:
            return False
        if key not in self._known:
            self._note(partition, key, start)
        return True

    def held_back_by(self, partition: int) -> list[tuple[str, int]]:
        """The input partitions that brought ``partition`` nothing while the others have
        moved past a window's retention there (forgetting waits for them); else none."""
        newest = self._newest.get(partition)
        if not newest:
            return []
        missing = self.sources - newest.keys()
        if not missing:
            return []
        reached = min(newest.values())
        self._place(reached)
        heap = self._due.get(partition)
        if not heap or heap[0][0] > reached:
            return []
        return sorted(missing)

    def has_due(self, partition: int) -> bool:
        """True if a state key may be forgotten in ``partition`` now, or perhaps (one read by
        a scan, its partition not yet worked out)."""
        clock = self.clock(partition)
        if clock is None:
            return False
        heap = self._due.get(partition)
        unplaced = self._unplaced
        return bool(heap and heap[0][0] <= clock) or bool(unplaced and unplaced[0][0] <= clock)

    def due(self, partition: int, most: int = FORGET_AT_ONCE) -> list[str]:
        """Up to ``most`` state keys of ``partition`` to forget now (each named once); the
        rest wait for the next call, so a worker back after downtime does not delete (and
        hash) a million windows in one go."""
        clock = self.clock(partition)
        if clock is None:
            return []
        self._place(clock, most)
        heap = self._due.get(partition)
        found: list[str] = []
        while heap and heap[0][0] <= clock and len(found) < most:
            _, key = heapq.heappop(heap)
            self._known.pop(key, None)
            found.append(key)
        return found

    def _place(self, upto: int, most: int = FORGET_AT_ONCE) -> None:
        """Put up to ``most`` of the scanned keys due by ``upto`` into their partitions' heaps."""
        unplaced, due = self._unplaced, self._due
        while unplaced and unplaced[0][0] <= upto and most > 0:
            entry = heapq.heappop(unplaced)
            heapq.heappush(due.setdefault(self.partition_of(entry[1]), []), entry)
            most -= 1

    def _note(self, partition: int, key: str, start: int | None = None) -> None:
        if start is None:
            start = window_start(key)
            if start is None:
                return
        self.note(partition, key, self.window.forget_at_ms(start))
