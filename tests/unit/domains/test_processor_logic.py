"""The analytics processors' declarations, run by the reference recomputation: keying,
windows and lateness, joins in any arrival order, PII never read, dedup."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domains.analytics.processors import customer_360, fulfilment_sla, revenue
from mesh_stream.processing.reference import InputRecord, recompute

PLACED = "orders.order-placed"
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
PROFILE = {
    "customer_id": "c-1",
    "full_name": "Ada Jansen",
    "email": "ada@example.com",
    "phone": "+31 6 12345678",
    "region": "eu-west",
    "segment": "VIP",
    "updated_at": 5,
}


def order(arrival_ms: int, **changes: Any) -> InputRecord:
    return InputRecord(PLACED, {**ORDER, **changes}, arrival_ms)


def test_revenue_counts_an_order_in_its_window_until_the_grace_ends() -> None:
    window_end = 180_000  # the 1-minute window of 125 000 ms
    grace = revenue.PROCESSOR.window.grace_ms if revenue.PROCESSOR.window else 0
    outputs = recompute(
        revenue.PROCESSOR,
        [
            order(window_end + grace - 1),
            order(window_end + grace - 1),  # a retried copy: counted once
            order(window_end + grace, event_id="e-late"),  # too late
            order(130_000, event_id="e-2", total_amount=Decimal("0.02")),
        ],
    )
    [(key, record)] = outputs.items()
    assert key == "eu-west@120000"
    assert (record["window_start"], record["window_end"]) == (120_000, window_end)
    assert record["order_count"] == 2
    assert record["gross_revenue"] == Decimal("20.01")
    assert record["average_order_value"] == Decimal("10.00")  # 10.005 rounds half even


def test_revenue_currency_does_not_depend_on_arrival_order() -> None:
    usd = order(130_000, event_id="e-2", currency="USD")
    for records in itertools.permutations([order(130_000), usd]):
        [record] = recompute(revenue.PROCESSOR, records).values()
        assert record["currency"] == "EUR"


SLA_INPUTS: list[InputRecord] = [
    order(0),
    InputRecord("payments.payment-failed", {"order_id": "o-1", "payment_id": "p-0"}, 0),
    InputRecord("payments.payment-failed", {"order_id": "o-1", "payment_id": "p-0"}, 0),
    InputRecord("payments.payment-captured", {"order_id": "o-1", "captured_at": 127_500}, 0),
    InputRecord("shipping.shipment-dispatched", {"order_id": "o-1", "dispatched_at": 200_000}, 0),
]


@given(st.permutations(SLA_INPUTS))
def test_sla_join_is_the_same_in_any_arrival_order(inputs: list[InputRecord]) -> None:
    record = recompute(fulfilment_sla.PROCESSOR, inputs)["o-1"]
    assert record["time_to_payment_ms"] == 127_500 - 125_000
    assert record["time_to_dispatch_ms"] == 200_000 - 125_000
    assert record["failed_payment_attempts"] == 1
    assert record["sla_breached"] is (fulfilment_sla.SLA_TARGET_MS < 200_000 - 125_000)


def test_sla_of_an_order_not_yet_dispatched_is_not_breached() -> None:
    record = recompute(fulfilment_sla.PROCESSOR, [order(0)])["o-1"]
    assert record["time_to_dispatch_ms"] is None
    assert record["sla_breached"] is False


def test_customer_360_never_reads_the_profile_pii() -> None:
    reads = customer_360.PROCESSOR.input(customer_360.PROFILE).reads
    assert not {"full_name", "email", "phone"} & set(reads)
    record = recompute(customer_360.PROCESSOR, [InputRecord(customer_360.PROFILE, PROFILE, 0)])[
        "c-1"
    ]
    leaked = {"Ada Jansen", "ada@example.com", "+31 6 12345678"} & {
        str(value) for value in record.values()
    }
    assert leaked == set()
    assert (record["region"], record["segment"]) == ("eu-west", "VIP")


def test_customer_360_keeps_the_newest_profile_and_sums_orders_once() -> None:
    old = {**PROFILE, "region": "eu-west", "segment": "NEW", "updated_at": 1}
    new = {**PROFILE, "region": "us-east", "segment": "VIP", "updated_at": 2}
    engagement = {"customer_id": "c-1", "event_id": "x"}
    for first, second in itertools.permutations([old, new]):
        records = [
            InputRecord(customer_360.PROFILE, first, 0),
            InputRecord(customer_360.PROFILE, second, 0),
            order(0),
            order(1),  # a retried copy within the horizon: counted once
            order(2, event_id="e-2", placed_at=99, total_amount=Decimal("0.01")),
            InputRecord(customer_360.ENGAGEMENT, engagement, 3),
        ]
        record = recompute(customer_360.PROCESSOR, records)["c-1"]
        assert (record["region"], record["segment"]) == ("us-east", "VIP")
        assert record["lifetime_orders"] == 2
        assert record["lifetime_spend"] == Decimal("20.00")
        assert record["last_order_at"] == 125_000
        assert record["engagement_count"] == 1
