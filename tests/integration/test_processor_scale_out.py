"""Two workers of one processor share the work, and one survives losing the other.

The revenue processor runs on private 3-partition copies of its products
(:mod:`tests.integration.workers.scale_out_revenue`). A seeded backlog of orders (five regions,
six 1-minute windows, some orders published twice) is waiting when worker A starts; while A is
busy, worker B (its own RocksDB dir) joins, so both consumer groups (the re-key stage's
``<app id>-rekey`` and faust's ``<app id>``) rebalance in the middle of a steady stream of
orders; once each group shows both workers owning partitions, A is killed with SIGKILL while
the stream goes on, and more orders follow. B must take over A's partitions (input, internal
topic and tables, restored from the changelogs) and the latest output record per window must
equal a plain recomputation from the published orders, duplicates counted once. Kafka
timestamps are the orders' ``placed_at``, so no order is late. B must then stop cleanly.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.dedup import position
from mesh_stream.processing.engine import Aggregation
from mesh_stream.processing.names import INTERNAL_TOPIC, sources_group
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.recompute import revenue_windows
from tests.integration.workers.scale_out_revenue import (
    LOSE_HANDOVER_VARIABLE,
    PARTITIONS,
    RUN_ID_VARIABLE,
    STALL_CHANGELOG_VARIABLE,
    STALL_PARTITION_VARIABLE,
    scale_out_spec,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
WORKER_MODULE = "tests.integration.workers.scale_out_revenue"
MINUTE = 60_000
#: How a worker stopped by StallWatch ends its line, and how the test marks its restart.
STALL_STOP = "stopping the worker so that a restart"
RESTARTED = "TEST: restarted after a stall"
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
WINDOWS = 6
BACKLOG = 3_000
AFTER_KILL = 2_000
RATE_PER_S = 1_500  # orders/s of the steady stream while workers join and die
DUPLICATE_EVERY = 10  # every 10th record re-publishes an order already published


class Orders:
    """A seeded order stream over REGIONS x WINDOWS; remembers everything it published."""

    def __init__(self, publisher: ProductPublisher, base_ms: int, seed: int) -> None:
        self.publisher = publisher
        self.base = base_ms
        self.rng = random.Random(seed)
        self.published: list[dict[str, Any]] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _next(self) -> dict[str, Any]:
        if self.published and len(self.published) % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:
            return self.rng.choice(self.published)  # a retrying service sends it again
        price = Decimal(self.rng.randint(100, 50_000)) / 100
        quantity = self.rng.randint(1, 3)
        return {
            "event_id": self._uuid(),
            "order_id": self._uuid(),
            "customer_id": f"cust-{self.rng.randrange(50):03d}",
            "region": self.rng.choice(REGIONS),
            "channel": "WEB",
            "currency": "EUR",
            "total_amount": price * quantity,
            "items": [{"sku": "sku-0001", "quantity": quantity, "unit_price": price}],
            "placed_at": self.base + self.rng.randrange(WINDOWS * MINUTE),
        }

    def publish(self, count: int) -> None:
        """``count`` records, keyed by order_id, each with Kafka timestamp = its placed_at."""
        for _ in range(count):
            order = self._next()
            self.publisher.publish(order, timestamp_ms=order["placed_at"])
            self.published.append(order)
        self.publisher.flush()

    def stream_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.stream_until(lambda: time.monotonic() >= until, seconds + 10, "streamed")

    def stream_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Publish RATE_PER_S orders/s (in 50 ms ticks) until ``done()``; fail after timeout."""
        started = time.monotonic()
        sent = 0
        while not done():
            elapsed = time.monotonic() - started
            assert elapsed < timeout, f"not {what} after {timeout:.0f} s"
            due = int((elapsed + 0.05) * RATE_PER_S)
            self.publish(due - sent)
            sent = due
            time.sleep(0.05)


