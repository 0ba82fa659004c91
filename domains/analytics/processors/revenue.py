"""analytics.revenue-by-region: orders and revenue per region and 1-minute event-time window.

Run one worker with ``python -m domains.analytics.processors.revenue worker -l info``
(MESH_BOOTSTRAP_SERVERS, MESH_REGISTRY_URL and MESH_DATA_DIR say where things are).

An order counts in the window of its ``placed_at`` if it reached Kafka before the window's
end plus 30 s of grace; later ones are dropped. A retried duplicate (same ``event_id``) counts
once.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from mesh_stream.processing import Dedup, Event, Input, Processor, Tumbling, WindowKey, run
from mesh_stream.processing.codec import cents_decimal, decimal_cents

PRODUCT = "analytics.revenue-by-region"


def by_region(order: Mapping[str, Any]) -> str:
    return str(order["region"])


def add_order(window: dict[str, Any], event: Event) -> None:
    """Count one order in its window."""
    order = event.fields
    if not window:
        window.update(order_count=0, gross_cents=0, currency=order["currency"])
        window["updated_at"] = order["placed_at"]
    # The same answer whichever order the orders arrive in (mesh verify checks it).
    window["currency"] = min(window["currency"], order["currency"])
    window["order_count"] += 1
    window["gross_cents"] += decimal_cents(order["total_amount"])
    window["updated_at"] = max(window["updated_at"], order["placed_at"])


def window_record(key: WindowKey, window: Mapping[str, Any]) -> dict[str, Any]:
    """The product record of one window."""
    count = window["order_count"]
    gross = cents_decimal(window["gross_cents"])
    return {
        "window_id": str(key),
        "region": key.key,
        "window_start": key.start_ms,
        "window_end": key.end_ms,
        "order_count": count,
        "gross_revenue": gross,
        "average_order_value": (gross / count).quantize(Decimal("0.01"), ROUND_HALF_EVEN),
        "currency": window["currency"],
        "updated_at": window["updated_at"],
    }


PROCESSOR = Processor(
    output=PRODUCT,
    inputs=(
        Input(
            "orders.order-placed",
            key=by_region,
            reads=("event_id", "region", "total_amount", "currency", "placed_at"),
            event_time="placed_at",
        ),
    ),
    apply=add_order,
    emit=window_record,
    window=Tumbling(size_ms=60_000, grace_ms=30_000),
    dedup=Dedup(field="event_id"),
    description="orders and revenue per region and 1-minute window of placed_at",
)

if __name__ == "__main__":
    run(PROCESSOR)
