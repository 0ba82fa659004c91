"""The live view's numbers against a real broker: record counts, rate, DLQ counts, processor
lag and the decoded latest value of an aggregate, each recomputed from what the test wrote."""

from __future__ import annotations

import io
import json
import time
import uuid
from decimal import Decimal
from types import SimpleNamespace

import fastavro
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mesh_stream.descriptor import DataProduct
from mesh_stream.liveview import MeshMonitor, registry_decoder
from mesh_stream.processing.names import processor_app_id, sources_group
from mesh_stream.schema.wire import frame
from tests.conftest import KafkaAddress

SCHEMA_ID = 4242
SCHEMA = {
    "type": "record",
    "name": "Total",
    "namespace": "io.meshstream.uptest",
    "doc": "A running total.",
    "fields": [
        {"name": "region", "type": "string", "doc": "Region."},
        {"name": "count", "type": "long", "doc": "Orders so far."},
        {
            "name": "revenue",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            "doc": "Revenue so far.",
        },
    ],
}


def product(name: str, kind: str, inputs: tuple[str, ...] = ()) -> DataProduct:
    domain = name.split(".", maxsplit=1)[0]
    return DataProduct.model_validate(
        {
            "name": name,
            "domain": domain,
            "kind": kind,
            "description": "test product",
            "owner": {"team": "t", "contact": "t@example.com"},
            "schema": "schemas/none.avsc",
            "partitions": 2,
            "slos": {"freshness_seconds": 10, "availability": 99},
            "classification": "internal",
            "inputs": list(inputs),
        }
    )


def commit_offsets(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit like a consumer of ``group`` would (retried: a fresh broker may still be
    electing the group coordinator)."""
    deadline = time.monotonic() + 60
    while True:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            consumer.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def encode(record: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMA), record)
    return frame(SCHEMA_ID, out.getvalue())


def test_monitor_reports_counts_rate_dlq_lag_and_latest_value(kafka: KafkaAddress) -> None:
    domain = f"uptest{uuid.uuid4().hex[:8]}"
    source = product(f"{domain}.events", "source-aligned")
    total = product(f"{domain}.totals", "aggregate", (source.name,))
    missing = product(f"{domain}.never-written", "source-aligned")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topics = [source.topic, source.dlq_topic, total.topic]
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=2, replication_factor=1) for t in topics]
    ).values():
        future.result(30)

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    first_batch = 30
    for n in range(first_batch):
        producer.produce(source.topic, key=f"k{n}", value=b"x", partition=n % 2)
    for n in range(3):
        producer.produce(source.dlq_topic, value=b"poison", partition=n % 2)
    totals = [
        {"region": region, "count": count, "revenue": Decimal(count * 10) / 4}
        for count, region in enumerate(["north", "south", "east", "west"], start=1)
    ]
    for index, record in enumerate(totals):
        # Increasing timestamps: the last one written is the newest value.
        producer.produce(
            total.topic,
            key=record["region"],
            value=encode(record),
            partition=index % 2,
            timestamp=1_700_000_000_000 + index,
        )
    assert producer.flush(30) == 0

    # The processor of `totals` (its re-key stage's group, named as the workers name it)
    # consumed everything on partition 0 and 5 records of partition 1.
    group = sources_group(processor_app_id(total.name))
    partition_sizes = [len(range(p, first_batch, 2)) for p in (0, 1)]
    committed = [
        TopicPartition(source.topic, 0, partition_sizes[0]),
        TopicPartition(source.topic, 1, 5),
    ]
    commit_offsets(kafka.bootstrap_servers, group, committed)

    clock = Clock()
    schemas = {SCHEMA_ID: json.dumps(SCHEMA)}
    monitor = MeshMonitor(
        kafka.bootstrap_servers,
        [source, total, missing],
        decoder=registry_decoder(SimpleNamespace(get_schema=schemas.__getitem__)),
        clock=clock,
    )
    with monitor:
        first = monitor.sample()
        assert first.product(source.name).records == first_batch
        assert first.product(source.name).rate is None  # one sample cannot give a rate
        assert first.product(source.name).dead_letters == 3
        assert first.product(missing.name).records is None
        assert first.product(total.name).records == len(totals)
        assert first.product(total.name).latest == totals[-1]
        assert first.product(source.name).latest is None  # only derived products

        second_batch = 12
        for n in range(second_batch):
            producer.produce(source.topic, value=b"y", partition=n % 2)
        assert producer.flush(30) == 0
        clock.now += 4.0
        second = monitor.sample()
    stats = second.product(source.name)
    assert stats.records == first_batch + second_batch
    assert stats.rate == second_batch / 4.0
    lags = {g.group: g for g in second.groups}
    assert lags[group].topics == (source.topic,)
    expected_lag = (first_batch + second_batch) - partition_sizes[0] - 5
    assert lags[group].lag == expected_lag
    assert second.problems == ()
