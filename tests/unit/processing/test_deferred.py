"""Table writes wait in memory for faust's commit, each reaching its table under its own event."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from mesh_stream.processing import faust_seams
from mesh_stream.processing.deferred import (
    DeferredTable,
    DeferredWrites,
    DeferredWritesFailedError,
    FlushBeforeCommit,
    StateTooLargeError,
    defer_writes,
)
from mesh_stream.settings import MeshSettings


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int


class Event:
    """What the deferred tables read of a faust event: its message's topic and partition."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = Message(topic, partition)


@dataclass
class RecordingTable(MutableMapping[str, Any]):
    """A table that records each write with the partition of the event current at the time."""

    name: str
    log: list[tuple[str, str, str, int]]
    data: dict[str, Any] = field(default_factory=dict)
    fail_on: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key == self.fail_on:
            raise OSError("disk full")
        event = faust.current_event()
        assert event is not None, "a table write outside of an event"
        self.log.append((self.name, "set", key, event.message.partition))
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self.data:
            raise KeyError(key)
        event = faust.current_event()
        assert event is not None
        self.log.append((self.name, "del", key, event.message.partition))
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def deferred_table(table: MutableMapping[str, Any]) -> DeferredTable:
    (deferred,) = DeferredWrites([table], flush_at=1000).tables
    return deferred


def set_under(table: MutableMapping[str, Any], event: Event, key: str, value: Any) -> None:
    with faust_seams.current_event(event):  # type: ignore[arg-type]
        table[key] = value


def test_writes_wait_for_the_flush_and_reads_see_them_meanwhile() -> None:
    log: list[tuple[str, str, str, int]] = []
    table = RecordingTable("state", log, {"old": {"n": 1}})
    deferred = deferred_table(table)
    set_under(deferred, Event("t", 2), "a", {"n": 5})
    set_under(deferred, Event("t", 0), "old", {"n": 2})
    assert table.data == {"old": {"n": 1}}
    assert log == []
    assert deferred["a"] == {"n": 5}
    assert deferred.get("old") == {"n": 2}
    assert deferred.get("missing", "none") == "none"
    assert "a" in deferred
    assert sorted(deferred) == ["a", "old"]
    assert len(deferred) == 2
    assert deferred.pending == 2

    assert deferred.flush() == 2
    assert table.data == {"old": {"n": 2}, "a": {"n": 5}}
    # each write reached the table under the event it was made under (its changelog partition)
    assert log == [("state", "set", "a", 2), ("state", "set", "old", 0)]
    assert deferred.pending == 0
    assert deferred.flush() == 0


def test_the_last_write_of_a_key_wins_and_is_written_once() -> None:
    log: list[tuple[str, str, str, int]] = []
    deferred = deferred_table(RecordingTable("state", log))
    for n in range(5):
        set_under(deferred, Event("t", 1), "k", {"n": n})
    deferred.flush()
    assert log == [("state", "set", "k", 1)]
    assert deferred["k"] == {"n": 4}


def test_keys_are_flushed_in_the_order_of_their_last_write() -> None:
    """What was written last reaches the changelog last: a window's tombstone after the
    expiry clock written just before it, though the window was first written earlier."""
    log: list[tuple[str, str, str, int]] = []
    deferred = deferred_table(RecordingTable("state", log, {"w@0": {"n": 1}}))
    set_under(deferred, Event("t", 0), "w@0", {"n": 2})
    set_under(deferred, Event("t", 0), "clock", [["t", 0, 5]])
    set_under(deferred, Event("t", 0), "w@60", {"n": 1})
    set_under(deferred, Event("t", 0), "clock", [["t", 0, 9]])
    with faust_seams.current_event(Event("t", 0)):  # type: ignore[arg-type]
        del deferred["w@0"]
    deferred.flush()
    assert [(what, key) for _, what, key, _ in log] == [
        ("set", "w@60"),
        ("set", "clock"),
        ("del", "w@0"),
    ]


def test_a_write_now_reaches_the_table_ahead_of_every_kept_write() -> None:
    """Expiry's clock: sent at once, so no kept tombstone can reach the changelog before it."""
    log: list[tuple[str, str, str, int]] = []
    deferred = deferred_table(RecordingTable("state", log, {"w@0": {"n": 1}}))
    with faust_seams.current_event(Event("t", 1)):  # type: ignore[arg-type]
        del deferred["w@0"]
        deferred.write_now("clock", [["t", 0, 5]])
    assert log == [("state", "set", "clock", 1)]
    deferred.flush()
    assert log == [("state", "set", "clock", 1), ("state", "del", "w@0", 1)]


