"""The consumer never commits past a record it neither delivered nor dead-lettered.

Real broker, real registry (the session one, or a `mesh registry serve` subprocess when it
must die). Every test compares, record by record, the group's committed offsets (read by
another client) with the offsets the application got and the ones in the dead-letter topic.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from mesh_stream.consumer import DLQ_HEADERS, ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import DeliveryError, RegistryUnavailableError
from mesh_stream.producer import ProductPublisher, open_publisher
from mesh_stream.registration import register_descriptor
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import RecordEncoder, json_default
from mesh_stream.schema.wire import frame
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    REPO_ROOT,
    decoded,
    load_schema,
    make_order,
    new_product,
    read_raw,
)
from tests.integration.registry_process import MESH, TOKENS, RegistryProcess

pytestmark = pytest.mark.integration


# -- helpers shared with the chaos test ------------------------------------------------


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (partitions without one left out)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def assert_not_ahead(
    committed: dict[int, int], delivered: Iterable[tuple[int, int]], dead: Iterable[tuple[int, int]]
) -> None:
    """Every offset below a committed position was delivered or dead-lettered."""
    handled = set(delivered) | set(dead)
    for partition, position in committed.items():
        missing = [o for o in range(position) if (partition, o) not in handled]
        assert not missing, (
            f"partition {partition} committed at {position}, never handled {missing[:10]}"
        )


def dead_letters(bootstrap: str, topic: str, count: int) -> list[dict[str, str]]:
    """The first ``count`` dead letters of ``topic``'s DLQ: headers decoded, value as ``.value``."""
    letters = []
    for message in read_raw(bootstrap, topic, count):
        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        letters.append({**headers, ".value": message.value()})
    return letters


def raw_producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 0})


def produce_raw(producer: Producer, topic: str, value: bytes | None, partition: int = 0) -> int:
    """Write one record as is; its offset."""
    offsets: list[int] = []

    def stored(err: object, message: Message) -> None:
        assert err is None, err
        offsets.append(message.offset() or 0)

    producer.produce(topic, value, key=b"poison", partition=partition, on_delivery=stored)
    producer.flush(30)
    return offsets[0]


def v2_order(index: int) -> dict[str, Any]:
    record = {**make_order(index), "channel": f"shop-{index}"}
    del record["note"]
    return record


def publish_orders(
    product: DataProduct, bootstrap: str, writer: RegistryClient, numbers: range
) -> None:
    """Orders ``numbers`` published to ``product`` with its latest schema, all delivered."""
    with ProductPublisher(
        product, bootstrap_servers=bootstrap, registry=writer, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in numbers])


def outage_consumer(
    product: DataProduct, group: str, bootstrap: str, reader: RegistryClient, wait_seconds: float
) -> ProductConsumer:
    """``group``'s consumer of ``product`` from the beginning, waiting ``wait_seconds`` for an
    unavailable registry."""
    return ProductConsumer(
        [product],
        group_id=group,
        bootstrap_servers=bootstrap,
        registry=reader,
        from_beginning=True,
        registry_wait_seconds=wait_seconds,
    )


def consume_until(
    consumer: ProductConsumer, count: int, into: list[ConsumedRecord], seconds: float = 30
) -> None:
    deadline = time.monotonic() + seconds
    while len(into) < count and time.monotonic() < deadline:
        into += consumer.consume(500, 0.5)
        consumer.commit()
    assert len(into) >= count, f"only {len(into)} of {count} records after {seconds}s"


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


# -- registry outage ---------------------------------------------------------------------


