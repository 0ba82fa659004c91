"""Prometheus gauges of the product monitor: every figure, its SLO and its status, by product.

A collector renders the latest measurement at each scrape (so a product or a consumer group
that disappears leaves no stale series), in its own registry served on ``/metrics``:

* ``mesh_product_status{product}`` -- 0 ok, 1 degraded, 2 breached, -1 no data;
* ``mesh_product_figure{product,figure,subject}`` -- the measured value (figures without a
  value are left out);
* ``mesh_product_figure_slo{product,figure,subject}`` -- the bound the figure is judged by;
* ``mesh_product_figure_status{product,figure,subject}`` -- the figure's status, as above;
* ``mesh_product_upstream_breached{product}`` -- inputs (transitively) breached;
* ``mesh_monitor_last_measurement_seconds`` / ``..._duration_seconds`` /
  ``mesh_monitor_measurements_total`` -- the monitor's own pace.

``subject`` is ``""`` for the product as a whole, ``partition N``, or a consumer group.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mesh_stream.health import ProductHealth, Status

#: A status as a number (Prometheus values are numbers).
STATUS_VALUE = {Status.OK: 0.0, Status.DEGRADED: 1.0, Status.BREACHED: 2.0, Status.NO_DATA: -1.0}
_FIGURE_LABELS = ["product", "figure", "subject"]


class MonitorMetrics(Collector):
    """The latest measurement of every product, as Prometheus metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._healths: tuple[ProductHealth, ...] = ()
        self._measured_at = 0.0
        self._duration = 0.0
        self._rounds = 0
        self._server: WSGIServer | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def update(self, healths: Sequence[ProductHealth], *, duration: float) -> None:
        """Take the newest round (``duration``: seconds it took)."""
        with self._lock:
            self._healths = tuple(healths)
            self._measured_at = max((h.measured_at_ms for h in healths), default=0) / 1000
            self._duration = duration
            self._rounds += 1

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread; the bound port."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving ``/metrics`` (when :meth:`serve` was called)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            healths, measured_at, duration, rounds = (
                self._healths,
                self._measured_at,
                self._duration,
                self._rounds,
            )
        status = GaugeMetricFamily(
            "mesh_product_status",
            "Product health: 0 ok, 1 degraded, 2 breached, -1 no data.",
            labels=["product"],
        )
        upstream = GaugeMetricFamily(
            "mesh_product_upstream_breached",
            "Input products (transitively) whose status is breached.",
            labels=["product"],
        )
        value = GaugeMetricFamily(
            "mesh_product_figure", "A measured figure of a product.", labels=_FIGURE_LABELS
        )
        slo = GaugeMetricFamily(
            "mesh_product_figure_slo",
            "The SLO bound a figure is judged against.",
            labels=_FIGURE_LABELS,
        )
        figure_status = GaugeMetricFamily(
            "mesh_product_figure_status",
            "A figure's status: 0 ok, 1 degraded, 2 breached, -1 no data.",
            labels=_FIGURE_LABELS,
        )
        for health in healths:
            status.add_metric([health.product], STATUS_VALUE[health.status])
            upstream.add_metric([health.product], float(len(health.upstream_breached)))
            for item in health.figures:
                labels = [health.product, str(item.name), item.subject or ""]
                if item.value is not None:
                    value.add_metric(labels, item.value)
                if item.slo is not None:
                    slo.add_metric(labels, item.slo)
                figure_status.add_metric(labels, STATUS_VALUE[item.status])
        yield from (status, upstream, value, slo, figure_status)
        yield GaugeMetricFamily(
            "mesh_monitor_last_measurement_seconds",
            "When the monitor last measured (epoch seconds).",
            value=measured_at,
        )
        yield GaugeMetricFamily(
            "mesh_monitor_measurement_duration_seconds",
            "How long the last measurement of every product took.",
            value=duration,
        )
        yield CounterMetricFamily(
            "mesh_monitor_measurements", "Measurements made since start.", value=rounds
        )
