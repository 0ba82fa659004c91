"""Issue 16's end-to-end test: product health observed in a running sample mesh.

One `mesh up` (real broker, real registry, every simulator and processor a real process, the
supervised product monitor measuring every 5 s) over a copy of the sample project whose
``orders.order-placed`` also declares ``max_dlq_ratio``. Then, with real processes:

1. the orders simulator is paused (SIGSTOP to its process group: the supervisor restarts a
   child that dies within about a second, so killing it would not keep the product quiet):
   ``orders.order-placed`` turns ``breached`` on freshness within the SLO + 2 intervals, the
   products built from it list it in ``upstream_breached``, a breach alert is published;
2. while the topic is quiet, poison pills (raw bytes, not Avro) are written to it; every
   processor reading it dead-letters them, and the DLQ ratio the monitor reports equals the
   dead letters / records of its minute, counted by the test from the topics themselves;
3. the simulator is resumed (SIGCONT) and the revenue processor paused: its re-key group's
   lag in seconds grows by exactly the time between two measurements (its committed offsets
   do not move). Both resumed, the product returns to ``ok`` with recovery alerts (freshness,
   DLQ ratio once the dead letters' minute has passed) and every product of the mesh is
   ``ok`` (or has no data yet) in one round.

About 2.5 minutes, a third of it the broker's and the mesh's start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import SecretStr

from mesh_stream.descriptor import load_descriptors
from mesh_stream.errors import MeshError
from mesh_stream.health import Figure, FigureName, ProductHealth, Status
from mesh_stream.processing.names import processor_app_id, sources_group
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from mesh_stream.supervisor import process_running
from tests.conftest import SAMPLE_DOMAINS
from tests.integration.alerts import read_alerts
from tests.integration.own_broker import own_cluster, running
from tests.integration.test_up_local import processes_with

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 5.0  # seconds between the monitor's rounds
SAMPLE_FRESHNESS = 5.0  # orders.order-placed's freshness SLO in the sample descriptor
# ... and in the copy: room for a simulator starved of CPU by the rest of the suite
FRESHNESS = 15.0
MAX_DLQ_RATIO = 0.1  # added to the copy of orders.order-placed
PILLS = 12
SLACK = 5.0  # seconds a round may take on a busy machine
SOURCE = "orders.order-placed"
DOWNSTREAM = (
    "analytics.revenue-by-region",
    "analytics.customer-360",
    "analytics.order-fulfilment-sla",
)
PAUSED_PROCESSOR = "analytics.revenue-by-region"

T = TypeVar("T")


def _eventually(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """``probe()``'s first truthy answer, polled every half second; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what} (last answer {last!r})")


def _health_when(
    client: RegistryClient, product: str, wanted: Callable[[ProductHealth], bool]
) -> Callable[[], ProductHealth | None]:
    """A probe: ``product``'s latest health from the registry when it is ``wanted``."""

    def probe() -> ProductHealth | None:
        health = client.product_health(product)
        return health if wanted(health) else None

    return probe


def _figure(health: ProductHealth, name: FigureName, subject: str | None = None) -> Figure | None:
    found = [f for f in health.figures if f.name == name and f.subject == subject]
    return found[0] if found else None


def _edit_slos(descriptor: Path, freshness: float, extra: str) -> None:
    """Replace ``descriptor``'s ``slos.freshness_seconds`` line with ``extra``'s lines."""
    text = descriptor.read_text()
    line = f"  freshness_seconds: {freshness:g}\n"
    assert line in text, descriptor
    descriptor.write_text(text.replace(line, extra))