def test_registry_down_the_consumer_waits_raises_after_its_deadline_and_skips_nothing(
    kafka: KafkaAddress,
) -> None:
    bootstrap = kafka.bootstrap_servers
    product = new_product("outage", partitions=1)
    group = f"outage-{uuid.uuid4().hex[:8]}"
    with (
        RegistryProcess(kafka) as registry,
        RegistryClient(registry.url, principal="orders", token=TOKENS["orders"]) as writer,
        RegistryClient(registry.url) as reader,
    ):
        publish_orders(product, bootstrap, writer, range(100))
        got: list[ConsumedRecord] = []
        consumer = outage_consumer(product, group, bootstrap, reader, 2.0)
        try:
            consume_until(consumer, 100, got)  # schema v1 is now cached, v2 is not
            publish_orders(product, bootstrap, writer, range(100, 200))
            with ProductPublisher(
                product,
                bootstrap_servers=bootstrap,
                registry=writer,
                schema=load_schema("order_v2.avsc"),
            ) as publisher:
                publisher.publish_many([v2_order(i) for i in range(200, 300)])
                v2_id = publisher.schema_id
            registry.kill()

            errors: list[str] = []
            deadline = time.monotonic() + 20
            while not errors and time.monotonic() < deadline:
                try:
                    got += consumer.consume(500, 0.5)
                except RegistryUnavailableError as exc:
                    errors.append(str(exc))
                consumer.commit()
                committed = committed_offsets(bootstrap, group, product.topic, 1)
                assert_not_ahead(committed, [(r.partition, r.offset) for r in got], [])
            assert [r.offset for r in got] == list(range(200))
            assert committed == {0: 200}
            assert errors, "no RegistryUnavailableError within 20 s of the kill"
            assert errors[0].startswith(
                f"{product.topic}[0]@200: writer schema id {v2_id} is not cached and the "
                f"registry has failed for "
            )
            assert "beyond registry_wait_seconds=2 (" in errors[0]
            assert "nothing from this record on was delivered or committed" in errors[0]

            registry.start()  # same URL, state replayed from Kafka
            consume_until(consumer, 300, got)
        finally:
            consumer.close()
    assert [r.offset for r in got] == list(range(300))  # in order, each exactly once
    assert [r.value for r in got[200:]] == [decoded(v2_order(i)) for i in range(200, 300)]
    assert [r.schema_id for r in got[199:201]] == [got[0].schema_id, v2_id]
    assert committed_offsets(bootstrap, group, product.topic, 1) == {0: 300}


def test_a_hung_registry_holds_consume_no_longer_than_its_timeout(kafka: KafkaAddress) -> None:
    """A registry that takes requests and never answers (SIGSTOP) held each consume() call for
    the client's 10 s a read, retried for 30 s: consume(timeout=1) returned after 32 s and the
    outage clock started after the first failure. Now each call returns within about twice
    its timeout, and the wait counts from the first call."""
    bootstrap = kafka.bootstrap_servers
    product = new_product("hung", partitions=1)
    group = f"hung-{uuid.uuid4().hex[:8]}"
    with (
        RegistryProcess(kafka) as registry,
        RegistryClient(registry.url, principal="orders", token=TOKENS["orders"]) as writer,
        RegistryClient(registry.url) as reader,
    ):
        publish_orders(product, bootstrap, writer, range(10))
        assert registry.process is not None
        registry.process.send_signal(signal.SIGSTOP)
        consumer = outage_consumer(product, group, bootstrap, reader, 4.0)
        try:
            began = time.monotonic()
            calls: list[float] = []
            error: RegistryUnavailableError | None = None
            while error is None and time.monotonic() - began < 60:
                started = time.monotonic()
                try:
                    assert consumer.consume(100, timeout=1.0) == []
                except RegistryUnavailableError as exc:
                    error = exc
                calls.append(time.monotonic() - started)
            assert error is not None, "no RegistryUnavailableError within 60 s"
            assert max(calls) < 5.0, calls  # before: 32 s a call
            assert time.monotonic() - began < 15.0  # registry_wait_seconds=4, plus a call
            assert f"{product.topic}[0]@0: writer schema id " in str(error)
            assert "beyond registry_wait_seconds=4 (" in str(error)
            registry.process.send_signal(signal.SIGCONT)
            got: list[ConsumedRecord] = []
            consume_until(consumer, 10, got)
            assert [r.offset for r in got] == list(range(10))
        finally:
            if registry.process is not None:
                registry.process.send_signal(signal.SIGCONT)
            consumer.close()


# -- poison pills ----------------------------------------------------------------------


