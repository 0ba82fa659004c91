"""`mesh up --secure` on a 3-node SASL cluster: every topic the mesh created has RF 3 and
min.insync.replicas 2, a broker SIGKILLed mid-stream loses no acknowledged record (checked
record by record), all three analytics products still equal a recomputation from the inputs
in Kafka, `payments` cannot write the orders topic, the registry and the monitor (each its own
user) cannot either but serve a sample and publish health, and no password reaches the output
or a log.

The cluster is started first with `mesh broker start` so `mesh up --secure` reuses it (and it
outlives `mesh up` for the loss check); teardown Ctrl-Cs `mesh up` and stops the cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource

from mesh_stream.broker import local_cluster
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.health import ProductHealth
from mesh_stream.kafka import KafkaConnection, make_admin, make_consumer
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from mesh_stream.up.registry_access import registry_credentials
from tests.integration.recompute import EXPECTED, Inputs, Sent
from tests.integration.test_acl_ownership import produce
from tests.integration.test_up_local import free_port, processes_with

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
MESH = [sys.executable, "-m", "mesh_stream.cli.main"]
DOMAINS = "analytics,customers,orders,payments,shipping"
ORDERS = "orders.order-placed.v1"
REVENUE = "analytics.revenue-by-region"


def wait_for(predicate: Any, timeout: float, what: str | Callable[[], str]) -> None:
    """Wait for ``predicate``; ``what`` (or what it returns, made at the deadline) says why not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(what() if callable(what) else what)
        time.sleep(1.0)


#: What a broker's death leaves for a moment: librdkafka destroys the dead broker's handle
#: under a pending call, a partition's new leader has not caught up its high watermark, and
#: metadata still names the dead broker (or no one) as a partition's leader (verify87:
#: NOT_LEADER_FOR_PARTITION 12 s after the kill).
_PASSING = (
    KafkaError._DESTROY_BROKER,
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
)


