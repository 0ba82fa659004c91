"""Processing benchmark: the revenue aggregation in one real faust worker.

Two numbers, both against a real broker and registry:

* **throughput**: ``records`` orders are published first, then one revenue worker starts and
  the clock runs from its first output record until the outputs account for every order;
  events/s = orders counted after that first output (``events_timed``) / that time.
* **latency** at a steady ``rate`` (1,000 events/s by default) for ``latency_seconds``: for
  each order, the time from just before it is published to the moment a consumer of the output
  product sees a window record that counts it. The bench input has one partition, so the
  processor counts a window's orders in publish order, and the window's n-th order is visible
  from the first output record of that window whose count is at least n (the processor emits
  one record per window and batch, so counts can jump).

The benchmark runs the sample mesh's processor (``domains/analytics/processors/revenue.py``
of the project at ``project_root``, a mesh-stream checkout; the wheel does not ship it) on
private copies of the products (domain ``bench<run id>``), so a running mesh is not disturbed.
``python -m mesh_stream.bench.processing_bench report [--records N]`` run in the checkout runs
this benchmark alone and prints its JSON report; without ``report`` the module is the worker
side, started by the benchmark itself with the project root as its working directory.
"""

from __future__ import annotations

import bisect
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.app import ProcessorSpec, run_worker
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

#: The sample processor, imported by name from the project root (the worker's folder).
SAMPLE_PROCESSOR_MODULE = "domains.analytics.processors.revenue"
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
TARGET_EVENTS_PER_S = 10_000
TARGET_P99_MS = 500.0


def bench_products(run_id: str, root: Path) -> tuple[DataProduct, DataProduct]:
    """Private copies of orders.order-placed (1 partition) and analytics.revenue-by-region,
    from the sample mesh at ``root``."""
    products = {p.name: p for p in load_descriptors(root / "domains")}
    domain = f"bench{run_id}"
    source = products["orders.order-placed"].model_copy(
        update={"name": f"{domain}.order-placed", "domain": domain, "partitions": 1}
    )
    output = products["analytics.revenue-by-region"].model_copy(
        update={"name": f"{domain}.revenue-by-region", "domain": domain, "inputs": (source.name,)}
    )
    return source, output


def bench_spec(settings: MeshSettings, run_id: str, root: Path) -> ProcessorSpec:
    """The revenue processor's spec over the private products of the sample mesh at ``root``;
    registers the output schema."""
    source, output = bench_products(run_id, root)
    ensure_topics(settings.resolved_bootstrap_servers(), [source, output])
    with RegistryClient.from_settings(settings) as registry:
        schema_id = registry.register_schema(output.value_subject, schema_text(output, root))
    return ProcessorSpec(output, (source,), schema_id, settings, schema_text(output, root))


def _order(rng_id: int, placed_at: int) -> dict[str, Any]:
    price = Decimal(1_000 + rng_id % 9_000) / 100
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "customer_id": f"cust-{rng_id % 500:05d}",
        "region": REGIONS[rng_id % len(REGIONS)],
        "channel": "WEB",
        "currency": "EUR",
        "total_amount": price,
        "items": [{"sku": "sku-0001", "quantity": 1, "unit_price": price}],
        "placed_at": placed_at,
    }


class OutputWatcher:
    """Reads the output product and remembers when each window's count was first seen."""

    def __init__(self, bootstrap: str, registry: RegistryClient, output: DataProduct) -> None:
        self.decoder = FramedAvroDecoder(registry.get_schema)
        self.consumer = make_consumer(
            KafkaConnection.create(bootstrap),
            {
                "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "fetch.min.bytes": 1,
            },
        )
        self.consumer.assign([TopicPartition(output.topic, p, 0) for p in range(output.partitions)])
        self.counts: dict[str, int] = {}
        self.seen_at: dict[str, dict[int, float]] = defaultdict(dict)
        self.first_output_at: float | None = None

    def poll(self, timeout: float = 0.05) -> None:
        for message in self.consumer.consume(num_messages=10_000, timeout=timeout):
            if message.error() is not None:
                continue
            now = time.time()
            if self.first_output_at is None:
                self.first_output_at = now
            record = self.decoder.decode(message.value(), where=message.topic() or "")
            key, count = record["window_id"], record["order_count"]
            self.counts[key] = max(self.counts.get(key, 0), count)
            self.seen_at[key].setdefault(count, now)

    def visibility(self) -> dict[str, tuple[list[int], list[float]]]:
        """Per window: counts seen (ascending) and, for each, the earliest time a count at
        least that large was seen; see :func:`visible_at`."""
        table: dict[str, tuple[list[int], list[float]]] = {}
        for key, seen in self.seen_at.items():
            counts = sorted(seen)
            earliest = [seen[count] for count in counts]
            for i in range(len(earliest) - 2, -1, -1):
                earliest[i] = min(earliest[i], earliest[i + 1])
            table[key] = (counts, earliest)
        return table

    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.consumer.close()


