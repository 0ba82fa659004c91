"""The story the processing benchmark feeds both engines: duplicates, late orders, partitions,
windows and regions as promised, and expected totals that agree with the processor's own
declaration run through reference.recompute."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from domains.analytics.processors.revenue import PROCESSOR
from mesh_stream.bench.story_input import (
    RETRY_MS,
    WindowTotal,
    expected_windows,
    make_story,
    partition_of,
    totals,
)
from mesh_stream.processing.codec import decimal_cents
from mesh_stream.processing.reference import InputRecord, recompute

END_MS = 1_796_000_000_000
RECORDS = 6_000
STORY = make_story(RECORDS, end_ms=END_MS, partitions=3, orders_per_s=5.0)


def window_of(placed_at: int) -> int:
    return placed_at - placed_at % STORY.window_ms


def test_the_story_holds_the_asked_shares_of_duplicates_and_late_orders() -> None:
    assert len(STORY.records) == RECORDS
    assert STORY.count("duplicate") == 180  # 3 %
    assert STORY.count("late") == 60  # 1 %
    assert STORY.count("order") == 5_760
    summary = STORY.summary()
    assert (summary["duplicates"], summary["late"], summary["records"]) == (180, 60, RECORDS)


def test_a_duplicate_is_an_earlier_order_again_on_its_partition_a_little_later() -> None:
    first: dict[str, tuple[int, dict[str, object], int]] = {}
    for item in STORY.records:
        event_id = item.record["event_id"]
        if item.kind == "duplicate":
            arrival, record, partition = first[event_id]  # the original came first
            assert record == item.record
            assert partition == item.partition
            assert RETRY_MS[0] <= item.arrival_ms - arrival <= RETRY_MS[1]
        else:
            assert event_id not in first
            first[event_id] = (item.arrival_ms, item.record, item.partition)


def test_late_orders_arrive_after_their_window_closed_and_on_time_ones_before() -> None:
    for item in STORY.records:
        closes = window_of(item.record["placed_at"]) + STORY.window_ms + STORY.grace_ms
        if item.kind == "late":
            assert item.arrival_ms >= closes
        else:
            assert item.arrival_ms < closes


def test_records_come_in_arrival_order_spread_over_partitions_windows_and_regions() -> None:
    arrivals = [item.arrival_ms for item in STORY.records]
    assert arrivals == sorted(arrivals)
    assert max(arrivals) <= END_MS
    per_partition = STORY.per_partition()
    assert sum(per_partition) == RECORDS
    assert min(per_partition) > RECORDS / 3 * 0.9  # a fair spread, none near empty
    summary = STORY.summary()
    assert summary["event_time_windows"] >= 15
    assert summary["regions"] == 5
    regions = Counter(item.record["region"] for item in STORY.records)
    assert len(set(regions.values())) == 5  # regions sell unequally


def test_partition_of_is_the_sdk_publishers_placement_of_the_order_key() -> None:
    """Java's murmur2 of the key, the partitioner the SDK publisher uses."""
    from aiokafka.partitioner import DefaultPartitioner

    every = [0, 1, 2]
    for item in STORY.records[:100]:
        key = item.record["order_id"]
        assert item.partition == partition_of(key, 3)
        assert item.partition == DefaultPartitioner()(key.encode(), every, every)


def test_the_same_seed_tells_the_same_story() -> None:
    again = make_story(RECORDS, end_ms=END_MS, partitions=3, orders_per_s=5.0)
    assert again.records == STORY.records
    other = make_story(RECORDS, end_ms=END_MS, partitions=3, orders_per_s=5.0, seed=16)
    assert other.records != STORY.records


def test_expected_windows_count_each_event_once_and_nothing_late() -> None:
    expected = expected_windows(STORY)
    assert sum(total.order_count for total in expected.values()) == STORY.count("order")
    on_time = [item for item in STORY.records if item.kind == "order"]
    cents = sum(int(item.record["total_amount"] * 100) for item in on_time)
    assert sum(total.gross_cents for total in expected.values()) == cents
    assert totals(on_time, STORY.window_ms, STORY.grace_ms) == expected


def test_expected_windows_equal_the_revenue_processors_recomputation() -> None:
    product = PROCESSOR.inputs[0].product
    outputs = recompute(
        PROCESSOR, [InputRecord(product, item.record, item.arrival_ms) for item in STORY.records]
    )
    recomputed = {
        key: WindowTotal(record["order_count"], decimal_cents(record["gross_revenue"]))
        for key, record in outputs.items()
    }
    assert recomputed == expected_windows(STORY)


def test_an_order_total_is_the_sum_of_its_lines() -> None:
    for item in STORY.records[:200]:
        lines = item.record["items"]
        assert 1 <= len(lines) <= 3
        assert item.record["total_amount"] == sum(
            (line["unit_price"] * line["quantity"] for line in lines), Decimal(0)
        )


def test_a_story_too_small_to_tell_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 records"):
        make_story(5, end_ms=END_MS)
