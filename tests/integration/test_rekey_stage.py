"""A processor worker stops, rather than going on without what failed.

A revenue worker whose route raises on one order must stop (exit status not 0, the error in
its log) without committing the input offsets of that order's batch; a worker started again
without the bug must then count every order exactly once, including those forwarded before
the failure, and a clean stop must commit everything it read. A worker whose output records
Kafka refuses must stop too (faust alone would log a warning and go on), and so must a worker
whose re-key consumer is fenced out of its group (it could read nothing more). A worker that
meets a writer schema it has not seen while the registry is down waits for the registry,
commits nothing past that record, and then counts every order once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from pydantic import SecretStr

from mesh_stream.health import FigureName, ProductHealth, Status
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.monitor.measure import KafkaMeter, Target
from mesh_stream.monitor.service import judge_round
from mesh_stream.monitor.status import transitions
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.expiry import clock_key
from mesh_stream.processing.names import INTERNAL_TOPIC, sources_group
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.registry_process import TOKENS, RegistryProcess
from tests.integration.workers.failing_revenue import failing_spec

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
ORDERS = 40
FAILING = 25  # the order whose route raises
WORKER_MODULE = "tests.integration.workers.failing_revenue"


REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")


def _order(n: int, placed_at: int) -> dict[str, Any]:
    """Order ``n`` of the test, placed at ``placed_at``."""
    price = Decimal(1_000 + n % 9_000) / 100
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "customer_id": f"cust-{n % 500:05d}",
        "region": REGIONS[n % len(REGIONS)],
        "channel": "WEB",
        "currency": "EUR",
        "total_amount": price,
        "items": [{"sku": "sku-0001", "quantity": 1, "unit_price": price}],
        "placed_at": placed_at,
    }


def _order_of_3000_lines(n: int, placed_at: int) -> dict[str, Any]:
    """Order ``n`` with 3,000 lines: some 200 KB as the re-key stage forwards its lines."""
    order = _order(n, placed_at)
    order["items"] = [
        {"sku": f"sku-{i:04d}", "quantity": 1, "unit_price": Decimal("0.01")} for i in range(3_000)
    ]
    return order


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "worker", "-l", "info"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_until_exit(env: dict[str, str], log: Path, timeout: float = 120) -> tuple[int, str]:
    """Run a worker that is expected to stop by itself: its exit status and its log."""
    worker = start_worker(env, log)
    try:
        status = worker.wait(timeout)
    finally:
        if worker.poll() is None:
            worker.kill()
    return status, log.read_text(errors="replace")


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [position] = probe.committed([TopicPartition(topic, 0)], timeout=10)
        return position.offset  # negative when nothing was committed
    finally:
        probe.close()


def health_of_output(run: BenchRun, previous: ProductHealth | None = None) -> ProductHealth:
    """The output's health as the product monitor judges it now (after ``previous``), its
    processor's re-key group read as a consumer registered on the input."""
    source, output = run.spec.inputs[0], run.spec.output
    targets = [Target(source, (sources_group(run.spec.app_id),)), Target(output)]
    meter = KafkaMeter(KafkaConnection.from_settings(run.settings))
    try:
        readings = meter.read(targets, int(time.time() * 1000))
    finally:
        meter.close()
    latest = {output.name: previous} if previous is not None else {}
    healths = judge_round(targets, readings, latest, lambda _name: [])
    return next(health for health in healths if health.product == output.name)


def read_windows(
    bootstrap: str, registry: RegistryClient, topic: str, partitions: int, want: int
) -> dict[str, dict[str, Any]]:
    """Latest record per window, read until the windows count ``want`` orders (or 60 s)."""
    decoder = FramedAvroDecoder(registry.get_schema)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    record = decoder.decode(message.value())
                    latest[record["window_id"]] = record
            if sum(r["order_count"] for r in latest.values()) >= want:
                time.sleep(1)  # anything counted twice would arrive now
                for message in consumer.consume(1000, timeout=0.5):
                    record = decoder.decode(message.value())
                    latest[record["window_id"]] = record
                break
    finally:
        consumer.close()
    return latest


