"""The product monitor on the real broker and the real registry: exact figures, a freshness
breach and its recovery as alert records, dead letters, a consumer group's lag, a product
without records, upstream breaches on a derived product, and a second instance that does
not repeat an alert."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mesh_stream.consumer import ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.health import (
    NEWEST_INPUT_HEADER,
    Figure,
    FigureName,
    ProductHealth,
    Status,
)
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topic, topic_spec
from mesh_stream.monitor import KafkaMeter, ProductMonitor, Target
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import load_schema, make_order
from tests.integration.alerts import read_alerts

FRESHNESS = 6.0


def _product(label: str, **changes: Any) -> DataProduct:
    document: dict[str, Any] = {
        "name": f"orders.monitor-{label}-{uuid.uuid4().hex[:8]}",
        "domain": "orders",
        "kind": "source-aligned",
        "description": "Test product of the product monitor.",
        "owner": {"team": "monitor-tests", "contact": "monitor-tests@example.com"},
        "schema": "schemas/orders/monitor.avsc",
        "key_field": "order_id",
        "partitions": 2,
        "retention": {"ms": 3_600_000, "cleanup_policy": "delete"},
        "slos": {
            "freshness_seconds": FRESHNESS,
            "availability": 99.0,
            "max_dlq_ratio": 0.5,
            "max_lag_seconds": 600.0,
        },
        "classification": "pii",
        "readers": ["payments"],  # payments' group registers on it
        "tags": ["test"],
    }
    document.update(changes)
    return DataProduct.model_validate(document)


def _figure(health: ProductHealth, name: FigureName, subject: str | None = None) -> Figure:
    [found] = [f for f in health.figures if f.name == name and f.subject == subject]
    return found


def test_monitor_measures_judges_and_alerts_on_the_real_broker(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    bootstrap = kafka.bootstrap_servers
    schema = load_schema("order_v1.avsc")
    source = _product("source")
    derived = _product(
        "derived",
        kind="aggregate",
        inputs=[source.name],
        partitions=1,
        slos={"freshness_seconds": 600.0, "availability": 99.0},
    )
    empty = _product("empty", partitions=1)
    session = uuid.uuid4().hex[:8]
    health_topic, alerts_topic = f"_mesh_health-{session}", f"_mesh_alerts-{session}"
    group = f"payments.billing-{session}"
    conn = KafkaConnection.create(bootstrap)
    admin = RegistryClient(registry.url, principal="admin", token=registry.admin_token)
    payments = RegistryClient(registry.url, principal="payments", token=registry.tokens["payments"])

    def publisher(product: DataProduct) -> ProductPublisher:
        return ProductPublisher(product, bootstrap_servers=bootstrap, registry=admin, schema=schema)

    with publisher(source) as to_source, publisher(empty):
        admin.put_product(source)
        admin.put_product(empty)
        with publisher(derived) as to_derived:
            admin.put_product(derived)
            # The derived product's only record is older than its input's newest.
            to_derived.publish(make_order(100), timestamp_ms=int(time.time() * 1000) - 2_000)
        for index in range(5):
            to_source.publish(make_order(index))
        to_source.flush()
        raw = Producer({"bootstrap.servers": bootstrap})
        for index in range(2):  # poison pills: not Confluent-framed Avro
            raw.produce(source.topic, key=f"pill-{index}", value=b"not avro", partition=index)
        raw.flush(10)
        with ProductConsumer(
            [source],
            group_id=group,
            bootstrap_servers=bootstrap,
            registry=payments,
            from_beginning=True,
            reads=["total"],
        ) as reader:
            got: list[Any] = []
            deadline = time.monotonic() + 30
            while len(got) < 5 and time.monotonic() < deadline:
                got += reader.consume(10, 1.0)
            assert len(got) == 5
            reader.commit()
        for index in range(5, 8):  # three records the group has not read
            to_source.publish(make_order(index))
        to_source.flush()

        monitor = ProductMonitor(
            conn,
            admin,
            health_topic=health_topic,
            alerts_topic=alerts_topic,
            interval=2.0,
            name="monitor-a",
        )
        with monitor:
            first = {h.product: h for h in monitor.measure().healths}
            src = first[source.name]
            assert src.status == Status.OK, src.reason
            assert _figure(src, FigureName.RECORDS_PER_MINUTE).value == 10.0  # 5 + 2 pills + 3
            assert _figure(src, FigureName.DLQ_RECORDS_PER_MINUTE).value == 2.0
            assert _figure(src, FigureName.DLQ_RATIO).value == 0.2
            assert _figure(src, FigureName.DLQ_RATIO).status == Status.OK
            assert (_figure(src, FigureName.FRESHNESS_SECONDS).value or 99) < FRESHNESS * 0.8
            lag = _figure(src, FigureName.LAG_RECORDS, group)
            assert lag.value == _end_minus_committed(bootstrap, source.topic, group) == 3.0
            lag_seconds = _figure(src, FigureName.LAG_SECONDS, group).value
            assert lag_seconds is not None
            assert 0 <= lag_seconds < 30
            assert {f.subject for f in src.figures if f.subject and "partition" in f.subject} == {
                "partition 0",
                "partition 1",
            }

            assert first[empty.name].status == Status.NO_DATA
            assert first[empty.name].reason.endswith(f"no record ever written to {empty.topic}")

            down = first[derived.name]
            behind = _figure(down, FigureName.END_TO_END_SECONDS).value
            assert behind is not None
            assert behind >= 2.0
            assert down.upstream_breached == ()

            # Past the SLO: breached, one breach alert; downstream shows it.
            time.sleep(FRESHNESS + 1)
            second = {h.product: h for h in monitor.measure().healths}
            src = second[source.name]
            assert src.status == Status.BREACHED
            assert src.since_ms == src.measured_at_ms
            assert second[derived.name].upstream_breached == (source.name,)
            assert second[derived.name].status == Status.DEGRADED
            assert second[derived.name].reason == f"upstream breached: {source.name}"

            # A second instance reads the breach back and does not repeat the alert.
            with ProductMonitor(
                conn,
                admin,
                health_topic=health_topic,
                alerts_topic=alerts_topic,
                interval=2.0,
                name="monitor-b",
            ) as other:
                again = other.measure()
                assert [a for a in again.alerts if a.product == source.name] == []
                breached_since = {h.product: h for h in again.healths}[source.name].since_ms
                assert breached_since == src.since_ms

            # Fresh records again: ok, and a recovery alert.
            to_source.publish(make_order(9))
            to_source.flush()
            third = {h.product: h for h in monitor.measure().healths}
            assert third[source.name].status == Status.OK, third[source.name].reason
            assert third[derived.name].upstream_breached == ()

        # `mesh monitor --once --json`, a new process: since is carried through the topic.
        # It starts, reads the health topic back and lists every product of the shared session
        # registry before it measures, seconds later; a record now keeps the source within its
        # 6 s freshness SLO then, so its status stays ok and its since must carry over.
        to_source.publish(make_order(10))
        to_source.flush()
        cli = subprocess.run(
            [sys.executable, "-m", "mesh_stream.cli.main", "monitor", "--once", "--json"],
            env={
                **os.environ,
                "MESH_BOOTSTRAP_SERVERS": bootstrap,
                "MESH_REGISTRY_URL": registry.url,
                "MESH_HEALTH_TOPIC": health_topic,
                "MESH_ALERTS_TOPIC": alerts_topic,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        printed = {
            h.product: h
            for h in (ProductHealth.model_validate_json(line) for line in cli.stdout.splitlines())
        }
        assert printed[source.name].status == Status.OK, cli.stderr
        assert printed[source.name].since_ms == third[source.name].since_ms
        assert printed[empty.name].status == Status.NO_DATA
        breached = any(h.status == Status.BREACHED for h in printed.values())
        assert cli.returncode == (4 if breached else 0), cli.stderr
        assert "measured" in cli.stderr

    admin.close()
    payments.close()
    alerts = [
        (a.kind, a.figure, a.subject)
        for a in read_alerts(bootstrap, alerts_topic)
        if a.product == source.name
    ]
    assert alerts == [
        ("breach", FigureName.FRESHNESS_SECONDS, None),
        ("recovery", FigureName.FRESHNESS_SECONDS, None),
    ]


def _end_minus_committed(bootstrap: str, topic: str, group: str) -> float:
    """The lag of ``group`` computed apart from the monitor: end offsets - committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(2)]
        committed = consumer.committed(parts, timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        return float(sum(end - tp.offset for end, tp in zip(ends, committed, strict=True)))
    finally:
        consumer.close()


def test_the_newest_record_is_found_behind_transaction_markers(kafka: KafkaAddress) -> None:
    """The last offsets of a transactional topic hold commit/abort markers, and an aborted
    record is never read: the meter steps back to the newest committed record."""
    bootstrap = kafka.bootstrap_servers
    product = _product("txn", partitions=1)
    conn = KafkaConnection.create(bootstrap)
    ensure_topic(conn, topic_spec(product.topic, cluster_info(conn), partitions=1))
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": product.topic})
    producer.init_transactions(30)
    committed_at = int(time.time() * 1000) - 5_000
    producer.begin_transaction()
    producer.produce(product.topic, value=b"kept", timestamp=committed_at)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(product.topic, value=b"aborted", timestamp=committed_at + 3_000)
    producer.flush(30)  # written to the log, then aborted
    producer.abort_transaction(30)
    _wait_for_end(bootstrap, product.topic, 4)  # the abort marker is written after the call
    with KafkaMeter(conn) as meter:
        now = int(time.time() * 1000)
        reading = meter.read([Target(product)], now)[product.name]
    # Offsets: the record, its commit marker, the aborted record, the abort marker.
    assert reading.topic.end_offsets == 4
    assert reading.topic.newest_ms == {0: committed_at}
    assert reading.topic.records_last_minute == 4  # offsets, markers included (documented)
    assert not reading.dlq.exists


def _wait_for_end(bootstrap: str, topic: str, end: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex}"})
    try:
        deadline = time.monotonic() + 20
        while consumer.get_watermark_offsets(TopicPartition(topic, 0), 10)[1] < end:
            assert time.monotonic() < deadline, f"{topic} never reached offset {end}"
            time.sleep(0.1)
    finally:
        consumer.close()


def test_an_output_s_own_latency_is_read_from_its_newest_input_header(
    kafka: KafkaAddress,
) -> None:
    """A processor's output names the newest input record it reflects; the meter reads it
    from the newest record of each partition (an older record's header does not count)."""
    bootstrap = kafka.bootstrap_servers
    product = _product("latency", partitions=2)
    conn = KafkaConnection.create(bootstrap)
    ensure_topic(conn, topic_spec(product.topic, cluster_info(conn), partitions=2))
    producer = Producer({"bootstrap.servers": bootstrap})
    now = int(time.time() * 1000)
    header = NEWEST_INPUT_HEADER
    producer.produce(
        product.topic,
        b"old",
        partition=0,
        timestamp=now - 9_000,
        headers=[(header, str(now - 60_000).encode())],
    )
    producer.produce(
        product.topic,
        b"new",
        partition=0,
        timestamp=now - 4_000,
        headers=[(header, str(now - 5_250).encode())],
    )
    producer.produce(product.topic, b"plain", partition=1, timestamp=now - 7_000)
    producer.flush(30)
    with KafkaMeter(conn) as meter:
        reading = meter.read([Target(product)], now)[product.name]
    assert reading.topic.newest_reflects_ms == {0: now - 5_250, 1: None}
    assert reading.topic.newest_latency_ms == 1_250


def test_a_failed_round_is_tried_again_soon_not_a_whole_interval_later(
    kafka: KafkaAddress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry does not answer: rounds fail, and the next one comes after the retry
    delay, not after the (here 60 s) interval."""
    from mesh_stream.errors import RegistryUnavailableError
    from mesh_stream.monitor import service

    monkeypatch.setattr(service, "RETRY_SECONDS", 0.2)
    attempts: list[float] = []

    class DownRegistry:
        def list_products(self) -> list[dict[str, Any]]:
            attempts.append(time.monotonic())
            raise RegistryUnavailableError("registry at http://127.0.0.1:1 does not answer")

    suffix = uuid.uuid4().hex[:8]
    conn = KafkaConnection.create(kafka.bootstrap_servers)
    monitor = ProductMonitor(
        conn,
        DownRegistry(),
        health_topic=f"_health-retry-{suffix}",
        alerts_topic=f"_alerts-retry-{suffix}",
        interval=60.0,
    )
    stop = threading.Event()
    with monitor:
        runner = threading.Thread(target=monitor.run, args=(stop,))
        runner.start()
        time.sleep(1.5)
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert len(attempts) >= 4, attempts


def test_monitor_topics_a_broker_auto_created_are_corrected(
    kafka: KafkaAddress, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that auto-creates topics (the local one does) can make the monitor's topics
    with its defaults before the monitor starts (a producer of a wiped cluster asking for
    them): the health topic not compacted, alerts kept 7 days. The monitor corrects the
    configs it owns instead of warning on every start."""
    from confluent_kafka.admin import ConfigResource

    from mesh_stream.health import ALERT_RETENTION_MS
    from mesh_stream.kafka.clients import make_admin, new_topic
    from mesh_stream.monitor.publish import ensure_monitor_topics

    suffix = uuid.uuid4().hex[:8]
    health_topic, alerts_topic = f"_health-auto-{suffix}", f"_alerts-auto-{suffix}"
    conn = KafkaConnection.create(kafka.bootstrap_servers)
    admin = make_admin(conn)
    # as the broker would: no config set on them, its defaults (delete, kept 7 days)
    for future in admin.create_topics(
        [new_topic(t, partitions=1) for t in (health_topic, alerts_topic)]
    ).values():
        future.result(30)

    with caplog.at_level("WARNING"):
        ensure_monitor_topics(conn, health_topic, alerts_topic)

    def config(topic: str) -> dict[str, str]:
        resource = ConfigResource("topic", topic)
        found = admin.describe_configs([resource])[resource].result(30)
        return {key: str(entry.value) for key, entry in found.items()}

    assert set(config(health_topic)["cleanup.policy"].split(",")) == {"compact", "delete"}
    assert config(alerts_topic)["retention.ms"] == str(ALERT_RETENTION_MS)
    said = [r.getMessage() for r in caplog.records]
    assert any(
        f"topic {health_topic} differed from its spec and was corrected: cleanup.policy delete"
        in line
        for line in said
    ), said
    assert not any("using it as it is" in line for line in said), said
    # A second start finds nothing to correct.
    caplog.clear()
    with caplog.at_level("WARNING"):
        ensure_monitor_topics(conn, health_topic, alerts_topic)
    assert not [r for r in caplog.records if "topic _" in r.getMessage()]


def test_the_monitor_refuses_a_topic_that_holds_something_else_and_changes_nothing(
    kafka: KafkaAddress,
) -> None:
    """h51: MESH_ALERTS_TOPIC=_mesh_registry set the registry's compacted topic to delete
    records after 30 days and wrote alerts into it (the registry then refused to start);
    MESH_HEALTH_TOPIC=<a product's topic> wrote health JSON among its Avro records."""
    from confluent_kafka.admin import ConfigResource

    from mesh_stream.errors import ConfigurationError
    from mesh_stream.kafka.clients import make_admin, new_topic
    from mesh_stream.monitor.publish import ensure_monitor_topics

    suffix = uuid.uuid4().hex[:8]
    registry_like, alerts_topic = f"_registry-like-{suffix}", f"_alerts-{suffix}"
    conn = KafkaConnection.create(kafka.bootstrap_servers)
    admin = make_admin(conn)
    compacted = {"cleanup.policy": "compact"}
    admin.create_topics([new_topic(registry_like, partitions=1, config=compacted)])[
        registry_like
    ].result(30)

    def policy(topic: str) -> str:
        resource = ConfigResource("topic", topic)
        return str(admin.describe_configs([resource])[resource].result(30)["cleanup.policy"].value)

    with pytest.raises(ConfigurationError) as refused:
        ensure_monitor_topics(conn, f"_health-{suffix}", registry_like)
    assert str(refused.value) == (
        f"MESH_ALERTS_TOPIC={registry_like!r}: that topic exists with cleanup.policy=compact "
        f"set on it, so it holds something else (the monitor's is delete); the monitor would "
        f"change it and write its records into it: name a topic of its own (or unset "
        f"MESH_ALERTS_TOPIC)"
    )
    assert policy(registry_like) == "compact"
    metadata = admin.list_topics(timeout=30).topics
    assert f"_health-{suffix}" not in metadata  # refused before anything was made
    for health, alerts, said in [
        ("orders.order-placed.v1", alerts_topic, "is a data product's topic"),
        ("orders.order-placed.v1.dlq", alerts_topic, "is a product's dead-letter topic"),
        ("__consumer_offsets", alerts_topic, "is Kafka's own"),
        (alerts_topic, alerts_topic, "are both"),
    ]:
        with pytest.raises(ConfigurationError, match=said):
            ensure_monitor_topics(conn, health, alerts)
    assert alerts_topic not in admin.list_topics(timeout=30).topics


def test_a_round_kafka_does_not_take_is_still_shown_and_the_refusal_counted(
    kafka: KafkaAddress,
) -> None:
    """h59: `mesh monitor --once` in an outage printed no table, only "1 records not written
    ...: 12 records not delivered": the round measured is kept on the error, and the count
    is of records. (Kafka refuses here because the health topic takes 64-byte records.)"""
    from mesh_stream.kafka.clients import make_admin, new_topic
    from mesh_stream.monitor.service import NotPublishedError

    product = _product("refused")
    listing = [product.model_dump(mode="json", by_alias=True)]

    class Catalog:
        def list_products(self) -> list[dict[str, Any]]:
            return listing

    suffix = uuid.uuid4().hex[:8]
    health_topic = f"_health-refused-{suffix}"
    admin = make_admin(KafkaConnection.create(kafka.bootstrap_servers))
    created = admin.create_topics(
        [
            new_topic(
                health_topic,
                partitions=1,
                replication_factor=1,
                config={"cleanup.policy": "compact,delete", "max.message.bytes": "64"},
            )
        ]
    )
    created[health_topic].result(30)
    monitor = ProductMonitor(
        KafkaConnection.create(kafka.bootstrap_servers),
        Catalog(),
        health_topic=health_topic,
        alerts_topic=f"_alerts-refused-{suffix}",
        interval=60.0,
    )
    with monitor, pytest.raises(NotPublishedError) as refused:
        monitor.measure()
    assert [h.product for h in refused.value.measured.healths] == [product.name]
    message = str(refused.value)
    assert message.startswith(
        f"product monitor: 1 of 1 records not written at {kafka.bootstrap_servers} (the first: "
        f"{health_topic}: "
    ), message