def test_non_record_foreign_and_trailing_byte_records_are_dead_lettered_with_headers(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    bootstrap = kafka.bootstrap_servers
    product = new_product("strict", partitions=1)
    other, strings = new_product("other", partitions=1), new_product("strings", partitions=1)
    string_id = client.register_schema(strings.value_subject, '"string"')
    foreign_schema = {**load_schema("order_v1.avsc"), "namespace": "sdktest.elsewhere"}
    foreign_id = client.register_schema(other.value_subject, foreign_schema)
    with ProductPublisher(
        product, bootstrap_servers=bootstrap, registry=client, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in range(5)])
        own_id = publisher.schema_id
        body = publisher.encoder.encode(make_order(99))[5:]
        raw = raw_producer(bootstrap)
        pills = {
            produce_raw(raw, product.topic, frame(string_id, b"\x06abc")): (
                string_id,
                f"schema id {string_id} cannot decode a product record: a product schema must "
                f"be an Avro record (a JSON object)",
                "SchemaError",
            ),
            produce_raw(
                raw, product.topic, RecordEncoder(foreign_schema, foreign_id).encode(make_order(7))
            ): (
                foreign_id,
                f"foreign schema id {foreign_id}: it is registered under {other.value_subject}, "
                f"not under {product.value_subject}; the record was written for another product",
                "DeserializationError",
            ),
            produce_raw(raw, product.topic, frame(own_id, body + b"\x00")): (
                own_id,
                f"1 byte(s) left after the Avro body of writer schema id {own_id} "
                f"(sdktest.orders.OrderPlaced): the record was not written with this schema (or "
                f"was damaged)",
                "DeserializationError",
            ),
        }
        publisher.publish_many([make_order(i) for i in range(5, 10)])
    group = f"strict-{uuid.uuid4().hex[:8]}"
    got: list[ConsumedRecord] = []
    with ProductConsumer(
        [product],
        group_id=group,
        bootstrap_servers=bootstrap,
        registry=client,
        from_beginning=True,
    ) as consumer:
        consume_until(consumer, 10, got)
    assert [r.value for r in got] == [decoded(make_order(i)) for i in range(10)]
    assert [r.offset for r in got] == [o for o in range(13) if o not in pills]
    letters = dead_letters(bootstrap, product.dlq_topic, 3)
    assert sorted(int(letter["mesh.dlq.source.offset"]) for letter in letters) == sorted(pills)
    for letter in letters:
        schema_id, error, error_type = pills[int(letter["mesh.dlq.source.offset"])]
        assert set(DLQ_HEADERS) <= set(letter)
        assert letter["mesh.dlq.source.topic"] == product.topic
        assert letter["mesh.dlq.source.partition"] == "0"
        assert letter["mesh.dlq.source.schema.id"] == str(schema_id)
        assert letter["mesh.dlq.error"] == error
        assert letter["mesh.dlq.error.type"] == error_type
        assert letter["mesh.dlq.consumer.group"] == group
    committed = committed_offsets(bootstrap, group, product.topic, 1)
    assert committed == {0: 13}
    assert_not_ahead(committed, [(0, r.offset) for r in got], [(0, o) for o in pills])