@dataclass(frozen=True)
class BenchRun:
    """Private copies of the revenue products, and the environment of a worker over them."""

    spec: ProcessorSpec
    settings: MeshSettings
    env: dict[str, str]


@pytest.fixture
def run(kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path) -> BenchRun:
    run_id = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="admin",
        registry_token=SecretStr(registry.admin_token),
        data_dir=tmp_path,
    )
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": registry.admin_token,
        "MESH_DATA_DIR": str(tmp_path),
        "MESH_BENCH_RUN_ID": run_id,
    }
    return BenchRun(failing_spec(settings, run_id), settings, env)


def publish(run: BenchRun, orders: list[dict[str, Any]], placed: int) -> None:
    with (
        RegistryClient.from_settings(run.settings) as client,
        ProductPublisher(
            run.spec.inputs[0],
            bootstrap_servers=run.settings.resolved_bootstrap_servers(),
            registry=client,
            root=REPO,
        ) as publisher,
    ):
        for order in orders:
            publisher.publish(order, timestamp_ms=placed)
        publisher.flush()


def test_a_failing_route_stops_the_worker_and_loses_no_order(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    spec, env = run.spec, run.env
    source, output = spec.inputs[0], spec.output
    placed = int(time.time() * 1000)
    orders = [_order(n, placed) for n in range(ORDERS)]
    publish(run, orders, placed)
    client = RegistryClient.from_settings(run.settings)
    log = tmp_path / "worker.log"
    group = sources_group(spec.app_id)
    try:
        # 1. the bug: the worker stops, says why, and commits nothing of the failed batch
        failing = {**env, "MESH_TEST_FAIL_ORDER": orders[FAILING]["order_id"]}
        status, text = run_until_exit(failing, log)
        assert status != 0, text[-3000:]
        assert f"route cannot handle order {orders[FAILING]['order_id']}" in text
        assert committed_offset(kafka.bootstrap_servers, group, source.topic) <= FAILING
        crashed = health_of_output(run)  # the product monitor shows the crash line
        assert crashed.status == Status.BREACHED, crashed
        assert crashed.reason.startswith(f"processor {output.name} crashed on {source.topic}[0]@")
        assert f"route cannot handle order {orders[FAILING]['order_id']}" in crashed.reason
        [breach] = transitions(None, crashed)  # an alert on the crash itself
        assert (breach.kind, breach.figure) == ("breach", FigureName.PROCESSOR_STOPPED)

        # 2. fixed: every order counted exactly once, none lost, none twice
        fixed = start_worker(env, log)
        try:
            windows = read_windows(
                kafka.bootstrap_servers, client, output.topic, output.partitions, ORDERS
            )
            expected_counts = Counter(order["region"] for order in orders)
            expected_gross: dict[str, Decimal] = {}
            for order in orders:
                region = order["region"]
                expected_gross[region] = expected_gross.get(region, Decimal(0)) + Decimal(
                    order["total_amount"]
                )
            assert {w["region"]: w["order_count"] for w in windows.values()} == expected_counts
            assert {w["region"]: w["gross_revenue"] for w in windows.values()} == expected_gross
            fixed.terminate()
            assert fixed.wait(60) == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if fixed.poll() is None:
                fixed.kill()
        # 3. the clean stop committed every input record it read, and the crash is over
        assert committed_offset(kafka.bootstrap_servers, group, source.topic) == ORDERS
        over = health_of_output(run, previous=crashed)
        assert "crashed on" not in over.reason
        [recovery] = transitions(crashed, over)
        assert (recovery.kind, recovery.figure) == ("recovery", FigureName.PROCESSOR_STOPPED)
    finally:
        client.close()


def windows_then_clean_stop(
    kafka: KafkaAddress, run: BenchRun, env: dict[str, str], log: Path, want: int
) -> dict[str, dict[str, Any]]:
    """Run a worker until its windows count ``want`` orders, then stop it, which must end
    cleanly (status 0) with the worker still running until then; its latest windows."""
    worker = start_worker(env, log)
    try:
        with RegistryClient.from_settings(run.settings) as client:
            output = run.spec.output
            windows = read_windows(
                kafka.bootstrap_servers, client, output.topic, output.partitions, want
            )
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
        worker.terminate()
        assert worker.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    return windows


def expect_windows(windows: dict[str, dict[str, Any]], orders: list[dict[str, Any]]) -> None:
    """Each region's window counts its orders once, and their gross."""
    expected_counts = Counter(order["region"] for order in orders)
    expected_gross: dict[str, Decimal] = {}
    for order in orders:
        region = order["region"]
        expected_gross[region] = expected_gross.get(region, Decimal(0)) + order["total_amount"]
    assert {w["region"]: w["order_count"] for w in windows.values()} == expected_counts
    assert {w["region"]: w["gross_revenue"] for w in windows.values()} == expected_gross


def test_orders_whose_read_fields_exceed_kafkas_record_limit_together_are_all_counted(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """A processor reading each order's lines: 40 orders of 3,000 lines take some 7 MB on
    the internal topic, far over the 1 MB one Kafka record may hold, in one batch of one
    partition. The re-key stage splits them into records that fit, and every order counts."""
    spec, env = run.spec, {**run.env, "MESH_TEST_READ_ITEMS": "1"}
    placed = int(time.time() * 1000)
    orders = [_order_of_3000_lines(n, placed) for n in range(ORDERS)]
    publish(run, orders, placed)
    windows = windows_then_clean_stop(kafka, run, env, tmp_path / "worker.log", ORDERS)
    expect_windows(windows, orders)
    internal = f"{spec.app_id}-{INTERNAL_TOPIC}"
    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "it-sizes"})
    try:
        probe.assign([TopicPartition(internal, 0, 0)])
        sizes: list[int] = []
        while batch := probe.consume(1000, timeout=5):
            sizes += [len(m.value() or b"") for m in batch if m.error() is None]
    finally:
        probe.close()
    assert sum(sizes) > 5_000_000  # the orders' lines did travel
    assert max(sizes) < 1_000_000


