"""The arithmetic of measured offsets: records of the last minute, and a group's lag from
its committed offsets and the first unconsumed record of each partition."""

from __future__ import annotations

from mesh_stream.monitor.measure import GroupLag, TopicReading, _group_lag, _recent

NOW = 1_800_000_000_000
LATEST = {("t", 0): 100, ("t", 1): 50, ("t", 2): 10}


def test_records_of_the_last_minute_count_from_its_first_offset() -> None:
    assert _recent(90, 100, 0) == 10
    assert _recent(-1, 100, 0) == 0  # no record that recent
    assert _recent(5, 100, 40) == 60  # retention removed the older ones
    assert _recent(120, 100, 0) == 0  # past the last stable offset (an open transaction)


def test_lag_sums_end_minus_committed_and_ages_the_oldest_unconsumed_record() -> None:
    committed = {0: 90, 1: 50, 2: 4}
    unconsumed = {("t", 0): NOW - 12_000, ("t", 2): NOW - 30_500}
    lag = _group_lag("g", committed, LATEST, unconsumed, "t", [0, 1, 2], NOW)
    assert lag == GroupLag("g", records=16, seconds=30.5, uncommitted=0)


def test_a_caught_up_group_lags_zero_seconds() -> None:
    lag = _group_lag("g", {0: 100, 1: 50, 2: 10}, LATEST, {}, "t", [0, 1, 2], NOW)
    assert lag == GroupLag("g", records=0, seconds=0.0)
    # Offsets left without a record (markers) are caught up too.
    only_markers = _group_lag("g", {0: 99}, {("t", 0): 100}, {("t", 0): None}, "t", [0], NOW)
    assert only_markers == GroupLag("g", records=1, seconds=0.0)


def test_uncommitted_partitions_are_left_out_and_unknown_ages_stay_unknown() -> None:
    partial = _group_lag("g", {0: 95}, LATEST, {("t", 0): NOW - 1_000}, "t", [0, 1, 2], NOW)
    assert partial == GroupLag("g", records=5, seconds=1.0, uncommitted=2)
    assert _group_lag("g", {}, LATEST, {}, "t", [0, 1, 2], NOW) == GroupLag("g", None, None, 3)
    unanswered = _group_lag("g", {0: 95}, LATEST, {}, "t", [0], NOW)  # no answer in time
    assert unanswered == GroupLag("g", records=5, seconds=None)


def test_the_newest_record_is_the_newest_over_partitions() -> None:
    reading = TopicReading("t", True, {0: NOW - 5, 1: None, 2: NOW - 1}, 3, 30)
    assert reading.newest == NOW - 1
    assert TopicReading("t", True, {0: None}).newest is None