def expected_windows(published: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The revenue product recomputed from the orders: each event_id once, none late."""
    return revenue_windows({order["event_id"]: order for order in published}.values())


class OutputReader:
    """The output product from the beginning; the latest record per window."""

    def __init__(self, bootstrap: str, registry: RegistryClient, output: DataProduct) -> None:
        self.decoder = FramedAvroDecoder(registry.get_schema)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"it-scale-out-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(output.topic, p, 0) for p in range(PARTITIONS)])
        self.latest: dict[str, dict[str, Any]] = {}
        self.received = 0

    def poll(self, seconds: float = 0.2) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.consumer.consume(num_messages=5_000, timeout=0.1):
                assert message.error() is None, message.error()
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                record = self.decoder.decode(message.value(), where=where)
                assert (message.key() or b"").decode() == record["window_id"], where
                self.latest[record["window_id"]] = record
                self.received += 1

    def wait_for(
        self,
        expected: dict[str, dict[str, Any]],
        timeout: float,
        meanwhile: Callable[[], object] = lambda: None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.latest != expected:
            self.poll()
            meanwhile()
        wrong = {
            key: {"expected": want, "got": self.latest.get(key)}
            for key, want in expected.items()
            if self.latest.get(key) != want
        }
        extra = sorted(set(self.latest) - set(expected))
        some = dict(sorted(wrong.items())[:5])
        assert not wrong, f"{len(wrong)} of {len(expected)} windows differ, e.g. {some}"
        assert not extra, f"windows that no order was placed in: {extra}"

    def close(self) -> None:
        self.consumer.close()


class Worker:
    """One revenue worker process with its own data dir; its log tells when it is ready."""

    def __init__(self, name: str, env: dict[str, str], tmp_path: Path) -> None:
        self.name = name
        self.data_dir = tmp_path / f"worker-{name}"
        self.env = {**env, "MESH_DATA_DIR": str(self.data_dir)}
        self.log_path = tmp_path / f"worker-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "worker", "-l", "info"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """True once faust said Ready; fails the test if the worker exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"worker {self.name} exited {self.process.returncode}:\n{self.tail()}")
        return b"[^Worker]: Ready" in self.log_path.read_bytes()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def restart_if_stalled(self) -> bool:
        """Start the worker again if it stopped on a stall (:class:`StallWatch`'s line), as
        `mesh up`'s supervisor (or an orchestrator) does; any other exit is left for the test
        to see. True if it was restarted."""
        if self.process is None or self.process.poll() in (None, 0):
            return False
        log = self.log_path.read_text(errors="replace")
        if STALL_STOP not in log.split(RESTARTED)[-1]:
            return False
        with self.log_path.open("a") as out:
            out.write(f"{RESTARTED} (exit status {self.process.returncode})\n")
        self.restarts += 1
        self.start()
        return True

    def stop_cleanly(self) -> None:
        """SIGTERM, as an orchestrator stops a worker: it must commit and exit with status 0."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0, self.tail()

    def start_until_ready(self, timeout_s: float = 60.0) -> None:
        self.start()
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            assert time.monotonic() < deadline, f"{self.name} not ready after 60 s:\n{self.tail()}"
            time.sleep(0.2)


def where_orders_went(
    bootstrap: str,
    spec: ProcessorSpec,
    published: list[dict[str, Any]],
    expected: dict[str, dict[str, Any]],
    latest: dict[str, dict[str, Any]],
    history_file: Path | None = None,
) -> str:
    """For a failed run: each short window's orders looked up on the internal topic, and both
    groups' committed offsets. An order missing there was never forwarded (the re-key stage
    committed past it); one present was forwarded and not counted (the aggregate side)."""
    internal = f"{spec.app_id}-{INTERNAL_TOPIC}"
    records = _read_all(bootstrap, internal)
    forwarded: Counter[str] = Counter()  # event id -> internal records holding it
    for message in records:
        partition, offset = message.partition() or 0, message.offset() or 0
        value, key = message.value() or b"", message.key()
        for _key, envelopes in Aggregation.envelopes(value, key, partition, offset):
            forwarded.update(envelope.fields["event_id"] for envelope in envelopes)
    lines = []
    by_id = {order["event_id"]: order for order in published}
    if history_file is not None:
        short = [key for key, want in expected.items() if latest.get(key) != want]
        history_file.write_text(aggregate_history(bootstrap, spec, short, records))
        lines.append(f"each short window's internal records and changelogs: {history_file}")
    for window_id, want in sorted(expected.items()):
        got = latest.get(window_id)
        if got == want:
            continue
        start = want["window_start"]
        ids = [
            event_id
            for event_id, order in by_id.items()
            if order["region"] == want["region"] and start <= order["placed_at"] < start + MINUTE
        ]
        never = [event_id for event_id in ids if event_id not in forwarded]
        twice = sum(1 for event_id in ids if forwarded[event_id] > 1)
        lines.append(
            f"{window_id}: {len(ids)} orders, output counts "
            f"{got['order_count'] if got else None}; never forwarded: {never or 'none'}; "
            f"forwarded more than once: {twice}"
        )
    for group, topic in (
        (sources_group(spec.app_id), spec.inputs[0].topic),
        (spec.app_id, internal),
    ):
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            committed = probe.committed(
                [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
            )
            lines.append(f"committed by {group}: {[(t.partition, t.offset) for t in committed]}")
        finally:
            probe.close()
    return "\n".join(lines)


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` (PARTITIONS partitions), in partition and offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-lookup-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found: list[Any] = []
    try:
        while batch := consumer.consume(num_messages=5_000, timeout=3.0):
            found.extend(message for message in batch if message.error() is None)
    finally:
        consumer.close()
    return sorted(found, key=lambda m: (m.partition(), m.offset()))


def aggregate_history(
    bootstrap: str, spec: ProcessorSpec, keys: list[str], internal_records: list[Any]
) -> str:
    """For each state key in ``keys``: its events in ``internal_records`` (the internal topic,
    first deliveries marked), then each changelog record of its state and of its seen slots,
    with their timestamps, so a loss can be placed against the workers' logs."""
    events: dict[str, list[tuple[int, int, int, str, int]]] = {key: [] for key in keys}
    for message in internal_records:
        partition, offset = message.partition() or 0, message.offset() or 0
        stamp = message.timestamp()[1]
        for key, envelopes in Aggregation.envelopes(
            message.value() or b"", message.key(), partition, offset
        ):
            if key in events:
                events[key].extend(
                    (e.partition, e.offset, e.index, str(e.fields["event_id"]), stamp)
                    for e in envelopes
                )
    states = _read_all(bootstrap, f"{spec.app_id}-state-changelog")
    seens = _read_all(bootstrap, f"{spec.app_id}-seen-changelog")
    out = [f"changelog records: {len(states)} of states, {len(seens)} of seen slots"]
    for key in keys:
        out.append(f"=== {key}")
        first: dict[str, tuple[int, int, int]] = {}
        for partition, offset, index, event_id, stamp in events[key]:
            mark = "first" if event_id not in first else f"dup of {first[event_id]}"
            first.setdefault(event_id, (partition, offset, index))
            out.append(f"  internal {partition}:{offset}:{index} ts={stamp} {event_id} {mark}")
        out.append(f"  distinct events: {len(first)}")
        for message in states:
            if json.loads(message.key() or b"null") != key:
                continue
            value = json.loads(message.value()) if message.value() else None
            summary = (
                None
                if value is None
                else {
                    "count": value.get("value", {}).get("order_count"),
                    "applied": value.get("_applied"),
                    "seen_in": value.get("_seen_in"),
                    "open": value.get("_seen_open"),
                }
            )
            out.append(
                f"  state @{message.partition()}:{message.offset()} "
                f"ts={message.timestamp()[1]} {summary}"
            )
        for message in seens:
            name = str(json.loads(message.key() or b"null"))
            if not name.startswith(key + "#"):
                continue
            ids = json.loads(message.value()) if message.value() else {}
            wrong = {i: at for i, at in ids.items() if i in first and at != position(*first[i])}
            out.append(
                f"  seen {name} @{message.partition()}:{message.offset()} "
                f"ts={message.timestamp()[1]} ids={len(ids)} not-first-position={wrong}"
            )
    return "\n".join(out)