def test_a_state_grown_past_a_changelog_record_stops_the_worker_with_one_line(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """An ``apply`` that keeps every order's 3,000 SKUs: a region's window passes the 1 MB a
    changelog record may hold after some 30 orders. The worker stops saying so, naming the
    order and the key, rather than failing at its next flush in aiokafka's words."""
    spec = run.spec
    env = {**run.env, "MESH_TEST_READ_ITEMS": "1", "MESH_TEST_KEEP_SKUS": "1"}
    placed = int(time.time() * 1000)
    orders = [_order_of_3000_lines(n, placed) for n in range(200)]  # 40 a region
    publish(run, orders, placed)
    status, text = run_until_exit(env, tmp_path / "worker.log")
    assert status != 0, text[-3000:]
    [line] = [line for line in text.splitlines() if "crashed on" in line]
    assert f"processor {spec.output.name} crashed on {spec.inputs[0].topic}[0]@" in line, line
    assert "bytes as JSON, over the 983,616 one changelog record may hold; keep less" in line
    assert "MessageSizeTooLarge" not in text, text[-3000:]


def test_outputs_go_in_batches_under_the_output_topics_record_limit(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """An output topic whose ``max.message.bytes`` (600) takes a few outputs, not a
    backlog's worth: Kafka refuses a whole batch over it, at every restart. The worker keeps
    its output batches under the topic's limit and every order of 100 windows counts."""
    spec = run.spec
    _limit_output_records(kafka, run, 600)
    first_window = (int(time.time() * 1000) // 60_000 - 100) * 60_000
    orders = [_order(n, first_window + n * 12_000) for n in range(500)]  # 5 a window
    with (
        RegistryClient.from_settings(run.settings) as client,
        ProductPublisher(
            spec.inputs[0],
            bootstrap_servers=run.settings.resolved_bootstrap_servers(),
            registry=client,
            root=REPO,
        ) as publisher,
    ):
        for order in orders:  # on time: each arrives as it is placed
            publisher.publish(order, timestamp_ms=order["placed_at"])
        publisher.flush()
    windows = windows_then_clean_stop(kafka, run, run.env, tmp_path / "worker.log", 500)
    expected = Counter(
        (order["region"], order["placed_at"] - order["placed_at"] % 60_000) for order in orders
    )

    def start_ms(value: Any) -> int:
        return value if isinstance(value, int) else int(value.timestamp() * 1000)

    found = {(w["region"], start_ms(w["window_start"])): w["order_count"] for w in windows.values()}
    assert found == dict(expected)


def _stopped_by_a_refusal(run: BenchRun, tmp_path: Path) -> str:
    """Publish 10 orders and run the worker until it stops, which it must (not 0) with the
    stop-on-send-error line first; its log."""
    placed = int(time.time() * 1000)
    publish(run, [_order(n, placed) for n in range(10)], placed)
    status, text = run_until_exit(run.env, tmp_path / "worker.log")
    assert status != 0, text[-3000:]
    assert f"Kafka refused a record of {run.spec.app_id}" in text, text[-3000:]
    return text


def _limit_output_records(kafka: KafkaAddress, run: BenchRun, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    limit = ConfigEntry(
        "max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource("topic", run.spec.output.topic, incremental_configs=[limit])
    admin.incremental_alter_configs([resource])[resource].result(30)


def test_a_worker_whose_outputs_kafka_refuses_stops(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """The output topic's limit drops below an output's size once the worker runs (it read
    the limit as it started, so only Kafka can refuse): the worker stops on the refusal."""
    spec = run.spec
    placed = int(time.time() * 1000)
    publish(run, [_order(n, placed) for n in range(10)], placed)
    log = tmp_path / "worker.log"
    worker = start_worker(run.env, log)
    try:
        with RegistryClient.from_settings(run.settings) as client:
            assert read_windows(kafka.bootstrap_servers, client, spec.output.topic, 1, 10)
        _limit_output_records(kafka, run, 64)  # outputs are larger
        publish(run, [_order(n, placed) for n in range(10, 20)], placed)
        status = worker.wait(120)
    finally:
        if worker.poll() is None:
            worker.kill()
    text = log.read_text(errors="replace")
    assert status != 0, text[-3000:]
    assert f"Kafka refused a record of {spec.app_id}" in text, text[-3000:]
    assert f"output record to {spec.output.topic}[" in text, text[-3000:]
    assert "MSG_SIZE_TOO_LARGE" in text, text[-3000:]


def test_an_output_larger_than_its_topic_takes_stops_the_worker_naming_the_input_record(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """A topic limit the worker knows as it starts: an output over it is what ``emit``
    returned, named with its key and input record before anything is sent."""
    spec = run.spec
    _limit_output_records(kafka, run, 150)  # room for 53 bytes of key, value and headers
    placed = int(time.time() * 1000)
    publish(run, [_order(n, placed) for n in range(10)], placed)
    status, text = run_until_exit(run.env, tmp_path / "worker.log")
    assert status != 0, text[-3000:]
    [line] = [line for line in text.splitlines() if "crashed on" in line]
    assert f"processor {spec.output.name} crashed on {spec.inputs[0].topic}[0]@" in line, line
    assert "emit returned a record for key '" in line, line
    assert f"over the 53 one record of {spec.output.topic} may take" in line, line
    assert "MSG_SIZE_TOO_LARGE" not in text, text[-3000:]


def test_a_worker_whose_internal_records_kafka_refuses_stops_and_commits_none_of_its_input(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """The re-key stage's records to the internal topic are refused (too large): the worker
    stops, saying which record Kafka refused and why, and commits none of the input."""
    spec = run.spec
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    internal = f"{spec.app_id}-{INTERNAL_TOPIC}"
    tiny = NewTopic(
        internal, spec.output.partitions, replication_factor=1, config={"max.message.bytes": "64"}
    )
    admin.create_topics([tiny])[internal].result(30)  # before the worker makes it
    text = _stopped_by_a_refusal(run, tmp_path)
    assert f"internal record to {internal}[" in text, text[-3000:]
    assert "MessageSizeTooLarge" in text, text[-3000:]
    assert (
        committed_offset(kafka.bootstrap_servers, sources_group(spec.app_id), spec.inputs[0].topic)
        == 0  # the first record, where the group starts, committed to carry the crash note
    )


def test_a_failing_apply_stops_the_worker_with_one_line_first_and_loses_no_order(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    spec, env = run.spec, run.env
    source, output = spec.inputs[0], spec.output
    placed = int(time.time() * 1000)
    orders = [_order(n, placed) for n in range(ORDERS)]
    publish(run, orders, placed)
    log = tmp_path / "worker.log"
    bad = orders[FAILING]["order_id"]
    failing = {**env, "MESH_TEST_FAIL_ORDER": bad, "MESH_TEST_FAIL_IN": "apply"}
    status, text = run_until_exit(failing, log)
    assert status != 0, text[-3000:]
    line = (
        f"processor {output.name} crashed on {source.topic}[0]@{FAILING}: "
        f"apply raised ValueError apply cannot handle order {bad}"
    )
    assert line in text, text[-3000:]
    assert text.index(line) < text.index("Crashed reason"), text[-3000:]
    # the product monitor shows the line: the worker left it in its re-key group's offsets
    crashed = health_of_output(run)
    assert crashed.status == Status.BREACHED, crashed
    # the line of the processor's own code that raised ends it
    assert re.match(
        rf"{re.escape(line)} \(raised at \S*workers/failing_revenue\.py:\d+\) \(its worker has "
        rf"not gone "
        rf"past that record\)",
        crashed.reason,
    ), crashed.reason
    # faust's lines about it come without the tracebacks that repeated it
    assert "_ReportedError:" not in text, text[-3000:]
    # what the crash left in faust's producer buffer is one line, not a stop's traceback
    assert "Traceback" not in text[text.index(line) :], text[text.index(line) :][:5000]
    with RegistryClient.from_settings(run.settings) as client:
        fixed = start_worker(env, log)
        try:
            windows = read_windows(
                kafka.bootstrap_servers, client, output.topic, output.partitions, ORDERS
            )
            counts = {w["region"]: w["order_count"] for w in windows.values()}
            assert counts == Counter(order["region"] for order in orders)
            fixed.terminate()
            assert fixed.wait(60) == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if fixed.poll() is None:
                fixed.kill()
    # fixed and past the record: the crash is over for the monitor too
    assert "crashed on" not in health_of_output(run).reason


def test_a_worker_fenced_out_of_its_group_stops_and_says_why(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """A static member fenced out of its re-key group (another consumer joined with its
    instance id) can read nothing more; the worker must stop, saying why, not sit idle."""
    spec, env = run.spec, run.env
    source = spec.inputs[0]
    placed = int(time.time() * 1000)
    publish(run, [_order(n, placed) for n in range(10)], placed)
    log = tmp_path / "worker.log"
    group = sources_group(spec.app_id)
    worker = start_worker({**env, "MESH_PROCESSOR_INSTANCE_ID": "worker-a"}, log)
    rogue: Consumer | None = None
    try:
        deadline = time.monotonic() + 120
        while committed_offset(kafka.bootstrap_servers, group, source.topic) < 10:
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(1)
        rogue = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": group,
                "group.instance.id": "worker-a",
                "enable.auto.commit": False,
            }
        )
        rogue.subscribe([source.topic])
        deadline = time.monotonic() + 120
        while worker.poll() is None and time.monotonic() < deadline:
            rogue.poll(0.5)
        status = worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
        if rogue is not None:
            rogue.close()
    text = log.read_text(errors="replace")
    assert status != 0, text[-3000:]
    stops = f"re-key stage of {spec.app_id} stops: its consumer hit a fatal Kafka error"
    assert stops in text, text[-3000:]
    assert "each worker needs its own id" in text, text[-3000:]
    # faust's lines about it come without the traceback that repeated it
    assert not re.search(r"^\S*(KafkaException|FatalKafkaStop): ", text, re.M), text[-3000:]


def latest_in_changelog(bootstrap: str, topic: str) -> dict[str, Any]:
    """Each key's latest value in a table's changelog (None: deleted), read to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    latest: dict[str, Any] = {}
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, f"{topic} did not reach its end"
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return latest
                raise AssertionError(message.error())
            value = message.value()
            latest[json.loads(message.key())] = None if value is None else json.loads(value)
    finally:
        consumer.close()


def test_closed_windows_are_deleted_from_state_and_changelog_after_their_retention(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    """Windows past retention (a minute) are tombstoned with their seen ids, by the worker
    that updated them and, after a restart, by one that only restored them; outputs exact."""
    spec, settings = run.spec, run.settings
    env = {**run.env, "MESH_TEST_RETAIN_MS": "60000"}
    minute = 60_000
    now = int(time.time() * 1000)
    start = now - now % minute - 30 * minute
    # phase 1: orders over 6 minutes; phase 2, after a stop: 2 minutes, 20 minutes later
    first = [(start + n * 9_000, _order(n, start + n * 9_000)) for n in range(40)]
    later = start + 26 * minute
    second = [(later + n * 6_000, _order(100 + n, later + n * 6_000)) for n in range(20)]
    client = RegistryClient.from_settings(settings)
    log = tmp_path / "worker.log"

    def publish_arriving_a_second_late(orders: list[tuple[int, dict[str, Any]]]) -> None:
        with ProductPublisher(
            spec.inputs[0],
            bootstrap_servers=settings.resolved_bootstrap_servers(),
            registry=client,
            root=REPO,
        ) as publisher:
            for placed, order in orders:
                publisher.publish(order, timestamp_ms=placed + 1_000)
            publisher.flush()

    def window_of(order: dict[str, Any]) -> str:
        return f"{order['region']}@{order['placed_at'] - order['placed_at'] % minute}"

    def window_states() -> dict[str, Any]:
        """The state changelog's windows; the clock the worker forgot them by is kept too."""
        states = latest_in_changelog(kafka.bootstrap_servers, f"{spec.app_id}-state-changelog")
        assert states.pop(clock_key(0)) is not None
        return states

    def run_worker_until_counted(orders: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        worker = start_worker(env, log)
        try:
            windows = read_windows(
                kafka.bootstrap_servers, client, spec.output.topic, 1, len(orders)
            )
            worker.terminate()
            assert worker.wait(60) == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if worker.poll() is None:
                worker.kill()
        return windows

    try:
        publish_arriving_a_second_late(first)
        windows = run_worker_until_counted(first)
        assert {key: w["order_count"] for key, w in windows.items()} == Counter(
            window_of(order) for _, order in first
        )
        states = window_states()
        made = {window_of(order) for _, order in first}
        assert made == states.keys()  # every window was stored ...
        newest = first[-1][0] + 1_000  # ... and those closed a minute before the newest went
        gone = {k for k in made if int(k.rsplit("@", 1)[1]) + minute + 30_000 + minute <= newest}
        assert gone
        assert {k for k, v in states.items() if v is None} == gone
        kept = made - gone

        publish_arriving_a_second_late(second)
        windows = run_worker_until_counted(first + second)
        states = window_states()
        assert kept
        assert all(states[k] is None for k in kept)
        assert {k for k, v in states.items() if v is not None} <= {window_of(o) for _, o in second}
        seen = latest_in_changelog(kafka.bootstrap_servers, f"{spec.app_id}-seen-changelog")
        live = {k for k, v in states.items() if v is not None}
        assert {k.split("#", 1)[0] for k, v in seen.items() if v is not None} == live
        # the outputs of forgotten windows stay as last emitted: every order counted once
        assert {k: w["order_count"] for k, w in windows.items()} == Counter(
            window_of(order) for _, order in first + second
        )
    finally:
        client.close()


def test_a_worker_waits_out_a_registry_outage_and_loses_no_order(
    kafka: KafkaAddress, tmp_path: Path
) -> None:
    """Orders of a writer schema the worker has not seen arrive while the registry is down:
    the worker waits for it (reading nothing past them), then counts every order once."""
    with RegistryProcess(kafka) as registry:
        run_id = uuid.uuid4().hex[:8]
        settings = MeshSettings(
            bootstrap_servers=kafka.bootstrap_servers,
            registry_url=registry.url,
            registry_principal="admin",
            registry_token=SecretStr(TOKENS["admin"]),
            data_dir=tmp_path,
        )
        env = {
            **os.environ,
            "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "MESH_REGISTRY_URL": registry.url,
            "MESH_REGISTRY_PRINCIPAL": "admin",
            "MESH_REGISTRY_TOKEN": TOKENS["admin"],
            "MESH_DATA_DIR": str(tmp_path),
            "MESH_BENCH_RUN_ID": run_id,
            "MESH_CONSUMER_REGISTRY_WAIT_SECONDS": "120",
        }
        spec = failing_spec(settings, run_id)
        source, output = spec.inputs[0], spec.output
        placed = int(time.time() * 1000)
        before = [_order(n, placed) for n in range(20)]
        during = [{**_order(n, placed), "coupon": f"c-{n}"} for n in range(20, ORDERS)]
        v2 = json.loads(schema_text(source, REPO))
        coupon = {"name": "coupon", "type": ["null", "string"], "default": None, "doc": "Code."}
        v2["fields"].append(coupon)
        log = tmp_path / "worker.log"
        with RegistryClient.from_settings(settings) as client:
            publish(BenchRun(spec, settings, env), before, placed)
            # v2 is registered while the registry answers; the worker first meets it below
            newer = ProductPublisher(
                source,
                bootstrap_servers=kafka.bootstrap_servers,
                registry=client,
                schema=v2,
            )
            worker = start_worker(env, log)
            try:
                windows = read_windows(kafka.bootstrap_servers, client, output.topic, 1, 20)
                assert sum(w["order_count"] for w in windows.values()) == 20
                registry.kill()
                for order in during:
                    newer.publish(order, timestamp_ms=placed)
                newer.close()
                waiting = "needs a writer schema and the registry is unavailable"
                deadline = time.monotonic() + 30
                while waiting not in log.read_text(errors="replace"):
                    assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
                    assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                    time.sleep(0.2)
                time.sleep(2)  # a worker that skipped the record would commit past it now
                group = sources_group(spec.app_id)
                assert committed_offset(kafka.bootstrap_servers, group, source.topic) <= 20
                registry.start()
                windows = read_windows(kafka.bootstrap_servers, client, output.topic, 1, ORDERS)
                orders = before + during
                assert {w["region"]: w["order_count"] for w in windows.values()} == Counter(
                    order["region"] for order in orders
                )
                gross: dict[str, Decimal] = {}
                for order in orders:
                    region = order["region"]
                    gross[region] = gross.get(region, Decimal(0)) + order["total_amount"]
                assert {w["region"]: w["gross_revenue"] for w in windows.values()} == gross
                assert "the registry answered after" in log.read_text(errors="replace")
                worker.terminate()
                assert worker.wait(60) == 0, log.read_text(errors="replace")[-3000:]
            finally:
                if worker.poll() is None:
                    worker.kill()
        assert committed_offset(kafka.bootstrap_servers, group, source.topic) == ORDERS
