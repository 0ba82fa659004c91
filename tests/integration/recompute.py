"""Plain recomputations of the analytics products, written without any processor code."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

MINUTE = 60_000


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
