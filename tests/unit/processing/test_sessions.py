"""Session windows without Kafka: a key's sessions start, grow and merge as events bridge
them; the engine's outputs equal the one-pass recomputation (which folds each final session
with ``apply`` alone) through duplicates, late events and replays after crashes; a merged
session's old key is deleted with a tombstone; a ``merge`` that does not fold as ``apply``
does is found; closed sessions are forgotten after ``retain_ms``."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import types
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing import (
    Dedup,
    Event,
    Input,
    Processor,
    Session,
    Tumbling,
    WindowKey,
    faust_seams,
)
from mesh_stream.processing import engine as engine_module
from mesh_stream.processing.deferred import DeferredWrites
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.sessions import SESSION_SUFFIX, place, sessionize
from tests.unit.processing.test_engine import (
    BASE,
    MINUTE,
    Worker,
    feed,
    partition_of,
    run_with_crashes,
)

ORDERS = "orders.order-placed"


def by_customer(order: Mapping[str, Any]) -> str:
    return str(order["customer_id"])


def add_order(session: dict[str, Any], event: Event) -> None:
    order = event.fields
    cents = int(order["total_amount"] * 100)
    if not session:
        session.update(orders=0, cents=0, first=order["placed_at"], last=order["placed_at"])
    session["orders"] += 1
    session["cents"] += cents
    session["first"] = min(session["first"], order["placed_at"])
    session["last"] = max(session["last"], order["placed_at"])


def merge_orders(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    into["orders"] += other["orders"]
    into["cents"] += other["cents"]
    into["first"] = min(into["first"], other["first"])
    into["last"] = max(into["last"], other["last"])


def session_record(key: WindowKey, session: Mapping[str, Any]) -> dict[str, Any]:
    return {"customer_id": key.key, "start": key.start_ms, "end": key.end_ms, **session}


def visits(
    window: Session | None = None, merge: Any = merge_orders, dedup: bool = True
) -> Processor:
    return Processor(
        output="analytics.customer-visits",
        inputs=(
            Input(
                ORDERS,
                key=by_customer,
                reads=("event_id", "customer_id", "total_amount", "placed_at"),
                event_time="placed_at",
            ),
        ),
        apply=add_order,
        emit=session_record,
        window=window or Session(gap_ms=MINUTE, grace_ms=30_000),
        merge=merge,
        dedup=Dedup(field="event_id") if dedup else None,
    )


def bursts(rng: random.Random, count: int, minutes: int = 30) -> list[InputRecord]:
    """Orders of a few customers in bursts over ``minutes``; most arrive a second after they
    were placed, some late within the grace, some too late, some twice."""
    sent = []
    for _ in range(count):
        placed = BASE + rng.randrange(minutes * MINUTE)
        order = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "customer_id": f"cust-{rng.randrange(4)}",
            "total_amount": Decimal(rng.randint(100, 9_000)) / 100,
            "placed_at": placed,
        }
        draw = rng.random()
        delay = 1_000
        if draw < 0.15:  # late, within gap + grace: it may bridge two sessions
            delay = rng.randrange(40_000, 89_000)
        elif draw < 0.2:  # after gap + grace: left out
            delay = rng.randrange(91_000, 3 * MINUTE)
        sent.append(InputRecord(ORDERS, order, placed + delay))
        if rng.random() < 0.1:
            sent.append(InputRecord(ORDERS, order, placed + delay + rng.randrange(1, 5_000)))
    sent.sort(key=lambda item: item.arrival_ms)
    return sent


def order(customer: str, placed: int, amount: str = "1.00") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "customer_id": customer,
        "total_amount": Decimal(amount),
        "placed_at": placed,
    }


def stored_sessions(worker: Worker) -> set[tuple[str, int]]:
    """(state key, session start) of every session the worker's state table holds."""
    return {
        (key, session[0])
        for key, value in worker.states.data.items()
        if key.endswith(SESSION_SUFFIX)
        for session in json.loads(value)["sessions"]
    }


