"""Whether a consumer has read all its partitions hold, asked of a real broker: what lets a
short ``mesh tail --timeout`` wait for the first fetch instead of ending before it."""

from __future__ import annotations

import socket
import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from mesh_stream.kafka.clients import make_consumer, make_producer, unread_partitions
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topic, topic_spec
from tests.conftest import KafkaAddress


def _consumer(conn: KafkaConnection, group: str) -> Consumer:
    config = {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    return make_consumer(conn, config)


def _read(consumer: Consumer, count: int) -> list[int]:
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    while len(offsets) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            offsets.append(message.offset())
    return offsets


def test_unread_partitions_follow_the_start_the_reads_and_the_committed_offsets(
    kafka: KafkaAddress,
) -> None:
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap_servers)
    topic = f"it.unread.{uuid.uuid4().hex[:8]}"
    ensure_topic(conn, topic_spec(topic, cluster_info(conn), partitions=2))
    producer = make_producer(conn, {"acks": "all"})
    for i in range(7):
        producer.produce(topic, value=str(i).encode(), partition=0)
    assert producer.flush(30) == 0
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    group = f"it-unread-{uuid.uuid4().hex[:8]}"
    first = _consumer(conn, group)
    try:
        first.assign([p0, p1])  # assigned, nothing fetched yet
        assert unread_partitions(first, from_start={topic}) == [f"{topic}[0]@0..7"]
        assert unread_partitions(first, from_start=()) == []  # told it starts at the end
        assert _read(first, 4) == [0, 1, 2, 3]
        assert unread_partitions(first, from_start={topic}) == [f"{topic}[0]@4..7"]
        first.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        assert _read(first, 3) == [4, 5, 6]
        assert unread_partitions(first, from_start={topic}) == []
    finally:
        first.close()

    second = _consumer(conn, group)  # the group's committed offset is where it starts
    try:
        second.assign([p0, p1])
        assert unread_partitions(second, from_start=()) == [f"{topic}[0]@5..7"]
        assert _read(second, 2) == [5, 6]
        assert unread_partitions(second, from_start={topic}) == []
    finally:
        second.close()


def test_transactions_leave_nothing_unread_once_their_records_are_read(
    kafka: KafkaAddress,
) -> None:
    """A transactional writer's commit markers, its aborted records and a transaction still
    open hold nothing a read_committed consumer can read: none of them keeps a partition
    "unread" (a tail of such a product would otherwise wait its extra 10 s every time)."""
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap_servers)
    topic = f"it.unread-tx.{uuid.uuid4().hex[:8]}"
    ensure_topic(conn, topic_spec(topic, cluster_info(conn), partitions=1))
    writer = make_producer(conn, {"transactional.id": f"it-unread-{topic}"})
    writer.init_transactions(30)
    writer.begin_transaction()
    for i in range(3):
        writer.produce(topic, value=str(i).encode())
    writer.commit_transaction(30)  # offsets 0-2, the commit marker at 3
    writer.begin_transaction()
    writer.produce(topic, value=b"aborted")
    writer.abort_transaction(30)  # offset 4, its abort marker at 5
    writer.begin_transaction()
    writer.produce(topic, value=b"open")  # offset 6, not committed
    writer.flush(30)
    reader = _consumer(conn, f"it-unread-{uuid.uuid4().hex[:8]}")
    try:
        reader.assign([TopicPartition(topic, 0)])
        [before] = unread_partitions(reader, from_start={topic})  # up to the stable offset,
        assert before.startswith(f"{topic}[0]@0.."), before  # 4 or 6 as the abort's marker lands
        assert _read(reader, 3) == [0, 1, 2]
        deadline = time.monotonic() + 10
        while unread_partitions(reader, from_start={topic}) and time.monotonic() < deadline:
            reader.poll(0.2)  # what follows the last record read is markers and aborted
        assert unread_partitions(reader, from_start={topic}) == []
    finally:
        reader.close()
        writer.abort_transaction(30)


def test_a_partition_kafka_cannot_say_of_counts_as_unread_not_as_read() -> None:
    with socket.socket() as probe:  # a port nothing listens on: no broker answers there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    conn = KafkaConnection(bootstrap_servers=f"127.0.0.1:{closed}")
    consumer = _consumer(conn, f"it-unread-{uuid.uuid4().hex[:8]}")
    try:
        consumer.assign([TopicPartition("it.unread.nowhere", 0), TopicPartition("it.x", 3)])
        started = time.monotonic()
        left = unread_partitions(consumer, from_start=(), timeout=0.5)
        assert time.monotonic() - started < 5
        assert [item.split(" (")[0] for item in left] == ["it.unread.nowhere[0]", "it.x[3]"]
        assert all(" (not checked: Kafka" in item for item in left), left
    finally:
        consumer.close()
