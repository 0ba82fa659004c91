"""The output producer against a real broker: a key lands where faust's producer put it, a
flush means acknowledged, and a refused record is reported once and fails every flush after."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.kafka.topics import TopicSpec, ensure_topic
from mesh_stream.processing.outputs import OutputProducer, OutputRefusedError
from tests.conftest import KafkaAddress

PARTITIONS = 5


def _topic(connection: KafkaConnection, config: dict[str, str] | None = None) -> str:
    name = f"outputs-{uuid.uuid4().hex[:8]}"
    ensure_topic(connection, TopicSpec(name, PARTITIONS, 1, config or {}))
    return name


def _read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found: list[tuple[bytes, int, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    found.append((message.key(), message.partition(), message.value()))
    finally:
        consumer.close()
    return found


def test_keys_keep_faust_s_partitions_and_a_flush_means_acknowledged(kafka: KafkaAddress) -> None:
    connection = KafkaConnection.create(kafka.bootstrap_servers)
    topic = _topic(connection)
    outputs = OutputProducer(connection, "mesh-test")
    keys = [f"region-{n}@{1_700_000_000_000 + n * 60_000}" for n in range(200)]
    for key in keys:
        outputs.send(topic, key.encode(), f"value of {key}".encode(), {"h": b"1"})
    outputs.flush(10)
    found = _read_all(kafka.bootstrap_servers, topic, len(keys))
    assert sorted(k for k, _, _ in found) == sorted(k.encode() for k in keys)
    for key, partition, value in found:
        assert partition == key_partition(key.decode(), PARTITIONS)
        assert value == b"value of " + key


def test_a_refused_record_is_told_once_and_fails_every_flush_after(kafka: KafkaAddress) -> None:
    connection = KafkaConnection.create(kafka.bootstrap_servers)
    topic = _topic(connection, {"max.message.bytes": "64"})
    outputs = OutputProducer(connection, "mesh-test")
    told: list[BaseException] = []
    outputs.on_refused = told.append
    outputs.send(topic, b"eu", b"x" * 1_000, {})
    with pytest.raises(OutputRefusedError, match=rf"output record to {topic}\[\d\] refused: "):
        outputs.flush(10)
    outputs.send(topic, b"us", b"x" * 1_000, {})
    with pytest.raises(OutputRefusedError, match="MSG_SIZE_TOO_LARGE"):
        outputs.flush(10)
    assert len(told) == 1
