"""`mesh verify`'s generated input: valid records, seeded, with the awkward cases it promises."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest

from mesh_stream.errors import ConfigurationError, ProcessorError
from mesh_stream.processing.reference import recompute
from mesh_stream.processing.spec import Dedup, Event, Input, Processor, Tumbling
from mesh_stream.verify.generate import generate_inputs

REPO = Path(__file__).resolve().parents[3]
START = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
WINDOW = Tumbling(size_ms=60_000, grace_ms=30_000)


def schema(domain: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((REPO / "schemas" / domain / f"{name}.avsc").read_text())
    return document


ORDERS = schema("orders", "order-placed")
ARGS: dict[str, Any] = {"records": 50, "seed": 7, "start_ms": START}
PROFILES = schema("customers", "customer-profile")


def count(state: dict[str, Any], event: Event) -> None:
    state["n"] = state.get("n", 0) + 1


def emit(key: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    return {"key": str(key), "n": state["n"]}


def revenue_like(**changes: Any) -> Processor:
    settings: dict[str, Any] = {
        "output": "analytics.test",
        "inputs": (
            Input(
                "orders.order-placed",
                key=lambda fields: str(fields["region"]),
                reads=("event_id", "region", "placed_at"),
                event_time="placed_at",
            ),
        ),
        "apply": count,
        "emit": emit,
        "window": WINDOW,
        "dedup": Dedup("event_id"),
    }
    return Processor(**(settings | changes))


def test_records_fit_the_schema_and_come_in_arrival_order() -> None:
    generated = generate_inputs(
        revenue_like(), {"orders.order-placed": ORDERS}, records=300, seed=3, start_ms=START
    )
    parsed = fastavro.parse_schema(ORDERS)
    for item in generated.records:
        assert fastavro.validation.validate(item.record, parsed, raise_errors=True)
    arrivals = [item.arrival_ms for item in generated.records]
    assert arrivals == sorted(arrivals)
    stats = generated.stats["orders.order-placed"]
    assert stats.records == 300
    assert len(generated.records) == 300 + stats.copies


def test_the_same_seed_gives_the_same_input_and_another_seed_another() -> None:
    def records(seed: int) -> list[tuple[Any, ...]]:
        generated = generate_inputs(
            revenue_like(), {"orders.order-placed": ORDERS}, records=50, seed=seed, start_ms=START
        )
        return [(dict(i.record), i.arrival_ms) for i in generated.records]  # type: ignore[misc]

    assert records(7) == records(7)
    assert records(7) != records(8)


def test_copies_of_the_dedup_field_arrive_shortly_after_the_first() -> None:
    generated = generate_inputs(
        revenue_like(), {"orders.order-placed": ORDERS}, records=400, seed=1, start_ms=START
    )
    arrivals: dict[str, list[int]] = {}
    for item in generated.records:
        arrivals.setdefault(item.record["event_id"], []).append(item.arrival_ms)
    copied = {ids: times for ids, times in arrivals.items() if len(times) > 1}
    assert len(copied) == generated.stats["orders.order-placed"].copies > 10
    assert all(len(times) == 2 and 0 < times[1] - times[0] <= 2_000 for times in copied.values())


def test_copies_stay_well_inside_a_dedup_horizon() -> None:
    processor = revenue_like(dedup=Dedup("event_id", horizon_ms=1_000))
    generated = generate_inputs(
        processor, {"orders.order-placed": ORDERS}, records=300, seed=2, start_ms=START
    )
    arrivals: dict[str, list[int]] = {}
    for item in generated.records:
        arrivals.setdefault(item.record["event_id"], []).append(item.arrival_ms)
    gaps = [times[1] - times[0] for times in arrivals.values() if len(times) > 1]
    assert gaps
    assert max(gaps) <= 100


def test_some_records_arrive_late_within_grace_and_some_too_late() -> None:
    generated = generate_inputs(
        revenue_like(), {"orders.order-placed": ORDERS}, records=600, seed=4, start_ms=START
    )
    late = too_late = 0
    for item in generated.records:
        end = item.record["placed_at"] - item.record["placed_at"] % 60_000 + 60_000
        if end <= item.arrival_ms < end + 30_000:
            late += 1
        elif item.arrival_ms >= end + 30_000:
            too_late += 1
    stats = generated.stats["orders.order-placed"]
    assert late >= stats.late > 0
    assert too_late >= stats.too_late > 0
    # and the recomputation drops the too-late ones: fewer counted than published
    counted = sum(r["n"] for r in recompute(revenue_like(), generated.records).values())
    assert counted < stats.records


def test_event_times_spread_over_many_windows_and_keys_repeat() -> None:
    generated = generate_inputs(
        revenue_like(), {"orders.order-placed": ORDERS}, records=600, seed=5, start_ms=START
    )
    windows = {item.record["placed_at"] // 60_000 for item in generated.records}
    regions = Counter(item.record["region"] for item in generated.records)
    assert len(windows) >= 15
    assert 3 <= len(regions) <= 60
    assert max(regions.values()) > 5  # keys repeat, so windows aggregate several orders
    assert generated.stats["orders.order-placed"].keyed == 600


def test_inputs_share_the_values_of_a_field_of_the_same_name() -> None:
    processor = Processor(
        output="analytics.test",
        inputs=(
            Input("orders.order-placed", key=lambda f: f["customer_id"], reads=("customer_id",)),
            Input(
                "customers.customer-profile", key=lambda f: f["customer_id"], reads=("customer_id",)
            ),
        ),
        apply=count,
        emit=emit,
    )
    schemas = {"orders.order-placed": ORDERS, "customers.customer-profile": PROFILES}
    generated = generate_inputs(processor, schemas, records=200, seed=6, start_ms=START)
    by_input: dict[str, set[str]] = {}
    for item in generated.records:
        by_input.setdefault(item.product, set()).add(item.record["customer_id"])
    shared = by_input["orders.order-placed"] & by_input["customers.customer-profile"]
    assert len(shared) >= 3  # the two inputs join on customer_id


def test_a_read_field_the_schema_lacks_is_named() -> None:
    processor = revenue_like(
        inputs=(
            Input("orders.order-placed", key=lambda _fields: "k", reads=("event_id", "regoin")),
        )
    )
    with pytest.raises(ConfigurationError, match=r"reads field 'regoin'.*OrderPlaced"):
        generate_inputs(processor, {"orders.order-placed": ORDERS}, records=5, seed=1, start_ms=0)


def test_a_key_function_that_drops_everything_is_counted() -> None:
    processor = revenue_like(
        inputs=(
            Input(
                "orders.order-placed",
                key=lambda fields: "eu" if fields["region"] == "eu-west" else None,
                reads=("event_id", "region", "placed_at"),
                event_time="placed_at",
            ),
        )
    )
    generated = generate_inputs(
        processor, {"orders.order-placed": ORDERS}, records=50, seed=1, start_ms=START
    )
    assert generated.stats["orders.order-placed"].keyed == 0


def test_each_generated_record_says_where_it_comes_from() -> None:
    generated = generate_inputs(revenue_like(), {"orders.order-placed": ORDERS}, **ARGS)
    places = {item.where for item in generated.records}
    assert "generated record #1 of orders.order-placed" in places
    assert f"generated record #{ARGS['records']} of orders.order-placed" in places
    copies = [item for item in generated.records if item.where.startswith("a copy of ")]
    assert copies
    assert len(places) == len(generated.records)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            lambda fields: fields["channel"],
            "processor analytics.test on generated record #1 of orders.order-placed: key raised "
            "KeyError 'channel': field 'channel' of orders.order-placed is not in the input's "
            "`reads`",
        ),
        (
            lambda fields: fields["region"][1000],
            "processor analytics.test on generated record #1 of orders.order-placed: key raised "
            "IndexError string index out of range",
        ),
        (
            lambda fields: len(fields["region"]),
            "processor analytics.test on generated record #1 of orders.order-placed: key "
            "returned int ",
        ),
    ],
    ids=["not-read", "raises", "not-a-str"],
)
def test_a_key_that_fails_on_a_generated_record_is_the_processors_error_naming_it(
    key: Any, message: str
) -> None:
    declared = revenue_like(
        inputs=(Input("orders.order-placed", key=key, reads=("event_id", "region", "placed_at")),)
    )
    with pytest.raises(ProcessorError) as failed:
        generate_inputs(declared, {"orders.order-placed": ORDERS}, **ARGS)
    assert str(failed.value).startswith(message)
