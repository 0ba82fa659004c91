"""The analytics processors against the real broker, registry and faust workers.

A deterministic input set (late, too-late, duplicated and out-of-order events) is published
through the SDK; every output product must equal a plain recomputation, written here without
any processor code, from every record of the input topics (read back from Kafka, so records
other tests published to the same products are accounted for too). Then every worker is
killed with SIGKILL while it is busy and restarted (state comes back from RocksDB and the
changelog), and finally stopped cleanly and started again, which must neither re-emit nor
double-count anything.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from mesh_stream.descriptor import DataProduct, load_descriptors, topic_for
from mesh_stream.errors import DeserializationError
from mesh_stream.kafka import dlq
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.names import INTERNAL_TOPIC, processor_app_id, sources_group
from mesh_stream.processing.rekey import CLOCK_HEADER
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import ensure_topics, register_source_product
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.recompute import EXPECTED, GRACE, MINUTE, Inputs, Sent

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
REGIONS = ("eu-west", "us-east", "ap-south")
PROCESSORS = {
    "analytics.revenue-by-region": "domains.analytics.processors.revenue",
    "analytics.order-fulfilment-sla": "domains.analytics.processors.fulfilment_sla",
    "analytics.customer-360": "domains.analytics.processors.customer_360",
}


# -- the input set ----------------------------------------------------------------------


class InputWriter:
    """Builds seeded inputs and publishes them with the SDK, with explicit arrival times."""

    def __init__(self, settings: MeshSettings, base_ms: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.base = base_ms
        self._publishers: dict[str, ProductPublisher] = {}
        self._settings = settings

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def publisher(self, product: str) -> ProductPublisher:
        if product not in self._publishers:
            from mesh_stream.producer import open_publisher

            self._publishers[product] = open_publisher(product, settings=self._settings, root=REPO)
        return self._publishers[product]

    def send(self, product: str, value: dict[str, Any], arrival_ms: int) -> None:
        self.publisher(product).publish(value, timestamp_ms=arrival_ms)

    def flush(self) -> None:
        for publisher in self._publishers.values():
            publisher.flush()

    def close(self) -> None:
        for publisher in self._publishers.values():
            publisher.close()

    def profile(self, customer: str, updated_at: int, segment: str, region: str) -> None:
        value = {
            "customer_id": customer,
            "full_name": f"Name of {customer}",
            "email": f"{customer}@example.com",
            "phone": None,
            "region": region,
            "segment": segment,
            "updated_at": updated_at,
        }
        self.send("customers.customer-profile", value, updated_at)

    def order(self, customer: str, region: str, placed_at: int) -> dict[str, Any]:
        price = Decimal(self.rng.randint(100, 50_000)) / 100
        quantity = self.rng.randint(1, 3)
        return {
            "event_id": self.uuid(),
            "order_id": self.uuid(),
            "customer_id": customer,
            "region": region,
            "channel": "WEB",
            "currency": "EUR",
            "total_amount": price * quantity,
            "items": [{"sku": "sku-0001", "quantity": quantity, "unit_price": price}],
            "placed_at": placed_at,
        }

    def story(self, orders: int, start_ms: int) -> None:
        """``orders`` orders with their payments, shipments and engagement, all awkward cases."""
        events: list[tuple[int, str, dict[str, Any], int]] = []  # (publish rank, ...)
        for n in range(orders):
            customer = f"cust-{self.rng.randrange(12):03d}"
            region = REGIONS[n % len(REGIONS)]
            placed_at = start_ms + self.rng.randrange(4 * MINUTE)
            order = self.order(customer, region, placed_at)
            window_end = placed_at - placed_at % MINUTE + MINUTE
            kind = n % 10
            if kind == 0:  # late, but within the grace period
                arrival = window_end + GRACE - self.rng.randint(1, 5_000)
            elif kind == 1:  # too late: after the window closed
                arrival = window_end + GRACE + self.rng.randint(0, 20_000)
            else:
                arrival = placed_at + self.rng.randint(0, 2_000)
            events.append((arrival, "orders.order-placed", order, arrival))
            if kind == 2:  # a retrying order service sends it twice
                events.append((arrival + 700, "orders.order-placed", order, arrival + 700))
            order_id = order["order_id"]
            at = placed_at
            for _ in range(n % 7 == 3):
                at += self.rng.randint(500, 5_000)
                failed = {
                    "event_id": self.uuid(),
                    "payment_id": self.uuid(),
                    "order_id": order_id,
                    "reason": "CARD_DECLINED",
                    "currency": "EUR",
                    "amount": order["total_amount"],
                    "failed_at": at,
                }
                events.append((at, "payments.payment-failed", failed, at))
                events.append((at + 300, "payments.payment-failed", failed, at + 300))
            if n % 5 != 4:  # most orders get paid and dispatched
                at += self.rng.randint(500, 10_000)
                captured = {
                    "event_id": self.uuid(),
                    "payment_id": self.uuid(),
                    "order_id": order_id,
                    "currency": "EUR",
                    "amount": order["total_amount"],
                    "captured_at": at,
                }
                dispatched_at = at + self.rng.randint(5_000, 120_000)
                dispatched = {
                    "event_id": self.uuid(),
                    "shipment_id": self.uuid(),
                    "order_id": order_id,
                    "carrier": "dhl",
                    "warehouse": "ams-1",
                    "dispatched_at": dispatched_at,
                }
                # out of order: the shipment record is published before the payment record
                events.append((at + 200_000, "payments.payment-captured", captured, at))
                events.append((at + 100_000, "shipping.shipment-dispatched", dispatched, at))
            for _ in range(2):
                engagement = {
                    "event_id": self.uuid(),
                    "customer_id": customer,
                    "kind": "PAGE_VIEW",
                    "session_id": self.uuid(),
                    "occurred_at": placed_at - 1_000,
                }
                events.append((placed_at, "customers.engagement-event", engagement, placed_at))
                if n % 4 == 0:
                    events.append(
                        (placed_at + 50, "customers.engagement-event", engagement, placed_at)
                    )
        events.sort(key=lambda e: e[0])
        for _, product, value, arrival in events:
            self.send(product, value, arrival)
        self.flush()


# -- reading outputs --------------------------------------------------------------------


class OutputReader:
    """Reads output products from the beginning and keeps the latest value per key."""

    def __init__(self, bootstrap: str, registry: RegistryClient, products: list[DataProduct]):
        self.products = {p.name: p for p in products}
        self.decoder = FramedAvroDecoder(registry.get_schema)
        self.latest: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.products}
        self.received: Counter[str] = Counter()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"it-processors-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self._topics = {p.topic: p.name for p in products}
        self.consumer.assign(
            [
                TopicPartition(p.topic, partition, 0)
                for p in products
                for partition in range(p.partitions)
            ]
        )

    def poll(self, seconds: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.consumer.consume(num_messages=5000, timeout=0.2):
                assert message.error() is None, message.error()
                name = self._topics[message.topic()]
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                record = self.decoder.decode(message.value(), where=where)
                key_field = self.products[name].key_field
                assert key_field is not None
                assert message.key().decode() == record[key_field]
                self.latest[name][record[key_field]] = record
                self.received[name] += 1

    def wait_for(self, expected: dict[str, dict[str, dict[str, Any]]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if all(self.latest[name] == want for name, want in expected.items()):
                return
        for name, want in expected.items():
            got = self.latest[name]
            wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
            extra = set(got) - set(want)
            assert not wrong, f"{name}: {len(wrong)} keys differ, e.g. {next(iter(wrong.items()))}"
            assert not extra, f"{name}: unexpected keys {sorted(extra)[:5]}"

    def end_offsets(self) -> dict[tuple[str, int], int]:
        ends = {}
        for product in self.products.values():
            for partition in range(product.partitions):
                _low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(product.topic, partition), timeout=10
                )
                ends[(product.topic, partition)] = high
        return ends

    def close(self) -> None:
        self.consumer.close()


def read_inputs(bootstrap: str, registry: RegistryClient, sources: list[DataProduct]) -> Inputs:
    """Every record now in the input topics, decoded, with its Kafka timestamp."""
    decoder = FramedAvroDecoder(registry.get_schema)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"it-inputs-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    inputs = Inputs()
    names = {product.topic: product.name for product in sources}
    ends: dict[tuple[str, int], int] = {}
    starts = []
    for product in sources:
        for partition in range(product.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(product.topic, partition), timeout=10
            )
            if high > low:
                ends[(product.topic, partition)] = high
                starts.append(TopicPartition(product.topic, partition, low))
    consumer.assign(starts)
    remaining = sum(ends.values()) - sum(tp.offset for tp in starts)
    try:
        while remaining > 0:
            for message in consumer.consume(num_messages=min(remaining, 5000), timeout=1.0):
                assert message.error() is None, message.error()
                topic, partition = message.topic(), message.partition()
                if message.offset() >= ends[(topic, partition)]:
                    continue
                where = f"{topic}[{partition}]@{message.offset()}"
                remaining -= 1
                try:
                    value = decoder.decode(message.value(), where=where)
                except DeserializationError:
                    continue  # a poison pill: not an input, the processors dead-letter it
                inputs.sent.append(Sent(names[topic], value, message.timestamp()[1]))
    finally:
        consumer.close()
    return inputs


#: Not Confluent-framed Avro; framed, but with a schema id the registry does not know.
NOT_AVRO = b"\x07not avro"
UNKNOWN_SCHEMA = b"\x00" + (987_654).to_bytes(4, "big") + b"\x02"


def poison_pill(bootstrap: str, topic: str, value: bytes | None = NOT_AVRO) -> tuple[int, int]:
    """Write ``value``, which no processor can decode (None: a tombstone, which it passes
    over); returns its (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    delivered: list[tuple[int, int]] = []
    producer.produce(
        topic,
        key=b"poison",
        value=value,
        on_delivery=lambda _err, msg: delivered.append((msg.partition(), msg.offset())),
    )
    producer.flush(10)
    return delivered[0]


def assert_dead_lettered(
    bootstrap: str,
    product: DataProduct,
    where: tuple[int, int],
    value: bytes = NOT_AVRO,
    error: str = "unknown magic byte 7 (expected 0)",
) -> None:
    """The revenue re-key agent sent the poison pill to the DLQ, saying what and where."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"it-dlq-{uuid.uuid4().hex[:6]}"}
    )
    consumer.assign([TopicPartition(product.dlq_topic, p, 0) for p in range(product.partitions)])
    source = f"{product.topic}[{where[0]}]@{where[1]}"
    try:
        found = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=1.0):
                headers = dict(message.headers() or [])
                at = (headers.get(dlq.MESH_SOURCE_PARTITION), headers.get(dlq.MESH_SOURCE_OFFSET))
                if at == (str(where[0]).encode(), str(where[1]).encode()):
                    found.append((message.value(), headers))
    finally:
        consumer.close()
    assert found, f"no dead letter for {source} in {product.dlq_topic}"
    letter, headers = found[0]
    assert letter == value
    assert headers[dlq.MESH_SOURCE_TOPIC] == product.topic.encode()
    assert headers[dlq.MESH_ERROR].decode().startswith(f"{source}: {error}")


def assert_not_dead_lettered(bootstrap: str, product: DataProduct, where: tuple[int, int]) -> None:
    """No record of ``product``'s DLQ (read to its end) came from ``where``."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"it-dlq-{uuid.uuid4().hex[:6]}"}
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(product.dlq_topic, p), 10)[1]
            for p in range(product.partitions)
        }
        consumer.assign([TopicPartition(product.dlq_topic, p, 0) for p in ends])
        sources, remaining = [], sum(ends.values())
        deadline = time.monotonic() + 30
        while remaining > 0 and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=1.0):
                if message.error() is None and message.offset() < ends[message.partition()]:
                    remaining -= 1
                    headers = dict(message.headers() or [])
                    at = (
                        headers.get(dlq.MESH_SOURCE_PARTITION),
                        headers.get(dlq.MESH_SOURCE_OFFSET),
                    )
                    sources.append(at)
    finally:
        consumer.close()
    assert remaining == 0, f"{product.dlq_topic}: {remaining} dead letters not read"
    assert (str(where[0]).encode(), str(where[1]).encode()) not in sources


