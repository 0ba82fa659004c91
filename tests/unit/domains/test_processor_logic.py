"""The pure parts of the analytics processors: routing, joins, lateness, PII dropping."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domains.analytics.processors import customer_360, fulfilment_sla, revenue

ORDER = {
    "event_id": "e-1",
    "order_id": "o-1",
    "customer_id": "c-1",
    "region": "eu-west",
    "channel": "WEB",
    "currency": "EUR",
    "total_amount": Decimal("19.99"),
    "items": [],
    "placed_at": 125_000,
}


def test_revenue_keys_an_order_by_region_and_window_and_drops_it_after_grace() -> None:
    closes = revenue.WINDOWS.closes_at(ORDER["placed_at"])
    routed = revenue.route(revenue.PRODUCT, ORDER, arrival_ms=closes - 1)
    assert routed is not None
    key, fields = routed
    assert key == f"eu-west@{125_000 - 125_000 % revenue.WINDOWS.size_ms}"
    assert fields["cents"] == 1999
    assert revenue.route(revenue.PRODUCT, ORDER, arrival_ms=closes) is None


def test_revenue_output_rounds_the_average_half_even_to_cents() -> None:
    state = {
        "region": "eu-west",
        "window_start": 120_000,
        "order_count": 3,
        "gross_cents": 1000,
        "currency": "EUR",
        "updated_at": 130_000,
    }
    record = revenue.output_record("eu-west@120000", state)
    assert record["gross_revenue"] == Decimal("10.00")
    assert record["average_order_value"] == Decimal("3.33")
    assert record["window_end"] == 120_000 + revenue.WINDOWS.size_ms


SLA_INPUTS: list[tuple[str, dict[str, Any]]] = [
    (fulfilment_sla.PLACED, ORDER),
    (fulfilment_sla.FAILED, {"order_id": "o-1", "payment_id": "p-0"}),
    (fulfilment_sla.FAILED, {"order_id": "o-1", "payment_id": "p-0"}),  # retried duplicate
    (fulfilment_sla.CAPTURED, {"order_id": "o-1", "captured_at": 127_500}),
    (fulfilment_sla.DISPATCHED, {"order_id": "o-1", "dispatched_at": 200_000}),
]


@given(st.permutations(SLA_INPUTS))
def test_sla_join_is_the_same_in_any_arrival_order(inputs: list[tuple[str, Any]]) -> None:
    state: dict[str, Any] = {}
    for topic, record in inputs:
        key, fields = fulfilment_sla.route(topic, record, 0)
        assert key == "o-1"
        state = fulfilment_sla.merge(state, fields)
        state = fulfilment_sla.merge(state, fields)  # a replay changes nothing
    record = fulfilment_sla.output_record("o-1", state)
    assert record["time_to_payment_ms"] == 127_500 - 125_000
    assert record["time_to_dispatch_ms"] == 200_000 - 125_000
    assert record["failed_payment_attempts"] == 1
    breached = fulfilment_sla.SLA_TARGET_MS < 200_000 - 125_000
    assert record["sla_breached"] is breached


def test_sla_of_an_order_not_yet_dispatched_is_not_breached() -> None:
    _, fields = fulfilment_sla.route(fulfilment_sla.PLACED, ORDER, 0)
    record = fulfilment_sla.output_record("o-1", fulfilment_sla.merge({}, fields))
    assert record["time_to_dispatch_ms"] is None
    assert record["sla_breached"] is False


def test_customer_360_drops_the_profile_pii_before_anything_else_sees_it() -> None:
    profile = {
        "customer_id": "c-1",
        "full_name": "Ada Jansen",
        "email": "ada@example.com",
        "phone": "+31 6 12345678",
        "region": "eu-west",
        "segment": "VIP",
        "updated_at": 5,
    }
    key, fields = customer_360.route(customer_360.PROFILE, profile, 0)
    assert key == "c-1"
    assert fields == {"profile": {"region": "eu-west", "segment": "VIP", "updated_at": 5}}
    state: dict[str, Any] = {}
    customer_360.apply(state, fields)
    record = customer_360.output_record("c-1", state)
    leaked = {"Ada Jansen", "ada@example.com", "+31 6 12345678"} & {
        str(value) for value in record.values()
    }
    assert leaked == set()


def test_customer_360_keeps_the_newest_profile_and_sums_orders() -> None:
    old = {"region": "eu-west", "segment": "NEW", "updated_at": 1}
    new = {"region": "us-east", "segment": "VIP", "updated_at": 2}
    for first, second in itertools.permutations([old, new]):
        state: dict[str, Any] = {}
        customer_360.apply(state, {"profile": first})
        customer_360.apply(state, {"profile": second})
        assert state["profile"] == new
    _, order = customer_360.route(customer_360.PLACED, ORDER, 0)
    state = {}
    customer_360.apply(state, order)
    customer_360.apply(state, {**order, "placed_at": 99, "order_cents": 1})
    customer_360.apply(state, {"event_id": "x", "engagement": 1})
    record = customer_360.output_record("c-1", state)
    assert record["lifetime_orders"] == 2
    assert record["lifetime_spend"] == Decimal("20.00")
    assert record["last_order_at"] == 125_000
    assert record["engagement_count"] == 1
