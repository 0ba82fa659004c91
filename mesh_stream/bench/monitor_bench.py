"""Product monitor benchmark: what one monitor costs a minute at 12 and at 1,000 products.

For each product count it starts a registry of its own (in this process, on a topic of its
own, so the monitor lists exactly those products) and fills it with a realistic mesh: every
product has a descriptor with SLOs, a topic and a dead-letter topic (created a few hundred
at a time), a few Avro records per partition and a registered consumer group with a
committed offset one record short of the end (so lag is measured, in records and seconds);
every fourth product is an aggregate built from the product before it (lineage, end-to-end).

The monitor then runs in a process of its own (``python -m mesh_stream.bench.monitor_bench
--rounds CONFIG``), so its CPU time is the monitor's alone, not the registry's or the
set-up's. After a first round (start-up: the health topic read back, connections), each
measured round is a :meth:`ProductMonitor.measure` followed by an idle wait, as in the real
loop. Per round: wall seconds, process CPU seconds (all threads, librdkafka's included),
registry HTTP requests (:attr:`RegistryClient.http_calls`) and, in a second pass with
librdkafka statistics switched on, Kafka requests (librdkafka's ``tx`` counter summed over
the monitor's clients, and of them the Fetch requests, which the health reader sends on a
clock; a separate pass because emitting statistics costs CPU itself). The
idle wait gives the CPU and Kafka requests a second between rounds (the health reader keeps
fetching). From them, per minute at the default 60 s interval::

    rounds a minute = 60 / max(60, wall)
    per minute      = (per round + idle rate * max(0, 60 - wall)) * rounds a minute

Each figure is the median over the rounds with min and max. Nothing is timed against a target.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import fastavro
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from pydantic import SecretStr

from mesh_stream.bench.sdk_bench import make_record, schema
from mesh_stream.descriptor import DataProduct
from mesh_stream.kafka.clients import NO_LOSS_PRODUCER_CONFIG, make_admin, make_producer
from mesh_stream.kafka.connection import KafkaConfig, KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topics, product_topic_spec
from mesh_stream.monitor import ProductMonitor
from mesh_stream.registration import register_descriptor
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.wire import frame
from mesh_stream.settings import MeshSettings

DEFAULT_PRODUCTS = (12, 1_000)
#: The interval the per-minute figures are derived for (the monitor's default).
INTERVAL_SECONDS = 60.0
RECORDS_PER_PARTITION = 2
PARTITIONS = 2
DOMAIN = "bench"
#: Topics created per call: KRaft refuses a CreateTopics of a few thousand partitions at once
#: ("excessively large batch operation").
TOPICS_PER_CALL = 250
#: How often librdkafka reports its counters in the Kafka-request pass.
STATS_INTERVAL_MS = 1_000


def monitored_product(session: str, n: int) -> DataProduct:
    """Product ``n`` of a run: a source, or (every fourth) an aggregate of product n - 1."""
    derived = n % 4 == 3
    return DataProduct.model_validate(
        {
            "name": f"{DOMAIN}.monitored-{session}-{n:05d}",
            "domain": DOMAIN,
            "kind": "aggregate" if derived else "source-aligned",
            "description": "A product of the monitor benchmark, measured every round.",
            "owner": {"team": "bench", "contact": "bench@example.com"},
            "schema": "order_event.avsc",
            "key_field": "order_id",
            "partitions": PARTITIONS,
            "retention": {"ms": 3_600_000, "cleanup_policy": "delete"},
            "slos": {
                "freshness_seconds": 300.0,
                "availability": 99.5,
                "max_dlq_ratio": 0.01,
                "max_lag_seconds": 600.0,
                "min_records_per_minute": 0.0,
            },
            "classification": "internal",
            "tags": ["bench"],
            "inputs": [f"{DOMAIN}.monitored-{session}-{n - 1:05d}"] if derived else [],
        }
    )


def group_of(product: DataProduct) -> str:
    return f"{product.name}-reader"


# -- set-up -----------------------------------------------------------------------------------
def populate(
    conn: KafkaConnection, registry: RegistryClient, products: Sequence[DataProduct]
) -> dict[str, float]:
    """Register ``products`` (schema, descriptor, a consumer group), create their topics and
    dead-letter topics in one call, write records and commit each group's offsets; returns
    the seconds each step took."""
    took: dict[str, float] = {}
    started = time.perf_counter()
    cluster = cluster_info(conn)
    specs = [product_topic_spec(p, cluster) for p in products]
    specs += [product_topic_spec(p, cluster, topic=p.dlq_topic) for p in products]
    for first in range(0, len(specs), TOPICS_PER_CALL):
        ensure_topics(conn, specs[first : first + TOPICS_PER_CALL], strict=True, timeout=120.0)
    took["topics_s"] = time.perf_counter() - started

    started = time.perf_counter()
    text = json.dumps(schema())
    schema_id = registry.register_schema(f"{products[0].topic}-value", text)

    def register(product: DataProduct) -> None:
        registry.register_schema(f"{product.topic}-value", text)
        register_descriptor(registry, product)
        registry.register_consumer(product.name, group_of(product), reads=["order_id"])

    with ThreadPoolExecutor(8) as pool:  # sources first: an aggregate needs its input
        try:
            list(pool.map(register, [p for p in products if not p.inputs]))
            list(pool.map(register, [p for p in products if p.inputs]))
        except BaseException:  # e.g. SIGTERM: drop the queued registrations, do not wait them
            pool.shutdown(cancel_futures=True)
            raise
    took["registry_s"] = time.perf_counter() - started

    started = time.perf_counter()
    _write_records(conn, products, schema_id)
    took["records_s"] = time.perf_counter() - started
    started = time.perf_counter()
    _commit_groups(conn, products)
    took["groups_s"] = time.perf_counter() - started
    return {key: round(value, 2) for key, value in took.items()}


def _write_records(conn: KafkaConnection, products: Sequence[DataProduct], schema_id: int) -> None:
    """A few Confluent-framed Avro records per partition (one Avro body, reused)."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema()), make_record(0))
    value = frame(schema_id, body.getvalue())
    producer = make_producer(conn, {**NO_LOSS_PRODUCER_CONFIG, "linger.ms": 20})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for product in products:
        for partition in range(PARTITIONS):
            for index in range(RECORDS_PER_PARTITION):
                producer.produce(
                    product.topic,
                    value,
                    f"order-{index}",
                    partition=partition,
                    on_delivery=delivered,
                )
        producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"writing the benchmark records failed: {failures[:3] or 'timeout'}")


