"""Make at-least-once processing count every event exactly once.

Two different things repeat an event, and each needs its own guard:

* **A duplicate**: a retrying service published the same event (same ``event_id``) twice, at
  two different offsets. :func:`first_delivery` remembers, in a changelogged table, the position
  (``partition:offset:index``) where each event id was first seen; any other position is a
  duplicate.
* **A replay**: after a crash, faust re-reads records after the last committed offset, whose
  effects may already be in the restored state. :func:`apply_once` keeps, inside the aggregate's
  own state value, the highest position applied per partition. Since one state value is one
  changelog record, the state and its "already applied" mark are restored together, never
  one without the other.

A position is the internal record's partition and offset plus the ``index`` of the event inside
that record: the re-key agent packs all events of one key from one batch into one record.

A replayed record is neither counted again nor treated as a duplicate (its first-seen position
is its own position), so crashes at any point converge to the exact values.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

APPLIED = "_applied"


def position(partition: int, offset: int, index: int = 0) -> str:
    return f"{partition}:{offset}" if index == 0 else f"{partition}:{offset}:{index}"


def first_delivery(
    seen: MutableMapping[str, str], event_id: str, partition: int, offset: int, index: int = 0
) -> bool:
    """True unless ``event_id`` was first seen at another position (then it is a duplicate)."""
    here = position(partition, offset, index)
    first = seen.get(event_id)
    if first is None:
        seen[event_id] = here
        return True
    return first == here


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
"""State entry listing the internal records (``partition:offset``) whose first deliveries of
this key are stored in the seen table under ``<key>#<partition>:<offset>``."""


class SeenEvents:
    """First-seen positions of event ids, stored once per key and batch instead of per event.

    Writing one seen-table entry per event id (a RocksDB put and a changelog record each) was
    more than half of a processor's CPU per event. Duplicates of an event carry the same fields,
    so they reach the same aggregate key; this keeps, per key, one seen-table value per internal
    record with the ids first seen in it, lists those records in the key's state, and looks ids
    up in memory (rebuilt from the table for keys not in the cache, e.g. after a restart).

    The seen entries are written before the state that lists them; after a crash in between,
    the replayed record finds its ids unknown and records them again at the same positions.
    The list grows by one entry per batch that brings the key new events, so this suits keys
    that stop receiving events (revenue windows close); long-lived keys use
    :func:`first_delivery`.
    """

    def __init__(self, table: MutableMapping[str, Any], *, cached_keys: int = 10_000) -> None:
        self.table = table
        self.cached_keys = cached_keys
        self._ids: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._loaded: dict[str, set[str]] = {}

    def for_key(self, key: str, state: dict[str, Any]) -> KeySeen:
        """The seen ids of ``key``, complete for every record that ``state`` lists."""
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
        for record in state.get(SEEN_IN, ()):
            if record not in loaded:
                ids.update(self.table.get(f"{key}#{record}") or {})
                loaded.add(record)
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

    def first_delivery(self, event_id: str, partition: int, offset: int, index: int = 0) -> bool:
        """True unless ``event_id`` was first seen at another position (a duplicate)."""
        here = position(partition, offset, index)
        first = self._ids.get(event_id)
        if first is None:
            self._ids[event_id] = here
            self._pending.setdefault(f"{partition}:{offset}", {})[event_id] = here
            return True
        return first == here

    def store(self) -> bool:
        """Write the new seen entries and list them in the state; True if the state changed."""
        for record, ids in self._pending.items():
            self._owner.table[f"{self._key}#{record}"] = ids
            self._state.setdefault(SEEN_IN, []).append(record)
            self._loaded.add(record)
        changed = bool(self._pending)
        self._pending = {}
        return changed
