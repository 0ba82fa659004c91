"""Duplicates (same event id, another offset) and replays (same offset again) count once."""

from __future__ import annotations

from typing import Any

from mesh_stream.processing.dedup import APPLIED, apply_once, first_delivery, without_bookkeeping


def test_a_retried_duplicate_is_recognised_but_a_replay_of_the_first_is_not() -> None:
    seen: dict[str, str] = {}
    assert first_delivery(seen, "e1", partition=0, offset=10)
    assert not first_delivery(seen, "e1", partition=0, offset=12)  # the retry
    assert first_delivery(seen, "e1", partition=0, offset=10)  # replay after a crash
    assert seen == {"e1": "0:10"}


def test_apply_once_refuses_offsets_already_applied_per_partition() -> None:
    state: dict[str, Any] = {}
    assert apply_once(state, 0, 5)
    assert apply_once(state, 1, 2)
    assert not apply_once(state, 0, 5)
    assert not apply_once(state, 0, 3)
    assert apply_once(state, 0, 6)
    assert state[APPLIED] == {"0": 6, "1": 2}
    assert without_bookkeeping({**state, "count": 3}) == {"count": 3}


def test_replaying_a_whole_stream_after_any_crash_point_counts_each_event_once() -> None:
    """Simulate: process, crash after record k (state kept), replay from the start."""
    stream = [("a", 0), ("b", 1), ("a", 2), ("c", 3), ("b", 4)]  # (event id, offset)
    expected = len({event_id for event_id, _ in stream})
    for crash_after in range(len(stream)):
        seen: dict[str, str] = {}
        state: dict[str, Any] = {"count": 0}
        for event_id, offset in stream[: crash_after + 1]:
            if first_delivery(seen, event_id, 0, offset) and apply_once(state, 0, offset):
                state["count"] += 1
        for event_id, offset in stream:  # the committed offset was never advanced
            if first_delivery(seen, event_id, 0, offset) and apply_once(state, 0, offset):
                state["count"] += 1
        assert state["count"] == expected, crash_after
