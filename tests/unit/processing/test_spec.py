"""The processor declaration and its one-pass recomputation (the reference outputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.spec import (
    Dedup,
    Event,
    Hopping,
    Input,
    Processor,
    Tumbling,
    WindowKey,
    check_key,
    shown_key,
)


def by_region(fields: Mapping[str, Any]) -> str | None:
    return str(fields["region"]) if fields["region"] != "nowhere" else None


def count(state: dict[str, Any], event: Event) -> None:
    state["n"] = state.get("n", 0) + 1
    state["sum"] = state.get("sum", 0) + event.fields["amount"]


def emit(key: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    window = (key.start_ms, key.end_ms) if isinstance(key, WindowKey) else None
    return {"key": str(key), "n": state["n"], "sum": state["sum"], "window": window}


ORDERS = Input(
    "orders.order-placed",
    key=by_region,
    reads=("event_id", "region", "amount", "placed_at"),
    event_time="placed_at",
)


def order(event_id: str, region: str, amount: int, placed_at: int, arrival: int) -> InputRecord:
    record = {
        "event_id": event_id,
        "region": region,
        "amount": amount,
        "placed_at": placed_at,
        "name": "private",
    }
    return InputRecord("orders.order-placed", record, arrival)


def test_tumbling_windows_count_each_id_once_and_drop_late_and_filtered_records() -> None:
    processor = Processor(
        "analytics.t", (ORDERS,), count, emit, Tumbling(60_000, 10_000), Dedup("event_id")
    )
    records = [
        order("a", "eu", 5, 1_000, 2_000),
        order("a", "eu", 5, 1_000, 3_000),  # a retried copy: counted once
        order("b", "eu", 7, 59_999, 69_999),  # inside the grace period
        order("c", "eu", 11, 59_999, 70_000),  # one ms too late
        order("d", "eu", 3, 60_000, 60_001),  # the next window
        order("e", "nowhere", 100, 1_000, 2_000),  # key() None: dropped
    ]
    assert recompute(processor, records) == {
        "eu@0": {"key": "eu@0", "n": 2, "sum": 12, "window": (0, 60_000)},
        "eu@60000": {"key": "eu@60000", "n": 1, "sum": 3, "window": (60_000, 120_000)},
    }


def test_apply_sees_only_the_declared_reads() -> None:
    seen: list[Mapping[str, Any]] = []

    def remember(state: dict[str, Any], event: Event) -> None:
        seen.append(event.fields)
        count(state, event)

    processor = Processor("analytics.t", (ORDERS,), remember, emit)
    recompute(processor, [order("a", "eu", 1, 5, 6)])
    assert seen == [{"event_id": "a", "region": "eu", "amount": 1, "placed_at": 5}]


def test_hopping_windows_hold_an_event_in_each_overlapping_window() -> None:
    processor = Processor("analytics.t", (ORDERS,), count, emit, Hopping(60_000, 20_000))
    outputs = recompute(processor, [order("a", "eu", 1, 45_000, 45_000)])
    assert sorted(outputs) == ["eu@0", "eu@20000", "eu@40000"]


def test_a_dedup_horizon_forgets_ids() -> None:
    processor = Processor(
        "analytics.t", (ORDERS,), count, emit, dedup=Dedup("event_id", horizon_ms=1_000)
    )
    records = [
        order("a", "eu", 1, 0, 0),
        order("a", "eu", 1, 0, 999),
        order("a", "eu", 1, 0, 1_000),
    ]
    assert recompute(processor, records)["eu"]["n"] == 2
    # the copy at the horizon may still be remembered by a worker: its key is named (h37)
    past: dict[str, list[str]] = {}
    recompute(processor, [*records, order("b", "us", 1, 0, 5)], past_horizon=past)
    assert past == {
        "eu": [
            "event_id 'a' arrived again 1,000 ms after its first copy, at or past "
            "horizon_ms 1,000: a worker may still remember it and drop it"
        ]
    }


def test_a_record_missing_a_declared_field_is_named() -> None:
    processor = Processor("analytics.t", (ORDERS,), count, emit)
    item = InputRecord("orders.order-placed", {"region": "eu"}, 0, "orders.order-placed.v1[2]@7")
    with pytest.raises(ConfigurationError, match=r"orders.order-placed.v1\[2\]@7 has no field"):
        recompute(processor, [item])


def test_bad_declarations_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="event_time 'at' is not in `reads`"):
        Input("orders.order-placed", key=by_region, reads=("region",), event_time="at")
    with pytest.raises(ConfigurationError, match="dedup field 'event_id' is not in `reads`"):
        Processor(
            "analytics.t",
            (Input("orders.order-placed", key=by_region, reads=("region",)),),
            count,
            emit,
            dedup=Dedup(),
        )
    with pytest.raises(ConfigurationError, match=r"advance_ms must be in 1\.\.size_ms"):
        Hopping(60_000, 0)
    with pytest.raises(ConfigurationError, match="declared twice"):
        Processor("analytics.t", (ORDERS, ORDERS), count, emit)
    with pytest.raises(ConfigurationError, match=r"window must be Tumbling\(\.\.\.\), Hopping"):
        Processor("analytics.t", (ORDERS,), count, emit, window=object())  # type: ignore[arg-type]


def test_a_huge_key_is_cut_short_in_messages() -> None:
    """h37: a 900 KB key made a 1.8 MB crash log, the key written out in full twice."""
    assert shown_key("eu@1764") == "'eu@1764'"
    huge = "big" * 300_000
    assert shown_key(huge) == repr(huge)[:77] + "... (900,000 characters)"
    with pytest.raises(ProcessorError) as refused:
        check_key(b"k" * 1_000_000)
    assert str(refused.value) == (
        f"key returned bytes {shown_key(b'k' * 1_000_000)}; it must return a str (or None to "
        "drop the record)"
    )
    assert len(str(refused.value)) < 200
    assert shown_key(b"k" * 100).endswith("... (100 bytes)")


def test_a_crash_line_quoting_a_huge_key_stays_short() -> None:
    """h38: apply raising KeyError(key) of a 900 KB key wrote it twice in the crash line."""
    from mesh_stream.processing.engine import crash_line

    line = crash_line("analytics.x", "orders.v1[0]@5", KeyError("k" * 900_000), None, "apply")
    assert line.startswith(
        "processor analytics.x crashed on orders.v1[0]@5: apply raised KeyError "
    )
    assert "... (900,002 characters) (field 'kkkk" in line  # str(KeyError) is quoted: +2
    assert line.endswith("... (900,000 characters))")
    assert len(line) < 2_200
