"""The product monitor (`mesh monitor`): every registered product measured from Kafka every
interval, judged against its descriptor's SLOs, published as health and alert records.

:mod:`~mesh_stream.monitor.measure` reads Kafka, :mod:`~mesh_stream.monitor.status` judges,
:mod:`~mesh_stream.monitor.publish` writes the health and alerts topics and the webhook,
:mod:`~mesh_stream.monitor.metrics` renders Prometheus gauges, and
:mod:`~mesh_stream.monitor.service` runs the rounds.
"""

from __future__ import annotations

from mesh_stream.monitor.measure import KafkaMeter, Reading, Target
from mesh_stream.monitor.metrics import MonitorMetrics
from mesh_stream.monitor.service import ProductMonitor, Round

__all__ = ["KafkaMeter", "MonitorMetrics", "ProductMonitor", "Reading", "Round", "Target"]
