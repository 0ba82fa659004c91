"""analytics.order-fulfilment-sla: per order, time to payment and to dispatch, and SLA breach.

Run one worker with ``python -m domains.analytics.processors.fulfilment_sla worker -l info``.

Orders, captured and failed payments and dispatched shipments are joined by ``order_id``, in
whatever order they arrive. Every step is idempotent and order-independent (first placement,
earliest capture, earliest dispatch, the set of failed payment ids), so duplicates change
nothing and no dedup is declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh_stream.processing import Event, Input, Processor, run

PRODUCT = "analytics.order-fulfilment-sla"
#: Dispatch must happen at most this long after the order was placed.
SLA_TARGET_MS = 60_000

#: Input product -> (field read, name in the order's state); the earliest value is kept.
EARLIEST = {
    "orders.order-placed": ("placed_at", "placed_at"),
    "payments.payment-captured": ("captured_at", "paid_at"),
    "shipping.shipment-dispatched": ("dispatched_at", "dispatched_at"),
}


def by_order(record: Mapping[str, Any]) -> str:
    return str(record["order_id"])


def join(order: dict[str, Any], event: Event) -> None:
    """Join one input into its order."""
    fields = event.fields
    if event.input == "payments.payment-failed":
        failed = {*order.get("failed_payments", []), fields["payment_id"]}
        order["failed_payments"] = sorted(failed)
        return
    source, name = EARLIEST[event.input]
    current = order.get(name)
    order[name] = fields[source] if current is None else min(current, fields[source])
    if "region" in fields:
        order["region"] = fields["region"]


def sla_record(order_id: str, order: Mapping[str, Any]) -> dict[str, Any]:
    placed, paid, dispatched = (order.get(n) for n in ("placed_at", "paid_at", "dispatched_at"))
    to_payment = paid - placed if placed is not None and paid is not None else None
    to_dispatch = dispatched - placed if placed is not None and dispatched is not None else None
    return {
        "order_id": order_id,
        "region": order.get("region"),
        "placed_at": placed,
        "paid_at": paid,
        "dispatched_at": dispatched,
        "failed_payment_attempts": len(order.get("failed_payments", [])),
        "time_to_payment_ms": to_payment,
        "time_to_dispatch_ms": to_dispatch,
        "sla_target_ms": SLA_TARGET_MS,
        "sla_breached": to_dispatch is not None and to_dispatch > SLA_TARGET_MS,
    }


PROCESSOR = Processor(
    output=PRODUCT,
    inputs=(
        Input("orders.order-placed", key=by_order, reads=("order_id", "placed_at", "region")),
        Input("payments.payment-captured", key=by_order, reads=("order_id", "captured_at")),
        Input("payments.payment-failed", key=by_order, reads=("order_id", "payment_id")),
        Input("shipping.shipment-dispatched", key=by_order, reads=("order_id", "dispatched_at")),
    ),
    apply=join,
    emit=sla_record,
    description="time to payment and to dispatch per order, and whether the SLA was breached",
)

if __name__ == "__main__":
    run(PROCESSOR)