def _sample_copy(target: Path) -> Path:
    """The sample project copied to ``target``; ``orders.order-placed`` gets a DLQ SLO."""
    for folder in ("domains", "schemas"):
        shutil.copytree(
            ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("mesh.yaml", "mesh-policies.yaml"):
        shutil.copy(ROOT / name, target / name)
    products = target / "domains"
    _edit_slos(
        products / "orders/products/order-placed.yaml",
        SAMPLE_FRESHNESS,
        f"  freshness_seconds: {FRESHNESS:g}\n  max_dlq_ratio: {MAX_DLQ_RATIO}\n",
    )
    return target


def _child_pid(supervisor_log: Path, child: str) -> int:
    """The pid of ``child``'s latest start (its process group: each child leads its own)."""
    text = supervisor_log.read_text() if supervisor_log.exists() else ""
    pids = re.findall(
        rf" {re.escape(child)}: (?:started \w+|restarted \(restart #\d+,) \(?pid (\d+)\)", text
    )
    assert pids, f"{child} never started:\n{text}"
    return int(pids[-1])


class Topics:
    """Counts on the real topics, read by the test itself."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"health-in-mesh-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=10)
        return sorted(metadata.topics[topic].partitions)

    def records(self, topic: str, since_ms: int) -> list[tuple[int, bytes | None]]:
        """(timestamp, key) of every record of ``topic`` stamped at or after ``since_ms``
        (create time), read from a minute earlier so no record is missed."""
        starts = self.consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms - 60_000) for p in self.partitions(topic)],
            timeout=10,
        )
        ends = {
            tp.partition: self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in starts
        }
        pending = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        found: list[tuple[int, bytes | None]] = []
        if not pending:
            return found
        self.consumer.assign([tp for tp in starts if tp.partition in pending])
        deadline = time.monotonic() + 30
        try:
            while pending and time.monotonic() < deadline:
                for message in self.consumer.consume(500, 0.5):
                    if message.error() is not None:
                        continue
                    _, stamp = message.timestamp()
                    if stamp >= since_ms:
                        found.append((stamp, message.key()))
                    partition, offset = message.partition() or 0, message.offset() or 0
                    if offset >= ends[partition] - 1:
                        pending.discard(partition)
        finally:
            self.consumer.unassign()
        assert not pending, f"{topic}: partitions {sorted(pending)} not read to their end"
        return found

    def newest(self, topic: str) -> int:
        """The newest record timestamp of ``topic`` (each partition's last record)."""
        newest = 0
        for partition in self.partitions(topic):
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            if high <= low:
                continue
            self.consumer.assign([TopicPartition(topic, partition, high - 1)])
            try:
                message = _eventually(
                    f"the newest record of {topic}[{partition}]",
                    lambda: next(
                        (m for m in self.consumer.consume(1, 0.5) if m.error() is None), None
                    ),
                    20,
                )
            finally:
                self.consumer.unassign()
            newest = max(newest, message.timestamp()[1])
        return newest


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own: the session broker holds other tests' meshes (the same
    product topics, processor groups and changelogs), which this one must not inherit."""
    with own_cluster(tmp_path / "broker") as cluster:
        yield running(cluster)


@pytest.fixture
def mesh(own_kafka: str, tmp_path: Path) -> Iterator[tuple[RegistryClient, Path, MeshSettings]]:
    """`mesh up` over a copy of the sample project, with its own registry and health topics;
    yields a registry client, the supervisor log and the settings. Stopped with Ctrl-C."""
    session = uuid.uuid4().hex[:8]
    tokens = {"admin": "admin-secret", **{d: f"{d}-secret" for d in SAMPLE_DOMAINS}}
    settings = MeshSettings(
        bootstrap_servers=own_kafka,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in tokens.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-mesh-health-{session}",
        registry_writer_id=f"mesh-registry-mesh-health-{session}",
        health_topic=f"_mesh_product_health-mesh-{session}",
        alerts_topic=f"_mesh_product_alerts-mesh-{session}",
    )
    project = _sample_copy(tmp_path / "project")
    data_dir = tmp_path / "data"
    app, store = build_registry(settings)
    server = RegistryServer(app)
    url = server.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MESH_")},
        "MESH_BOOTSTRAP_SERVERS": own_kafka,
        "MESH_DATA_DIR": str(data_dir),
        "MESH_REGISTRY_URL": url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": tokens["admin"],
        "MESH_MONITOR_INTERVAL_SECONDS": f"{INTERVAL:g}",
        "MESH_HEALTH_TOPIC": settings.health_topic,
        "MESH_ALERTS_TOPIC": settings.alerts_topic,
    }
    printed = tmp_path / "mesh-up.out"  # a file, not a pipe nobody reads while it runs
    with printed.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "mesh_stream.cli.main", "up", "--no-view", "--rate", "30",
             "--project", str(project)],
            env=env, cwd=project, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    supervisor_log = data_dir / "logs" / "supervisor.log"
    client = RegistryClient(url, principal="admin", token=tokens["admin"])
    try:
        yield client, supervisor_log, settings
    finally:
        for child in ("orders-simulator", PAUSED_PROCESSOR):  # never leave one stopped
            with contextlib.suppress(AssertionError, OSError):
                os.killpg(_child_pid(supervisor_log, child), signal.SIGCONT)
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        output = printed.read_text()
        client.close()
        server.stop()
        store.close()
        assert up.returncode == 0, output
        assert "mesh up: everything stopped" in output, output
        assert processes_with(f"MESH_DATA_DIR={data_dir}") == []


def test_health_of_a_running_mesh_follows_a_stopped_simulator_poison_pills_and_a_paused_processor(
    own_kafka: str, mesh: tuple[RegistryClient, Path, MeshSettings]
) -> None:
    client, supervisor_log, settings = mesh
    registry_env = {
        "MESH_REGISTRY_URL": client.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": "admin-secret",
    }
    bootstrap = own_kafka
    topic, dlq = f"{SOURCE}.v1", f"{SOURCE}.v1.dlq"
    rekey_group = sources_group(processor_app_id(PAUSED_PROCESSOR))
    topics = Topics(bootstrap)
    try:
        # The mesh runs and is healthy: the source ok, every processor reading it has a lag.
        seen: list[object] = []

        def healthy() -> ProductHealth | None:
            try:
                health = client.product_health(SOURCE)
            except MeshError as exc:  # the registry has not got the product yet
                seen[:] = [exc]
                return None
            seen[:] = [health]
            lags = [
                f
                for f in health.figures
                if f.name == FigureName.LAG_SECONDS and f.value is not None
            ]
            running = health.status in (Status.OK, Status.DEGRADED)  # degraded: a slow machine
            return health if running and len(lags) == len(DOWNSTREAM) else None

        try:
            _eventually(f"{SOURCE} not breached, a lag figure per processor", healthy, 150)
        except AssertionError as exc:
            logs = supervisor_log.parent
            tails = {
                name: (logs / name).read_text(errors="replace")[-2500:]
                for name in ("monitor.log", "supervisor.log")
                if (logs / name).exists()
            }
            raise AssertionError(f"{exc}; last health: {seen!r}; logs: {tails}") from None
        groups = sorted(c["group"] for c in client.consumers(SOURCE))
        assert groups == sorted(sources_group(processor_app_id(p)) for p in DOWNSTREAM)

        # 1. The orders simulator paused: freshness breached, downstream told, an alert.
        simulator = _child_pid(supervisor_log, "orders-simulator")
        os.killpg(simulator, signal.SIGSTOP)
        time.sleep(1.0)  # what it had handed to the broker is written
        last_record_ms = topics.newest(topic)

        # 2. Poison pills, stamped with the last record's time so freshness goes on ageing.
        raw = Producer({"bootstrap.servers": bootstrap})
        partitions = topics.partitions(topic)
        pills_at_ms = int(time.time() * 1000)
        pill_keys = {f"pill-{uuid.uuid4().hex}".encode() for _ in range(PILLS)}
        for index, key in enumerate(sorted(pill_keys)):
            raw.produce(
                topic,
                key=key,
                value=b"not avro at all",
                partition=partitions[index % len(partitions)],
                timestamp=last_record_ms,
            )
        assert raw.flush(10) == 0
        del raw  # no client left to reconnect once the test broker stops

        def breached() -> ProductHealth | None:
            health = client.product_health(SOURCE)
            fresh = _figure(health, FigureName.FRESHNESS_SECONDS)
            return health if fresh is not None and fresh.status == Status.BREACHED else None

        first_breach = _eventually(f"{SOURCE} breached", breached, FRESHNESS + 4 * INTERVAL + 30)
        assert first_breach.status == Status.BREACHED
        history = client.product_health_history(SOURCE, minutes=5)
        earliest = min(
            h.measured_at_ms
            for h in history
            if (f := _figure(h, FigureName.FRESHNESS_SECONDS)) and f.status == Status.BREACHED
        )
        # Within the SLO + 2 intervals (+ a round's own time) of the last record.
        assert earliest - last_record_ms <= (FRESHNESS + 2 * INTERVAL + SLACK) * 1000, history
        fresh = _figure(first_breach, FigureName.FRESHNESS_SECONDS)
        assert fresh is not None
        assert fresh.slo == FRESHNESS
        assert fresh.value == pytest.approx(
            (first_breach.measured_at_ms - last_record_ms) / 1000, abs=0.01
        )

        for product in DOWNSTREAM:
            downstream = _eventually(
                f"{product} shows {SOURCE} upstream breached",
                _health_when(client, product, lambda h: SOURCE in h.upstream_breached),
                2 * INTERVAL + 15,
            )
            assert downstream.status in (Status.DEGRADED, Status.BREACHED)
            assert downstream.reason.endswith(
                f"upstream breached: {', '.join(downstream.upstream_breached)}"
            )

        breach = _eventually(
            "a freshness breach alert",
            lambda: next(
                (
                    a
                    for a in read_alerts(bootstrap, settings.alerts_topic)
                    if a.kind == "breach"
                    and a.product == SOURCE
                    and a.figure == FigureName.FRESHNESS_SECONDS
                ),
                None,
            ),
            2 * INTERVAL + 15,
        )
        assert breach.status == Status.BREACHED
        assert breach.slo == FRESHNESS
        assert breach.value is not None
        assert breach.value > FRESHNESS
        assert breach.since_ms == earliest  # raised by the round that first saw it

        # `mesh products status --json`, in its own process, shows the same.
        shown = subprocess.run(
            [sys.executable, "-m", "mesh_stream.cli.main", "products", "status", "--json"],
            env={**os.environ, **registry_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        table = {
            name: ProductHealth.model_validate(h) for name, h in json.loads(shown.stdout).items()
        }
        assert table[SOURCE].status == Status.BREACHED
        assert all(SOURCE in table[p].upstream_breached for p in DOWNSTREAM)

        # Every processor reading the product dead-letters every pill (once).
        def pills_dead_lettered() -> list[bytes]:
            found = [key for _, key in topics.records(dlq, pills_at_ms - 1000)]
            return [key for key in found if key is not None and key in pill_keys]

        dead_letters = len(groups) * PILLS
        _eventually(
            f"{dead_letters} dead letters of the pills on {dlq}",
            lambda: len(pills_dead_lettered()) >= dead_letters,
            60,
        )
        counted_at_ms = int(time.time() * 1000)
        assert sorted(pills_dead_lettered()) == sorted(list(pill_keys) * len(groups))

        def measured_after_dead_letters() -> ProductHealth | None:
            health = client.product_health(SOURCE)
            return health if health.measured_at_ms > counted_at_ms else None

        health = _eventually(
            "a round after the dead letters", measured_after_dead_letters, 3 * INTERVAL + 15
        )
        minute_start = health.measured_at_ms - 60_000
        # The topics are quiet: the test counts what the monitor counted, record by record.
        records = len(topics.records(topic, minute_start))
        dead = len(topics.records(dlq, minute_start))
        assert dead >= dead_letters  # more only if a reader dead-lettered an older record
        assert records >= PILLS
        assert _figure(health, FigureName.RECORDS_PER_MINUTE).value == records  # type: ignore[union-attr]
        assert _figure(health, FigureName.DLQ_RECORDS_PER_MINUTE).value == dead  # type: ignore[union-attr]
        ratio = _figure(health, FigureName.DLQ_RATIO)
        assert ratio is not None
        assert ratio.value == dead / records
        assert ratio.slo == MAX_DLQ_RATIO
        assert ratio.value > MAX_DLQ_RATIO
        assert ratio.status == Status.BREACHED
        assert ratio.reason.startswith(f"{dead} dead letters / {records} records")
        assert health.status == Status.BREACHED

        # 3. The simulator resumed; the revenue processor paused: its lag grows, reported.
        os.killpg(simulator, signal.SIGCONT)
        processor = _child_pid(supervisor_log, PAUSED_PROCESSOR)
        os.killpg(processor, signal.SIGSTOP)
        paused_at_ms = int(time.time() * 1000)

        def lag_of(health: ProductHealth) -> Figure | None:
            return _figure(health, FigureName.LAG_SECONDS, rekey_group)

        def two_lagging_rounds() -> list[ProductHealth] | None:
            rounds = [
                h
                for h in client.product_health_history(SOURCE, minutes=2)
                if h.measured_at_ms > paused_at_ms + 1000
                and (lag := lag_of(h)) is not None
                and lag.value is not None
                and lag.value > 0
            ]
            return rounds[:2] if len(rounds) >= 2 else None

        first, second = _eventually(
            f"two rounds with {rekey_group} lagging", two_lagging_rounds, 4 * INTERVAL + 15
        )
        os.killpg(processor, signal.SIGCONT)
        first_lag, second_lag = lag_of(first), lag_of(second)
        assert first_lag is not None
        assert second_lag is not None
        assert first_lag.value is not None
        assert second_lag.value is not None
        # Its committed offsets did not move: the lag grew by exactly the time between rounds.
        assert second_lag.value - first_lag.value == pytest.approx(
            (second.measured_at_ms - first.measured_at_ms) / 1000, abs=0.01
        )
        assert second_lag.value > first_lag.value
        behind = _figure(second, FigureName.LAG_RECORDS, rekey_group)
        assert behind is not None
        assert behind.value is not None
        assert behind.value > 0

        # Everything back: freshness recovered (alert), the dead letters' minute passed, ok.
        recovered = _eventually(
            f"{SOURCE} ok again",
            _health_when(client, SOURCE, lambda h: h.status == Status.OK),
            90,
        )
        assert recovered.upstream_breached == ()
        alerts = read_alerts(bootstrap, settings.alerts_topic)
        mine = [(a.kind, a.figure) for a in alerts if a.product == SOURCE and a.subject is None]
        assert ("recovery", FigureName.FRESHNESS_SECONDS) in mine
        assert ("breach", FigureName.DLQ_RATIO) in mine
        assert ("recovery", FigureName.DLQ_RATIO) in mine
        for product in DOWNSTREAM:
            _eventually(
                f"{product} no longer shows {SOURCE} upstream breached",
                _health_when(client, product, lambda h: SOURCE not in h.upstream_breached),
                2 * INTERVAL + 15,
            )

        # The whole mesh is back: no product breached in one round (degraded is allowed: the
        # rest of the suite may starve a processor of CPU for a while).
        def all_well() -> dict[str, ProductHealth] | None:
            every = client.all_product_health()
            well = all(h.status != Status.BREACHED for h in every.values())
            return every if well else None

        everything = _eventually("no product breached in one round", all_well, 4 * INTERVAL + 45)
        assert sorted(everything) == sorted(p.name for p in load_descriptors(ROOT / "domains"))
        assert everything[SOURCE].status == Status.OK
        assert process_running(simulator)
        assert process_running(processor)
    finally:
        topics.close()