def test_a_refused_dead_letter_stops_before_the_record_and_commits_nothing_after_it(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    bootstrap = kafka.bootstrap_servers
    product = new_product("dlq-refused", partitions=1)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    tiny = NewTopic(product.dlq_topic, 1, 1, config={"max.message.bytes": "64"})
    admin.create_topics([tiny])[product.dlq_topic].result(30)
    with ProductPublisher(
        product, bootstrap_servers=bootstrap, registry=client, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in range(5)])
        pill = produce_raw(raw_producer(bootstrap), product.topic, b"plain text, not Avro")
        publisher.publish_many([make_order(i) for i in range(5, 10)])
    assert pill == 5
    group = f"refused-{uuid.uuid4().hex[:8]}"
    got: list[ConsumedRecord] = []
    errors: list[str] = []
    with ProductConsumer(
        [product], group_id=group, bootstrap_servers=bootstrap, registry=client, from_beginning=True
    ) as consumer:
        deadline = time.monotonic() + 30
        while len(errors) < 2 and time.monotonic() < deadline:
            try:
                got += consumer.consume(100, 0.5)
            except DeliveryError as exc:
                errors.append(str(exc))
            consumer.commit()
            committed = committed_offsets(bootstrap, group, product.topic, 1)
            assert_not_ahead(committed, [(0, r.offset) for r in got], [])
            assert committed.get(0, 0) <= 5
        assert len(errors) == 2  # the record is read again, and refused again
        for error in errors:
            assert error.startswith(
                f"cannot dead-letter the undecodable record {product.topic}[0]@5: Kafka "
                f"refused the dead letter to {product.dlq_topic}: "
            )
            assert "too large" in error
            assert error.endswith(
                f"(check that topic: its max.message.bytes, its ACLs for this reader); "
                f"consumption stopped before it: nothing from {product.topic}[0]@5 on was "
                f"committed and this batch will be read again"
            )
        assert all(r.offset < 5 for r in got)

        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            product.dlq_topic,
            incremental_configs=[
                ConfigEntry(
                    "max.message.bytes", "1048576", incremental_operation=AlterConfigOpType.SET
                )
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result(30)
        deadline = time.monotonic() + 30
        while {r.offset for r in got} != set(range(11)) - {5} and time.monotonic() < deadline:
            try:
                got += consumer.consume(100, 0.5)
            except DeliveryError:
                time.sleep(0.5)  # the new limit may take a moment to apply
            consumer.commit()
    assert {r.offset for r in got} == set(range(11)) - {5}
    letters = dead_letters(bootstrap, product.dlq_topic, 1)
    assert [letter["mesh.dlq.source.offset"] for letter in letters] == ["5"]
    assert letters[0][".value"] == b"plain text, not Avro"
    assert "mesh.dlq.source.schema.id" not in letters[0]  # not framed: no schema id to name
    assert committed_offsets(bootstrap, group, product.topic, 1) == {0: 11}


# -- new topics ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_a_consumer_subscribed_before_its_topic_exists_reads_it_from_the_first_record(
    kafka: KafkaAddress, client: RegistryClient, strategy: str
) -> None:
    product = new_product("late-topic", partitions=2)
    got: list[ConsumedRecord] = []
    with ProductConsumer(
        [product],
        group_id=f"late-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        config={"partition.assignment.strategy": strategy},
    ) as consumer:
        assert consumer.new_topics == {product.topic}
        consumer.consume(10, 0.2)  # subscribed, nothing there yet
        with ProductPublisher(
            product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
        ) as publisher:
            publisher.publish_many([make_order(i) for i in range(6)])
        consume_until(consumer, 6, got, seconds=60)
    assert sorted(r.value["order_id"] for r in got) == sorted(
        decoded(make_order(i))["order_id"] for i in range(6)
    )
    assert sorted((r.partition, r.offset) for r in got)[0][1] == 0
    for partition in {r.partition for r in got}:
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == list(range(len(offsets)))