def members_with_partitions(admin: AdminClient, group: str) -> int:
    """How many members of ``group`` own at least one partition now."""
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return sum(1 for member in description.members if member.assignment.topic_partitions)


@pytest.fixture
def settings(kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path) -> MeshSettings:
    return MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="admin",
        registry_token=SecretStr(registry.admin_token),
        data_dir=tmp_path,
    )


@pytest.fixture
def workers(settings: MeshSettings, tmp_path: Path) -> Iterator[tuple[Worker, Worker, str]]:
    """Workers A and B of one run (not started); killed at the end if still running."""
    run_id = uuid.uuid4().hex[:8]
    token = settings.registry_token
    assert token is not None
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "MESH_REGISTRY_URL": settings.registry_url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": token.get_secret_value(),
        RUN_ID_VARIABLE: run_id,
    }
    a, b = Worker("a", env, tmp_path), Worker("b", env, tmp_path)
    try:
        yield a, b, run_id
    finally:
        for worker in (a, b):
            if worker.process is not None and worker.running():
                worker.process.kill()
                worker.process.wait(10)


def test_two_workers_share_the_work_and_one_survives_the_other_s_kill(
    settings: MeshSettings, workers: tuple[Worker, Worker, str], tmp_path: Path
) -> None:
    a, b, run_id = workers
    for worker in (a, b):
        worker.env["MESH_PROCESSOR_STALL_SECONDS"] = "30"  # within the final wait of 180 s
    bootstrap = settings.resolved_bootstrap_servers()
    spec = scale_out_spec(settings, run_id)
    source = spec.inputs[0]
    registry = RegistryClient.from_settings(settings)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    groups = (sources_group(spec.app_id), spec.app_id)
    now = int(time.time() * 1000)
    base = now - now % MINUTE - 15 * MINUTE  # recent, so retention keeps every order
    publisher = ProductPublisher(source, bootstrap_servers=bootstrap, registry=registry, root=REPO)
    orders = Orders(publisher, base, seed=20261121)
    reader = OutputReader(bootstrap, registry, spec.output)
    expected: dict[str, dict[str, Any]] = {}  # the windows, once every order is published
    killed_at = 0.0

    def both_own_partitions() -> bool:
        return b.ready() and all(members_with_partitions(admin, g) == 2 for g in groups)

    try:
        # 1. a backlog; worker A alone starts on it
        orders.publish(BACKLOG)
        a.start()
        deadline = time.monotonic() + 60
        while not (a.ready() and reader.received):
            assert time.monotonic() < deadline, f"A not busy after 60 s:\n{a.tail()}"
            reader.poll(0.2)

        # 2. B joins while A is busy with a steady stream: both groups rebalance mid-stream
        b.start()
        orders.stream_until(both_own_partitions, 60, "both workers owning partitions")

        # 3. A is killed in the middle of the stream, which goes on; then more orders
        orders.stream_for(2.0)
        assert a.process is not None
        assert a.running(), a.tail()
        killed_at = time.time()
        a.process.kill()
        a.process.wait(10)
        orders.stream_for(2.0)
        orders.publish(AFTER_KILL)

        # 4. B alone brings every window to the exact value; then it stops cleanly
        expected = expected_windows(orders.published)
        assert len(expected) == len(REGIONS) * WINDOWS
        distinct = len({order["event_id"] for order in orders.published})
        assert distinct < len(orders.published) - AFTER_KILL // DUPLICATE_EVERY
        # (B takes A's input partitions once A's session times out and both groups rebalance;
        # on a loaded 2-core machine that and the backlog took more than a minute)
        # A stall (StallWatch, 30 s here) stops B; restarted as `mesh up` would, it recovers
        # and reads again, and the windows must still come out exact.
        reader.wait_for(expected, timeout=180, meanwhile=b.restart_if_stalled)
        assert b.running(), b.tail()
        b.stop_cleanly()
    except AssertionError as failure:
        try:
            lookup = where_orders_went(
                bootstrap,
                spec,
                orders.published,
                expected,
                reader.latest,
                tmp_path / "short-windows.txt",
            )
        except Exception as exc:  # the lookup must not hide the failure it explains
            lookup = f"could not look the orders up: {exc!r}"
        raise AssertionError(
            f"{failure}\n\nA killed at {killed_at:.3f}"
            f"\n\n--- where the short windows' orders are ---\n{lookup}"
            f"\n\n--- worker A ---\n{a.tail()}\n\n--- worker B (restarted after a stall "
            f"{b.restarts} time(s)) ---\n{b.tail()}"
        ) from failure
    finally:
        publisher.close()
        reader.close()
        registry.close()