def clock_headers(bootstrap: str, processor: str) -> list[bool]:
    """For each record of ``processor``'s internal topic: whether it carries CLOCK_HEADER."""
    topic = f"{processor_app_id(processor)}-{INTERNAL_TOPIC}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[bool] = []
        deadline = time.monotonic() + 30
        while len(found) < sum(ends.values()) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is None:
                    found.append(CLOCK_HEADER in dict(message.headers() or []))
        return found
    finally:
        consumer.close()


def assert_static_members(bootstrap: str, processors: Iterable[str]) -> None:
    """Both consumer groups of each worker (faust's and the re-key stage's) hold it under
    its MESH_PROCESSOR_INSTANCE_ID: a restarted worker takes its partitions back at once."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    groups = {
        group: f"{name}-1"
        for name in processors
        for group in (processor_app_id(name), sources_group(processor_app_id(name)))
    }
    deadline = time.monotonic() + 30
    while True:
        found = {
            group: [member.group_instance_id for member in future.result(10).members]
            for group, future in admin.describe_consumer_groups(list(groups)).items()
        }
        wanted = {group: [instance] for group, instance in groups.items()}
        if found == wanted or time.monotonic() > deadline:
            assert found == wanted
            return
        time.sleep(0.5)


def wait_idle(bootstrap: str, outputs: list[DataProduct], timeout: float) -> None:
    """Until every processor has committed the end of each topic it reads (inputs, internal).

    The re-key stage commits the inputs in group ``<app id>-rekey``, the aggregate agent its
    internal topic in faust's group ``<app id>``.

    Exact outputs do not mean idle: after the kill the workers still work through replayed
    records that change nothing, and a stop before they are done would leave them for the
    restart.
    """
    admin_consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-idle-probe"})
    try:
        topics = admin_consumer.list_topics(timeout=10).topics
        deadline = time.monotonic() + timeout
        for output in outputs:
            app_id = f"mesh-{output.name}"
            inputs = {topic_for(name) for name in output.inputs}
            internal = [t for t in topics if t.startswith(f"{app_id}-by-")]
            for group, read in ((sources_group(app_id), inputs), (app_id, internal)):
                wait_committed(bootstrap, group, read, topics, deadline)
    finally:
        admin_consumer.close()


def wait_committed(
    bootstrap: str, group: str, read: Iterable[str], topics: dict[str, Any], deadline: float
) -> None:
    """Until ``group`` has committed the end offset of every partition of ``read``."""
    partitions = [
        TopicPartition(topic, partition) for topic in read for partition in topics[topic].partitions
    ]
    config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    probe = Consumer(config)
    try:
        while True:
            committed = probe.committed(partitions, timeout=10)
            lagging = [
                (tp.topic, tp.partition)
                for tp in committed
                if max(tp.offset, 0) < probe.get_watermark_offsets(tp, timeout=10)[1]
            ]
            if not lagging:
                return
            assert time.monotonic() < deadline, f"{group} still lags on {lagging}"
            time.sleep(0.5)
    finally:
        probe.close()


# -- processes --------------------------------------------------------------------------


class Worker:
    """One processor worker process; its log goes to a file that tells when it is ready."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.module = module
        self.env = env
        self.log_path = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.starts} ====\n".encode())
        log.flush()
        self._offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "worker", "-l", "info"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"{self.module} exited {self.process.returncode}:\n{self.log_tail()}")
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                if b"[^Worker]: Ready" in log.read():
                    return
            time.sleep(0.3)
        pytest.fail(f"{self.module} not ready after {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> int:
        assert self.process is not None
        return self.process.wait(60)

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return "(never started)"
        return self.log_path.read_text(errors="replace")[-12000:]


@pytest.fixture(scope="module")
def settings(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path_factory: pytest.TempPathFactory
) -> MeshSettings:
    return MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="admin",
        registry_token=SecretStr(registry.admin_token),
        data_dir=tmp_path_factory.mktemp("processors"),
    )


