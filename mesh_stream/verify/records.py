"""Reading what `mesh verify` compares: input topics back in order, the output's latest
record per key, the last records of live topics, and whether every consumer group is done."""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, DeserializationError
from mesh_stream.kafka.clients import make_admin, make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.reference import InputRecord

__all__ = ["OutputWatcher", "lagging_groups", "read_inputs", "read_live", "uncommitted"]


def _consumer(conn: KafkaConnection, **config: Any) -> Any:
    return make_consumer(
        conn,
        {
            "group.id": f"mesh-verify-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
            **config,
        },
    )


@dataclass
class _Partition:
    topic: str
    product: str
    partition: int
    start: int
    end: int
    records: list[InputRecord] = field(default_factory=list)


def _read_ranges(
    conn: KafkaConnection,
    decoder: FramedAvroDecoder,
    ranges: list[_Partition],
    timeout: float,
) -> int:
    """Fill each range's records (offset order); returns how many records were not decodable."""
    wanted = [r for r in ranges if r.end > r.start]
    if not wanted:
        return 0
    by_key = {(r.topic, r.partition): r for r in wanted}
    remaining = sum(r.end - r.start for r in wanted)
    undecodable = 0
    consumer = _consumer(conn)
    try:
        consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in wanted])
        deadline = time.monotonic() + timeout
        while remaining > 0:
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"could not read {remaining} records of "
                    f"{', '.join(sorted({r.topic for r in wanted}))} within {timeout:.0f} s"
                )
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                if message.error() is not None:
                    continue
                target = by_key[(message.topic(), message.partition())]
                offset = message.offset()
                if offset >= target.end:
                    continue
                remaining -= 1
                where = f"{target.topic}[{target.partition}]@{offset}"
                try:
                    value = decoder.decode(message.value(), where=where)
                except DeserializationError:
                    undecodable += 1  # a poison pill: the worker dead-letters it
                    continue
                target.records.append(
                    InputRecord(target.product, value, message.timestamp()[1], where)
                )
    finally:
        consumer.close()
    return undecodable


def _in_arrival_order(ranges: Iterable[_Partition]) -> list[InputRecord]:
    """All records, each partition's in offset order, partitions merged by timestamp."""
    return list(heapq.merge(*(r.records for r in ranges), key=lambda item: item.arrival_ms))


def _partitions(conn: KafkaConnection, products: Iterable[DataProduct]) -> Iterator[_Partition]:
    consumer = _consumer(conn)
    try:
        metadata = consumer.list_topics(timeout=10)
        for product in products:
            topic = metadata.topics.get(product.topic)
            if topic is None or topic.error is not None:
                raise ConfigurationError(
                    f"topic {product.topic} of {product.name} does not exist at "
                    f"{conn.bootstrap_servers}"
                )
            for partition in sorted(topic.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(product.topic, partition), timeout=10
                )
                yield _Partition(product.topic, product.name, partition, low, high)
    finally:
        consumer.close()


def read_inputs(
    conn: KafkaConnection,
    decoder: FramedAvroDecoder,
    products: Iterable[DataProduct],
    *,
    timeout: float = 60.0,
) -> list[InputRecord]:
    """Every record now in the topics of ``products``, decoded, with its Kafka timestamp."""
    ranges = list(_partitions(conn, products))
    _read_ranges(conn, decoder, ranges, timeout)
    return _in_arrival_order(ranges)


def read_live(
    conn: KafkaConnection,
    decoder: FramedAvroDecoder,
    product: DataProduct,
    last: int,
    *,
    timeout: float = 60.0,
) -> tuple[list[InputRecord], int]:
    """The last ``last`` records (by timestamp) of ``product``'s live topic, and how many
    undecodable records were met among those read."""
    ranges = list(_partitions(conn, [product]))
    for item in ranges:
        item.start = max(item.start, item.end - last)
    undecodable = _read_ranges(conn, decoder, ranges, timeout)
    records = _in_arrival_order(ranges)
    return records[-last:], undecodable


