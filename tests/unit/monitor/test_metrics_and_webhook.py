"""The monitor's /metrics parse with Prometheus' own text parser and carry every figure; an
alert is POSTed to the webhook as JSON, and a failing webhook is logged by host only."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mesh_stream.health import Alert, Figure, FigureName, ProductHealth, Status
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.monitor.metrics import MonitorMetrics
from mesh_stream.monitor.publish import Publisher

NOW = 1_800_000_000_000


def _health() -> ProductHealth:
    return ProductHealth(
        product="orders.order-placed",
        measured_at_ms=NOW,
        status=Status.BREACHED,
        reason="freshness_seconds: old",
        since_ms=NOW - 60_000,
        figures=(
            Figure(name=FigureName.FRESHNESS_SECONDS, value=75.5, slo=60.0, status=Status.BREACHED),
            Figure(
                name=FigureName.FRESHNESS_SECONDS,
                value=80.0,
                status=Status.OK,
                subject="partition 1",
            ),
            Figure(
                name=FigureName.LAG_SECONDS,
                value=None,
                slo=30.0,
                status=Status.NO_DATA,
                subject="billing",
            ),
        ),
        upstream_breached=("customers.profile",),
    )


def test_metrics_parse_and_carry_every_figure_slo_and_status() -> None:
    metrics = MonitorMetrics()
    metrics.update([_health()], duration=0.25)
    port = metrics.serve(0, "127.0.0.1")
    try:
        _check_samples(port)
    finally:
        metrics.close()


def _check_samples(port: int) -> None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    product = ("product", "orders.order-placed")

    def key(name: str, figure: str, subject: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (name, (("figure", figure), product, ("subject", subject)))

    assert samples[("mesh_product_status", (product,))] == 2.0
    assert samples[("mesh_product_upstream_breached", (product,))] == 1.0
    assert samples[key("mesh_product_figure", "freshness_seconds", "")] == 75.5
    assert samples[key("mesh_product_figure_slo", "freshness_seconds", "")] == 60.0
    assert samples[key("mesh_product_figure_status", "freshness_seconds", "")] == 2.0
    assert samples[key("mesh_product_figure", "freshness_seconds", "partition 1")] == 80.0
    assert samples[key("mesh_product_figure_status", "lag_seconds", "billing")] == -1.0
    assert key("mesh_product_figure", "lag_seconds", "billing") not in samples  # no value
    assert samples[("mesh_monitor_measurement_duration_seconds", ())] == 0.25
    assert samples[("mesh_monitor_last_measurement_seconds", ())] == NOW / 1000
    assert samples[("mesh_monitor_measurements_total", ())] == 1.0


def test_a_product_that_is_gone_leaves_no_stale_series() -> None:
    metrics = MonitorMetrics()
    metrics.update([_health()], duration=0.25)
    assert b"orders.order-placed" in generate_latest(metrics.registry)
    metrics.update([], duration=0.1)
    assert b"orders.order-placed" not in generate_latest(metrics.registry)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, object]]]] = []
    answer: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.path, json.loads(body)))
        self.send_response(_Hook.answer)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    _Hook.received.clear()
    _Hook.answer = 204
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ALERT = Alert(
    kind="breach",
    product="orders.order-placed",
    figure=FigureName.FRESHNESS_SECONDS,
    slo=60.0,
    value=75.5,
    status=Status.BREACHED,
    since_ms=NOW,
    reason="newest record 75.5 s old (SLO <= 60)",
)


def _publisher(url: str) -> Publisher:
    # A producer that is never used: only the webhook is exercised here.
    conn = KafkaConnection.create("127.0.0.1:1")
    return Publisher(conn, "_health", "_alerts", webhook_url=url)


def test_an_alert_is_posted_to_the_webhook_as_json(hook: str) -> None:
    publisher = _publisher(f"{hook}/alerts/secret-token-123")
    assert publisher.post(ALERT) is True
    assert _Hook.received == [("/alerts/secret-token-123", json.loads(ALERT.model_dump_json()))]


def test_a_failing_webhook_is_logged_by_host_only(
    hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    _Hook.answer = 500
    with caplog.at_level(logging.WARNING, logger="mesh_stream.monitor.publish"):
        assert _publisher(f"{hook}/alerts/secret-token-123?key=abc").post(ALERT) is False
        assert _publisher("http://127.0.0.1:1/hook/secret-token-123").post(ALERT) is False
    port = hook.rsplit(":", 1)[1]
    said = "alert webhook at 127.0.0.1:{} (MESH_ALERT_WEBHOOK_URL)"
    assert f"{said.format(port)} answered HTTP 500" in caplog.text
    refused = "cannot connect (connection refused: nothing listens at that address)"
    assert f"{said.format(1)} failed: {refused}" in caplog.text  # h51: "ConnectError"
    assert "secret-token-123" not in caplog.text
    assert "key=abc" not in caplog.text


def test_a_webhook_that_does_not_answer_costs_a_round_one_wait_not_one_per_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """h51: 11 alerts to a webhook that never answered held the round (and a Ctrl-C) for
    55 s, 5 s each; the alerts are in the alerts topic all the same."""
    publisher = _publisher("http://127.0.0.1:1/hook")
    calls: list[Alert] = []
    original = publisher.post

    def counted(alert: Alert) -> bool:
        calls.append(alert)
        return original(alert)

    publisher.post = counted  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="mesh_stream.monitor.publish"):
        publisher.post_all([ALERT, ALERT, ALERT])
    assert len(calls) == 1
    assert "alert webhook: 2 more alert(s) of this round not posted (they are in _alerts)" in (
        caplog.text
    )
