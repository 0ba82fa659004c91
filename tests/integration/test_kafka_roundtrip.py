"""The foundation's proof: a real broker delivers 10,000 keyed records exactly once, in order."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import KafkaAddress

RECORDS = 10_000
KEYS = 37


def test_keyed_records_arrive_exactly_once_in_per_key_order(kafka: KafkaAddress) -> None:
    topic = f"it.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while True:  # metadata reaches the broker's cache shortly after creation
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        leaders = [p.leader for p in partitions.values()]
        if (len(partitions) == 3 and min(leaders) >= 0) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(partitions) == 3

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    sent: dict[str, list[int]] = defaultdict(list)
    for seq in range(RECORDS):
        key = f"key-{seq % KEYS}"
        sent[key].append(seq)
        producer.produce(topic, key=key, value=str(seq).encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"it-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: dict[str, list[int]] = defaultdict(list)
    partition_of_key: dict[str, set[int]] = defaultdict(set)
    total = 0
    idle_polls = 0
    try:
        while total < RECORDS and idle_polls < 60:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if not batch:
                idle_polls += 1
                continue
            idle_polls = 0
            for message in batch:
                assert message.error() is None, message.error()
                key = message.key().decode()
                received[key].append(int(message.value()))
                partition_of_key[key].add(message.partition())
                total += 1
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    assert total == RECORDS
    assert received == sent  # every record once, and per key in the order produced
    assert all(len(parts) == 1 for parts in partition_of_key.values())
    assert {p for parts in partition_of_key.values() for p in parts} == {0, 1, 2}