@pytest.fixture(scope="module")
def workers(settings: MeshSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    token = settings.registry_token
    assert token is not None
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "MESH_REGISTRY_URL": settings.registry_url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": token.get_secret_value(),
        "MESH_DATA_DIR": str(settings.data_dir),
    }
    log_dir = tmp_path_factory.mktemp("processor-logs")
    # Static membership, as `mesh up` gives its processors: each restart rejoins at once.
    started = {
        name: Worker(module, {**env, "MESH_PROCESSOR_INSTANCE_ID": f"{name}-1"}, log_dir)
        for name, module in PROCESSORS.items()
    }
    try:
        yield started
    finally:
        for worker in started.values():
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(10)


def test_outputs_are_exact_through_duplicates_lateness_kill_and_clean_restart(
    settings: MeshSettings, workers: dict[str, Worker]
) -> None:
    products = load_descriptors(REPO / "domains")
    by_name = {p.name: p for p in products}
    sources = [p for p in products if p.domain != "analytics"]
    outputs = [by_name[name] for name in PROCESSORS]
    ensure_topics(settings.resolved_bootstrap_servers(), [*sources, *outputs])
    registry = RegistryClient.from_settings(settings)
    for source in sources:  # what the source domains' simulators do when they start
        register_source_product(registry, source, REPO)

    bootstrap = settings.resolved_bootstrap_servers()

    def expected() -> dict[str, dict[str, dict[str, Any]]]:
        inputs = read_inputs(bootstrap, registry, sources)
        return {name: compute(inputs) for name, compute in EXPECTED.items()}

    now = int(time.time() * 1000)
    base = now - now % MINUTE - 20 * MINUTE  # recent: retention never deletes test input
    writer = InputWriter(settings, base, seed=20260101)
    reader = OutputReader(settings.resolved_bootstrap_servers(), registry, outputs)
    try:
        for worker in workers.values():
            worker.start()
        for worker in workers.values():
            worker.wait_ready()
        assert_static_members(bootstrap, PROCESSORS)

        # 1. a first batch, every awkward case included: outputs equal the recomputation
        writer.profile("cust-000", base, "NEW", "eu-west")
        writer.profile("cust-001", base + 2, "VIP", "us-east")
        writer.profile("cust-001", base + 1, "REGULAR", "us-east")  # older version arrives last
        writer.story(orders=60, start_ms=base)
        poison = poison_pill(bootstrap, by_name["orders.order-placed"].topic)
        # a framed record of a schema id the registry does not know: a dead letter, no crash
        foreign = poison_pill(bootstrap, by_name["orders.order-placed"].topic, UNKNOWN_SCHEMA)
        # a tombstone (a deletion): passed over, never dead-lettered
        tombstone = poison_pill(bootstrap, by_name["orders.order-placed"].topic, None)
        reader.wait_for(expected(), timeout=90)
        assert_dead_lettered(bootstrap, by_name["orders.order-placed"], poison)
        assert_dead_lettered(
            bootstrap,
            by_name["orders.order-placed"],
            foreign,
            UNKNOWN_SCHEMA,
            "writer schema id 987654 cannot be fetched from the registry",
        )
        # the worker's log says which processor set the record aside, what and where
        topic = by_name["orders.order-placed"].topic
        said = (
            "processor analytics.revenue-by-region could not decode an input record: "
            f"{topic}[{poison[0]}]@{poison[1]}: unknown magic byte 7 (expected 0)"
        )
        revenue_log = workers["analytics.revenue-by-region"].log_path.read_text(errors="replace")
        assert said in revenue_log
        assert (
            "processor analytics.revenue-by-region passes over tombstones on its inputs "
            f"(records with a key and no value: deletions), the first at "
            f"{topic}[{tombstone[0]}]@{tombstone[1]}"
        ) in revenue_log
        assert_not_dead_lettered(bootstrap, by_name["orders.order-placed"], tombstone)
        registered = registry.get_product("analytics.customer-360")
        assert registered["inputs"] == list(by_name["analytics.customer-360"].inputs)
        # only the windowed aggregate needs the window clock's bounds on its internal records
        assert set(clock_headers(bootstrap, "analytics.revenue-by-region")) == {True}
        for unwindowed in ("analytics.order-fulfilment-sla", "analytics.customer-360"):
            assert set(clock_headers(bootstrap, unwindowed)) == {False}, unwindowed

        # 2. kill -9 every worker while it is busy with a large batch, then restart them.
        # The workers aggregate in batches and emit one record per key and batch, so they are
        # killed at their first new output record; the batch is large enough that they are
        # still busy with it then.
        # A machine busy elsewhere can let the workers finish the batch before the kill lands:
        # then the batch is doubled and the kill tried again, up to three times.
        batch = 4000
        for attempt in range(1, 4):
            received = dict(reader.received)
            writer.story(orders=batch, start_ms=base + 5 * MINUTE)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                reader.received[name] <= received[name] for name in EXPECTED
            ):
                reader.poll(0.1)  # until every worker is visibly busy with the batch
            for worker in workers.values():
                worker.kill()
            reader.poll(1.0)
            want = expected()
            killed_mid_batch = any(reader.latest[name] != want[name] for name in EXPECTED)
            for worker in workers.values():
                worker.start()
            for worker in workers.values():
                worker.wait_ready()
            reader.wait_for(want, timeout=150)
            if killed_mid_batch:
                break
            assert attempt < 3, f"killed too late {attempt} times, the last at {batch} orders"
            batch *= 2

        # 3. a clean stop and start re-emits nothing and counts nothing twice
        wait_idle(bootstrap, [by_name[name] for name in PROCESSORS], timeout=120)
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            assert worker.wait_stopped() == 0, worker.log_tail()
        before = reader.end_offsets()
        for worker in workers.values():
            worker.start()
        for worker in workers.values():
            worker.wait_ready()
        time.sleep(5)
        assert reader.end_offsets() == before
        writer.story(orders=40, start_ms=base + 10 * MINUTE)
        reader.wait_for(expected(), timeout=90)
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            assert worker.wait_stopped() == 0, worker.log_tail()
    except AssertionError as failure:
        logs = "\n".join(f"--- {w.module} ---\n{w.log_tail()[-3000:]}" for w in workers.values())
        raise AssertionError(f"{failure}\n\nworker logs (tails):\n{logs}") from failure
    finally:
        writer.close()
        reader.close()
        registry.close()
