"""Make at-least-once processing count every event exactly once.

Two different things repeat an event, and each needs its own guard:

* **A duplicate**: a retrying service published the same event (same ``event_id``) twice, at
  two different offsets. :class:`SeenEvents` remembers, in a changelogged table, the position
  (``partition:offset:index``) where each event id was first seen; any other position is a
  duplicate.
* **A replay**: after a crash, faust re-reads records after the last committed offset, whose
  effects may already be in the restored state. :func:`apply_once` keeps, inside the aggregate's
  own state value, the highest position applied per partition. Since one state value is one
  changelog record, the state and its "already applied" mark are restored together, never
  one without the other.
* **A re-sent event**: after a crash of the re-key stage, it reads its inputs again from its
  last commit and forwards events the aggregate may have applied already, at *new* internal
  positions. No dedup field is needed to recognise them: :func:`apply_once` also keeps, per
  input topic and partition, the highest input offset applied to the key. Per key and input
  partition, events reach the internal topic in input order, and a re-key worker starts
  from an offset at or below what its predecessor sent, so anything at or below the mark is
  a repeat (a predecessor still sending after a rebalance sends the same records).

A position is the internal record's partition and offset plus the ``index`` of the event inside
that record: the re-key stage packs all events of one key from one batch into one record.
:class:`SeenEvents` stores first-seen positions once per key and batch (or per key and minute
of arrival, forgotten after a horizon) rather than once per event.

A replayed record is neither counted again nor treated as a duplicate (its first-seen position
is its own position), so crashes at any point converge to the exact values.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

APPLIED = "_applied"
"""State entry: the highest internal position applied, per internal partition."""
APPLIED_INPUTS = "_applied_inputs"
"""State entry: the highest input offset applied, per ``<partition>:<input topic>``."""


def position(partition: int, offset: int, index: int = 0) -> str:
    """Where an event sits on the internal topic, as stored in the seen table."""
    return f"{partition}:{offset}" if index == 0 else f"{partition}:{offset}:{index}"


def apply_once(
    state: dict[str, Any],
    partition: int,
    offset: int,
    index: int = 0,
    source: tuple[str, int, int] | None = None,
) -> bool:
    """Mark the event at ``partition``/``offset``/``index`` applied to ``state``; False if it was.

    Events of one partition are processed in (offset, index) order, so one position per
    partition is enough: ``offset`` alone while every index is 0, else ``[offset, index]``.
    With ``source``, the event's input record (topic, partition, offset), an event whose input
    record was applied to this key before, at another internal position, is refused too (a
    re-sent event, see the module docstring). One input record brings a key one event at
    most, so its offset alone marks it. Call it only when about to change ``state`` and store
    ``state`` afterwards.
    """
    applied: dict[str, int | list[int]] = state.setdefault(APPLIED, {})
    key = str(partition)
    last = applied.get(key, -1)
    last_offset, last_index = (last, 0) if isinstance(last, int) else (last[0], last[1])
    if (last_offset, last_index) >= (offset, index):
        return False
    applied[key] = offset if index == 0 else [offset, index]
    if source is None:
        return True
    if input_applied(state, source):
        return False
    topic, source_partition, source_offset = source
    state.setdefault(APPLIED_INPUTS, {})[_input_mark(topic, source_partition)] = source_offset
    return True


def input_applied(state: Mapping[str, Any], source: tuple[str, int, int]) -> bool:
    """Whether the input record ``source`` (topic, partition, offset) was applied to the key
    of ``state`` already: an event the re-key stage sent again (see :func:`apply_once`)."""
    topic, source_partition, source_offset = source
    inputs = state.get(APPLIED_INPUTS) or {}
    return bool(inputs.get(_input_mark(topic, source_partition), -1) >= source_offset)


def _input_mark(topic: str, partition: int) -> str:
    """The key of an input partition's newest applied offset in a state's APPLIED_INPUTS."""
    return f"{partition}:{topic}"


def without_bookkeeping(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the replay and seen marks, e.g. to build an output record from it."""
    return {key: value for key, value in state.items() if key not in BOOKKEEPING}


SEEN_IN = "_seen_in"
"""State entry listing the slots whose first deliveries of this key are stored in the seen
table under ``<key>#<slot>``. Without a horizon a slot is named after the position of its
first event (``partition:offset[:index]``); with one, after its arrival-time bucket (the
bucket's start, epoch ms; ``<start>+<position>`` for the bucket's further slots)."""

