"""A processor worker's metrics: the counted route/update/publish/decoder move the counts the
scrape renders, the lag follows the end offsets, and the HTTP server answers /metrics and the
health endpoints."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from domains.analytics.processors import revenue
from mesh_stream.errors import DeserializationError
from mesh_stream.processing.engine import Aggregation
from mesh_stream.processing.expiry import window_start
from mesh_stream.processing.metrics import CountingDecoder, MetricsServer, ProcessorMetrics
from mesh_stream.processing.rekey import Wire
from tests.unit.processing.test_engine import (
    MINUTE,
    JsonTable,
    Worker,
    feed,
    orders,
    revenue_retained,
    steady_orders,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TOPIC = "orders.order-placed.v1"
NAME = revenue.PROCESSOR.output
SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]})


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**given: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"processor": NAME, **given}.items()))


def test_counted_route_update_and_publish_move_the_scraped_counts() -> None:
    ends = {(TOPIC, 0): 10}
    metrics = ProcessorMetrics(NAME, lambda topic, partition: ends[(topic, partition)])
    published: list[str] = []
    aggregation = Aggregation(
        revenue.PROCESSOR,
        {TOPIC: "orders.order-placed"},
        JsonTable(),
        JsonTable(),
        metrics.counted_publish(lambda key, _record, _newest: published.append(key)),
    )
    route = metrics.counted_route(aggregation.route)
    update = metrics.counted_update(aggregation.update)
    now_ms = int(time.time() * 1000)
    by_key: dict[str, list[Wire]] = {}
    for offset, order in enumerate(orders(random.Random(7), 8)):
        for key, wire in route(TOPIC, 0, offset, order, now_ms - 5_000):
            by_key.setdefault(key, []).append(wire)
    for internal_offset, (key, wires) in enumerate(by_key.items()):
        record = aggregation.encode([(key, wires)])
        for state_key, envelopes in aggregation.envelopes(record, None, 0, internal_offset):
            update(state_key, envelopes)

    samples = parse(metrics.exposition().decode())
    assert samples[("mesh_processor_records_in_total", labels(topic=TOPIC))] == 8
    assert samples[("mesh_processor_records_out_total", labels())] == len(published) == len(by_key)
    assert samples[("mesh_processor_update_duration_seconds_count", labels())] == len(by_key)
    latency = samples[("mesh_processor_event_latency_seconds_sum", labels())]
    assert latency >= 5 * len(by_key)  # each batch's newest record is 5 s old
    # 8 of 10 records routed: 2 wait, and the last routed one is about 5 s old
    lag = labels(topic=TOPIC, partition="0")
    assert samples[("mesh_processor_input_lag_records", lag)] == 2
    assert 5 <= samples[("mesh_processor_input_lag_seconds", lag)] < 60
    ends[(TOPIC, 0)] = 8  # caught up: no lag in records or seconds
    samples = parse(metrics.exposition().decode())
    assert samples[("mesh_processor_input_lag_records", lag)] == 0
    assert samples[("mesh_processor_input_lag_seconds", lag)] == 0


def test_a_record_the_decoder_refuses_is_counted_as_a_dead_letter() -> None:
    metrics = ProcessorMetrics(NAME)
    decoder = CountingDecoder(lambda _schema_id: SCHEMA, metrics)
    for offset, poison in enumerate((b"not framed", b"\x00\x00\x00\x00\x01\xff\xff\xff")):
        with pytest.raises(DeserializationError):
            decoder.decode(poison, where=f"{TOPIC}[2]@{offset}")
    assert decoder.decode(b"\x00\x00\x00\x00\x01\x04ok", where=f"{TOPIC}[2]@9") == {"s": "ok"}
    samples = parse(metrics.exposition().decode())
    assert samples[("mesh_processor_dead_letters_total", labels(topic=TOPIC))] == 2
    assert metrics.positions[(TOPIC, 2)][0] == 2  # past the dead letters, as routing would


def test_the_worker_serves_metrics_liveness_and_readiness_over_http() -> None:
    metrics = ProcessorMetrics(NAME)
    server = MetricsServer(metrics, "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        scraped = httpx.get(f"{url}/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=")
        assert ("mesh_processor_records_out_total", labels()) in parse(scraped.text)
        assert httpx.get(f"{url}/health/live").json() == {"status": "alive"}
        not_ready = httpx.get(f"{url}/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "not ready"
        metrics.ready = lambda: (True, "reading its inputs")
        assert httpx.get(f"{url}/health/ready").json() == {"status": "ready", "processor": NAME}
        missing = httpx.get(f"{url}/nothing")
        assert missing.status_code == 404
        assert "/metrics" in json.loads(missing.text)["paths"]
    finally:
        server.stop()


def test_forgotten_windows_and_the_events_dropped_for_them_are_counted() -> None:
    metrics = ProcessorMetrics(NAME)
    assert "windows_forgotten" not in metrics.exposition().decode()  # not windowed: absent
    worker = Worker(revenue_retained(retain_ms=MINUTE))
    metrics.forgetting = lambda: (worker.aggregation.forgotten, worker.aggregation.dropped)
    records = steady_orders(random.Random(3), minutes=6)
    feed(worker, records)
    first = min(records, key=lambda item: item.arrival_ms)
    feed(worker, [first])  # its window is long forgotten: dropped
    samples = parse(metrics.exposition().decode())
    forgotten = samples[("mesh_processor_windows_forgotten_total", labels())]
    windows = set(worker.outputs)
    kept = [key for key in worker.states.data if window_start(key) is not None]
    assert forgotten == len(windows) - len(kept) > 0
    assert samples[("mesh_processor_expired_events_dropped_total", labels())] == 1
    metrics.late_events = lambda: worker.aggregation.late
    late = first.record["placed_at"] + 10 * MINUTE  # long after every window holding it
    worker.aggregation.route("orders.order-placed.v1", 0, 99, dict(first.record), late)
    samples = parse(metrics.exposition().decode())
    assert samples[("mesh_processor_late_events_dropped_total", labels())] == 1


def test_duplicates_dedup_dropped_are_counted_when_it_dedups() -> None:
    metrics = ProcessorMetrics(NAME)
    assert "duplicates_dropped" not in metrics.exposition().decode()  # no dedup: absent
    copies = [3]
    metrics.duplicates = lambda: copies[0]
    samples = parse(metrics.exposition().decode())
    assert samples[("mesh_processor_duplicates_dropped_total", labels())] == 3
