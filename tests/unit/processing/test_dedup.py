"""Duplicates (same event id, another offset) and replays (same offset again) count once."""

from __future__ import annotations

import copy
from typing import Any

from mesh_stream.processing.dedup import (
    APPLIED,
    APPLIED_INPUTS,
    SEEN_IN,
    SeenEvents,
    apply_once,
    without_bookkeeping,
)


def test_apply_once_refuses_offsets_already_applied_per_partition() -> None:
    state: dict[str, Any] = {}
    assert apply_once(state, 0, 5)
    assert apply_once(state, 1, 2)
    assert not apply_once(state, 0, 5)
    assert not apply_once(state, 0, 3)
    assert apply_once(state, 0, 6)
    assert state[APPLIED] == {"0": 6, "1": 2}
    assert without_bookkeeping({**state, "count": 3}) == {"count": 3}


def test_apply_once_refuses_an_input_record_sent_again_at_a_new_internal_position() -> None:
    """The re-key stage, restarted, forwards input records again as new internal records:
    their input offsets, per input topic and partition, mark them as applied."""
    state: dict[str, Any] = {}
    assert apply_once(state, 0, 5, source=("orders", 1, 40))
    assert apply_once(state, 0, 6, source=("orders", 1, 41))
    assert apply_once(state, 0, 7, source=("orders", 2, 3))  # another input partition
    assert apply_once(state, 0, 8, source=("payments", 1, 2))  # another input topic
    assert not apply_once(state, 0, 9, source=("orders", 1, 41))  # sent again
    assert not apply_once(state, 0, 10, source=("orders", 1, 40))
    assert apply_once(state, 0, 11, source=("orders", 1, 42))
    assert not apply_once(state, 0, 11, source=("orders", 1, 43))  # a replay of the record
    assert state[APPLIED_INPUTS] == {"1:orders": 42, "2:orders": 3, "1:payments": 2}
    assert without_bookkeeping({**state, "count": 1}) == {"count": 1}


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


def test_seen_events_fill_slots_of_a_few_ids_and_recognise_duplicates() -> None:
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    seen = SeenEvents(table, slot_ids=2)
    _apply_batch(seen, table, states, "w", [("a", 0, 0), ("b", 0, 1), ("a", 0, 2)])
    _apply_batch(seen, table, states, "w", [("b", 1, 0), ("c", 1, 1)])
    _apply_batch(seen, table, states, "w", [("d", 2, 0)])
    assert states["w"]["count"] == 4
    # a slot is named after its first event's position and takes ids until it holds 2
    assert table == {"w#0:0": {"a": "0:0", "b": "0:0:1"}, "w#0:1:1": {"c": "0:1:1", "d": "0:2"}}
    assert states["w"][SEEN_IN] == ["0:0", "0:1:1"]
    assert without_bookkeeping(states["w"]) == {"count": 4}


def test_seen_events_state_grows_with_ids_not_with_batches() -> None:
    """Small batches at a steady rate: the state lists one slot per slot_ids ids, so a write
    stays small however many batches a long window gets."""
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    seen = SeenEvents(table, slot_ids=64)
    for offset in range(1_000):  # 1,000 batches of 2 new events, and a duplicate
        batch = [(f"e{offset}-0", offset, 0), (f"e{offset}-1", offset, 1)]
        _apply_batch(seen, table, states, "w", [*batch, (f"e{offset // 2}-0", offset, 2)])
    assert states["w"]["count"] == 2_000
    assert len(states["w"][SEEN_IN]) == 2_000 // 64 + 1
    assert sum(len(ids) for ids in table.values()) == 2_000
    restarted = SeenEvents(table, slot_ids=64)  # every id is known after a restart too
    _apply_batch(restarted, table, states, "w", [("e7-1", 5_000, 0), ("new", 5_000, 1)])
    assert states["w"]["count"] == 2_001


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


# -- with a horizon: slots are minutes of arrival, forgotten after the horizon --------------

MINUTE = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE  # a minute boundary


def _apply_timed_batch(
    seen: SeenEvents,
    states: dict[str, dict[str, Any]],
    key: str,
    batch: list[tuple[str, int, int, int]],
    *,
    crash_before_state: bool = False,
    wall_ms: int | None = None,
) -> bool:
    """One key's events of a batch, (event id, offset, index, arrival ms); True if counted.

    Processed at ``wall_ms``: by default as it arrives (the newest arrival of the batch).
    """
    state = copy.deepcopy(states.get(key) or {"count": 0})
    key_seen = seen.for_key(key, state)
    counted = False
    for event_id, offset, index, arrival in batch:
        if key_seen.first_delivery(event_id, 0, offset, index, arrival_ms=arrival) and apply_once(
            state, 0, offset, index
        ):
            state["count"] += 1
            counted = True
    newest = max(arrival for *_, arrival in batch)
    key_seen.store(now_ms=newest, wall_ms=newest if wall_ms is None else wall_ms)
    if not crash_before_state:
        states[key] = state
    return counted