@pytest.mark.parametrize(
    "lost_offset",
    # a 3 s stream in 20 ms re-key batches writes ~150 records a partition (it streams on
    # until offset 41 is there); offset 0 is the first record a new group reads, with no
    # committed offset anywhere yet
    [40, 0],
    ids=["within-the-stream", "first-of-a-new-group"],
)
def test_a_record_faust_loses_on_its_way_to_the_stream_is_read_again(
    settings: MeshSettings, workers: tuple[Worker, Worker, str], lost_offset: int
) -> None:
    """faust's consumer can hand a record over and lose it before the stream takes it (its
    flow control empties the streams' queues when a worker starts on new partitions); the
    aggregate notices the hole in the offsets and reads the partition again from it. The
    worker loses one internal record per partition here, three times over
    (``LOSE_HANDOVER_VARIABLE``), the way faust loses them; every window must still be exact,
    and no commit may pass a lost record before the stream has it again. A partition's very
    first record counts too: where it starts is asked of the broker."""
    worker, _, run_id = workers
    bootstrap = settings.resolved_bootstrap_servers()
    spec = scale_out_spec(settings, run_id)
    internal = f"{spec.app_id}-{INTERNAL_TOPIC}"
    # each lost three times: read again, lost again, until the fourth handover
    worker.env[LOSE_HANDOVER_VARIABLE] = ",".join(
        f"{partition}:{lost_offset}:3" for partition in range(PARTITIONS)
    )
    registry = RegistryClient.from_settings(settings)
    now = int(time.time() * 1000)
    base = now - now % MINUTE - 15 * MINUTE
    publisher = ProductPublisher(
        spec.inputs[0], bootstrap_servers=bootstrap, registry=registry, root=REPO
    )
    orders = Orders(publisher, base, seed=20261204)
    reader = OutputReader(bootstrap, registry, spec.output)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{run_id}"})

    def past_the_lost_offset() -> bool:
        """Whether every internal partition holds the record after the lost one: a loaded
        machine's re-key stage writes fewer, larger batches in the same time."""
        return all(
            probe.get_watermark_offsets(TopicPartition(internal, p), timeout=10)[1]
            > lost_offset + 1
            for p in range(PARTITIONS)
        )

    try:
        worker.start_until_ready()
        until = time.monotonic() + 3.0
        orders.stream_until(
            lambda: time.monotonic() >= until and past_the_lost_offset(),
            120,
            f"past offset {lost_offset + 1} of every internal partition",
        )
        orders.publish(AFTER_KILL)
        reader.wait_for(expected_windows(orders.published), timeout=120)
        log = worker.log_path.read_text(errors="replace")
        for partition in range(PARTITIONS):
            said = (
                f"{internal}[{partition}]: faust's consumer handed over offset "
                f"{lost_offset + 1} while {lost_offset} was expected"
            )
            assert said in log, f"no re-read of {internal}[{partition}]:\n{worker.tail()}"
            assert f"{internal}[{partition}]: read again from offset {lost_offset}" in log
        assert "TEST: losing" in log  # the commit watch was on ...
        assert "TEST: " + internal not in log, worker.tail()  # ... and saw no commit pass
        worker.stop_cleanly()
    finally:
        probe.close()
        publisher.close()
        reader.close()
        registry.close()


