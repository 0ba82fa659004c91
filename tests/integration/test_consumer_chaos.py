"""Chaos: a consumer group of two reads 50,000 records while the registry is killed -9 and
restarted, with one poison pill of each kind among them.

The registry runs as a real `mesh registry serve` subprocess (Kafka store on the test
broker). Schema v2 is registered before the kill and its 20,000 records are published
after it, so both consumers meet a schema id they have not seen while nothing answers.
Checked: every valid record delivered at least once (by order id), every pill in the DLQ
with its source coordinates, and, every few hundred milliseconds during the run and at the
end, no committed offset ahead of a record that was neither delivered nor dead-lettered.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from mesh_stream.consumer import ProductConsumer
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import RecordEncoder
from mesh_stream.schema.wire import frame
from tests.conftest import KafkaAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, end_offsets, load_schema, make_order, new_product
from tests.integration.registry_process import TOKENS, RegistryProcess
from tests.integration.test_consumer_at_least_once import (
    assert_not_ahead,
    produce_raw,
    raw_producer,
    v2_order,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

V1_RECORDS = 30_000
V2_RECORDS = 20_000
PARTITIONS = 3


class Group:
    """Two ProductConsumers of one group, each in its own thread, committing every batch."""

    def __init__(self, kafka: KafkaAddress, product: Any, url: str) -> None:
        self.group = f"chaos-{uuid.uuid4().hex[:8]}"
        self.lock = threading.Lock()
        self.delivered: set[tuple[int, int]] = set()
        self.ids: set[str] = set()
        self.schema_ids: set[int] = set()
        self.per_member = [0, 0]  # records each member delivered
        self.deletions_skipped = [0, 0]  # tombstones each member passed over
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(kafka, product, url, member), daemon=True)
            for member in range(2)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, kafka: KafkaAddress, product: Any, url: str, member: int) -> None:
        try:
            with (
                RegistryClient(url) as registry,
                ProductConsumer(
                    [product],
                    group_id=self.group,
                    bootstrap_servers=kafka.bootstrap_servers,
                    registry=registry,
                    from_beginning=True,
                    registry_wait_seconds=60,
                ) as consumer,
            ):
                while not self.stop.is_set():
                    batch = consumer.consume(500, 0.3)
                    with self.lock:
                        self.per_member[member] += len(batch)
                        for record in batch:
                            self.delivered.add((record.partition, record.offset))
                            self.ids.add(str(record.value["order_id"]))
                            self.schema_ids.add(record.schema_id)
                        self.deletions_skipped[member] = consumer.deletions_skipped
                    consumer.commit()  # only after the batch is recorded as delivered
        except BaseException as exc:  # the test fails on it
            self.errors.append(exc)

    def both_decoded(self, total: int) -> bool:
        """Whether each member delivered a record (so has v1's id), or nothing is left."""
        with self.lock:
            return min(self.per_member) > 0 or len(self.delivered) >= total

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


class CommitWatch:
    """Reads the group's committed offsets and checks none passes an unhandled record."""

    def __init__(self, bootstrap: str, group: Group, topic: str, pills: dict[tuple[int, int], Any]):
        self.group = group
        self.topic = topic
        self.pills = pills
        self.first_unhandled = dict.fromkeys(range(PARTITIONS), 0)
        self.checks = 0
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group.group})

    def check(self) -> dict[int, int]:
        found = self.reader.committed(
            [TopicPartition(self.topic, p) for p in range(PARTITIONS)], timeout=10
        )
        committed = {tp.partition: tp.offset for tp in found if tp.offset >= 0}
        with self.group.lock:  # read after the commits: handled only grows since
            for partition in range(PARTITIONS):
                offset = self.first_unhandled[partition]
                while (partition, offset) in self.group.delivered or (
                    partition,
                    offset,
                ) in self.pills:
                    offset += 1
                self.first_unhandled[partition] = offset
        for partition, position in committed.items():
            assert position <= self.first_unhandled[partition], (
                f"committed {self.topic}[{partition}]@{position} but "
                f"@{self.first_unhandled[partition]} was neither delivered nor dead-lettered"
            )
        self.checks += 1
        return committed

    def close(self) -> None:
        self.reader.close()


