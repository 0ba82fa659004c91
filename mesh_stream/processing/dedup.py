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
    """The state without the replay marks, e.g. to build an output record from it."""
    return {key: value for key, value in state.items() if key != APPLIED}