def test_a_partition_whose_records_never_reach_the_stream_stops_the_worker(
    settings: MeshSettings, workers: tuple[Worker, Worker, str]
) -> None:
    """If faust's consumer stops handing a partition's records over (seen once after a
    takeover under load), the worker does not sit there: once the records have waited
    ``processor_stall_seconds`` it stops with one line naming the partition and offsets, and
    commits nothing past them, so a restart reads them again. Here the worker loses every
    record of internal partition 1 (``STALL_PARTITION_VARIABLE``)."""
    worker, _, run_id = workers
    bootstrap = settings.resolved_bootstrap_servers()
    spec = scale_out_spec(settings, run_id)
    internal = f"{spec.app_id}-{INTERNAL_TOPIC}"
    worker.env[STALL_PARTITION_VARIABLE] = "1"
    worker.env["MESH_PROCESSOR_STALL_SECONDS"] = "10"
    registry = RegistryClient.from_settings(settings)
    publisher = ProductPublisher(
        spec.inputs[0], bootstrap_servers=bootstrap, registry=registry, root=REPO
    )
    now = int(time.time() * 1000)
    orders = Orders(publisher, now - now % MINUTE - 15 * MINUTE, seed=20261205)
    try:
        worker.start_until_ready()
        orders.stream_for(3.0)
        assert worker.process is not None
        status = worker.process.wait(90)  # 10 s of stall, checked every 5 s, then the stop
        assert status != 0, worker.tail()
        log = worker.log_path.read_text(errors="replace")
        said = f"{internal}[1]: "
        stalled = [line for line in log.splitlines() if said in line and "record(s) wait" in line]
        assert stalled, worker.tail()
        assert "from offset 0 and none reached the stream for 1" in stalled[0], stalled[0]
        # what faust's and aiokafka's consumers held of it: fetched, so neither paused it
        assert re.search(
            r"faust: active, read offset -?\d+; aiokafka: position [1-9]\d*", stalled[0]
        ), stalled[0]
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": spec.app_id})
        try:
            [committed] = probe.committed([TopicPartition(internal, 1)], timeout=10)
        finally:
            probe.close()
        assert committed.offset < 0, f"{internal}[1] committed at {committed.offset}"
    finally:
        publisher.close()
        registry.close()