def test_what_is_kept_is_a_snapshot_that_later_changes_cannot_touch() -> None:
    table = RecordingTable("state", [])
    deferred = deferred_table(table)
    value: dict[str, Any] = {"count": 1, "applied": {"0": 7}}
    set_under(deferred, Event("t", 0), "k", value)
    # an update that fails half-way mutates what it read, and never stores it
    read = deferred["k"]
    read["count"] += 1
    read["applied"]["0"] = 8
    value["count"] = 99
    assert deferred["k"] == {"count": 1, "applied": {"0": 7}}
    deferred.flush()
    assert table.data["k"] == {"count": 1, "applied": {"0": 7}}


def test_a_deletion_is_kept_too() -> None:
    log: list[tuple[str, str, str, int]] = []
    table = RecordingTable("seen", log, {"k#1": {"e1": "0:1"}})
    deferred = deferred_table(table)
    with faust_seams.current_event(Event("t", 1)):  # type: ignore[arg-type]
        del deferred["k#1"]
        with pytest.raises(KeyError):
            del deferred["k#1"]  # gone already
        with pytest.raises(KeyError):
            del deferred["never"]
    assert "k#1" not in deferred
    assert deferred.get("k#1") is None
    with pytest.raises(KeyError):
        deferred["k#1"]
    assert list(deferred) == []
    assert table.data == {"k#1": {"e1": "0:1"}}
    set_under(deferred, Event("t", 1), "k#2", {"e2": "0:2"})
    with faust_seams.current_event(Event("t", 1)):  # type: ignore[arg-type]
        del deferred["k#2"]  # written and deleted before a flush
    deferred.flush()
    assert table.data == {}
    assert log == [("seen", "del", "k#1", 1)]


def test_a_write_outside_of_an_event_is_refused() -> None:
    deferred = deferred_table(RecordingTable("state", []))
    with pytest.raises(RuntimeError, match="outside of an event"):
        deferred["k"] = 1


def test_a_commit_flushes_the_tables_in_the_order_given() -> None:
    log: list[tuple[str, str, str, int]] = []
    writes = DeferredWrites([RecordingTable("seen", log), RecordingTable("state", log)], 1000)
    seen, state = writes.tables
    set_under(state, Event("t", 0), "k", {"_seen_in": ["0:1"]})
    set_under(seen, Event("t", 0), "k#0:1", {"e1": "0:1"})
    FlushBeforeCommit(writes.flush).on_commit_initiated(consumer=None)
    assert log == [("seen", "set", "k#0:1", 0), ("state", "set", "k", 0)]
    assert writes.kept == 0


def test_many_kept_writes_are_flushed_without_waiting_for_the_commit() -> None:
    log: list[tuple[str, str, str, int]] = []
    writes = DeferredWrites([RecordingTable("seen", log), RecordingTable("state", log)], 3)
    seen, state = writes.tables
    set_under(seen, Event("t", 0), "k#1", {"e1": "0:1"})
    set_under(state, Event("t", 0), "k", 1)
    set_under(state, Event("t", 0), "k", 2)  # the same key again: still two kept writes
    assert log == []
    assert writes.kept == 2
    set_under(state, Event("t", 1), "j", 3)  # the third: all of them go, seen table first
    assert log == [("seen", "set", "k#1", 0), ("state", "set", "k", 0), ("state", "set", "j", 1)]
    assert writes.kept == 0
    assert state["k"] == 2
    # a steady 1,000 events/s keeps about 25 a second: commits flush them, not the mark
    assert MeshSettings().processor_state_flush_at > 25


def test_a_flush_mark_of_one_writes_each_update_at_once() -> None:
    log: list[tuple[str, str, str, int]] = []
    (state,) = DeferredWrites([RecordingTable("state", log)], 1).tables
    set_under(state, Event("t", 0), "k", 1)
    set_under(state, Event("t", 0), "k", 2)
    assert log == [("state", "set", "k", 0), ("state", "set", "k", 0)]
    assert state.pending == 0


def test_a_revoke_flushes_what_is_kept_before_the_partitions_change_hands() -> None:
    log: list[tuple[str, str, str, int]] = []
    app = faust.App("deferred-test", broker="kafka://127.0.0.1:1")
    seen, state = defer_writes(
        app, RecordingTable("seen", log), RecordingTable("state", log), flush_at=1000
    )
    set_under(state, Event("t", 2), "k", {"n": 1})
    set_under(seen, Event("t", 2), "k#1", {"e1": "2:1"})

    async def revoke() -> None:
        await app.on_partitions_revoked.send({TP("t", 2)})

    asyncio.run(revoke())
    assert log == [("seen", "set", "k#1", 2), ("state", "set", "k", 2)]
    assert state.pending == 0


