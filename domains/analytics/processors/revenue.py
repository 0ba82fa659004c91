"""analytics.revenue-by-region: orders and revenue per region and 1-minute event-time window.

Run one worker with ``python -m domains.analytics.processors.revenue worker -l info``
(MESH_BOOTSTRAP_SERVERS, MESH_REGISTRY_URL and MESH_DATA_DIR say where things are).

An order counts in the window of its ``placed_at`` if it reached Kafka before the window's end
plus ``GRACE_MS`` (see :mod:`mesh_stream.processing.windows`); later ones are dropped. A
retried duplicate of an order (same ``event_id``) counts once.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
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
from mesh_stream.processing.windows import TumblingWindows
from mesh_stream.settings import MeshSettings

PRODUCT = "analytics.revenue-by-region"
WINDOWS = TumblingWindows(size_ms=60_000, grace_ms=30_000)

log = logging.getLogger(__name__)


def window_id(region: str, window_start: int) -> str:
    return f"{region}@{window_start}"


def route(topic: str, record: dict[str, Any], arrival_ms: int) -> tuple[str, dict[str, Any]] | None:
    """Key an order by its window; None when it arrived after the window closed."""
    del topic
    placed_at = record["placed_at"]
    if not WINDOWS.accepts(placed_at, arrival_ms):
        log.info(
            "order %s of %s arrived %d ms after its window closed; not counted",
            record["order_id"],
            record["region"],
            arrival_ms - WINDOWS.closes_at(placed_at),
        )
        return None
    fields = {
        "event_id": record["event_id"],
        "region": record["region"],
        "cents": decimal_cents(record["total_amount"]),
        "currency": record["currency"],
        "placed_at": placed_at,
    }
    return window_id(record["region"], WINDOWS.start_of(placed_at)), fields


def add_order(state: dict[str, Any], fields: dict[str, Any]) -> None:
    """Count one order in its window's state (the caller guards against repeats)."""
    if "order_count" not in state:
        state.update(
            region=fields["region"],
            window_start=WINDOWS.start_of(fields["placed_at"]),
            order_count=0,
            gross_cents=0,
            currency=fields["currency"],
            updated_at=fields["placed_at"],
        )
    state["order_count"] += 1
    state["gross_cents"] += fields["cents"]
    state["updated_at"] = max(state["updated_at"], fields["placed_at"])


def output_record(key: str, state: dict[str, Any]) -> dict[str, Any]:
    """The product record of one window's state."""
    count = state["order_count"]
    gross = cents_decimal(state["gross_cents"])
    average = (gross / count).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return {
        "window_id": key,
        "region": state["region"],
        "window_start": state["window_start"],
        "window_end": state["window_start"] + WINDOWS.size_ms,
        "order_count": count,
        "gross_revenue": gross,
        "average_order_value": average,
        "currency": state["currency"],
        "updated_at": state["updated_at"],
    }


def build(spec: ProcessorSpec) -> faust.App:
    """This processor's faust app: re-key stage, aggregate agent, two RocksDB tables."""
    app = processor_app(spec)
    by_window = internal_topic(app, spec, "by-window")
    windows = changelogged_table(app, spec, "revenue-windows")
    seen = SeenEvents(changelogged_table(app, spec, "revenue-seen-orders"))
    output = KeyedOutput(app, spec)

    add_rekey_stage(app, spec, by_window, route, schema_decoder(spec))

    def update(key: str, events: list[Envelope]) -> None:
        state: dict[str, Any] = dict(windows.get(key) or {})
        key_seen = seen.for_key(key, state)
        fresh, changed = apply_each_once(state, key_seen, events, add_order)
        if key_seen.store() or changed:  # seen entries first, then the state listing them
            windows[key] = state
        if fresh:
            output.publish(key, output_record(key, state))

    add_aggregate_agent(app, spec, by_window, update)
    return app


def main() -> None:
    """Entry point: read MESH_* settings, prepare topics and schema, run faust's CLI."""
    run_worker(build(prepare(MeshSettings(), PRODUCT)))


if __name__ == "__main__":
    main()
