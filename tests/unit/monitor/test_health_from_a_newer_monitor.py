"""A health record or alert from a newer monitor, with a figure this release does not know,
still reads: registries and monitors are upgraded one at a time (note32: the
`processor_stopped` figure would have made an older registry refuse a newer monitor's
records)."""

from __future__ import annotations

import json

from prometheus_client import generate_latest

from mesh_stream.cli.product_health import figure_text
from mesh_stream.health import Alert, FigureName, ProductHealth, Status
from mesh_stream.monitor.metrics import MonitorMetrics

RECORD = {
    "product": "orders.order-placed",
    "measured_at_ms": 1_760_000_000_000,
    "status": "breached",
    "reason": "queue_depth 9 (SLO 5)",
    "since_ms": 1_760_000_000_000,
    "figures": [
        {"name": "freshness_seconds", "value": 2.0, "slo": 60.0, "status": "ok"},
        {"name": "queue_depth", "value": 9.0, "slo": 5.0, "status": "breached"},
    ],
}


def test_a_figure_this_release_does_not_know_is_kept_as_text_and_known_ones_as_names() -> None:
    health = ProductHealth.model_validate_json(json.dumps(RECORD))
    known, unknown = health.figures
    assert known.name is FigureName.FRESHNESS_SECONDS
    assert unknown.name == "queue_depth"
    assert health.status is Status.BREACHED
    assert figure_text(unknown) == "queue_depth 9 (SLO 5) breached"
    assert json.loads(health.model_dump_json())["figures"][1]["name"] == "queue_depth"


def test_an_alert_on_such_a_figure_reads_and_its_figure_is_exported_by_name() -> None:
    alert = Alert.model_validate_json(
        json.dumps(
            {
                "kind": "breach",
                "product": "orders.order-placed",
                "figure": "queue_depth",
                "slo": 5.0,
                "value": 9.0,
                "status": "breached",
                "since_ms": 1,
                "reason": "queue_depth 9 (SLO 5)",
            }
        )
    )
    assert alert.figure == "queue_depth"
    metrics = MonitorMetrics()
    metrics.update([ProductHealth.model_validate(RECORD)], duration=0.1)
    exposed = generate_latest(metrics.registry).decode()
    assert 'mesh_product_figure{figure="queue_depth",product="orders.order-placed",' in exposed
    assert 'figure="freshness_seconds"' in exposed