def test_after_a_failed_flush_no_commit_goes_ahead() -> None:
    log: list[tuple[str, str, str, int]] = []
    writes = DeferredWrites([RecordingTable("state", log, fail_on="b")], 1000)
    (state,) = writes.tables
    set_under(state, Event("t", 0), "a", 1)
    set_under(state, Event("t", 0), "b", 2)
    sensor = FlushBeforeCommit(writes.flush)
    with pytest.raises(OSError, match="disk full"):
        sensor.on_commit_initiated(consumer=None)
    # what the failed flush did not write is lost, so every later commit must fail too
    set_under(state, Event("t", 0), "c", 3)
    with pytest.raises(DeferredWritesFailedError, match="nothing is committed"):
        sensor.on_commit_initiated(consumer=None)
    assert log == [("state", "set", "a", 0)]


def test_faust_asks_the_sensors_before_it_picks_the_offsets_to_commit() -> None:
    """What the deferral relies on in the installed faust: every commit passes through
    ``force_commit``, which calls the sensors' hook before it reads the acknowledged offsets,
    and flushes the producer before it commits."""
    source = inspect.getsource(Consumer.force_commit)
    assert source.index("on_commit_initiated") < source.index("_commit_tps")
    assert "self.force_commit(" in inspect.getsource(Consumer.commit)
    assert "self.app.producer.flush()" in inspect.getsource(Consumer._commit_offsets)


def test_a_value_that_is_not_json_is_refused_naming_the_key() -> None:
    deferred = deferred_table(RecordingTable("state", []))
    with (
        faust_seams.current_event(Event("t", 0)),  # type: ignore[arg-type]
        pytest.raises(TypeError, match=r"the state of key 'eu@0' cannot be stored: .*Decimal"),
    ):
        deferred["eu@0"] = {"total": Decimal("1.50")}
    assert deferred.pending == 0


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_rather_than_stored_as_null(number: float) -> None:
    """JSON has no NaN or infinity; faust's orjson would store them as null, silently."""
    deferred = deferred_table(RecordingTable("state", []))
    with (
        faust_seams.current_event(Event("t", 0)),  # type: ignore[arg-type]
        pytest.raises(TypeError, match=r"the state of key 'eu@0' cannot be stored: .*float"),
    ):
        deferred["eu@0"] = {"ratio": [number]}
    assert deferred.pending == 0


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 12, 4, tzinfo=UTC), {"at": date(2026, 12, 4)}, {1: "a key that is no string"}],
)
def test_a_value_json_would_read_back_as_another_type_is_refused(value: Any) -> None:
    """A date would come back as a string and an int key as a string key: both refused."""
    deferred = deferred_table(RecordingTable("state", []))
    with (
        faust_seams.current_event(Event("t", 0)),  # type: ignore[arg-type]
        pytest.raises(TypeError, match=r"the state of key 'eu@0' cannot be stored"),
    ):
        deferred["eu@0"] = value
    assert deferred.pending == 0


def test_a_value_longer_than_a_changelog_record_may_be_is_refused_naming_the_key() -> None:
    """faust's producer would refuse its changelog record at every flush (and so at every
    restart, in aiokafka's words): refused as it is written, naming the key and the sizes."""
    (deferred,) = DeferredWrites([RecordingTable("state", [])], 1000, max_value_bytes=100).tables
    with faust_seams.current_event(Event("t", 0)):  # type: ignore[arg-type]
        deferred["eu@0"] = {"note": "n" * 80}  # 91 bytes: kept
        with pytest.raises(
            StateTooLargeError,
            match=r"the state of key 'eu@0' takes 1,011 bytes as JSON, over the 100 one "
            r"changelog record may hold; keep less in it",
        ):
            deferred["eu@0"] = {"note": "n" * 1_000}
    assert deferred["eu@0"] == {"note": "n" * 80}  # the last value that fitted stays


def test_nulls_and_nested_values_read_back_as_written() -> None:
    table = RecordingTable("state", [])
    deferred = deferred_table(table)
    value = {"last": None, "counts": [1, 2.5, None], "name": "null", "deep": {"x": [True]}}
    with faust_seams.current_event(Event("t", 0)):  # type: ignore[arg-type]
        deferred["eu@0"] = value
    assert deferred["eu@0"] == value
    deferred.flush()
    assert table["eu@0"] == value