def sharing_partition_with(customer: str) -> str:
    """Another customer whose sessions live in ``customer``'s internal partition (and so
    move its window clock)."""
    wanted = partition_of(f"{customer}{SESSION_SUFFIX}")
    return next(f"d{n}" for n in range(100) if partition_of(f"d{n}{SESSION_SUFFIX}") == wanted)


# -- the sessions of a key ----------------------------------------------------------------------


def test_an_event_bridging_two_sessions_merges_them_into_the_earlier() -> None:
    window = Session(gap_ms=10)
    sessions: list[list[Any]] = []
    merged: list[tuple[dict[str, Any], Mapping[str, Any]]] = []

    def merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
        merged.append((dict(into), dict(other)))
        into["n"] += other["n"]

    for event_ms in (100, 120, 105):
        session = place(window, sessions, event_ms, merge, "k")
        session[2]["n"] = session[2].get("n", 0) + 1
    assert sessions == [[100, 105, {"n": 2}, []], [120, 120, {"n": 1}, []]]  # 15 apart: two
    bridge = place(window, sessions, 112, merge, "k")  # within 10 of 105 and of 120
    assert sessions == [[100, 120, {"n": 3}, [120]]]  # 120's record is to be deleted
    assert bridge is sessions[0]
    assert merged == [({"n": 2}, {"n": 1})]
    # an event before the first session by at most the gap moves its start
    assert place(window, sessions, 90, merge, "k")[:2] == [90, 120]
    assert sessions[0][3] == [120, 100]
    # one further away starts its own, kept in order; so does one after
    place(window, sessions, 50, merge, "k")
    place(window, sessions, 131, merge, "k")
    assert [s[:2] for s in sessions] == [[50, 50], [90, 120], [131, 131]]
    # merging an empty state (apply folded nothing into it) calls no merge
    sessions[2][2].clear()
    place(window, sessions, 125, merge, "k")
    assert [s[:3] for s in sessions] == [[50, 50, {}], [90, 131, {"n": 3}]]
    assert len(merged) == 1


def test_sessionize_cuts_where_events_are_more_than_the_gap_apart() -> None:
    window = Session(gap_ms=10)
    events = [(130, "d"), (100, "a"), (110, "b"), (121, "c"), (140, "e")]
    assert sessionize(window, events) == [(100, 110, ["a", "b"]), (121, 140, ["d", "c", "e"])]


# -- the engine against its recomputation ---------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sessions_equal_their_recomputation_through_duplicates_lateness_and_replays(
    seed: int,
) -> None:
    rng = random.Random(seed)
    records = bursts(rng, 300)
    processor = visits()
    expected = recompute(processor, records)
    # several sessions a customer, and fewer orders counted than sent (copies, too late)
    assert len(expected) > 12
    assert sum(s["orders"] for s in expected.values()) < len(records)
    assert run_with_crashes(processor, records, seed=seed) == expected


def test_a_merged_session_s_record_is_deleted_with_a_tombstone() -> None:
    worker = Worker(visits())
    first, second = order("c", BASE), order("c", BASE + 100_000)
    feed(worker, [InputRecord(ORDERS, first, BASE + 1_000)])
    feed(worker, [InputRecord(ORDERS, second, BASE + 101_000)])
    assert set(worker.outputs) == {f"c@{BASE}", f"c@{BASE + 100_000}"}
    bridge = order("c", BASE + 50_000)  # within a minute of both; arrives within gap + grace
    feed(worker, [InputRecord(ORDERS, bridge, BASE + 102_000)])
    assert worker.outputs == {
        f"c@{BASE}": {
            "customer_id": "c",
            "start": BASE,
            "end": BASE + 100_000,
            "orders": 3,
            "cents": 300,
            "first": BASE,
            "last": BASE + 100_000,
        }
    }
    assert worker.published[-1] == (f"c@{BASE + 100_000}", None)  # after the merged record
    # an earlier event moving the start deletes the record of the old start too
    earlier = order("c", BASE - 30_000)
    feed(worker, [InputRecord(ORDERS, earlier, BASE + 50_000)])  # on time: 80 s after
    assert list(worker.outputs) == [f"c@{BASE - 30_000}"]
    assert worker.published[-1] == (f"c@{BASE}", None)
    state_keys = set(worker.states.data)
    assert f"c{SESSION_SUFFIX}" in state_keys  # one state for the key's sessions