class OutputWatcher:
    """Follows the output topic from its start, keeping the latest record per Kafka key (a
    tombstone deletes its key's)."""

    def __init__(self, conn: KafkaConnection, decoder: FramedAvroDecoder, output: DataProduct):
        self.decoder = decoder
        self.latest: dict[str, dict[str, Any]] = {}
        self.received = 0
        self.last_change = time.monotonic()
        self.undecodable: list[str] = []
        # A new output record is seen within milliseconds (librdkafka waits up to 500 ms
        # for data by default): the kills aim at the batch that record belongs to.
        self._consumer = _consumer(conn, **{"fetch.wait.max.ms": 10})
        metadata = self._consumer.list_topics(output.topic, timeout=10).topics[output.topic]
        self._consumer.assign(
            [TopicPartition(output.topic, p, 0) for p in sorted(metadata.partitions)]
        )

    def poll(self, seconds: float = 0.2) -> int:
        """Read what arrived within ``seconds``; returns how many records."""
        count = 0
        deadline = time.monotonic() + seconds
        while True:
            wait = max(0.0, deadline - time.monotonic())
            for message in self._consumer.consume(num_messages=5000, timeout=min(wait, 0.2)):
                if message.error() is not None:
                    continue
                where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                key = message.key()
                text = key.decode("utf-8", "replace") if key is not None else "<no key>"
                value = message.value()
                if value is None:  # a tombstone: the key's record is deleted (a merged session)
                    self.latest.pop(text, None)
                    count += 1
                    continue
                try:
                    self.latest[text] = self.decoder.decode(value, where=where)
                except DeserializationError as exc:
                    self.undecodable.append(str(exc))
                count += 1
            if time.monotonic() >= deadline:
                break
        if count:
            self.received += count
            self.last_change = time.monotonic()
        return count

    def close(self) -> None:
        self._consumer.close()


def lagging_groups(
    conn: KafkaConnection, required: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """``group topic[partition]`` of every committed position short of its partition's end,
    over every consumer group of the cluster (the sandbox's: the workers' groups only).

    ``required`` maps groups to the topics each must read: a partition of those that holds
    records and that the group has committed nothing of lags too (``nothing committed``),
    whether or not the group exists yet; without it a group that never committed (a worker
    that crashed on its first batch) would look caught up.
    """
    required = required or {}
    admin = make_admin(conn, {"log_level": 0})
    listed = admin.list_consumer_groups().result(timeout=10)
    found = [g.group_id for g in listed.valid if not g.group_id.startswith("mesh-verify-")]
    groups = list(dict.fromkeys([*found, *required]))
    if not groups:
        return ["no consumer group has committed yet"]
    lagging: list[str] = []
    probe = _consumer(conn)
    try:
        metadata = probe.list_topics(timeout=10)
        for group in groups:
            committed = _committed(admin, group, known_group=group in found)
            # every partition of a topic the group reads, committed or not
            read = {topic for topic, _ in committed} | set(required.get(group, ()))
            for topic in sorted(read):
                known = metadata.topics.get(topic)
                if known is None:
                    continue  # not created yet: nothing in it to read
                for partition in sorted(known.partitions):
                    _low, high = probe.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    position = committed.get((topic, partition))
                    if position is None and high > 0:
                        lagging.append(f"{group} {topic}[{partition}] (nothing committed)")
                    elif position is not None and position < high:
                        lagging.append(f"{group} {topic}[{partition}]")
    finally:
        probe.close()
    return lagging


def _committed(admin: Any, group: str, *, known_group: bool) -> dict[tuple[str, int], int]:
    """The committed position of ``group`` per ``(topic, partition)``; none for a group the
    cluster does not know yet (a required group whose worker never got that far)."""
    request = [ConsumerGroupTopicPartitions(group)]
    try:
        answer = admin.list_consumer_group_offsets(request)[group].result(timeout=10)
    except KafkaException:
        if known_group:
            raise
        return {}
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def uncommitted(conn: KafkaConnection, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed (end offset minus committed
    position, summed over the partitions): what a worker of the group killed now reads
    again when it restarts."""
    admin = make_admin(conn, {"log_level": 0})
    probe = _consumer(conn)
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [TopicPartition(topic, partition) for partition in sorted(partitions)]
        request = [ConsumerGroupTopicPartitions(group, wanted)]
        answer = admin.list_consumer_group_offsets(request)[group].result(timeout=10)
        committed = {tp.partition: max(tp.offset, 0) for tp in answer.topic_partitions}
        pending = 0
        for tp in wanted:
            _low, high = probe.get_watermark_offsets(tp, timeout=10)
            pending += max(high - committed.get(tp.partition, 0), 0)
        return pending
    finally:
        probe.close()