SEEN_OPEN = "_seen_open"
"""State entry: per bucket (``""`` without a horizon), the slot still taking new ids and how
many it holds as stored. Only open slots change, so a worker whose copy of an open slot holds
another count reads it again (another worker appended to it meanwhile)."""

SEEN_WRITTEN = "_seen_written"
"""State entry (with a horizon only): per bucket, the wall-clock ms of its last write. It ages
buckets by processing time, and tells a worker whether its cached ids of a bucket are stale."""

#: State entries that are bookkeeping, not the aggregate's value.
BOOKKEEPING = frozenset({APPLIED, APPLIED_INPUTS, SEEN_IN, SEEN_OPEN, SEEN_WRITTEN})

#: Most event ids one slot takes before the key opens a new one.
SLOT_IDS = 64

_NOT_LOADED = object()

Listing = tuple[list[str], dict[str, list[Any]], dict[str, int]]
"""A state's seen entries (:data:`SEEN_IN`, :data:`SEEN_OPEN`, :data:`SEEN_WRITTEN`), copied."""


def listing(state: dict[str, Any]) -> Listing:
    """A copy of ``state``'s seen entries: what a worker's cached seen ids depend on (every
    slot's ids are loaded by its count and last write, which only these entries hold)."""
    opened = state.get(SEEN_OPEN)
    return (
        list(state.get(SEEN_IN, ())),
        {bucket: list(entry) for bucket, entry in opened.items()} if opened else {},
        dict(state.get(SEEN_WRITTEN, ())),
    )


def matches(copied: Listing, state: dict[str, Any]) -> bool:
    """Whether ``state``'s seen entries equal ``copied`` (a :func:`listing`)."""
    return bool(
        copied[0] == state.get(SEEN_IN, [])
        and copied[1] == state.get(SEEN_OPEN, {})
        and copied[2] == state.get(SEEN_WRITTEN, {})
    )


def _bucket_of(slot: str) -> str:
    """The arrival-time bucket a slot belongs to (with a horizon)."""
    return slot.split("+", 1)[0]