def test_a_merge_that_does_not_fold_as_apply_does_is_found_by_the_recomputation() -> None:
    def forgets_the_other(into: dict[str, Any], other: Mapping[str, Any]) -> None:
        into["last"] = max(into["last"], other["last"])

    rng = random.Random(4)
    records = bursts(rng, 300)
    processor = visits(merge=forgets_the_other)
    expected = recompute(processor, records)
    got = run_with_crashes(processor, records, seed=4)
    differing = [key for key in expected if got.get(key) != expected[key]]
    assert differing  # the sessions a late event bridged count too few orders
    assert all(got[key]["orders"] < expected[key]["orders"] for key in differing if key in got)


def test_a_late_event_is_left_out_by_its_own_times(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(visits(Session(gap_ms=MINUTE, grace_ms=0)))
    with caplog.at_level(logging.WARNING):
        feed(worker, [InputRecord(ORDERS, order("c", BASE), BASE + MINUTE)])  # gap + grace
    assert worker.outputs == {}
    assert worker.aggregation.late == 1
    assert "it arrived 60000 ms after its event time, gap_ms + grace_ms (60000 + 0)" in caplog.text
    feed(worker, [InputRecord(ORDERS, order("c", BASE), BASE + MINUTE - 1)])
    assert list(worker.outputs) == [f"c@{BASE}"]


# -- retention ----------------------------------------------------------------------------------


def test_closed_sessions_are_forgotten_once_retained_and_outputs_stay_exact() -> None:
    rng = random.Random(9)
    window = Session(gap_ms=MINUTE, grace_ms=30_000, retain_ms=2 * MINUTE)
    processor = visits(window)
    records = bursts(rng, 600, minutes=60)
    worker = Worker(processor)
    feed(worker, records)
    expected = recompute(processor, records)
    # events arrive at most 3 minutes late: within what a 2-minute retention keeps
    assert worker.outputs == expected
    kept = [
        session
        for key, value in worker.states.data.items()
        if key.endswith(SESSION_SUFFIX)
        for session in json.loads(value)["sessions"]
    ]
    assert 0 < len(kept) < len(expected) / 3  # the last few minutes' sessions only
    newest = max(item.arrival_ms for item in records)
    assert all(window.forget_at_ms(session[1]) > newest - 2 * MINUTE for session in kept)
    assert worker.aggregation.forgotten == len(expected) - len(kept)


def test_an_event_that_could_join_a_forgotten_session_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    window = Session(gap_ms=MINUTE, grace_ms=0, retain_ms=MINUTE)
    worker = Worker(visits(window))
    feed(worker, [InputRecord(ORDERS, order("c", BASE), BASE + 1_000)])
    # later events of another customer whose sessions share c's partition (and its clock)
    other = sharing_partition_with("c")
    later = [
        InputRecord(ORDERS, order(other, BASE + m * MINUTE), BASE + m * MINUTE + 1)
        for m in range(1, 8)
    ]
    feed(worker, later, batch=1)
    assert f"c{SESSION_SUFFIX}" not in worker.states.data  # forgotten whole
    emitted = worker.outputs[f"c@{BASE}"]
    # on time by its own times (its arrival is), but behind the clock by minutes
    with caplog.at_level(logging.WARNING):
        feed(worker, [InputRecord(ORDERS, order("c", BASE + 30_000), BASE + 60_000)])
    assert worker.outputs[f"c@{BASE}"] == emitted  # not merged into nothing, nor a new session
    assert f"c@{BASE + 30_000}" not in worker.outputs
    assert worker.aggregation.dropped == 1
    assert (
        f"dropped 1 event(s) of key 'c', the first at orders.order-placed.v1[0]@8 (event time "
        f"{BASE + 30_000}): more than gap_ms + grace_ms + retain_ms (60000 + 0 + 60000 ms) "
        f"behind the clock ({BASE + 7 * MINUTE + 1}"
    ) in caplog.text


def restarted_halfway() -> tuple[Worker, Session, list[InputRecord], set[tuple[str, int]]]:
    """A worker that took the first half of forty minutes of visits (one-minute retention)
    and restarted: it, its window, the records and the sessions its tables held then. It
    never updated those keys itself after the restart: it finds them in its tables."""
    rng = random.Random(6)
    window = Session(gap_ms=MINUTE, grace_ms=30_000, retain_ms=MINUTE)
    records = bursts(rng, 400, minutes=40)
    worker = Worker(visits(window))
    feed(worker, records[: len(records) // 2])
    held = stored_sessions(worker)
    worker.restart()
    return worker, window, records, held


def test_a_restarted_worker_forgets_the_sessions_its_tables_held() -> None:
    worker, _, records, held = restarted_halfway()
    feed(worker, records[len(records) // 2 :])
    left = stored_sessions(worker)
    assert held
    assert not held & left


# -- declarations -----------------------------------------------------------------------------


def test_a_session_window_needs_merge_and_merge_needs_a_session_window() -> None:
    with pytest.raises(ConfigurationError, match=r"a Session window needs merge="):
        visits(merge=None)
    with pytest.raises(ConfigurationError, match=r"merge is for Session windows only"):
        dataclasses.replace(visits(), window=Tumbling(size_ms=MINUTE))
    with pytest.raises(ConfigurationError, match=r"merge must be callable as merge\(into, other\)"):
        visits(merge=lambda _into: None)
    with pytest.raises(ConfigurationError, match=r"Session gap_ms must be > 0, got 0"):
        Session(gap_ms=0)
    with pytest.raises(ConfigurationError, match=r"Session grace_ms must be a whole number"):
        Session(gap_ms=10, grace_ms=1.5)  # type: ignore[arg-type]


def test_a_merge_returning_a_value_stops_the_worker_naming_merge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def returns(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
        return {**into, **other}

    worker = Worker(visits(merge=returns))
    feed(worker, [InputRecord(ORDERS, order("c", BASE), BASE + 1)])
    feed(worker, [InputRecord(ORDERS, order("c", BASE + 100_000), BASE + 100_001)])
    with caplog.at_level(logging.ERROR), pytest.raises(engine_module._ReportedError):
        feed(worker, [InputRecord(ORDERS, order("c", BASE + 50_000), BASE + 100_002)])
    assert "merge returned dict merging sessions of key 'c'" in caplog.text
    assert "orders.order-placed.v1[0]@2" in caplog.text


# -- kills between commits ----------------------------------------------------------------------


class Current:
    """What a deferred table reads of faust's current event."""

    message = types.SimpleNamespace(topic="by-key", partition=0)


class DeferredWorker(Worker):
    """A Worker whose tables hold their writes until a commit (or ``flush_at`` of them), as a
    real worker's do: a kill loses the writes still held, the outputs not flushed, and reads
    the internal records since the last commit again."""

    def __init__(self, processor: Processor, flush_at: int) -> None:
        super().__init__(processor)
        self.flush_at = flush_at
        self.changelog = {"state": self.states, "seen": self.seen}  # what survives a kill
        self.uncommitted: list[list[Any]] = []
        self.kill()

    def kill(self) -> None:
        self.writes = DeferredWrites(
            [self.changelog["seen"], self.changelog["state"]], self.flush_at
        )
        self.seen, self.states = self.writes.tables  # type: ignore[assignment]
        self.lose_unflushed_outputs()
        self.restart()
        replay, self.uncommitted = self.uncommitted, []
        for internal in replay:
            self.aggregate(internal)

    def aggregate(self, internal: list[Any]) -> None:
        with faust_seams.current_event(Current()):  # type: ignore[arg-type]
            super().aggregate(internal)
        self.uncommitted.append(internal)

    def commit(self) -> None:
        """Faust's commit: held writes, then outputs, in Kafka; the offsets committed."""
        with faust_seams.current_event(Current()):  # type: ignore[arg-type]
            self.writes.flush()
        self.flushed = len(self.published)
        self.uncommitted = []


@pytest.mark.parametrize("flush_at", [1, 3, 1_000_000])
@pytest.mark.parametrize("retain_ms", [0, MINUTE])
def test_sessions_stay_exact_through_kills_between_commits(flush_at: int, retain_ms: int) -> None:
    """A kill loses held state writes and unflushed outputs while the window clock, written
    at once, survives (h47): the clock never runs ahead of the states it judged (held writes
    go first), and a state that reached the changelog while its batch's tombstones were lost
    sends them again when its replayed events reach it."""
    window = Session(gap_ms=MINUTE, grace_ms=30_000, retain_ms=retain_ms)
    processor = visits(window)
    for seed in range(8):
        rng = random.Random(seed)
        records = bursts(rng, 200, minutes=20)
        worker = DeferredWorker(processor, flush_at)
        for start in range(0, len(records), 7):
            worker.aggregate(worker.forward(records[start : start + 7]))
            draw = rng.random()
            if draw < 0.4:
                worker.commit()
            elif draw < 0.6:
                worker.kill()
        worker.commit()
        assert worker.outputs == recompute(processor, records), (seed, flush_at, retain_ms)


def test_an_earlier_session_added_to_a_key_is_forgotten_at_its_own_time() -> None:
    """A late event can give a key a session older than the one it was noted for: the key is
    noted again for the earlier one, so that session goes once its retention is past."""
    window = Session(gap_ms=MINUTE, grace_ms=30_000, retain_ms=0)
    worker = Worker(visits(window))
    later, earlier = BASE + 10 * MINUTE, BASE + 8 * MINUTE + 50_000  # 70 s apart: two sessions
    feed(worker, [InputRecord(ORDERS, order("c", later), later + 1_000)])
    feed(worker, [InputRecord(ORDERS, order("c", earlier), later + 2_000)])  # 72 s late: on time
    sessions = json.loads(worker.states.data[f"c{SESSION_SUFFIX}"])["sessions"]
    assert [session[0] for session in sessions] == [earlier, later]
    other = sharing_partition_with("c")
    # the clock passes the earlier session's time (8:50 + 2 gaps + grace = 11:20), not 12:30
    clock = BASE + 11 * MINUTE + 30_000
    feed(worker, [InputRecord(ORDERS, order(other, clock - 1_000), clock)])
    feed(worker, [InputRecord(ORDERS, order(other, clock), clock + 1)])
    sessions = json.loads(worker.states.data[f"c{SESSION_SUFFIX}"])["sessions"]
    assert [session[0] for session in sessions] == [later]


def test_a_restarted_worker_reads_its_session_keys_a_slice_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session key's time is in its value: after an assignment those values are read a
    slice a batch, not all at once on the event loop, and the sessions are forgotten all
    the same."""
    monkeypatch.setattr(engine_module, "SCAN_AT_ONCE", 2)
    worker, window, records, held = restarted_halfway()
    expiry = worker.aggregation.expiry
    assert expiry is not None
    feed(worker, records[len(records) // 2 : len(records) // 2 + 1], batch=1)
    assert expiry.needs_scan()  # 4 keys, 2 a batch: not all read yet
    feed(worker, records[len(records) // 2 + 1 :])
    assert not expiry.needs_scan()
    left = stored_sessions(worker)
    assert held
    assert not held & left
    assert worker.outputs == recompute(visits(window), records)