def records(conn: KafkaConnection, topic: str) -> list[Any]:
    """Every record now in ``topic`` (all partitions, up to their end offsets), asked again
    while the cluster still settles after a broker's death (:data:`_PASSING`)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return _records(conn, topic)
        except KafkaException as exc:
            if exc.args[0].code() not in _PASSING or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _records(conn: KafkaConnection, topic: str) -> list[Any]:
    consumer = make_consumer(
        conn, {"group.id": f"up-secure-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = (low, high)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        got: list[Any] = []
        remaining = sum(high - low for low, high in ends.values())
        deadline = time.monotonic() + 120
        while remaining > 0 and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                assert message.error() is None, message.error()
                if message.offset() < ends[message.partition()][1]:
                    got.append(message)
                    remaining -= 1
        assert remaining == 0, f"{topic}: {remaining} records not read back"
        return got
    finally:
        consumer.close()


def read_inputs(
    conn: KafkaConnection, decoder: FramedAvroDecoder, sources: list[DataProduct]
) -> Inputs:
    """Every source record now in Kafka, decoded, with its Kafka timestamp (its arrival)."""
    inputs = Inputs()
    for product in sources:
        for message in records(conn, product.topic):
            where = f"{product.topic}[{message.partition()}]@{message.offset()}"
            value = decoder.decode(message.value(), where=where)
            inputs.sent.append(Sent(product.name, value, message.timestamp()[1]))
    return inputs


def latest_outputs(
    conn: KafkaConnection, decoder: FramedAvroDecoder, product: DataProduct
) -> dict[str, Any]:
    """The newest record per key of a derived product (what a compacted topic converges to)."""
    assert product.key_field is not None
    latest: dict[str, Any] = {}
    for message in records(conn, product.topic):
        where = f"{product.topic}[{message.partition()}]@{message.offset()}"
        record = decoder.decode(message.value(), where=where)
        latest[record[product.key_field]] = record
    return latest


class Mesh:
    """`mesh up --secure` as a subprocess, its output collected by a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*MESH, "up", "--secure", "--brokers", "3", "--no-view", "--rate", "20",
             "--seed", "7", "--root", str(ROOT)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def interrupt(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            return self.process.wait(180)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(10)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / f"mesh-secure-{uuid.uuid4().hex[:8]}"
    yield folder
    cluster = local_cluster(MeshSettings(data_dir=folder))
    # A quorum stopped all at once sometimes leaves a node in controlled shutdown for good;
    # its data is thrown away, so it gets 10 s, not 30, before SIGKILL.
    cluster.stop(timeout=10)
    assert not cluster.status().running
    assert processes_with(f"MESH_DATA_DIR={folder}") == []


def test_secure_mesh_on_three_nodes_survives_a_killed_broker_with_exact_outputs(
    data_dir: Path,
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    if "MESH_CACHE_DIR" in os.environ:
        base["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]
    registry_url = f"http://127.0.0.1:{free_port()}"
    env = base | {
        "MESH_DATA_DIR": str(data_dir),
        "MESH_BROKER_HEAP": "256m",
        "MESH_BROKER_PORT": "0",
        "MESH_REGISTRY_URL": registry_url,
        "MESH_MONITOR_INTERVAL_SECONDS": "5",
    }
    started = subprocess.run(
        [*MESH, "broker", "start", "--brokers", "3", "--port", "0", "--security", "sasl",
         "--domains", DOMAINS],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cluster = local_cluster(MeshSettings(data_dir=data_dir))
    passwords: dict[str, str] = json.loads((data_dir / "broker" / "credentials.json").read_text())[
        "users"
    ]
    admin = cluster.connection("admin")
    products = load_descriptors(ROOT / "domains")
    by_name = {p.name: p for p in products}
    revenue = by_name[REVENUE]
    sources = [p for p in products if p.kind.value == "source-aligned"]

    mesh = Mesh(env)
    try:
        wait_for(lambda: "started 4 simulators" in mesh.output, 300, lambda: mesh.output)
        assert "Kafka: reusing the local broker" in mesh.output
        assert re.search(r"ACLs: \d+ planned, \d+ created", mesh.output), mesh.output
        # The processors aggregate: revenue records appear, then one broker is SIGKILLed.
        wait_for(lambda: records(admin, revenue.topic), 240, lambda: f"no revenue\n{mesh.output}")
        victim = cluster.status().nodes[-1]
        assert victim.pid is not None
        orders_at_kill = len(records(admin, ORDERS))
        os.kill(victim.pid, signal.SIGKILL)
        # Simulators publish and processors aggregate on two brokers for a while (the
        # exactness below covers all of it); 12 s is several of the processors' commits.
        # The killed broker's partitions wait for new leaders (its session, some 9 s, must
        # lapse first), so the first orders after the kill may take longer than that.
        time.sleep(12)
        wait_for(
            lambda: len(records(admin, ORDERS)) > orders_at_kill,
            60,
            lambda: f"nothing published in 72 s after the kill\n{mesh.output}",
        )
        # Stop the simulators (frozen, not restarted); the processors drain.
        simulators = dict(
            re.findall(
                r" (\S+-simulator): started simulator \(pid (\d+)\)",
                (data_dir / "logs" / "supervisor.log").read_text(),
            )
        )
        assert len(simulators) == 4, simulators
        for pid in simulators.values():
            os.kill(int(pid), signal.SIGSTOP)
        try:
            time.sleep(5)  # what was in flight is acknowledged or failed by now
            token = registry_credentials(
                data_dir / "registry" / "credentials.json", ["admin", "monitor"]
            )
            with RegistryClient(registry_url, principal="admin", token=token["admin"]) as registry:
                decoder = FramedAvroDecoder(registry.get_schema)
                inputs = read_inputs(admin, decoder, sources)
                want = {name: compute(inputs) for name, compute in EXPECTED.items()}
                assert all(want.values()), {name: len(w) for name, w in want.items()}
                got: dict[str, dict[str, Any]] = {}

                def exact() -> bool:
                    for name in want:
                        got[name] = latest_outputs(admin, decoder, by_name[name])
                    return got == want

                def differences() -> str:
                    """Per output: keys read vs expected, and a few keys whose values differ."""
                    parts = []
                    for name, expected in want.items():
                        have = got.get(name, {})
                        wrong = sorted(k for k in expected if have.get(k) != expected[k])
                        parts.append(
                            f"{name} {len(have)} keys vs {len(expected)}, {len(wrong)} differ"
                            + (
                                f" (e.g. {wrong[0]}: {have.get(wrong[0])} vs {expected[wrong[0]]})"
                                if wrong
                                else ""
                            )
                        )
                    return (
                        "outputs differ from the recomputation: "
                        + "; ".join(parts)
                        + (f"\n{mesh.output[-4000:]}")
                    )

                wait_for(exact, 180, differences)
        finally:
            for pid in simulators.values():
                os.kill(int(pid), signal.SIGCONT)

        # Every topic the mesh created: 3 replicas, min.insync.replicas 2.
        client = make_admin(admin, {"log_level": 0})
        topics = [t for t in client.list_topics(timeout=30).topics if not t.startswith("__")]
        assert {p.topic for p in products} <= set(topics)
        assert "_mesh_registry" in topics
        assert [t for t in topics if t.startswith("mesh-analytics.")], topics
        for topic in topics:
            described = client.list_topics(topic, timeout=30).topics[topic]
            counts = {len(p.replicas) for p in described.partitions.values()}
            resource = ConfigResource("topic", topic)
            config = client.describe_configs([resource])[resource].result(30)
            assert (counts, config["min.insync.replicas"].value) == ({3}, "2"), topic

        # Ownership at the broker: payments cannot write the orders topic, nor can the
        # registry or the monitor, which run as their own users ...
        for user in ("payments", "registry", "monitor"):
            error = produce(cluster.connection(user), ORDERS, b"forged")
            assert error is not None, user
            assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (user, error)
        # ... and still do their work: the registry reads a product's sample, the monitor
        # measures and publishes health (with no authorization error in its log).
        sample = httpx.get(
            f"{registry_url}/products/orders.order-placed/sample",
            auth=("admin", token["admin"]),
            timeout=30,
        )
        assert sample.status_code == 200, sample.text
        assert sample.json()["records"], sample.text

        def measured_orders() -> bool:
            """A health record of the orders product with its freshness (the newest record
            read) and a processor group's lag (its committed offsets described)."""
            for message in records(admin, "_mesh_product_health"):
                health = ProductHealth.model_validate_json(message.value())
                if health.product != "orders.order-placed":
                    continue
                values = {(f.name, f.subject): f.value for f in health.figures}
                lags = [v for (n, s), v in values.items() if n == "lag_records" and s]
                if values.get(("freshness_seconds", None)) is not None and any(
                    v is not None for v in lags
                ):
                    return True
            return False

        wait_for(
            measured_orders,
            120,
            lambda: (data_dir / "logs" / "monitor.log").read_text(errors="replace")[-3000:],
        )
        monitor_log = (data_dir / "logs" / "monitor.log").read_text(errors="replace")
        assert "AUTHORIZATION" not in monitor_log.upper(), monitor_log[-3000:]
        # The monitor holds its own registry token, not admin's, and it writes nothing there.
        environ: list[bytes] = []

        def monitor_environment() -> bool:
            """The environment of the monitor now running (the supervisor may have restarted
            it, e.g. while a broker was down)."""
            pids = re.findall(
                r" monitor: (?:started monitor \(|restarted \(restart #\d+, )pid (\d+)\)",
                (data_dir / "logs" / "supervisor.log").read_text(),
            )
            try:
                environ[:] = Path(f"/proc/{pids[-1]}/environ").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return False  # between a crash and its restart
            return True

        wait_for(monitor_environment, 60, "no monitor process running")
        assert b"MESH_REGISTRY_PRINCIPAL=monitor" in environ
        assert f"MESH_REGISTRY_TOKEN={token['monitor']}".encode() in environ
        assert f"MESH_REGISTRY_TOKEN={token['admin']}".encode() not in environ
        forged = httpx.delete(
            f"{registry_url}/products/orders.order-placed", auth=("monitor", token["monitor"])
        )
        assert forged.status_code == 403, forged.text
    finally:
        assert mesh.interrupt() == 0, mesh.output
    output = mesh.output
    assert "mesh up: everything stopped" in output
    assert "stopping: Kafka" not in output  # the reused cluster keeps running
    # The live view read the secured cluster as admin: a decoded revenue value on its last frame.
    assert re.search(r"(?m)^ ?analytics\.revenue-by-region +│ window_id=", output), output
    # ... and, with one broker dead, still the processors' lag (groups listed before the kill
    # are remembered when listing every broker's groups fails).
    last_frame = output[output.rindex("Processor lag") :]
    assert re.search(r"(?m)^ ?mesh-analytics\.revenue-by-region", last_frame), last_frame
    assert "consumer groups unknown" not in last_frame, last_frame

    # No acknowledged record lost, record by record. Each simulator exits 0 and prints its
    # counts only after flush() confirmed every record it published (a failed delivery raises
    # instead); only the simulators write these topics (the forged record was refused); and
    # their producers are idempotent, so each publish() call is written at most once (the
    # story's own duplicates are two calls). The records in Kafka are therefore a sub-multiset
    # of the acknowledged publishes, and as many records as acknowledged means every one of
    # them is there, exactly once.
    published: Counter[str] = Counter()
    summaries = 0
    for log in (data_dir / "logs").glob("*-simulator.log"):
        for summary in re.findall(r"simulator: published (.+)", log.read_text()):
            summaries += 1
            for name, count in re.findall(r"([\w.-]+)=(\d+)", summary):
                published[name] += int(count)
    assert summaries == 4, f"{summaries} simulator summaries (a simulator failed or restarted)"
    assert set(published) >= {"orders.order-placed", "payments.payment-authorized"}, published
    for product in sources:
        in_kafka = len(records(admin, product.topic))
        assert in_kafka == published[product.name], (product.name, in_kafka, published)
    assert b"forged" not in {message.value() for message in records(admin, ORDERS)}

    # No password in the output or any log.
    texts = [output, *(f.read_text(errors="replace") for f in (data_dir / "logs").glob("*.log"))]
    leaked = [user for user, password in passwords.items() if any(password in t for t in texts)]
    assert leaked == []