def test_with_a_horizon_duplicates_are_found_across_minutes_and_old_minutes_are_forgotten() -> None:
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    seen = SeenEvents(table, horizon_ms=10 * MINUTE, bucket_ms=MINUTE)
    _apply_timed_batch(seen, states, "c", [("a", 0, 0, T0 + 1_000), ("b", 0, 1, T0 + 2_000)])
    _apply_timed_batch(seen, states, "c", [("a", 1, 0, T0 + 30_000), ("x", 1, 1, T0 + 31_000)])
    assert table == {f"c#{T0}": {"a": "0:0", "b": "0:0:1", "x": "0:1:1"}}  # one minute, merged
    _apply_timed_batch(seen, states, "c", [("b", 2, 0, T0 + 2 * MINUTE)])  # a retry, later
    assert states["c"]["count"] == 3
    assert states["c"][SEEN_IN] == [str(T0)]

    # 15 minutes on: the first minute ended more than the 10-minute horizon ago
    _apply_timed_batch(seen, states, "c", [("d", 3, 0, T0 + 15 * MINUTE)])
    assert table == {f"c#{T0 + 15 * MINUTE}": {"d": "0:3"}}
    assert states["c"][SEEN_IN] == [str(T0 + 15 * MINUTE)]
    assert states["c"]["count"] == 4
    # so a copy of "a" arriving that late counts again, in memory and after a restart alike
    restarted = SeenEvents(table, horizon_ms=10 * MINUTE, bucket_ms=MINUTE)
    assert _apply_timed_batch(restarted, states, "c", [("a", 4, 0, T0 + 16 * MINUTE)])
    assert _apply_timed_batch(seen, {}, "c", [("a", 4, 0, T0 + 16 * MINUTE)])


