"""analytics.customer-360: lifetime orders, spend, last order and engagement per customer.

Run one worker with ``python -m domains.analytics.processors.customer_360 worker -l info``.

Only ``region`` and ``segment`` are taken from the ``pii`` product customers.customer-profile;
name, email and phone are dropped in the re-key step and never reach state or output, which is
why the output is classified ``internal`` (declared field by field in the descriptor's
``field_lineage``). Orders and engagement events count once each, despite replays and
duplicates that arrive within ``DEDUP_HORIZON_MS`` of the first copy
(:mod:`mesh_stream.processing.dedup`).
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
    apply_each_once,
    changelogged_table,
    internal_topic,
    prepare,
    processor_app,
    run_worker,
    schema_decoder,
)
from mesh_stream.processing.codec import cents_decimal, decimal_cents
from mesh_stream.processing.dedup import SeenEvents
from mesh_stream.settings import MeshSettings

PRODUCT = "analytics.customer-360"
DEFAULT_CURRENCY = "EUR"

PROFILE = "customers.customer-profile.v1"
ENGAGEMENT = "customers.engagement-event.v1"
PLACED = "orders.order-placed.v1"

#: Duplicates (same ``event_id``) are recognised when they arrive within this long of the first
#: copy; a retrying service resends within seconds. Seen ids are kept per customer and minute of
#: arrival and forgotten after the horizon, so the seen table does not grow for ever.
DEDUP_HORIZON_MS = 60 * 60_000
DEDUP_BUCKET_MS = 60_000

#: The only profile fields that leave the customers domain through this processor.
PROFILE_FIELDS = ("region", "segment", "updated_at")


def route(topic: str, record: dict[str, Any], arrival_ms: int) -> tuple[str, dict[str, Any]]:
    """Key every input by its customer; the profile's PII is dropped right here."""
    del arrival_ms
    if topic == PROFILE:
        fields: dict[str, Any] = {"profile": {name: record[name] for name in PROFILE_FIELDS}}
    elif topic == ENGAGEMENT:
        fields = {"event_id": record["event_id"], "engagement": 1}
    elif topic == PLACED:
        fields = {
            "event_id": record["event_id"],
            "order_cents": decimal_cents(record["total_amount"]),
            "placed_at": record["placed_at"],
            "currency": record["currency"],
        }
    else:  # pragma: no cover - the re-key stage reads only the inputs above
        raise ValueError(f"unexpected input topic {topic}")
    return record["customer_id"], fields


def apply(state: dict[str, Any], fields: dict[str, Any]) -> None:
    """Add one input to a customer's state (the caller guards against repeats)."""
    state.setdefault("lifetime_orders", 0)
    state.setdefault("spend_cents", 0)
    state.setdefault("engagement_count", 0)
    profile = fields.get("profile")
    if profile is not None:
        current = state.get("profile")
        if current is None or profile["updated_at"] >= current["updated_at"]:
            state["profile"] = profile
    if "engagement" in fields:
        state["engagement_count"] += 1
    if "order_cents" in fields:
        state["lifetime_orders"] += 1
        state["spend_cents"] += fields["order_cents"]
        state["currency"] = fields["currency"]
        last = state.get("last_order_at")
        state["last_order_at"] = (
            fields["placed_at"] if last is None else max(last, fields["placed_at"])
        )


def output_record(customer_id: str, state: dict[str, Any]) -> dict[str, Any]:
    profile = state.get("profile") or {}
    return {
        "customer_id": customer_id,
        "region": profile.get("region"),
        "segment": profile.get("segment"),
        "lifetime_orders": state.get("lifetime_orders", 0),
        "lifetime_spend": cents_decimal(state.get("spend_cents", 0)),
        "last_order_at": state.get("last_order_at"),
        "engagement_count": state.get("engagement_count", 0),
        "currency": state.get("currency", DEFAULT_CURRENCY),
    }


def build(spec: ProcessorSpec) -> faust.App:
    """This processor's faust app: re-key stage, aggregate agent, two RocksDB tables."""
    app = processor_app(spec)
    by_customer = internal_topic(app, spec, "by-customer")
    customers = changelogged_table(app, spec, "customer-360-state")
    seen = SeenEvents(
        changelogged_table(app, spec, "customer-360-recent-events"),
        horizon_ms=DEDUP_HORIZON_MS,
        bucket_ms=DEDUP_BUCKET_MS,
    )
    output = KeyedOutput(app, spec)
    add_rekey_stage(app, spec, by_customer, route, schema_decoder(spec))

    def update(customer_id: str, events: list[Envelope]) -> None:
        state: dict[str, Any] = dict(customers.get(customer_id) or {})
        key_seen = seen.for_key(customer_id, state)
        fresh, changed = apply_each_once(state, key_seen, events, apply)
        newest_arrival = max(event.arrival_ms for event in events)
        # seen entries first, then the state listing them
        if key_seen.store(now_ms=newest_arrival) or changed:
            customers[customer_id] = state
        if fresh:
            output.publish(customer_id, output_record(customer_id, state))

    add_aggregate_agent(app, spec, by_customer, update)
    return app


def main() -> None:
    """Entry point: read MESH_* settings, prepare topics and schema, run faust's CLI."""
    run_worker(build(prepare(MeshSettings(), PRODUCT)))


if __name__ == "__main__":
    main()
