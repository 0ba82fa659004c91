"""Plain recomputations of the analytics products, written without any processor code."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

MINUTE = 60_000
GRACE = 30_000  # the revenue processor's grace period, restated here on purpose
SLA_TARGET = 60_000  # the fulfilment processor's SLA target, restated here on purpose


def revenue_windows(orders: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The revenue product's records recomputed from the orders it counts, by window id."""
    windows: dict[str, dict[str, Any]] = {}
    for order in orders:
        start = order["placed_at"] - order["placed_at"] % MINUTE
        key = f"{order['region']}@{start}"
        window = windows.setdefault(
            key,
            {
                "window_id": key,
                "region": order["region"],
                "window_start": start,
                "window_end": start + MINUTE,
                "order_count": 0,
                "gross_revenue": Decimal("0.00"),
                "currency": "EUR",
                "updated_at": order["placed_at"],
            },
        )
        window["order_count"] += 1
        window["gross_revenue"] += order["total_amount"]
        window["updated_at"] = max(window["updated_at"], order["placed_at"])
    for window in windows.values():
        window["average_order_value"] = (window["gross_revenue"] / window["order_count"]).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_EVEN
        )
    return windows


@dataclass(frozen=True)
class Sent:
    """One input record as published: product, value and Kafka timestamp (arrival)."""

    product: str
    value: dict[str, Any]
    arrival_ms: int


@dataclass
class Inputs:
    """Input records as read back from Kafka."""

    sent: list[Sent] = field(default_factory=list)

    def of(self, product: str) -> list[Sent]:
        return [s for s in self.sent if s.product == product]


def expected_revenue(inputs: Inputs) -> dict[str, dict[str, Any]]:
    counted: dict[str, Sent] = {}
    for sent in inputs.of("orders.order-placed"):
        placed = sent.value["placed_at"]
        window_end = placed - placed % MINUTE + MINUTE
        if sent.arrival_ms < window_end + GRACE:
            counted.setdefault(sent.value["event_id"], sent)
    return revenue_windows(sent.value for sent in counted.values())


def expected_sla(inputs: Inputs) -> dict[str, dict[str, Any]]:
    orders: dict[str, dict[str, Any]] = {}

    def order(order_id: str) -> dict[str, Any]:
        return orders.setdefault(order_id, {"failed": set()})

    for sent in inputs.sent:
        value = sent.value
        if sent.product == "orders.order-placed":
            order(value["order_id"]).update(placed_at=value["placed_at"], region=value["region"])
        elif sent.product == "payments.payment-captured":
            current = order(value["order_id"]).get("paid_at")
            paid = value["captured_at"] if current is None else min(current, value["captured_at"])
            order(value["order_id"])["paid_at"] = paid
        elif sent.product == "payments.payment-failed":
            order(value["order_id"])["failed"].add(value["payment_id"])
        elif sent.product == "shipping.shipment-dispatched":
            current = order(value["order_id"]).get("dispatched_at")
            at = value["dispatched_at"]
            order(value["order_id"])["dispatched_at"] = at if current is None else min(current, at)
    result = {}
    for order_id, o in orders.items():
        placed, paid, dispatched = o.get("placed_at"), o.get("paid_at"), o.get("dispatched_at")
        to_pay = paid - placed if placed is not None and paid is not None else None
        to_ship = dispatched - placed if placed is not None and dispatched is not None else None
        result[order_id] = {
            "order_id": order_id,
            "region": o.get("region"),
            "placed_at": placed,
            "paid_at": paid,
            "dispatched_at": dispatched,
            "failed_payment_attempts": len(o["failed"]),
            "time_to_payment_ms": to_pay,
            "time_to_dispatch_ms": to_ship,
            "sla_target_ms": SLA_TARGET,
            "sla_breached": to_ship is not None and to_ship > SLA_TARGET,
        }
    return result


def expected_customers(inputs: Inputs) -> dict[str, dict[str, Any]]:
    profiles: dict[str, dict[str, Any]] = {}
    orders: dict[str, dict[str, dict[str, Any]]] = {}
    engagements: dict[str, set[str]] = {}
    for sent in inputs.sent:
        value = sent.value
        if sent.product == "customers.customer-profile":
            old = profiles.get(value["customer_id"])
            if old is None or value["updated_at"] >= old["updated_at"]:
                profiles[value["customer_id"]] = value
        elif sent.product == "orders.order-placed":
            orders.setdefault(value["customer_id"], {})[value["event_id"]] = value
        elif sent.product == "customers.engagement-event":
            engagements.setdefault(value["customer_id"], set()).add(value["event_id"])
    result = {}
    for customer in {*profiles, *orders, *engagements}:
        mine = list(orders.get(customer, {}).values())
        profile = profiles.get(customer, {})
        result[customer] = {
            "customer_id": customer,
            "region": profile.get("region"),
            "segment": profile.get("segment"),
            "lifetime_orders": len(mine),
            "lifetime_spend": sum((o["total_amount"] for o in mine), Decimal("0.00")),
            "last_order_at": max((o["placed_at"] for o in mine), default=None),
            "engagement_count": len(engagements.get(customer, set())),
            "currency": "EUR",
        }
    return result


EXPECTED: dict[str, Callable[[Inputs], dict[str, dict[str, Any]]]] = {
    "analytics.revenue-by-region": expected_revenue,
    "analytics.order-fulfilment-sla": expected_sla,
    "analytics.customer-360": expected_customers,
}