def test_with_a_horizon_state_and_table_stay_bounded_for_a_key_that_lives_for_ever() -> None:
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    horizon = 30 * MINUTE
    seen = SeenEvents(table, horizon_ms=horizon, bucket_ms=MINUTE)
    most_slots = 0
    for n in range(24 * 60 * 6):  # one event every 10 s for a day
        _apply_timed_batch(seen, states, "c", [(f"e{n}", n, 0, T0 + n * 10_000)])
        most_slots = max(most_slots, len(states["c"][SEEN_IN]), len(table))
    assert states["c"]["count"] == 24 * 60 * 6
    assert most_slots == horizon // MINUTE + 2  # the horizon, the current and the ending minute
    assert sum(len(ids) for ids in table.values()) <= (horizon // MINUTE + 2) * 6


def test_with_a_horizon_each_event_counts_once_whatever_the_crash_point() -> None:
    """Batches spread over minutes; crash after batch k, before or after its state write."""
    batches = [
        [("a", 0, 0, T0 + 5_000), ("b", 0, 1, T0 + 6_000)],
        [("a", 1, 0, T0 + MINUTE + 1), ("c", 1, 1, T0 + MINUTE + 2), ("c", 1, 2, T0 + MINUTE + 3)],
        [("b", 2, 0, T0 + 3 * MINUTE), ("d", 2, 1, T0 + 3 * MINUTE + 1)],
        [("e", 3, 0, T0 + 9 * MINUTE), ("d", 3, 1, T0 + 9 * MINUTE)],
    ]
    expected = len({event_id for batch in batches for event_id, *_ in batch})
    for crash_after in range(len(batches)):
        for before_state in (True, False):
            table: dict[str, Any] = {}
            states: dict[str, dict[str, Any]] = {}
            first_run = SeenEvents(table, horizon_ms=5 * MINUTE, bucket_ms=MINUTE)
            for n, batch in enumerate(batches[: crash_after + 1]):
                crash_here = n == crash_after and before_state
                _apply_timed_batch(first_run, states, "c", batch, crash_before_state=crash_here)
            replay = SeenEvents(table, horizon_ms=5 * MINUTE, bucket_ms=MINUTE)
            for batch in batches:
                _apply_timed_batch(replay, states, "c", batch)
            assert states["c"]["count"] == expected, (crash_after, before_state)


def test_with_a_horizon_a_backlog_whose_arrivals_jump_keeps_its_buckets_while_it_is_read() -> None:
    """Catching up, one batch may hold a key's events hours apart in arrival time."""
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    seen = SeenEvents(table, horizon_ms=10 * MINUTE, bucket_ms=MINUTE)
    now = T0 + 5 * 60 * MINUTE  # read five hours after these events arrived
    batch = [("old", 0, 0, T0 + 1_000), ("new", 0, 1, T0 + 2 * 60 * MINUTE)]
    _apply_timed_batch(seen, states, "c", batch, wall_ms=now)
    assert sorted(states["c"][SEEN_IN]) == [str(T0), str(T0 + 2 * 60 * MINUTE)]
    # the retried copy of "old" (it arrived 3 s after the first) comes in the next batch
    assert not _apply_timed_batch(seen, states, "c", [("old", 1, 0, T0 + 4_000)], wall_ms=now)
    assert states["c"]["count"] == 2
    # an hour of processing time later, the old bucket goes
    _apply_timed_batch(
        seen, states, "c", [("later", 2, 0, T0 + 2 * 60 * MINUTE)], wall_ms=now + 11 * MINUTE
    )
    assert str(T0) not in states["c"][SEEN_IN]
    assert f"c#{T0}" not in table


def test_with_a_horizon_a_worker_rereads_a_bucket_another_worker_wrote_to() -> None:
    """Partition of key c: worker A, then B (adds to A's bucket), then A again."""
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    worker_a = SeenEvents(table, horizon_ms=10 * MINUTE, bucket_ms=MINUTE)
    worker_b = SeenEvents(table, horizon_ms=10 * MINUTE, bucket_ms=MINUTE)
    _apply_timed_batch(worker_a, states, "c", [("a", 0, 0, T0 + 1_000)])
    _apply_timed_batch(worker_b, states, "c", [("b", 1, 0, T0 + 2_000)])  # same minute
    assert not _apply_timed_batch(worker_a, states, "c", [("b", 2, 0, T0 + 3_000)])  # a copy
    assert states["c"]["count"] == 2


class _WriteLog(dict[str, Any]):
    """A table that remembers every key written (what reaches the changelog)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def test_a_replayed_record_writes_its_seen_entries_again_for_the_changelog() -> None:
    """After a hard kill the local store may hold writes the changelog never got."""
    for horizon in (None, 10 * MINUTE):
        table = _WriteLog()
        states: dict[str, dict[str, Any]] = {}
        seen = SeenEvents(table, horizon_ms=horizon, bucket_ms=MINUTE)
        batch = [("a", 0, 0, T0 + 1_000), ("b", 0, 1, T0 + 2_000)]
        _apply_timed_batch(seen, states, "c", batch)
        before = dict(table)
        table.writes.clear()
        state = copy.deepcopy(states["c"])
        replay = SeenEvents(table, horizon_ms=horizon, bucket_ms=MINUTE).for_key("c", state)
        assert all(replay.first_delivery(e, 0, o, i, arrival_ms=t) for e, o, i, t in batch)
        assert replay.store(now_ms=T0 + 2_000, wall_ms=T0 + 2_000)  # so the state is stored
        assert table.writes == list(before), horizon
        assert dict(table) == before, horizon


def test_an_open_slot_another_worker_appended_to_is_read_again() -> None:
    """Key moves A -> B -> A: A's cached copy of the open slot is stale, and it sees that."""
    table: dict[str, Any] = {}
    states: dict[str, dict[str, Any]] = {}
    worker_a, worker_b = SeenEvents(table), SeenEvents(table)
    _apply_batch(worker_a, table, states, "w", [("a", 0, 0)])
    _apply_batch(worker_b, table, states, "w", [("b", 1, 0)])  # same open slot, one more id
    _apply_batch(worker_a, table, states, "w", [("b", 2, 0), ("c", 2, 1)])  # b: a duplicate
    assert states["w"]["count"] == 3
    assert table == {"w#0:0": {"a": "0:0", "b": "0:1", "c": "0:2:1"}}


class _CountingTable(dict[str, Any]):
    """A seen table that counts reads."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def test_a_state_listing_what_the_cache_matched_is_not_checked_slot_by_slot_again() -> None:
    """A worker's own next batch of a key reads no slot again; a state another worker moved on
    (its open slot holds more ids) or one the cache never matched is read as before."""
    table = _CountingTable()
    states: dict[str, dict[str, Any]] = {}
    worker_a, worker_b = SeenEvents(table, slot_ids=2), SeenEvents(table, slot_ids=2)
    for offset, event_id in enumerate("abcde"):  # three slots: two full, one open
        _apply_batch(worker_a, table, states, "w", [(event_id, offset, 0)])
    assert len(states["w"][SEEN_IN]) == 3
    before = table.reads
    _apply_batch(worker_a, table, states, "w", [("a", 9, 0), ("f", 10, 0)])  # a: a duplicate
    assert table.reads == before
    assert states["w"]["count"] == 6
    # worker B appends to the open slot; A's cache no longer matches, so it reads it again
    _apply_batch(worker_b, table, states, "w", [("g", 11, 0)])
    before = table.reads
    _apply_batch(worker_a, table, states, "w", [("g", 12, 0), ("h", 13, 0)])  # g: a duplicate
    assert table.reads > before
    assert states["w"]["count"] == 8
    # a state the cache stored but that was never kept (a crash before the state write) is
    # checked again too, and its ids recorded again at the same positions
    _apply_batch(worker_a, table, states, "w", [("i", 14, 0)], crash_before_state=True)
    before = table.reads
    _apply_batch(worker_a, table, states, "w", [("i", 14, 0)])
    assert table.reads > before
    assert states["w"]["count"] == 9
