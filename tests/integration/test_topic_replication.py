"""On a real 3-node cluster every topic the mesh creates has RF 3 and min.insync.replicas 2.

The cluster is started with the project's launcher (own data dir, free ports, small heaps)
and stopped in teardown. Publishing a product with the SDK creates its topic; a consumer
dead-lettering a poison pill creates the DLQ; registering a processor's topics creates its
product, DLQ, internal and changelog topics; faust gets the same replication factor for
the topics it creates itself. Then one broker is SIGKILLed while the SDK publishes: every
record Kafka acknowledged is on the topic exactly once.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from mesh_stream.broker import local_cluster
from mesh_stream.broker.cluster import LocalCluster
from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import DeliveryError, TopicMismatchError
from mesh_stream.kafka.clients import make_admin, make_consumer, make_producer, new_topic
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import (
    cluster_info,
    ensure_topic,
    forget_cluster,
    product_topic_spec,
)
from mesh_stream.processing.app import ProcessorSpec, processor_app
from mesh_stream.processing.outputs import OutputProducer, OutputRefusedError
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import ensure_internal_topic, ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import RegistryAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, make_order, new_product

HEAP = "256m"


class ThreeNodes:
    def __init__(self, cluster: LocalCluster, connection: KafkaConnection, data_dir: Path) -> None:
        self.cluster = cluster
        self.connection = connection
        self.data_dir = data_dir


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeNodes]:
    data_dir = tmp_path_factory.mktemp("mesh-3-nodes")
    settings = MeshSettings(data_dir=data_dir, broker_heap=HEAP)
    cluster = local_cluster(settings)
    try:
        state = cluster.start(brokers=3, port=0, timeout=240)
        yield ThreeNodes(cluster, KafkaConnection.create(state.bootstrap_servers), data_dir)
    finally:
        cluster.stop()


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="admin", token=registry.admin_token) as c:
        yield c


def replication(conn: KafkaConnection, topic: str) -> tuple[set[int], str]:
    """(replica counts of the topic's partitions, its min.insync.replicas)."""
    admin = make_admin(conn, {"log_level": 0})
    described = admin.list_topics(topic, timeout=30).topics[topic]
    assert described.error is None, f"{topic}: {described.error}"
    counts = {len(p.replicas) for p in described.partitions.values()}
    resource = ConfigResource("topic", topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    return counts, configs["min.insync.replicas"].value


def test_the_cluster_default_is_read_from_the_brokers(three_nodes: ThreeNodes) -> None:
    info = cluster_info(three_nodes.connection)
    assert (info.brokers, info.default_replication_factor, info.source) == (
        3,
        3,
        "default.replication.factor",
    )


def test_sdk_and_processor_topics_get_three_replicas_and_min_insync_two(
    three_nodes: ThreeNodes, client: RegistryClient
) -> None:
    conn = three_nodes.connection
    product = new_product("rf")
    with ProductPublisher(product, connection=conn, registry=client, root=REPO_ROOT) as publisher:
        publisher.publish_many([make_order(i) for i in range(20)])

    # A poison pill, dead-lettered by the SDK consumer: the DLQ is created by the SDK too.
    pill = make_producer(conn, {"acks": "all"})
    pill.produce(product.topic, b"not a framed record", b"pill")
    assert pill.flush(30) == 0
    with ProductConsumer(
        [product],
        group_id=f"rf-{uuid.uuid4().hex[:8]}",
        connection=conn,
        registry=client,
        from_beginning=True,
    ) as consumer:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 20 and time.monotonic() < deadline:
            seen += len(consumer.consume(100, 1.0))
        consumer.commit()
    assert seen == 20

    # A processor's topics: its input and output products, the inputs' DLQs, an internal
    # (re-key) topic and a changelog, as processing/app.py's prepare() creates them.
    source, output = new_product("rf-source"), new_product("rf-output", partitions=2)
    created = ensure_topics(conn, [source, output])
    assert sorted(created) == sorted([source.topic, output.topic])
    ensure_internal_topic(conn, source.dlq_topic, source.partitions)
    app_id = f"mesh-{output.name}"
    ensure_internal_topic(conn, f"{app_id}-events", output.partitions)
    ensure_internal_topic(conn, f"{app_id}-totals-changelog", output.partitions, compacted=True)

    topics = [
        product.topic,
        product.dlq_topic,
        source.topic,
        output.topic,
        source.dlq_topic,
        f"{app_id}-events",
        f"{app_id}-totals-changelog",
    ]
    found = {topic: replication(conn, topic) for topic in topics}
    assert found == dict.fromkeys(topics, ({3}, "2"))

    # faust creates its own topics (leader election, repartitions) with this factor.
    settings = MeshSettings(
        bootstrap_servers=conn.bootstrap_servers, data_dir=three_nodes.data_dir / "faust"
    )
    spec = ProcessorSpec(output, (source,), 1, settings, schema_text(output, REPO_ROOT))
    app = processor_app(spec)
    assert app.conf.topic_replication_factor == 3
    assert app.conf.broker_credentials is None
    assert [str(url) for url in app.conf.broker] == [
        f"kafka://{server}" for server in conn.bootstrap_servers.split(",")
    ]


def test_an_existing_topic_that_differs_is_reported_not_silently_used(
    three_nodes: ThreeNodes, caplog: pytest.LogCaptureFixture
) -> None:
    conn = three_nodes.connection
    product = new_product("differs")
    admin = make_admin(conn, {"log_level": 0})
    admin.create_topics(
        [new_topic(product.topic, partitions=1, replication_factor=1)], operation_timeout=30
    )[product.topic].result(30)
    with caplog.at_level("WARNING", logger="mesh_stream.kafka.topics"):
        assert ensure_topics(conn, [product]) == []
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert f"topic {product.topic} exists and differs from its spec" in warning
    assert "partitions is 1, the spec says 3" in warning
    assert "replication factor is 1, the spec says 3" in warning
    spec = product_topic_spec(product, cluster_info(conn))
    with pytest.raises(TopicMismatchError, match=f"topic {product.topic} exists but partitions"):
        ensure_topic(conn, spec, strict=True)


def test_every_acknowledged_record_survives_a_sigkilled_broker_exactly_once(
    three_nodes: ThreeNodes, client: RegistryClient
) -> None:
    conn = three_nodes.connection
    product = new_product("kill", partitions=6)
    total, kill_at = 5_000, 1_500
    failed_keys: set[str] = set()
    killed: int | None = None
    with ProductPublisher(
        product,
        connection=conn,
        registry=client,
        root=REPO_ROOT,
        config={"message.timeout.ms": 120_000, "linger.ms": 5},
    ) as publisher:
        for i in range(total):
            publisher.publish(make_order(i))
            if i == kill_at:
                publisher._producer.flush(30)  # some acknowledged before the kill
                status = three_nodes.cluster.status()
                victim = next(node for node in status.nodes if node.running)
                assert victim.pid is not None
                os.kill(victim.pid, signal.SIGKILL)
                killed = victim.pid
        try:
            publisher.flush(180)
        except DeliveryError as exc:
            failed_keys = {str(item.key) for item in exc.failed}
    assert killed is not None
    acknowledged = {make_order(i)["order_id"] for i in range(total)} - failed_keys
    assert len(acknowledged) >= total - 100, f"{len(failed_keys)} records not acknowledged"

    consumer = make_consumer(
        conn,
        {
            "group.id": f"kill-check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        },
    )
    consumer.subscribe([product.topic])
    keys: Counter[str] = Counter()
    at_end: set[int] = set()
    deadline = time.monotonic() + 120
    while len(at_end) < product.partitions and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
            continue
        keys[message.key().decode()] += 1
    consumer.close()
    assert len(at_end) == product.partitions, "did not read every partition to its end"
    missing = acknowledged - set(keys)
    duplicated = {key for key, count in keys.items() if count > 1}
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"{len(duplicated)} records written twice"
    # The node stays down: the cluster still has three brokers (its replicas say so), so a
    # process meeting it now still opens a product that asks for three replicas (h33: "the
    # cluster has 2", and the publisher, its DLQ and the plan refused it for the outage).
    forget_cluster(conn)
    info = cluster_info(conn)
    assert (info.brokers, info.default_replication_factor) == (3, 3)
    three = new_product("rf-three", partitions=2).model_copy(update={"replication_factor": 3})
    with ProductPublisher(three, connection=conn, registry=client, root=REPO_ROOT) as publisher:
        publisher.publish(make_order(1))
        publisher.flush(60)
    assert replication(conn, three.topic) == ({3}, "2")


def test_writes_refused_for_too_few_in_sync_replicas_say_so(
    three_nodes: ThreeNodes, client: RegistryClient
) -> None:
    """librdkafka retries NOT_ENOUGH_REPLICAS until the delivery timeout and then says only
    "timed out": the publisher asks the cluster why and names the partitions, the replicas in
    sync, the topic's min.insync.replicas and the broker that is out of sync."""
    conn = three_nodes.connection
    status = three_nodes.cluster.status()
    down = [node for node in status.nodes if not node.running]
    if not down:  # run alone: the test above leaves one node down
        victim = status.nodes[-1]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        down = [victim]
    product = new_product("in-sync", partitions=2)
    with ProductPublisher(
        product,
        connection=conn,
        registry=client,
        root=REPO_ROOT,
        config={"message.timeout.ms": 6000},
    ) as publisher:
        publisher.publish(make_order(0))
        publisher.flush(60)  # two of three replicas in sync meet min.insync.replicas 2
        admin = make_admin(conn, {"log_level": 0})
        strict = ConfigResource(
            "topic",
            product.topic,
            incremental_configs=[
                ConfigEntry("min.insync.replicas", "3", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([strict])[strict].result(30)
        described = admin.list_topics(product.topic, timeout=30).topics[product.topic]
        lagging = sorted(
            {b for p in described.partitions.values() for b in p.replicas if b not in p.isrs}
        )
        assert lagging == [down[0].node_id]
        for i in range(1, 4):
            publisher.publish(make_order(i))
        why = (
            f"partition(s) 0, 1 of topic {product.topic} have 2 replica(s) in sync, fewer than "
            f"its min.insync.replicas 3, so Kafka refuses every acks=all write to them "
            f"(NOT_ENOUGH_REPLICAS) until broker(s) {down[0].node_id} are back in sync"
        )
        with pytest.raises(DeliveryError) as queued:
            publisher.flush(2)  # a quarter of it asks the cluster why
        assert str(queued.value).startswith(
            f"3 record(s) of {product.name} are not yet acknowledged by Kafka after 2s "
            f"(still queued for topic {product.topic}): {why}. librdkafka keeps retrying"
        )
        with pytest.raises(DeliveryError) as failed:
            publisher.flush(60)
        assert len(failed.value.failed) == 3
        assert f"The cluster says why: {why}. 3 of them got no answer" in str(failed.value)
    # A processor's outputs to such a topic stop the worker with the same words.
    outputs = OutputProducer(conn, "analytics.in-sync-check")
    outputs.start(product.topic)
    outputs.send(product.topic, b"k", b"v", {})
    with pytest.raises(OutputRefusedError) as stopped:
        outputs.flush(5)
    assert str(stopped.value) == (
        f"1 output record(s) of analytics.in-sync-check not acknowledged by Kafka within 5 s: {why}"
    )
