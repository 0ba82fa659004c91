"""A processor worker's Prometheus metrics and health endpoints (``MESH_PROCESSOR_METRICS_PORT``).

Off unless the port is set: then the engine wraps the worker's route, update, publish and
decoder with counting versions (when off, the hot path is untouched). Counts on the hot path
are plain integers, rendered into Prometheus families only when scraped; only the update
timings go through histograms (one observation per key and batch, not per record).

Metrics (prefix ``mesh_processor_``, each labelled ``processor`` with the output product):

* ``records_in_total{topic}``: input records routed; ``dead_letters_total{topic}``: input
  records sent to their product's dead-letter topic (undecodable);
* ``records_out_total``: output records published (one per updated key and batch);
* ``update_duration_seconds``: the time of one key's update (apply, store, emit) in a batch;
* ``event_latency_seconds``: from an input record's timestamp to its key's update;
* ``windows_forgotten_total`` and ``expired_events_dropped_total`` (windowed processors): the
  closed windows whose state was deleted after their ``retain_ms``, and the events that still
  reached such a window and were dropped;
* ``duplicates_dropped_total`` (processors with dedup): events dropped as copies of events
  their key had seen (by the dedup field; once per window a copy reached);
* ``input_lag_records{topic,partition}`` and ``input_lag_seconds{topic,partition}``: how many
  records of each partition this worker has read from wait after the last one it routed, and
  how old that last record is while any wait (0 once caught up); partitions appear once it
  routed one of their records.

``GET /health/live`` answers 200 while the process runs, ``GET /health/ready`` 200 once the
worker reads its inputs (its tables recovered, the re-key stage started) and 503 before or
after it stopped or crashed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from mesh_stream.errors import DeserializationError
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.rekey import Envelope, Route, Wire

__all__ = ["CountingDecoder", "MetricsServer", "ProcessorMetrics"]

log = logging.getLogger(__name__)

#: One key's update in a batch: microseconds to (a slow ``apply``) seconds.
UPDATE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
#: Input record to its update: milliseconds (live) to minutes (a backlog).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: How long a scrape waits for one partition's end offset.
WATERMARK_TIMEOUT_S = 2.0

#: How the re-key stage names a record: ``topic[partition]@offset``.
_WHERE = re.compile(r"(?P<topic>.+)\[(?P<partition>\d+)\]@(?P<offset>\d+)")

Watermarks = Callable[[str, int], int | None]
"""(topic, partition) -> its end offset (high watermark), None when Kafka does not answer."""


class ProcessorMetrics:
    """The metrics of one worker, in a ``CollectorRegistry`` of its own."""

    def __init__(self, processor: str, watermarks: Watermarks | None = None) -> None:
        self.processor = processor
        self.watermarks = watermarks
        self.registry = CollectorRegistry()
        self.records_in: dict[str, int] = {}
        self.dead_letters: dict[str, int] = {}
        self.records_out = 0
        #: (topic, partition) -> (the next offset to route, timestamp ms of the last routed)
        self.positions: dict[tuple[str, int], tuple[int, int]] = {}
        self.update_seconds = Histogram(
            "mesh_processor_update_duration_seconds",
            "Time of one key's update in a batch (apply, store, emit).",
            ["processor"],
            buckets=UPDATE_BUCKETS,
            registry=self.registry,
        ).labels(processor)
        self.event_latency = Histogram(
            "mesh_processor_event_latency_seconds",
            "From an input record's timestamp to its key's update.",
            ["processor"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(processor)
        self.ready: Callable[[], tuple[bool, str]] = lambda: (False, "not started")
        #: () -> (windows forgotten, events dropped for a forgotten window), when windowed
        self.forgetting: Callable[[], tuple[int, int]] | None = None
        #: Events a windowed processor left out for arriving after their windows closed.
        self.late_events: Callable[[], int] | None = None
        #: Events dedup dropped as copies of events their key had seen, when it dedups.
        self.duplicates: Callable[[], int] | None = None
        self.registry.register(_CountCollector(self))

    # -- the hot path's wrappers -----------------------------------------------------------

    def counted_route(self, route: Route) -> Route:
        """``route`` that also counts each record and remembers each partition's position."""
        records_in, positions = self.records_in, self.positions

        def counted(
            topic: str, partition: int, offset: int, record: dict[str, Any], arrival_ms: int
        ) -> Iterable[tuple[str, Wire]]:
            records_in[topic] = records_in.get(topic, 0) + 1
            positions[(topic, partition)] = (offset + 1, arrival_ms)
            return route(topic, partition, offset, record, arrival_ms)

        return counted

    def counted_update(
        self, update: Callable[[str, list[Envelope]], None]
    ) -> Callable[[str, list[Envelope]], None]:
        """``update`` timed, with the latency of the newest record of its batch observed."""
        timing, latency = self.update_seconds, self.event_latency

        def counted(key: str, envelopes: list[Envelope]) -> None:
            started = time.perf_counter()
            update(key, envelopes)
            timing.observe(time.perf_counter() - started)
            if envelopes:
                newest = max(envelope.arrival_ms for envelope in envelopes)
                latency.observe(max(0.0, time.time() - newest / 1000))

        return counted

    def counted_publish(
        self, publish: Callable[[str, Mapping[str, Any] | None, int], None]
    ) -> Callable[[str, Mapping[str, Any] | None, int], None]:
        """``publish`` that counts each output record (a tombstone too)."""

        def counted(key: str, record: Mapping[str, Any] | None, newest_input_ms: int) -> None:
            publish(key, record, newest_input_ms)
            self.records_out += 1

        return counted

    def dead_lettered(self, where: str) -> None:
        """An input record at ``where`` (``topic[partition]@offset``) could not be decoded:
        counted, and its partition's position moves past it as a routed one's would."""
        placed = _WHERE.fullmatch(where)
        topic = placed["topic"] if placed else where
        self.dead_letters[topic] = self.dead_letters.get(topic, 0) + 1
        if placed:
            partition, offset = int(placed["partition"]), int(placed["offset"])
            _, stamp_ms = self.positions.get((topic, partition), (0, int(time.time() * 1000)))
            self.positions[(topic, partition)] = (offset + 1, stamp_ms)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class CountingDecoder(FramedAvroDecoder):
    """The worker's decoder, telling ``metrics`` of each record it cannot decode (which the
    re-key stage then sends to the dead-letter topic)."""

    def __init__(self, fetch_schema: Callable[[int], str], metrics: ProcessorMetrics) -> None:
        super().__init__(fetch_schema)
        self.metrics = metrics

    def decode(
        self,
        data: bytes | None,
        *,
        where: str = "<record>",
        fields: Collection[str] | None = None,
    ) -> dict[str, Any]:
        try:
            return super().decode(data, where=where, fields=fields)
        except DeserializationError:
            self.metrics.dead_lettered(where)
            raise


