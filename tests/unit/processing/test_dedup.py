"""Duplicates (same event id, another offset) and replays (same offset again) count once."""

from __future__ import annotations

import copy
from typing import Any

from mesh_stream.processing.dedup import (
    APPLIED,
    SEEN_IN,
    SeenEvents,
    apply_once,
    first_delivery,
    without_bookkeeping,
)


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


def _apply_batch(
    seen: SeenEvents,
    table: dict[str, Any],
    states: dict[str, dict[str, Any]],
    key: str,
    batch: list[tuple[str, int, int]],
    *,
    crash_before_state: bool = False,
) -> None:
    """What a processor does with one key's events of a batch: (event id, offset, index)."""
    state = copy.deepcopy(states.get(key) or {"count": 0})  # a store hands out fresh values
    key_seen = seen.for_key(key, state)
    for event_id, offset, index in batch:
        if key_seen.first_delivery(event_id, 0, offset, index) and apply_once(
            state, 0, offset, index
        ):
            state["count"] += 1
    key_seen.store()
    if not crash_before_state:
        states[key] = state


def test_seen_events_store_one_entry_per_record_and_recognise_duplicates() -> None:
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    seen = SeenEvents(table)
    _apply_batch(seen, table, states, "w", [("a", 0, 0), ("b", 0, 1), ("a", 0, 2)])
    _apply_batch(seen, table, states, "w", [("b", 1, 0), ("c", 1, 1)])
    assert states["w"]["count"] == 3
    assert table == {"w#0:0": {"a": "0:0", "b": "0:0:1"}, "w#0:1": {"c": "0:1:1"}}
    assert states["w"][SEEN_IN] == ["0:0", "0:1"]
    assert without_bookkeeping(states["w"]) == {"count": 3}


def test_seen_events_after_a_restart_or_eviction_reload_what_the_state_lists() -> None:
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    _apply_batch(SeenEvents(table), table, states, "w", [("a", 0, 0), ("b", 0, 1)])
    restarted = SeenEvents(table, cached_keys=1)
    _apply_batch(restarted, table, states, "other", [("x", 1, 0)])  # evicts nothing loaded yet
    _apply_batch(restarted, table, states, "w", [("a", 2, 0), ("c", 2, 1)])  # a: duplicate
    assert states["w"]["count"] == 3


def test_seen_events_count_each_event_once_whatever_the_crash_point() -> None:
    """Batches of one key; crash after batch k, before or after its state write; replay all."""
    batches = [
        [("a", 0, 0), ("b", 0, 1)],
        [("a", 1, 0), ("c", 1, 1), ("c", 1, 2)],
        [("b", 2, 0), ("d", 2, 1)],
    ]
    expected = len({event_id for batch in batches for event_id, _, _ in batch})
    for crash_after in range(len(batches)):
        for before_state in (True, False):
            table: dict[str, Any] = {}
            states: dict[str, dict[str, Any]] = {}
            first_run = SeenEvents(table)
            for n, batch in enumerate(batches[: crash_after + 1]):
                crash_here = n == crash_after and before_state
                _apply_batch(first_run, table, states, "w", batch, crash_before_state=crash_here)
            replay = SeenEvents(table)  # a new process: nothing in memory
            for batch in batches:
                _apply_batch(replay, table, states, "w", batch)
            assert states["w"]["count"] == expected, (crash_after, before_state)