def _commit_groups(conn: KafkaConnection, products: Sequence[DataProduct]) -> None:
    """Each product's registered group committed one record short of every partition's end."""
    admin = make_admin(conn, {"log_level": 0})
    futures = []
    for product in products:
        offsets = [
            TopicPartition(product.topic, p, RECORDS_PER_PARTITION - 1) for p in range(PARTITIONS)
        ]
        request = ConsumerGroupTopicPartitions(group_of(product), offsets)
        futures += list(admin.alter_consumer_group_offsets([request]).values())
    for future in futures:
        future.result(60)


# -- the monitor's process --------------------------------------------------------------------
@dataclass
class RoundsConfig:
    """What the parent hands to the monitor's process."""

    bootstrap_servers: str
    registry_url: str
    principal: str
    token: str
    health_topic: str
    alerts_topic: str
    rounds: int
    idle_seconds: float
    count_kafka: bool


class KafkaRequestCounter:
    """librdkafka's own count of requests sent (``tx``), and of those the Fetch requests,
    summed over every client it reported for; a client's counters are cumulative, so its
    latest report wins. Fetches are counted apart because the health reader sends them
    whenever it waits, so their number follows the clock, not the products measured."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, report: str) -> None:
        # Top-level totals come last in the report ("tx" of each broker before them), so the
        # last "tx" is the client's; no full JSON parse of a report that may be megabytes.
        name_at = report.find('"name":')
        name = report[name_at:].split('"', 4)[3]
        sent = _number_after(report, report.rfind('"tx":') + len('"tx":'))
        # each broker's "req" map counts its requests by type, Fetch among them
        fetches = sum(
            _number_after(report, at + len('"Fetch":')) for at in _occurrences(report, '"Fetch":')
        )
        with self._lock:
            self._latest[name] = (sent, fetches)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(sent for sent, _ in self._latest.values())

    @property
    def fetches(self) -> int:
        with self._lock:
            return sum(fetches for _, fetches in self._latest.values())


def _occurrences(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _number_after(text: str, at: int) -> int:
    return int(text[at : at + 24].split(",", 1)[0].split("}", 1)[0].strip())


@dataclass(frozen=True)
class _CountedConnection(KafkaConnection):
    """The connection, with librdkafka statistics to ``counter`` on every client it makes."""

    def librdkafka_config(self, extra: Mapping[str, Any] | None = None) -> KafkaConfig:
        return super().librdkafka_config(
            {**(extra or {}), "statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": COUNTER}
        )


COUNTER = KafkaRequestCounter()


def _serve_statistics(monitor: ProductMonitor) -> None:
    """Let every client of the monitor hand over the statistics it has queued.

    Reaches into the monitor's parts on purpose (a benchmark, not an API): librdkafka
    delivers statistics only when a client is polled, and the admin client never is. The
    health reader is polled too; should a record come out, it is sought back to, so the
    monitor's next catch-up still reads it.
    """
    meter, health_log, publisher = monitor._meter, monitor._log, monitor._publisher
    meter._admin.poll(0)
    meter._reader.poll(0)
    publisher._producer.poll(0)
    consumer = health_log._consumer
    message = consumer.poll(0)
    if message is not None and message.error() is None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is not None and partition is not None and offset is not None:
            consumer.seek(TopicPartition(topic, partition, offset))


def _snapshot(
    monitor: ProductMonitor, registry: RegistryClient, count_kafka: bool
) -> tuple[float, int, int, int]:
    """(process CPU seconds, registry HTTP calls, Kafka requests, of them Fetches) now."""
    if count_kafka:
        time.sleep(STATS_INTERVAL_MS / 1000 + 0.2)  # a report newer than what came before
        _serve_statistics(monitor)
    return time.process_time(), registry.http_calls, COUNTER.total, COUNTER.fetches


def measure_rounds(config: RoundsConfig) -> dict[str, Any]:
    """(In the monitor's process.) A first round, then ``rounds`` measured rounds each
    followed by ``idle_seconds`` of waiting; the figures of each."""
    maker = _CountedConnection if config.count_kafka else KafkaConnection
    conn = maker.create(config.bootstrap_servers, client_id="mesh-monitor-bench")
    with (
        RegistryClient(
            config.registry_url, principal=config.principal, token=config.token
        ) as registry,
        ProductMonitor(
            conn,
            registry,
            health_topic=config.health_topic,
            alerts_topic=config.alerts_topic,
            interval=INTERVAL_SECONDS,
            name="monitor-bench",
        ) as monitor,
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        first = monitor.measure()
        first_round = {
            "wall_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu_started,
            "products": len(first.healths),
        }
        rounds = []
        cpu_a, calls_a, kafka_a, fetch_a = _snapshot(monitor, registry, config.count_kafka)
        for _ in range(config.rounds):
            started = time.perf_counter()
            done = monitor.measure()
            wall = time.perf_counter() - started
            cpu_b, calls_b, kafka_b, fetch_b = _snapshot(monitor, registry, config.count_kafka)
            # the snapshot's own wait is idle time as well: the idle rate is over all of it
            idle_started = time.perf_counter()
            time.sleep(config.idle_seconds)
            cpu_c, calls_c, kafka_c, fetch_c = _snapshot(monitor, registry, config.count_kafka)
            idle = time.perf_counter() - idle_started
            rounds.append(
                {
                    "products": len(done.healths),
                    "statuses": sorted({h.status.value for h in done.healths}),
                    "wall_s": wall,
                    "cpu_s": cpu_b - cpu_a,
                    "registry_requests": calls_b - calls_a,
                    "kafka_requests": kafka_b - kafka_a if config.count_kafka else None,
                    "kafka_fetch_requests": fetch_b - fetch_a if config.count_kafka else None,
                    "idle_cpu_s_per_s": (cpu_c - cpu_b) / idle,
                    "idle_kafka_requests_per_s": (kafka_c - kafka_b) / idle
                    if config.count_kafka
                    else None,
                }
            )
            # where the next round starts
            cpu_a, calls_a, kafka_a, fetch_a = cpu_c, calls_c, kafka_c, fetch_c
    return {"first_round": first_round, "rounds": rounds}


# -- the parent -------------------------------------------------------------------------------
def _run_rounds(config: RoundsConfig) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mesh_stream.bench.monitor_bench",
            "--rounds",
            json.dumps(asdict(config)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the monitor's benchmark process failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def per_minute(
    per_round: float, idle_rate: float, wall: float, interval: float = INTERVAL_SECONDS
) -> float:
    """A round's cost plus the idle cost until the next, times the rounds in a minute."""
    return (per_round + idle_rate * max(0.0, interval - wall)) * 60.0 / max(interval, wall)


def _spread(values: Sequence[float], digits: int) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def measure_size(
    bootstrap_servers: str,
    products: int,
    *,
    rounds: int = 3,
    idle_seconds: float = 5.0,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Set up ``products`` products on a registry of their own and measure the monitor."""
    from mesh_stream.registry.service.server import RegistryServer, build_registry

    session = uuid.uuid4().hex[:8]
    admin_token = f"monitor-bench-{session}"
    settings = MeshSettings(
        bootstrap_servers=bootstrap_servers,
        registry_credentials=SecretStr(f"admin:{admin_token}"),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-monitor-bench-{session}",
        registry_writer_id=f"mesh-registry-monitor-bench-{session}",
        health_topic=f"_mesh_product_health-bench-{session}",
    )
    conn = KafkaConnection.create(bootstrap_servers)
    app, store = build_registry(settings, validators=[])
    server = RegistryServer(app)
    try:
        url = server.start()
        catalog = [monitored_product(session, n) for n in range(products)]
        with RegistryClient(url, principal="admin", token=admin_token) as registry:
            setup = populate(conn, registry, catalog)
        progress(
            f"monitor bench: {products:,} products set up in {sum(setup.values()):.1f}s "
            f"({', '.join(f'{k[:-2]} {v:.1f}s' for k, v in setup.items())})"
        )
        passes = {}
        for count_kafka in (False, True):
            config = RoundsConfig(
                bootstrap_servers,
                url,
                "admin",
                admin_token,
                settings.health_topic,
                f"_mesh_product_alerts-bench-{session}",
                rounds,
                idle_seconds,
                count_kafka,
            )
            passes[count_kafka] = _run_rounds(config)
            progress(
                f"monitor bench: {products:,} products, "
                f"{'Kafka-request' if count_kafka else 'CPU'} pass done"
            )
    finally:
        server.stop()
        store.close()
    return _figures(products, setup, passes[False], passes[True])


def _figures(
    products: int, setup: dict[str, float], timed: dict[str, Any], counted: dict[str, Any]
) -> dict[str, Any]:
    """The per-round rows of both passes joined, the per-minute figures, medians."""
    rows = []
    for cpu_round, count_round in zip(timed["rounds"], counted["rounds"], strict=True):
        wall = cpu_round["wall_s"]
        kafka_wall = count_round["wall_s"]
        rows.append(
            {
                "products": cpu_round["products"],
                "statuses": cpu_round["statuses"],
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu_round["cpu_s"], 3),
                "registry_requests": cpu_round["registry_requests"],
                "kafka_requests": count_round["kafka_requests"],
                "kafka_fetch_requests": count_round["kafka_fetch_requests"],
                "idle_cpu_s_per_s": round(cpu_round["idle_cpu_s_per_s"], 4),
                "idle_kafka_requests_per_s": round(count_round["idle_kafka_requests_per_s"], 2),
                "cpu_s_per_minute": round(
                    per_minute(cpu_round["cpu_s"], cpu_round["idle_cpu_s_per_s"], wall), 3
                ),
                "registry_requests_per_minute": round(
                    per_minute(cpu_round["registry_requests"], 0.0, wall), 2
                ),
                "kafka_requests_per_minute": round(
                    per_minute(
                        count_round["kafka_requests"],
                        count_round["idle_kafka_requests_per_s"],
                        kafka_wall,
                    ),
                    1,
                ),
            }
        )
    keys = {
        "wall_s": 3,
        "cpu_s": 3,
        "registry_requests": 1,
        "kafka_requests": 1,
        "cpu_s_per_minute": 3,
        "registry_requests_per_minute": 2,
        "kafka_requests_per_minute": 1,
    }
    return {
        "products": products,
        "products_measured": min(row["products"] for row in rows),
        "setup": setup,
        "first_round": {k: round(v, 3) for k, v in timed["first_round"].items()},
        "rounds": rows,
        **{key: _spread([row[key] for row in rows], digits) for key, digits in keys.items()},
    }


def run_monitor_bench(
    bootstrap_servers: str,
    *,
    products: Sequence[int] = DEFAULT_PRODUCTS,
    rounds: int = 3,
    idle_seconds: float = 5.0,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure the monitor at every product count in ``products``; JSON-able."""
    if rounds < 1 or idle_seconds <= 0 or not products or min(products) < 1:
        raise ValueError("the monitor benchmark needs product counts >= 1, rounds >= 1, idle > 0")
    load_before = os.getloadavg()
    sizes = [
        measure_size(
            bootstrap_servers, n, rounds=rounds, idle_seconds=idle_seconds, progress=progress
        )
        for n in products
    ]
    return {
        "interval_s": INTERVAL_SECONDS,
        "rounds": rounds,
        "idle_seconds": idle_seconds,
        "cpus": os.cpu_count(),
        #: 1, 5 and 15 minute load averages when the benchmark started and ended (the
        #: machine may be shared: CPU seconds hold, wall seconds stretch under load).
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "sizes": sizes,
    }


def _loads(report: dict[str, Any], when: str) -> str:
    loads = report.get("load_average", {}).get(when)
    return "/".join(f"{x:.1f}" for x in loads) if loads else "?"


def render_monitor(report: dict[str, Any]) -> str:
    """The monitor benchmark as a table: median (min-max) over the measured rounds."""

    def cell(figure: dict[str, float], form: str) -> str:
        return (
            f"{format(figure['median'], form)} "
            f"({format(figure['min'], form)}-{format(figure['max'], form)})"
        )

    lines = [
        f"product monitor cost: median (min-max) of {report['rounds']} rounds after a first; "
        f"per minute at a {report['interval_s']:.0f} s interval (a round, then idle until the "
        f"next); CPU is the monitor process's (all threads); {report.get('cpus')} CPUs, load "
        f"average (1/5/15 min) {_loads(report, 'before')} before, {_loads(report, 'after')} "
        "after",
        f"{'products':>9} {'round wall s':>20} {'round CPU s':>20} {'registry req':>13} "
        f"{'Kafka req':>18} {'CPU s/min':>20} {'registry req/min':>17} {'Kafka req/min':>22}",
    ]
    for row in report["sizes"]:
        lines.append(
            f"{row['products_measured']:>9,} {cell(row['wall_s'], '.2f'):>20} "
            f"{cell(row['cpu_s'], '.2f'):>20} {row['registry_requests']['median']:>13.0f} "
            f"{cell(row['kafka_requests'], '.0f'):>18} {cell(row['cpu_s_per_minute'], '.2f'):>20} "
            f"{row['registry_requests_per_minute']['median']:>17.0f} "
            f"{cell(row['kafka_requests_per_minute'], '.0f'):>22}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the monitor's process, and manual use
    if sys.argv[1] == "--rounds":
        found = measure_rounds(RoundsConfig(**json.loads(sys.argv[2])))
        print(json.dumps(found))
        sys.exit(0)
    counts = (
        tuple(int(s) for s in sys.argv[2].split(",")) if len(sys.argv) > 2 else DEFAULT_PRODUCTS
    )
    report = run_monitor_bench(sys.argv[1], products=counts)
    print(json.dumps(report, indent=2))
    print(render_monitor(report))