def test_a_group_that_read_an_earlier_major_reads_the_new_one_from_its_first_record(
    kafka: KafkaAddress,
    client: RegistryClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """A product moved to `version: 2` while its reader was stopped: restarted (with the
    default "only new records"), the group reads `.v2` from its first record, so the records
    published since the move are not skipped; a group that never read the product still
    starts at the end."""
    bootstrap = kafka.bootstrap_servers
    v1 = new_product("major-move", partitions=2)
    v2 = v1.model_copy(update={"version": 2})
    group = f"major-{uuid.uuid4().hex[:8]}"
    publish_orders(v1, bootstrap, client, range(4))
    before: list[ConsumedRecord] = []
    with ProductConsumer(
        [v1], group_id=group, bootstrap_servers=bootstrap, registry=client, from_beginning=True
    ) as consumer:
        consume_until(consumer, 4, before)
    publish_orders(v2, bootstrap, client, range(4, 9))  # while the reader is away
    after: list[ConsumedRecord] = []
    with (
        caplog.at_level(logging.WARNING, logger="mesh_stream.consumer"),
        ProductConsumer(
            [v2], group_id=group, bootstrap_servers=bootstrap, registry=client
        ) as consumer,
    ):
        assert consumer.moved_topics == {v2.topic: (v1.topic,)}
        consume_until(consumer, 5, after, seconds=60)
        assert consumer.moved_topics == {}  # committed on v2: resumes like any topic now
    assert {r.topic for r in after} == {v2.topic}
    assert sorted(r.value["order_id"] for r in after) == sorted(
        decoded(make_order(i))["order_id"] for i in range(4, 9)
    )
    assert f"group {group} committed offsets on {v1.topic}, an earlier major of" in caplog.text
    assert f"it reads {v2.topic} from its first record" in caplog.text
    with ProductConsumer(
        [v2], group_id=group, bootstrap_servers=bootstrap, registry=client
    ) as again:
        assert again.moved_topics == {}  # the group reads v2 already: it has not moved
    with ProductConsumer(
        [v2], group_id=f"{group}-new", bootstrap_servers=bootstrap, registry=client
    ) as newcomer:
        assert newcomer.moved_topics == {}
        deadline = time.monotonic() + 60
        while not newcomer.joined and time.monotonic() < deadline:
            assert newcomer.consume(10, 0.2) == []
        assert newcomer.joined
        settle = time.monotonic() + 2  # its start at the end is asked of the broker first
        while time.monotonic() < settle:
            assert newcomer.consume(10, 0.2) == []
        publish_orders(v2, bootstrap, client, range(9, 10))
        fresh: list[ConsumedRecord] = []
        consume_until(newcomer, 1, fresh)  # "only new records", as asked: this one alone
        assert [r.value["order_id"] for r in fresh] == [decoded(make_order(9))["order_id"]]
    # `mesh tail --major 1` still reads the old topic of a project now at version 2
    from click.testing import CliRunner

    from mesh_stream.cli.main import cli

    products = tmp_path / "domains" / "orders" / "products"
    products.mkdir(parents=True)
    (products / "major-move.yaml").write_text(yaml.safe_dump(v2.to_document()))
    (tmp_path / "mesh.yaml").write_text("domains: [orders]\n")
    env = {"MESH_BOOTSTRAP_SERVERS": bootstrap, "MESH_REGISTRY_URL": client.url}
    argv = ["tail", v1.name, "--from-beginning", "--json", "--project", str(tmp_path)]
    old = CliRunner().invoke(cli, [*argv, "--major", "1", "--max", "4", "--timeout", "30"], env=env)
    assert old.exit_code == 0, old.stderr
    assert sorted(json.loads(line)["order_id"] for line in old.stdout.splitlines()) == sorted(
        str(decoded(make_order(i))["order_id"]) for i in range(4)
    )
    later = CliRunner().invoke(cli, [*argv, "--major", "3"], env=env)
    assert later.exit_code == 2
    assert f"{v1.name} is at major version 2; --major names it or an earlier one" in later.stderr
    # a registry that cannot be asked is said to be why no later major was found
    away = {**env, "MESH_REGISTRY_URL": "http://127.0.0.1:9"}
    unasked = CliRunner().invoke(cli, [*argv, "--major", "3"], env=away)
    assert unasked.exit_code == 2
    assert "(1 to 2); the registry could not say whether it has a later one: " in unasked.stderr
    # a checkout behind the registry (its descriptor still at 1) reads the registry's major 2
    # (its schema path as the registry's naming policy wants; the path is not read there)
    register_descriptor(
        client, DataProduct.model_validate({**v2.to_document(), "schema": "orders/order.avsc"})
    )
    behind = tmp_path / "behind"
    (behind / "domains" / "orders" / "products").mkdir(parents=True)
    (behind / "domains" / "orders" / "products" / "major-move.yaml").write_text(
        yaml.safe_dump(v1.to_document())
    )
    (behind / "mesh.yaml").write_text("domains: [orders]\n")
    argv_behind = ["tail", v1.name, "--from-beginning", "--json", "--project", str(behind)]
    newer = CliRunner().invoke(
        cli, [*argv_behind, "--major", "2", "--max", "6", "--timeout", "30"], env=env
    )
    assert newer.exit_code == 0, newer.stderr
    assert sorted(json.loads(line)["order_id"] for line in newer.stdout.splitlines()) == sorted(
        str(decoded(make_order(i))["order_id"]) for i in range(4, 10)
    )
    # the project at version 2 keeps publishing to the old major while its readers move, under
    # the old major's registered contract: a rule major 2 added (here one no record passes)
    # is not the old major's (h44: publishing to major 1 stopped once major 2's rules differed)
    ruled = {**v2.to_document(), "rules": [{"name": "v2-only", "expr": "message.order_id == ''"}]}
    (products / "major-move.yaml").write_text(yaml.safe_dump(ruled))
    more = tmp_path / "more.jsonl"
    more.write_bytes(
        b"".join(json.dumps(make_order(i), default=json_default).encode() + b"\n" for i in (20, 21))
    )
    pushed = CliRunner().invoke(
        cli,
        ["publish", v1.name, "--major", "1", "-f", str(more), "--project", str(tmp_path)],
        env=env,
    )
    assert pushed.exit_code == 0, pushed.stderr
    settings = MeshSettings(bootstrap_servers=bootstrap, registry_url=client.url)
    with open_publisher(v1.name, settings=settings, root=tmp_path, major=1) as publisher:
        assert (publisher.topic, publisher.product.version) == (v1.topic, 1)
        publisher.publish(make_order(22))
    on_v1 = CliRunner().invoke(
        cli, [*argv, "--major", "1", "--max", "7", "--timeout", "30"], env=env
    )
    assert on_v1.exit_code == 0, on_v1.stderr
    assert sorted(json.loads(line)["order_id"] for line in on_v1.stdout.splitlines()) == sorted(
        str(decoded(make_order(i))["order_id"]) for i in (0, 1, 2, 3, 20, 21, 22)
    )
    unmade = new_product("major-unmade").model_copy(update={"version": 2})
    (products / "major-unmade.yaml").write_text(yaml.safe_dump(unmade.to_document()))
    argv = ["tail", unmade.name, "--major", "1", "--timeout", "30", "--project", str(tmp_path)]
    missing = CliRunner().invoke(cli, argv, env=env)
    assert missing.exit_code == 1, missing.output
    assert (
        f"topic {unmade.name}.v1 does not exist at {bootstrap}: major version 1 of "
        f"{unmade.name} has no topic there (its current major is 2)"
    ) in str(missing.exception)  # the entry point prints it as one `error:` line
    publish_argv = ["publish", "-f", str(more), "--project", str(tmp_path), "--major"]
    above = CliRunner().invoke(cli, [*publish_argv, "3", v1.name], env=env)
    assert above.exit_code == 2
    assert f"{v1.name} is at major version 2; --major names it or an earlier one" in above.stderr
    never = CliRunner().invoke(cli, [*publish_argv, "1", unmade.name], env=env)
    assert never.exit_code == 1
    assert (
        f"major version 1 of {unmade.name} has no schema registered (subject "
        f"{unmade.name}.v1-value): nothing was published to {unmade.name}.v1"
    ) in str(never.exception)


def tail_process(
    product: DataProduct, bootstrap: str, registry_url: str, cwd: Path, *args: str
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": bootstrap,
        "MESH_REGISTRY_URL": registry_url,
        "MESH_CONSUMER_REGISTRY_WAIT_SECONDS": "1",
    }
    for name in ("MESH_REGISTRY_PRINCIPAL", "MESH_REGISTRY_TOKEN", "MESH_PROJECT_ROOT"):
        env.pop(name, None)
    return subprocess.Popen(
        [MESH, "tail", product.name, "--json", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """Collects a pipe's lines in a thread; ``wait_for`` blocks until a predicate holds."""

    def __init__(self, pipe: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, done: Any, seconds: float = 60) -> list[str]:
        with self._changed:
            assert self._changed.wait_for(lambda: done(self.lines), seconds), self.lines
            return list(self.lines)


def write_descriptor(root: Path, product: DataProduct) -> None:
    """The product's descriptor in a project at ``root`` (a mesh.yaml folder), where `mesh
    tail` started inside it looks first (test products are not governance-clean enough for
    the registry's catalogue)."""
    (root / "mesh.yaml").write_text("name: tail-test\n")
    folder = root / "domains" / product.domain / "products"
    folder.mkdir(parents=True, exist_ok=True)
    name = product.name.split(".", 1)[1]
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(product.to_document()))


def test_mesh_tail_started_before_the_topic_exists_prints_its_first_record(
    kafka: KafkaAddress, registry: RegistryAddress, client: RegistryClient, tmp_path: Path
) -> None:
    product = new_product("tail-late", partitions=1)
    write_descriptor(tmp_path, product)
    tail = tail_process(
        product, kafka.bootstrap_servers, registry.url, tmp_path, "--max", "3", "--timeout", "60"
    )
    out, err = Lines(tail.stdout), Lines(tail.stderr)
    try:
        err.wait_for(lambda lines: any("does not exist yet" in line for line in lines))
        with ProductPublisher(
            product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
        ) as publisher:
            publisher.publish_many([make_order(i) for i in range(3)])
        assert tail.wait(60) == 0, err.lines
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(10)
    printed = out.wait_for(lambda lines: len(lines) >= 3)
    assert [json.loads(line)["order_id"] for line in printed] == [
        make_order(i)["order_id"] for i in range(3)
    ]


def test_mesh_tail_reports_each_consumer_error_in_one_line_naming_the_record(
    kafka: KafkaAddress, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    product = new_product("tail-errors", partitions=1)
    other = new_product("tail-other", partitions=1)
    with (
        RegistryProcess(kafka) as registry,
        RegistryClient(registry.url, principal="orders", token=TOKENS["orders"]) as writer,
    ):
        write_descriptor(tmp_path, product)
        string_id = writer.register_schema(other.value_subject, '"string"')
        with ProductPublisher(
            product, bootstrap_servers=bootstrap, registry=writer, root=REPO_ROOT
        ) as publisher:
            publisher.publish_many([make_order(i) for i in range(3)])
        produce_raw(raw_producer(bootstrap), product.topic, frame(string_id, b"\x02a"))
        tail = tail_process(product, bootstrap, registry.url, tmp_path, "--from-beginning")
        out, err = Lines(tail.stdout), Lines(tail.stderr)
        try:
            out.wait_for(lambda lines: len(lines) >= 3)
            skipped = err.wait_for(lambda lines: any("skipped" in line for line in lines))
            assert skipped == [
                f"skipped: {product.topic}[0]@3: schema id {string_id} cannot decode a product "
                f"record: a product schema must be an Avro record (a JSON object) (tail skips "
                f"it; see its bytes with `kcat -C -b {bootstrap} -t {product.topic} -p 0 -o 3 "
                f"-c 1 | xxd`; the product's dead-lettering consumers send such records to "
                f"{product.dlq_topic})"
            ]
            with ProductPublisher(
                product,
                bootstrap_servers=bootstrap,
                registry=writer,
                schema=load_schema("order_v2.avsc"),
            ) as publisher:
                publisher.publish_many([v2_order(4)])
                v2_id = publisher.schema_id
            registry.kill()
            assert tail.wait(30) == 1
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait(10)
        lines = err.wait_for(lambda lines: len(lines) >= 3, 10)
    assert len(lines) == 3, lines  # no traceback
    assert lines[1] == (  # said once, as the registry stops answering
        f"the registry at {registry.url} does not answer: records whose writer schema is not "
        f"cached wait, with the later records of their partitions, up to 1 s "
        f"(MESH_CONSUMER_REGISTRY_WAIT_SECONDS)"
    )
    assert lines[2].startswith(
        f"error: {product.topic}[0]@4: stopped: it waited 1 s "
        f"(MESH_CONSUMER_REGISTRY_WAIT_SECONDS) for writer schema id {v2_id} from the registry "
        f"at {registry.url}, which does not answer; start the registry or check "
        f"MESH_REGISTRY_URL, then run tail again"
    ), lines[2]
    assert len(out.lines) == 3