def test_a_group_of_two_loses_nothing_through_a_registry_kill_and_poison_pills(
    kafka: KafkaAddress,
) -> None:
    bootstrap = kafka.bootstrap_servers
    product = new_product("chaos", partitions=PARTITIONS)
    strings, other = new_product("chaos-strings"), new_product("chaos-other")
    started = time.monotonic()
    with (
        RegistryProcess(kafka) as registry,
        RegistryClient(registry.url, principal="orders", token=TOKENS["orders"]) as writer,
    ):
        string_id = writer.register_schema(strings.value_subject, '"string"')
        foreign = {**load_schema("order_v1.avsc"), "namespace": "sdktest.elsewhere"}
        foreign_id = writer.register_schema(other.value_subject, foreign)
        raw = raw_producer(bootstrap)
        pills: dict[tuple[int, int], bytes | None] = {}

        def pill(value: bytes | None, partition: int) -> None:
            pills[(partition, produce_raw(raw, product.topic, value, partition))] = value

        v1 = ProductPublisher(product, bootstrap_servers=bootstrap, registry=writer, root=REPO_ROOT)
        v1.publish_many([make_order(i) for i in range(V1_RECORDS // 2)])
        body = v1.encoder.encode(make_order(1))[5:]
        pill(b"\x07 not the Confluent magic byte", 0)
        pill(b"\x00\x00\x01", 1)  # too short for a header
        pill(None, 2)  # a tombstone: handled (passed over), not dead-lettered
        pill(frame(string_id, b"\x02a"), 0)  # a non-record schema
        pill(RecordEncoder(foreign, foreign_id).encode(make_order(2)), 1)  # another product's
        pill(frame(v1.schema_id, body + b"\x00"), 2)  # a byte after the body
        pill(frame(v1.schema_id, b"\x48"), 0)  # a body the schema cannot read
        v1.publish_many([make_order(i) for i in range(V1_RECORDS // 2, V1_RECORDS)])
        v1.close()
        # v2 is registered now, while the registry answers; its records come after the kill.
        v2 = ProductPublisher(
            product,
            bootstrap_servers=bootstrap,
            registry=writer,
            schema=load_schema("order_v2.avsc"),
        )

        group = Group(kafka, product, registry.url)
        watch = CommitWatch(bootstrap, group, product.topic, pills)  # pills added later too
        try:
            # Kill once every partition is past its pills (whose ids need the registry once)
            # and both members have decoded v1: a member that joined after the kill would
            # rightly wait for the registry to learn v1's id, and its v1 records with it.
            last_pill = {p: max(o for q, o in pills if q == p) for p in range(PARTITIONS)}
            while time.monotonic() - started < 60 and not (
                past(group, last_pill) and group.both_decoded(V1_RECORDS)
            ):
                watch.check()
                time.sleep(0.1)
            registry.kill()
            v2.publish_many([v2_order(i) for i in range(V1_RECORDS, V1_RECORDS + V2_RECORDS)])
            pill(frame(987_654_321, b"\x02"), 1)  # unknown id, met while the registry is down
            v2.close()
            # Every v1 record gets delivered; then each partition stops at its first v2 record.
            down_until = time.monotonic() + 30
            while len(group.delivered) < V1_RECORDS and time.monotonic() < down_until:
                watch.check()
                time.sleep(0.2)
            for _ in range(8):
                watch.check()
                time.sleep(0.2)
            with group.lock:
                assert len(group.delivered) == V1_RECORDS, missing(group, watch, V1_RECORDS)
                assert v2.schema_id not in group.schema_ids  # nobody could decode v2 yet
            registry.start()

            ends = end_offsets(bootstrap, product.topic, PARTITIONS)
            expected = dict(enumerate(ends))
            committed: dict[int, int] = {}
            while committed != expected and time.monotonic() - started < 150:
                assert not group.errors, group.errors
                committed = watch.check()
                time.sleep(0.2)
        finally:
            group.close()
            watch.close()
    assert not group.errors, group.errors
    assert committed == expected
    wanted = {make_order(i)["order_id"] for i in range(V1_RECORDS + V2_RECORDS)}
    assert group.ids == wanted  # every valid record delivered at least once
    assert len(group.delivered) == V1_RECORDS + V2_RECORDS
    assert min(group.per_member) > 0, group.per_member  # both members of the group read
    assert_not_ahead(committed, group.delivered, pills)
    assert watch.checks > 20

    tombstones = {position for position, value in pills.items() if value is None}
    letters = read_dead_letters(bootstrap, product.dlq_topic, set(pills) - tombstones)
    assert set(letters) == set(pills) - tombstones
    assert sum(group.deletions_skipped) >= len(tombstones) == 1  # twice after a rebalance
    for (partition, offset), (value, headers) in letters.items():
        assert value == pills[(partition, offset)]
        assert headers["mesh.dlq.source.topic"] == product.topic
        framed = value is not None and len(value) >= 5 and value[0] == 0
        schema_id = str(int.from_bytes(value[1:5], "big")) if value and framed else None
        assert headers.get("mesh.dlq.source.schema.id") == schema_id
        assert headers["mesh.dlq.consumer.group"] == group.group
    assert time.monotonic() - started < 150


def missing(group: Group, watch: CommitWatch, total: int) -> str:
    """What the group has not delivered yet, per partition, for a failure message."""
    first = watch.first_unhandled
    return (
        f"{total - len(group.delivered)} v1 records not delivered while the registry was "
        f"down; first unhandled offset per partition {first}; delivered per member "
        f"{group.per_member}"
    )


def past(group: Group, offsets: dict[int, int]) -> bool:
    """Whether the group delivered a record beyond each partition's given offset."""
    with group.lock:
        return all(
            any((partition, o) in group.delivered for o in range(offset + 1, offset + 50))
            for partition, offset in offsets.items()
        )


def read_dead_letters(
    bootstrap: str, topic: str, wanted: set[tuple[int, int]], timeout: float = 30
) -> dict[tuple[int, int], tuple[bytes | None, dict[str, str]]]:
    """Source (partition, offset) -> (value, headers) of the dead letters in ``topic``."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dlq-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([topic])
    found: dict[tuple[int, int], tuple[bytes | None, dict[str, str]]] = {}
    deadline = time.monotonic() + timeout
    try:
        while set(found) != wanted and time.monotonic() < deadline:
            for message in reader.consume(100, 0.5):
                if message.error() is not None:
                    continue
                headers = {k: (v or b"").decode() for k, v in message.headers() or []}
                source = (
                    int(headers["mesh.dlq.source.partition"]),
                    int(headers["mesh.dlq.source.offset"]),
                )
                found[source] = (message.value(), headers)
    finally:
        reader.close()
    return found