class _CountCollector(Collector):
    """Renders the plain counts and the lag at scrape time."""

    def __init__(self, metrics: ProcessorMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        metrics, name = self.metrics, self.metrics.processor
        records_in = CounterMetricFamily(
            "mesh_processor_records_in", "Input records routed.", labels=["processor", "topic"]
        )
        for topic, count in sorted(dict(metrics.records_in).items()):
            records_in.add_metric([name, topic], count)
        yield records_in
        dead = CounterMetricFamily(
            "mesh_processor_dead_letters",
            "Input records sent to their product's dead-letter topic (undecodable).",
            labels=["processor", "topic"],
        )
        for topic, count in sorted(dict(metrics.dead_letters).items()):
            dead.add_metric([name, topic], count)
        yield dead
        out = CounterMetricFamily(
            "mesh_processor_records_out", "Output records published.", labels=["processor"]
        )
        out.add_metric([name], metrics.records_out)
        yield out
        counts: list[tuple[str, str, int]] = []  # the counters only some processors have
        if metrics.forgetting is not None:
            forgotten, dropped = metrics.forgetting()
            counts += [
                (
                    "mesh_processor_windows_forgotten",
                    "Closed windows whose state was deleted after their retain_ms.",
                    forgotten,
                ),
                (
                    "mesh_processor_expired_events_dropped",
                    "Events dropped because their window was forgotten already.",
                    dropped,
                ),
            ]
        if metrics.late_events is not None:
            counts.append(
                (
                    "mesh_processor_late_events_dropped",
                    "Events left out for arriving after every window holding them closed (grace).",
                    metrics.late_events(),
                )
            )
        if metrics.duplicates is not None:
            counts.append(
                (
                    "mesh_processor_duplicates_dropped",
                    "Events dedup dropped as copies of events their key had seen.",
                    metrics.duplicates(),
                )
            )
        for metric, what, count in counts:
            family = CounterMetricFamily(metric, what, labels=["processor"])
            family.add_metric([name], count)
            yield family
        yield from self._lag()

    def _lag(self) -> Iterator[GaugeMetricFamily]:
        metrics = self.metrics
        labels = ["processor", "topic", "partition"]
        records = GaugeMetricFamily(
            "mesh_processor_input_lag_records",
            "Records of an input partition after the last one this worker routed.",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "mesh_processor_input_lag_seconds",
            "Age of the last record routed from an input partition while records wait after "
            "it; 0 once caught up.",
            labels=labels,
        )
        if metrics.watermarks is not None:
            now_ms = time.time() * 1000
            for (topic, partition), (next_offset, stamp_ms) in sorted(metrics.positions.items()):
                end = metrics.watermarks(topic, partition)
                if end is None:
                    continue
                behind = max(0, end - next_offset)
                label = [metrics.processor, topic, str(partition)]
                records.add_metric(label, behind)
                seconds.add_metric(label, max(0.0, (now_ms - stamp_ms) / 1000) if behind else 0.0)
        yield records
        yield seconds


class KafkaWatermarks:
    """End offsets of input partitions, from a consumer of its own that never joins a group."""

    def __init__(self, connection: KafkaConnection, group: str) -> None:
        self.connection = connection
        self.group = group
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def __call__(self, topic: str, partition: int) -> int | None:
        with self._lock:
            if self._consumer is None:
                self._consumer = make_consumer(
                    self.connection, {"group.id": self.group, "enable.auto.commit": False}
                )
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S
                )
            except KafkaException as exc:
                log.warning("end offset of %s[%d] unknown: %s", topic, partition, exc)
                return None
            return int(high)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


class MetricsServer:
    """``/metrics``, ``/health/live`` and ``/health/ready`` over HTTP, in a daemon thread."""

    def __init__(self, metrics: ProcessorMetrics, host: str, port: int) -> None:
        handler = _handler(metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="processor-metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: ProcessorMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/metrics":
                self._answer(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in ("/health", "/health/live"):
                self._json(200, {"status": "alive"})
            elif path == "/health/ready":
                ok, reason = metrics.ready()
                body = {"status": "ready"} if ok else {"status": "not ready", "reason": reason}
                self._json(200 if ok else 503, {**body, "processor": metrics.processor})
            else:
                self._json(404, {"error": f"no such path {path[:100]!r}", "paths": PATHS})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._answer(status, json.dumps(body).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics request: " + format, *args)

    return Handler


#: What the worker's HTTP server answers.
PATHS = ["/metrics", "/health/live", "/health/ready"]
