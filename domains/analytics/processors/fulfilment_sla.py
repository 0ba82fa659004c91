"""analytics.order-fulfilment-sla: per order, time to payment and to dispatch, and SLA breach.

Run one worker with ``python -m domains.analytics.processors.fulfilment_sla worker -l info``.

Orders, captured and failed payments and dispatched shipments are joined by ``order_id``, in
whatever order they arrive. Every merge is idempotent (first placement, earliest capture,
earliest dispatch, the set of failed payment ids), so duplicates and replays change nothing.
"""

from __future__ import annotations

from typing import Any

import faust

from mesh_stream.processing.app import (
    Envelope,
    KeyedOutput,
    ProcessorSpec,
    add_aggregate_agent,
    add_rekey_stage,
    changelogged_table,
    internal_topic,
    prepare,
    processor_app,
    run_worker,
    schema_decoder,
)
from mesh_stream.settings import MeshSettings

PRODUCT = "analytics.order-fulfilment-sla"
#: Dispatch must happen at most this long after the order was placed.
SLA_TARGET_MS = 60_000

PLACED = "orders.order-placed.v1"
CAPTURED = "payments.payment-captured.v1"
FAILED = "payments.payment-failed.v1"
DISPATCHED = "shipping.shipment-dispatched.v1"


def route(topic: str, record: dict[str, Any], arrival_ms: int) -> tuple[str, dict[str, Any]]:
    """Key every input by its order, keeping only what the join needs."""
    del arrival_ms
    if topic == PLACED:
        fields: dict[str, Any] = {"placed_at": record["placed_at"], "region": record["region"]}
    elif topic == CAPTURED:
        fields = {"paid_at": record["captured_at"]}
    elif topic == FAILED:
        fields = {"failed_payment": record["payment_id"]}
    elif topic == DISPATCHED:
        fields = {"dispatched_at": record["dispatched_at"]}
    else:  # pragma: no cover - the re-key stage reads only the inputs above
        raise ValueError(f"unexpected input topic {topic}")
    return record["order_id"], fields


def merge(state: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Join one input into an order's state; idempotent and order-independent."""
    merged = dict(state)
    for name in ("placed_at", "paid_at", "dispatched_at"):
        if name in fields:
            current = merged.get(name)
            merged[name] = fields[name] if current is None else min(current, fields[name])
    if "region" in fields:
        merged["region"] = fields["region"]
    if "failed_payment" in fields:
        merged["failed_payments"] = sorted(
            {*merged.get("failed_payments", []), fields["failed_payment"]}
        )
    return merged


def output_record(order_id: str, state: dict[str, Any]) -> dict[str, Any]:
    placed_at = state.get("placed_at")
    paid_at = state.get("paid_at")
    dispatched_at = state.get("dispatched_at")
    to_payment = paid_at - placed_at if placed_at is not None and paid_at is not None else None
    to_dispatch = (
        dispatched_at - placed_at if placed_at is not None and dispatched_at is not None else None
    )
    return {
        "order_id": order_id,
        "region": state.get("region"),
        "placed_at": placed_at,
        "paid_at": paid_at,
        "dispatched_at": dispatched_at,
        "failed_payment_attempts": len(state.get("failed_payments", [])),
        "time_to_payment_ms": to_payment,
        "time_to_dispatch_ms": to_dispatch,
        "sla_target_ms": SLA_TARGET_MS,
        "sla_breached": to_dispatch is not None and to_dispatch > SLA_TARGET_MS,
    }


def build(spec: ProcessorSpec) -> faust.App:
    """This processor's faust app: re-key stage, aggregate agent, one RocksDB table."""
    app = processor_app(spec)
    by_order = internal_topic(app, spec, "by-order")
    orders = changelogged_table(app, spec, "sla-orders")
    output = KeyedOutput(app, spec)
    add_rekey_stage(app, spec, by_order, route, schema_decoder(spec))

    def update(order_id: str, events: list[Envelope]) -> None:
        state = orders.get(order_id) or {}
        for event in events:
            state = merge(state, event.fields)
        orders[order_id] = state
        output.publish(order_id, output_record(order_id, state))

    add_aggregate_agent(app, spec, by_order, update)
    return app


def main() -> None:
    """Entry point: read MESH_* settings, prepare topics and schema, run faust's CLI."""
    run_worker(build(prepare(MeshSettings(), PRODUCT)))


if __name__ == "__main__":
    main()