class SeenEvents:
    """First-seen positions of event ids, stored a few dozen per table entry, not one per event.

    Writing one seen-table entry per event id (a RocksDB put and a changelog record each) was
    more than half of a processor's CPU per event. Duplicates of an event carry the same fields,
    so they reach the same aggregate key; this keeps, per key, seen-table values (*slots*) of
    up to ``slot_ids`` ids each, lists the slots in the key's state, and looks ids up in memory
    (rebuilt from the table for keys not in the cache, e.g. after a restart).

    New ids go to the key's *open* slot until it holds ``slot_ids``; then a new slot opens. So
    a batch rewrites at most a small slot or two, and the state lists one slot per
    ``slot_ids`` ids. (One slot per batch made the state grow with every batch: at a steady
    rate of small batches, a long window's state write grew without bound.)

    Without a horizon the slots of a key live as long as the key, which suits keys that stop
    receiving events (revenue windows close). For keys that live for ever (customers), give a
    ``horizon_ms``: slots then belong to a ``bucket_ms`` slice of *arrival* time (each bucket
    has its own open slot), and a bucket's slots are deleted from the table (tombstones in the
    changelog) and from the state once the bucket is older than the horizon both by arrival (it
    ended ``horizon_ms`` before the newest arrival of the key's batch) and by processing time
    (nothing was written to it for ``horizon_ms`` of wall-clock time). The second condition
    keeps buckets while a worker catches up on a backlog, whose arrival times jump, and while
    records after a crash are replayed. Duplicates sent by a retrying service arrive within
    seconds, so they are recognised; a copy arriving more than the horizon after the first may
    count again. State and table stay bounded by the horizon.

    A slot may be written by another worker while the key's partition was assigned to it;
    the state records each open slot's count (and, with a horizon, each slot's last write),
    so a worker whose cached copy is older reads it again.

    The seen entries are written before the state that lists them; after a crash in between,
    the replayed record finds its ids unknown and records them again at the same positions.
    Entries of a replayed record are written again in any case (with the state): after a hard
    kill the local store may hold writes whose changelog records were never sent, and the
    rewrite sends them. Expired slots are deleted before the state stops listing them; a crash
    in between leaves a listed slot with no entry, read as empty. Replays themselves are
    refused by :func:`apply_once`, so neither gap counts anything twice.
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        *,
        cached_keys: int = 10_000,
        horizon_ms: int | None = None,
        bucket_ms: int = 60_000,
        slot_ids: int = SLOT_IDS,
    ) -> None:
        if horizon_ms is not None and (horizon_ms <= 0 or bucket_ms <= 0):
            raise ValueError(f"horizon ({horizon_ms} ms) and bucket ({bucket_ms} ms) must be > 0")
        if slot_ids < 1:
            raise ValueError(f"a slot must take at least one id, not {slot_ids}")
        self.table = table
        self.cached_keys = cached_keys
        self.horizon_ms = horizon_ms
        self.bucket_ms = bucket_ms
        self.slot_ids = slot_ids
        self._ids: OrderedDict[str, dict[str, str]] = OrderedDict()
        #: Per cached key: slot -> the stamp its ids were loaded at (last write, open count).
        self._loaded: dict[str, dict[str, object]] = {}
        #: Per cached key: open slot -> its ids (what the table holds, plus this batch's).
        self._open: dict[str, dict[str, dict[str, str]]] = {}
        #: Per cached key: its state's seen entries as the cache last matched them. A state
        #: listing the same needs no check slot by slot (most keys, most batches).
        self._matched: dict[str, Listing] = {}

    def for_key(self, key: str, state: dict[str, Any]) -> KeySeen:
        """The seen ids of ``key``, complete for every slot that ``state`` lists."""
        ids = self._ids.get(key)
        if ids is None:
            ids = self._ids[key] = {}
            self._loaded[key] = {}
            self._open[key] = {}
            if len(self._ids) > self.cached_keys:
                evicted, _ = self._ids.popitem(last=False)
                del self._loaded[evicted]
                del self._open[evicted]
                self._matched.pop(evicted, None)
        else:
            self._ids.move_to_end(key)
        loaded, chunks = self._loaded[key], self._open[key]
        matched = self._matched.get(key)
        if matched is not None and matches(matched, state):
            return KeySeen(self, key, state, ids, loaded, chunks)
        listed = state.get(SEEN_IN, ())
        if not loaded.keys() <= set(listed):
            ids.clear()  # slots were expired elsewhere: forget them, reload what is listed
            loaded.clear()
            chunks.clear()
        written = state.get(SEEN_WRITTEN, {})
        open_counts = dict(state.get(SEEN_OPEN, {}).values())
        for slot in listed:
            stamp = (written.get(slot), open_counts.get(slot))
            if loaded.get(slot, _NOT_LOADED) != stamp:
                entry = self.table.get(f"{key}#{slot}") or {}
                ids.update(entry)
                loaded[slot] = stamp
                if slot in open_counts:
                    chunks[slot] = dict(entry)
        for slot in [slot for slot in chunks if slot not in open_counts]:
            del chunks[slot]  # closed (or never stored): it takes no more ids
        self._matched[key] = listing(state)
        return KeySeen(self, key, state, ids, loaded, chunks)

    def forget(self, key: str, state: dict[str, Any]) -> None:
        """Delete the slots ``state`` lists for ``key`` (whose state is being deleted: a
        window long closed) and drop the key from the cache."""
        for slot in state.get(SEEN_IN, ()):
            with contextlib.suppress(KeyError):
                del self.table[f"{key}#{slot}"]
        if self._ids.pop(key, None) is not None:
            del self._loaded[key]
            del self._open[key]
            self._matched.pop(key, None)


class KeySeen:
    """One key's seen ids while a batch of its events is applied; see :class:`SeenEvents`."""

    def __init__(
        self,
        owner: SeenEvents,
        key: str,
        state: dict[str, Any],
        ids: dict[str, str],
        loaded: dict[str, object],
        chunks: dict[str, dict[str, str]],
    ) -> None:
        self._owner = owner
        self._key = key
        self._state = state
        self._ids = ids
        self._loaded = loaded
        self._chunks = chunks
        #: bucket -> the slot taking its new ids during this batch (from the state's SEEN_OPEN)
        self._open: dict[str, str] = {
            bucket: slot for bucket, (slot, _) in state.get(SEEN_OPEN, {}).items() if slot in chunks
        }
        self._touched: dict[str, str] = {}  # slot -> its bucket, written by store()

    def first_delivery(
        self, event_id: str, partition: int, offset: int, index: int = 0, arrival_ms: int = 0
    ) -> bool:
        """True unless ``event_id`` was first seen at another position (a duplicate).

        ``arrival_ms`` (the input record's Kafka timestamp) picks the bucket when the owner
        has a horizon; it is not used otherwise.
        """
        here = position(partition, offset, index)
        first = self._ids.get(event_id)
        if first is not None and first != here:
            return False
        # new, or a replay of the first delivery (written again, see SeenEvents)
        self._ids[event_id] = here
        owner = self._owner
        bucket = "" if owner.horizon_ms is None else str(arrival_ms - arrival_ms % owner.bucket_ms)
        slot = self._open.get(bucket, "")
        chunk = self._chunks.get(slot)
        if chunk is None or (len(chunk) >= owner.slot_ids and event_id not in chunk):
            slot = self._new_slot(bucket, here)
            chunk = self._chunks[slot] = {}
            self._open[bucket] = slot
        chunk[event_id] = here
        self._touched[slot] = bucket
        return True

    def _new_slot(self, bucket: str, here: str) -> str:
        if not bucket:
            return here
        listed = self._state.get(SEEN_IN, ())
        return bucket if bucket not in listed and bucket not in self._chunks else f"{bucket}+{here}"

    def store(self, now_ms: int | None = None, wall_ms: int | None = None) -> bool:
        """Write the new (and replayed) seen entries and list them in the state; with a
        horizon, expire old buckets. True if the state changed: store it then.

        ``now_ms`` is the newest arrival among the batch's events (no expiry without it);
        ``wall_ms`` is the processing time, the wall clock unless given (tests).
        """
        owner = self._owner
        table, listed = owner.table, self._state.setdefault(SEEN_IN, [])
        horizon_ms = owner.horizon_ms
        if wall_ms is None:
            wall_ms = int(time.time() * 1000)
        written: dict[str, int] = (
            self._state.setdefault(SEEN_WRITTEN, {}) if horizon_ms is not None else {}
        )
        opened: dict[str, list[Any]] = self._state.setdefault(SEEN_OPEN, {})
        changed = bool(self._touched)
        for slot in self._touched:
            table[f"{self._key}#{slot}"] = dict(self._chunks[slot])  # a copy: the chunk grows
            if slot not in listed:
                listed.append(slot)
            if horizon_ms is not None:
                written[slot] = wall_ms
        for bucket, slot in self._open.items():
            opened[bucket] = [slot, len(self._chunks[slot])]
        for slot in self._touched:  # what the table holds now is what this worker holds
            count = len(self._chunks[slot]) if self._open.get(self._touched[slot]) == slot else None
            self._loaded[slot] = (written.get(slot), count)
        for slot in [slot for slot in self._chunks if slot not in self._open.values()]:
            del self._chunks[slot]  # full: closed
        self._touched = {}
        if horizon_ms is not None and now_ms is not None:
            expired = self._expire(
                before_ms=now_ms - horizon_ms - owner.bucket_ms,
                written_before_ms=wall_ms - horizon_ms,
            )
            changed = expired or changed
        for entry_name, value in ((SEEN_IN, listed), (SEEN_OPEN, opened), (SEEN_WRITTEN, written)):
            if not value:
                self._state.pop(entry_name, None)
        if changed:  # the cache now matches the state as stored
            owner._matched[self._key] = listing(self._state)
        return changed

    def _expire(self, *, before_ms: int, written_before_ms: int) -> bool:
        """Forget slots of buckets that start before ``before_ms`` and were last written
        before ``written_before_ms``; True if there were any."""
        listed = self._state[SEEN_IN]
        written = self._state.get(SEEN_WRITTEN, {})
        opened = self._state.get(SEEN_OPEN, {})
        expired = [
            slot
            for slot in listed
            if int(_bucket_of(slot)) < before_ms and written.get(slot, 0) < written_before_ms
        ]
        for slot in expired:
            entry = f"{self._key}#{slot}"
            for event_id in self._owner.table.get(entry) or {}:
                self._ids.pop(event_id, None)
            with contextlib.suppress(KeyError):
                del self._owner.table[entry]
            listed.remove(slot)
            written.pop(slot, None)
            self._loaded.pop(slot, None)
            self._chunks.pop(slot, None)
            bucket = _bucket_of(slot)
            if opened.get(bucket, [None])[0] == slot:
                del opened[bucket]
            if self._open.get(bucket) == slot:
                del self._open[bucket]
        return bool(expired)