def test_a_state_recovery_that_reads_nothing_stops_the_worker(
    settings: MeshSettings, workers: tuple[Worker, Worker, str]
) -> None:
    """If the recovery of a taken-over partition's state never receives a changelog record
    (seen after a takeover under load: faust only warned, every 5 s, for minutes), the worker
    stops once ``processor_stall_seconds`` passed with records left, naming the changelog
    partition, and a restart recovers again. Worker A builds state; worker B, starting with
    none, loses every record of changelog partition 1 (``STALL_CHANGELOG_VARIABLE``), stops,
    and, restarted without that loss, brings every window to its exact value."""
    first, second, run_id = workers
    bootstrap = settings.resolved_bootstrap_servers()
    spec = scale_out_spec(settings, run_id)
    changelog = f"{spec.app_id}-state-changelog"  # written with the seen-changelog
    registry = RegistryClient.from_settings(settings)
    publisher = ProductPublisher(
        spec.inputs[0], bootstrap_servers=bootstrap, registry=registry, root=REPO
    )
    now = int(time.time() * 1000)
    orders = Orders(publisher, now - now % MINUTE - 15 * MINUTE, seed=20261206)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{run_id}"})
    reader = OutputReader(bootstrap, registry, spec.output)
    try:
        first.start_until_ready()
        orders.stream_for(3.0)
        deadline = time.monotonic() + 60
        while probe.get_watermark_offsets(TopicPartition(changelog, 1), timeout=10)[1] <= 0:
            assert time.monotonic() < deadline, f"no state written:\n{first.tail()}"
            time.sleep(0.5)
        first.stop_cleanly()
        second.env[STALL_CHANGELOG_VARIABLE] = "1"
        second.env["MESH_PROCESSOR_STALL_SECONDS"] = "10"
        second.start()
        assert second.process is not None
        status = second.process.wait(120)  # 10 s without a record, checked every 5 s
        assert status != 0, second.tail()
        log = second.log_path.read_text(errors="replace")
        stalled = [line for line in log.splitlines() if "the recovery of the state" in line]
        assert stalled, second.tail()
        # the first of its two changelog partitions 1 (state and seen events), by name
        assert re.search(
            rf"{re.escape(spec.app_id)}-seen-changelog\[1\]: the recovery of the state from its "
            r"changelog has [1-9]\d* record\(s\) left after offset -1 and read none for 1\d s "
            r"\(and 1 more changelog partition\(s\)\)",
            stalled[0],
        ), stalled[0]
        # faust fetched them (the test drops them after): active, and aiokafka moved past them
        assert re.search(
            r"faust: active, read offset -?\d+; aiokafka: position [1-9]\d*", stalled[0]
        ), stalled[0]
        # restarted (as `mesh up` does), it recovers the state A left and goes on, exact
        del second.env[STALL_CHANGELOG_VARIABLE]
        second.start_until_ready()
        orders.publish(AFTER_KILL)
        reader.wait_for(expected_windows(orders.published), timeout=120)
        second.stop_cleanly()
    finally:
        reader.close()
        probe.close()
        publisher.close()
        registry.close()