def visible_at(table: dict[str, tuple[list[int], list[float]]], key: str, nth: int) -> float:
    """When a record of window ``key`` counting at least ``nth`` orders was first seen."""
    counts, earliest = table[key]
    return earliest[bisect.bisect_left(counts, nth)]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _difference(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def _worker_env(settings: MeshSettings, run_id: str, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "MESH_REGISTRY_URL": settings.registry_url,
        "MESH_DATA_DIR": str(data_dir),
        "MESH_BENCH_RUN_ID": run_id,
    }
    if settings.registry_principal and settings.registry_token is not None:
        env["MESH_REGISTRY_PRINCIPAL"] = settings.registry_principal
        env["MESH_REGISTRY_TOKEN"] = settings.registry_token.get_secret_value()
    return env


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run_processing_bench(
    bootstrap_servers: str,
    registry_url: str,
    *,
    project_root: Path,
    principal: str | None = "admin",
    token: str | None = None,
    records: int = 50_000,
    rate: float = 1_000.0,
    latency_seconds: float = 15.0,
    timeout: float = 300.0,
    settings: MeshSettings | None = None,
) -> dict[str, Any]:
    """Events/s of the revenue aggregation in one worker, and p50/p99 latency at ``rate``;
    ``project_root`` is the sample mesh (a mesh-stream checkout) whose processor runs."""
    base = settings or MeshSettings()
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="mesh-bench-processing-") as scratch:
        settings = base.model_copy(
            update={
                "bootstrap_servers": bootstrap_servers,
                "registry_url": registry_url,
                "registry_principal": principal,
                "registry_token": SecretStr(token) if token is not None else None,
                "data_dir": Path(scratch),
            }
        )
        spec = bench_spec(settings, run_id, project_root)
        source = spec.inputs[0]
        registry = RegistryClient.from_settings(settings)
        publisher = ProductPublisher(
            source,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
            root=project_root,
            config={"linger.ms": 1},
        )
        watcher = OutputWatcher(bootstrap_servers, registry, spec.output)
        log_path = Path(scratch) / "worker.log"
        worker: subprocess.Popen[bytes] | None = None
        try:
            # -- throughput: a backlog of ``records`` orders, then one worker drains it
            now = int(time.time() * 1000)
            for n in range(records):
                publisher.publish(_order(n, now), timestamp_ms=now)
            publisher.flush()
            with log_path.open("wb") as log:
                worker = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mesh_stream.bench.processing_bench",
                        "worker",
                        "-l",
                        "warn",
                    ],
                    cwd=project_root,
                    env=_worker_env(settings, run_id, Path(scratch)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            started = time.time()
            deadline = time.monotonic() + timeout
            cpu_at_first_output: float | None = None
            counted_at_first_output = 0
            while watcher.total() < records:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(
                        f"revenue worker counted {watcher.total()} of {records} orders in "
                        f"{timeout:.0f} s; log:\n{log_path.read_text()[-3000:]}"
                    )
                watcher.poll()
                if cpu_at_first_output is None and watcher.first_output_at is not None:
                    # The clock starts at the first output, which comes after a whole batch:
                    # the orders already counted then are left out of the rate.
                    cpu_at_first_output = process_cpu_seconds(worker.pid)
                    counted_at_first_output = watcher.total()
            finished = time.time()
            drain_cpu = _difference(process_cpu_seconds(worker.pid), cpu_at_first_output)
            assert watcher.first_output_at is not None
            drain_seconds = finished - watcher.first_output_at

            # -- latency: a steady ``rate`` of orders, each timed until its count is visible
            published_at: dict[str, list[float]] = defaultdict(list)
            baseline = dict(watcher.counts)
            count = int(rate * latency_seconds)
            tick = 0.01  # publish a tick's share every 10 ms; read outputs in between
            per_tick = rate * tick
            started_at = time.time()
            sent = 0
            while sent < count:
                due = min(count, int((time.time() - started_at) / tick * per_tick) + 1)
                while sent < due:
                    placed = int(time.time() * 1000)
                    order = _order(records + sent, placed)
                    key = f"{order['region']}@{placed - placed % 60_000}"
                    published_at[key].append(time.time())
                    publisher.publish(order, timestamp_ms=placed)
                    sent += 1
                publisher.flush()
                watcher.poll(timeout=tick / 2)
            publisher.flush()
            expected_total = records + count
            while watcher.total() < expected_total:
                if time.monotonic() > deadline + latency_seconds:
                    raise RuntimeError(
                        f"latency phase: {watcher.total()} of {expected_total} orders counted"
                    )
                watcher.poll()
            visibility = watcher.visibility()
            latencies = [
                (visible_at(visibility, key, baseline.get(key, 0) + i + 1) - sent) * 1000
                for key, times in published_at.items()
                for i, sent in enumerate(times)
            ]
        finally:
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(60)
                except subprocess.TimeoutExpired:
                    worker.kill()
            publisher.close()
            watcher.close()
            registry.close()
    timed = records - counted_at_first_output
    if timed <= 0 or drain_seconds <= 0:
        raise RuntimeError(
            f"the worker's first output already counted all {records} orders, so there is no "
            "drain to time; give the benchmark more records (--records)"
        )
    events_per_s = timed / drain_seconds
    p50 = statistics.median(latencies)
    p99 = _percentile(latencies, 0.99)
    return {
        "processor": "analytics.revenue-by-region (one faust worker)",
        "processing_guarantee": "at_least_once + idempotent keyed outputs",
        "records": records,
        "events_timed": timed,
        "events_per_s": round(events_per_s),
        "drain_seconds": round(drain_seconds, 6),
        # CPU of the worker while draining, per order: steadier than events/s on a busy machine.
        "worker_cpu_us_per_event": (
            None if drain_cpu is None else round(drain_cpu / timed * 1e6, 1)
        ),
        "worker_start_to_done_seconds": round(finished - started, 2),
        "latency_rate_per_s": rate,
        "latency_events": len(latencies),
        "latency_p50_ms": round(p50, 1),
        "latency_p99_ms": round(p99, 1),
        "latency_max_ms": round(max(latencies), 1),
        "targets": {"events_per_s": TARGET_EVENTS_PER_S, "latency_p99_ms": TARGET_P99_MS},
        "met": {
            "events_per_s": events_per_s >= TARGET_EVENTS_PER_S,
            "latency_p99_ms": p99 < TARGET_P99_MS,
        },
    }


def _worker_main() -> None:
    """Worker side: the revenue processor over this run's private products."""
    from importlib import import_module

    # Started with the project root as working directory, which ``python -m`` puts on sys.path.
    build = import_module(SAMPLE_PROCESSOR_MODULE).build
    settings = MeshSettings()
    run_id = os.environ["MESH_BENCH_RUN_ID"]
    run_worker(build(bench_spec(settings, run_id, Path.cwd())))


def _report_main(argv: list[str]) -> None:
    """``python -m mesh_stream.bench.processing_bench report``: this benchmark alone, as JSON."""
    import argparse
    import json

    from mesh_stream.bench.environment import bench_environment
    from mesh_stream.bench.run import SAMPLE_MESH_MISSING, sample_mesh_root

    parser = argparse.ArgumentParser(
        prog="python -m mesh_stream.bench.processing_bench report",
        description="Run only the processing benchmark against MESH_BOOTSTRAP_SERVERS / "
        "MESH_REGISTRY_URL, or a throw-away local broker and registry when they are unset.",
    )
    parser.add_argument("--records", type=int, default=20_000, help="backlog orders to drain")
    parser.add_argument("--rate", type=float, default=1_000.0, help="events/s of latency phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of latency phase")
    options = parser.parse_args(argv)
    settings = MeshSettings()
    root = sample_mesh_root(settings)
    if root is None:
        parser.exit(2, f"processing benchmark: {SAMPLE_MESH_MISSING}\n")
    with bench_environment(settings, progress=lambda line: print(line, file=sys.stderr)) as env:
        report = run_processing_bench(
            env.bootstrap_servers,
            env.registry_url,
            project_root=root,
            principal=env.admin_principal,
            token=env.admin_token,
            records=options.records,
            rate=options.rate,
            latency_seconds=options.seconds,
            settings=settings,
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["report"]:
        _report_main(sys.argv[2:])
    else:
        _worker_main()
