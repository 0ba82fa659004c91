"""The processing benchmark measures what it claims: every order is counted by the worker and
every latency sample belongs to an order that really became visible."""

from __future__ import annotations

from pathlib import Path

from mesh_stream.bench.processing_bench import run_processing_bench
from tests.conftest import KafkaAddress, RegistryAddress

RECORDS = 8_000  # several of the worker's batches (2,000 events), so there is a drain to time
RATE = 200.0
SECONDS = 2.0


def test_processing_bench_counts_every_order_and_times_each_one(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    report = run_processing_bench(
        kafka.bootstrap_servers,
        registry.url,
        project_root=Path(__file__).resolve().parents[2],
        principal="admin",
        token=registry.admin_token,
        records=RECORDS,
        rate=RATE,
        latency_seconds=SECONDS,
    )
    assert report["records"] == RECORDS
    assert 0 < report["events_timed"] < RECORDS  # the first batch's orders are not timed
    recomputed = report["events_timed"] / report["drain_seconds"]
    assert abs(report["events_per_s"] - recomputed) <= 0.01 * recomputed + 1
    assert report["latency_events"] == int(RATE * SECONDS)
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"] <= report["latency_max_ms"]
    assert report["met"]["latency_p99_ms"] is (report["latency_p99_ms"] < 500.0)
    assert report["worker_cpu_us_per_event"] > 0  # /proc is there on Linux
