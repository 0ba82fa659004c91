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

A position is the internal record's partition and offset plus the ``index`` of the event inside
that record: the re-key stage packs all events of one key from one batch into one record.
:class:`SeenEvents` stores first-seen positions once per key and batch (or per key and minute
of arrival, forgotten after a horizon) rather than once per event.

A replayed record is neither counted again nor treated as a duplicate (its first-seen position
is its own position), so crashes at any point converge to the exact values.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

APPLIED = "_applied"


def position(partition: int, offset: int, index: int = 0) -> str:
    """Where an event sits on the internal topic, as stored in the seen table."""
    return f"{partition}:{offset}" if index == 0 else f"{partition}:{offset}:{index}"


def apply_once(state: dict[str, Any], partition: int, offset: int, index: int = 0) -> bool:
    """Mark the event at ``partition``/``offset``/``index`` applied to ``state``; False if it was.

    Events of one partition are processed in (offset, index) order, so one position per
    partition is enough: ``offset`` alone while every index is 0, else ``[offset, index]``.
    Call it only when about to change ``state`` and store ``state`` afterwards.
    """
    applied: dict[str, int | list[int]] = state.setdefault(APPLIED, {})
    key = str(partition)
    last = applied.get(key, -1)
    last_offset, last_index = (last, 0) if isinstance(last, int) else (last[0], last[1])
    if (last_offset, last_index) >= (offset, index):
        return False
    applied[key] = offset if index == 0 else [offset, index]
    return True


def without_bookkeeping(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the replay and seen marks, e.g. to build an output record from it."""
    return {key: value for key, value in state.items() if key not in (APPLIED, SEEN_IN)}


SEEN_IN = "_seen_in"
"""State entry listing the slots whose first deliveries of this key are stored in the seen
table under ``<key>#<slot>``: internal records (``partition:offset``), or arrival-time buckets
(their start, epoch ms) when :class:`SeenEvents` has a horizon."""


class SeenEvents:
    """First-seen positions of event ids, stored once per key and slot instead of per event.

    Writing one seen-table entry per event id (a RocksDB put and a changelog record each) was
    more than half of a processor's CPU per event. Duplicates of an event carry the same fields,
    so they reach the same aggregate key; this keeps, per key, one seen-table value per *slot*
    with the ids first seen in it, lists the slots in the key's state, and looks ids up in
    memory (rebuilt from the table for keys not in the cache, e.g. after a restart).

    Without a horizon a slot is an internal record: written once, never again, and the list
    grows by one per batch that brings the key new events. That suits keys that stop receiving
    events (revenue windows close). For keys that live for ever (customers), give a
    ``horizon_ms``: a slot is then a ``bucket_ms`` slice of *arrival* time, and a key's slots
    that ended more than ``horizon_ms`` before its newest event's arrival are deleted from the
    table (a tombstone in the changelog) and from the state. Duplicates sent by a retrying
    service arrive within seconds, so they are recognised; a copy arriving more than the
    horizon after the first would be counted again. State and table stay bounded by the
    horizon, whatever the key's lifetime.

    The seen entries are written before the state that lists them; after a crash in between,
    the replayed record finds its ids unknown and records them again at the same positions.
    Expired slots are deleted before the state stops listing them; a crash in between leaves a
    listed slot with no entry, read as empty. Replays themselves are refused by
    :func:`apply_once`, so neither gap counts anything twice.
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        *,
        cached_keys: int = 10_000,
        horizon_ms: int | None = None,
        bucket_ms: int = 60_000,
    ) -> None:
        if horizon_ms is not None and (horizon_ms <= 0 or bucket_ms <= 0):
            raise ValueError(f"horizon ({horizon_ms} ms) and bucket ({bucket_ms} ms) must be > 0")
        self.table = table
        self.cached_keys = cached_keys
        self.horizon_ms = horizon_ms
        self.bucket_ms = bucket_ms
        self._ids: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._loaded: dict[str, set[str]] = {}

    def for_key(self, key: str, state: dict[str, Any]) -> KeySeen:
        """The seen ids of ``key``, complete for every slot that ``state`` lists."""
        ids = self._ids.get(key)
        if ids is None:
            ids = self._ids[key] = {}
            self._loaded[key] = set()
            if len(self._ids) > self.cached_keys:
                evicted, _ = self._ids.popitem(last=False)
                del self._loaded[evicted]
        else:
            self._ids.move_to_end(key)
        loaded = self._loaded[key]
        for slot in state.get(SEEN_IN, ()):
            if slot not in loaded:
                ids.update(self.table.get(f"{key}#{slot}") or {})
                loaded.add(slot)
        return KeySeen(self, key, state, ids, loaded)


class KeySeen:
    """One key's seen ids while a batch of its events is applied; see :class:`SeenEvents`."""

    def __init__(
        self,
        owner: SeenEvents,
        key: str,
        state: dict[str, Any],
        ids: dict[str, str],
        loaded: set[str],
    ) -> None:
        self._owner = owner
        self._key = key
        self._state = state
        self._ids = ids
        self._loaded = loaded
        self._pending: dict[str, dict[str, str]] = {}

    def first_delivery(
        self, event_id: str, partition: int, offset: int, index: int = 0, arrival_ms: int = 0
    ) -> bool:
        """True unless ``event_id`` was first seen at another position (a duplicate).

        ``arrival_ms`` (the input record's Kafka timestamp) picks the slot when the owner has
        a horizon; it is not used otherwise.
        """
        here = position(partition, offset, index)
        first = self._ids.get(event_id)
        if first is None:
            self._ids[event_id] = here
            bucket_ms = self._owner.bucket_ms
            slot = (
                f"{partition}:{offset}"
                if self._owner.horizon_ms is None
                else str(arrival_ms - arrival_ms % bucket_ms)
            )
            self._pending.setdefault(slot, {})[event_id] = here
            return True
        return first == here

    def store(self, now_ms: int | None = None) -> bool:
        """Write the new seen entries, list them in the state, and, with a horizon and
        ``now_ms`` (the newest arrival among the batch's events), expire old slots.

        True if the state changed.
        """
        table, listed = self._owner.table, self._state.setdefault(SEEN_IN, [])
        changed = bool(self._pending)
        for slot, ids in self._pending.items():
            entry = f"{self._key}#{slot}"
            if slot in listed:  # a bucket that earlier batches wrote to
                table[entry] = {**(table.get(entry) or {}), **ids}
            else:
                table[entry] = ids
                listed.append(slot)
            self._loaded.add(slot)
        self._pending = {}
        horizon_ms = self._owner.horizon_ms
        if horizon_ms is not None and now_ms is not None:
            changed = self._expire(now_ms - horizon_ms - self._owner.bucket_ms) or changed
        if not listed:
            del self._state[SEEN_IN]
        return changed

    def _expire(self, before_ms: int) -> bool:
        """Forget the buckets that start before ``before_ms``; True if there were any."""
        listed = self._state[SEEN_IN]
        expired = [slot for slot in listed if int(slot) < before_ms]
        for slot in expired:
            entry = f"{self._key}#{slot}"
            for event_id in self._owner.table.get(entry) or {}:
                self._ids.pop(event_id, None)
            with contextlib.suppress(KeyError):
                del self._owner.table[entry]
            listed.remove(slot)
            self._loaded.discard(slot)
        return bool(expired)
