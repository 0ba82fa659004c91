"""Make at-least-once processing count every event exactly once.

Two different things repeat an event, and each needs its own guard:

* **A duplicate**: a retrying service published the same event (same ``event_id``) twice, at
  two different offsets. :func:`first_delivery` remembers, in a changelogged table, the position
  (``partition:offset``) where each event id was first seen; any other position is a duplicate.
* **A replay**: after a crash, faust re-reads records after the last committed offset, whose
  effects may already be in the restored state. :func:`apply_once` keeps, inside the aggregate's
  own state value, the highest offset applied per partition. Since one state value is one
  changelog record, the state and its "already applied" mark are restored together, never
  one without the other.

A replayed record is neither counted again nor treated as a duplicate (its first-seen position
is its own position), so crashes at any point converge to the exact values.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

APPLIED = "_applied"


def position(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def first_delivery(
    seen: MutableMapping[str, str], event_id: str, partition: int, offset: int
) -> bool:
    """True unless ``event_id`` was first seen at another position (then it is a duplicate)."""
    here = position(partition, offset)
    first = seen.get(event_id)
    if first is None:
        seen[event_id] = here
        return True
    return first == here


def apply_once(state: dict[str, Any], partition: int, offset: int) -> bool:
    """Mark the record at ``partition``/``offset`` applied to ``state``; False if it already was.

    Records of one partition are processed in offset order, so one number per partition is
    enough. Call it only when about to change ``state`` and store ``state`` afterwards.
    """
    applied: dict[str, int] = state.setdefault(APPLIED, {})
    key = str(partition)
    if applied.get(key, -1) >= offset:
        return False
    applied[key] = offset
    return True


def without_bookkeeping(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the replay marks, e.g. to build an output record from it."""
    return {key: value for key, value in state.items() if key != APPLIED}
