"""The SDK against a real broker and the real registry: publish, consume, evolve, commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import string
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, DeliveryError, SerializationError
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.producer import AsyncProductPublisher, ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import RecordDecoder
from mesh_stream.schema.models import model_from_schema
from mesh_stream.schema.wire import unframe
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    REPO_ROOT,
    SCHEMA_V2,
    decoded,
    end_offsets,
    load_schema,
    make_order,
    new_product,
    read_raw,
)


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


def publisher_for(
    product: DataProduct, kafka: KafkaAddress, client: RegistryClient
) -> ProductPublisher:
    return ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    )


def consume_all(
    consumer: ProductConsumer, count: int, timeout: float = 30.0
) -> list[ConsumedRecord]:
    records: list[ConsumedRecord] = []
    idle = 0.0
    while len(records) < count and idle < timeout:
        batch = consumer.consume(count - len(records), 1.0)
        idle = 0.0 if batch else idle + 1.0
        records += batch
    return records


def consumer_for(
    products: list[DataProduct], kafka: KafkaAddress, client: RegistryClient, **options: Any
) -> ProductConsumer:
    options.setdefault("group_id", f"sdk-test-{uuid.uuid4().hex[:8]}")
    options.setdefault("from_beginning", True)
    return ProductConsumer(
        products, bootstrap_servers=kafka.bootstrap_servers, registry=client, **options
    )


def test_dicts_and_models_round_trip_with_keys_headers_and_timestamps(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("rt")
    model = model_from_schema(load_schema("order_v1.avsc"))
    dicts = [make_order(i) for i in range(300)]
    models = [model.model_validate(make_order(i)) for i in range(300, 400)]
    with publisher_for(product, kafka, client) as publisher:
        for record in dicts:
            publisher.publish(record)
        for typed in models:
            publisher.publish(typed)
        publisher.publish(
            make_order(400), timestamp_ms=1_700_000_000_123, headers={"trace": b"t-1"}
        )
    expected = {make_order(i)["order_id"]: decoded(make_order(i)) for i in range(401)}

    raw = read_raw(kafka.bootstrap_servers, product.topic, 401)
    registered = client.lookup(product.value_subject, load_schema("order_v1.avsc"))
    assert {unframe(m.value())[0] for m in raw} == {registered.schema_id}
    assert sorted({m.partition() for m in raw}) == [0, 1, 2]

    with consumer_for([product], kafka, client) as consumer:
        records = consume_all(consumer, 401)
    assert len(records) == 401
    assert {r.key: r.value for r in records} == expected
    assert all(r.schema_id == registered.schema_id for r in records)
    assert all(r.product == product.name and r.topic == product.topic for r in records)
    last = next(r for r in records if r.key == make_order(400)["order_id"])
    assert last.timestamp_ms == 1_700_000_000_123
    assert last.headers == {"trace": b"t-1"}
    positions = {(r.partition, r.offset) for r in records}
    assert len(positions) == 401  # every record once


def test_topic_is_created_as_the_descriptor_says(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("topic", partitions=2)
    with publisher_for(product, kafka, client):
        pass
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topic = admin.list_topics(product.topic, timeout=10).topics[product.topic]
    assert len(topic.partitions) == 2
    resource = ConfigResource("topic", product.topic)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["retention.ms"].value == str(product.retention.ms)
    assert config["cleanup.policy"].value == product.retention.cleanup_policy.value


def test_bad_record_is_refused_before_kafka(kafka: KafkaAddress, client: RegistryClient) -> None:
    product = new_product("bad")
    with publisher_for(product, kafka, client) as publisher:
        with pytest.raises(SerializationError) as caught:
            publisher.publish({**make_order(1), "quantity": "many"})
        assert "quantity: expected int, got str 'many'" in str(caught.value)
    assert end_offsets(kafka.bootstrap_servers, product.topic, 3) == [0, 0, 0]


def test_publish_many_reports_bad_records_by_index_and_publishes_the_rest(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("many")
    batch: list[dict[str, Any]] = [make_order(i) for i in range(20)]
    bad = {
        3: {"quantity": -(2**40)},
        11: {"status": "LOST"},
        17: {"lines": [{"sku": 1, "count": 1}]},
    }
    for index, change in bad.items():
        batch[index] = {**batch[index], **change}
    with publisher_for(product, kafka, client) as publisher:
        refused = r"3 of 20 records do not fit schema .* or fail a quality rule"
        with pytest.raises(SerializationError, match=refused) as caught:
            publisher.publish_many(batch, all_or_nothing=True)
        assert [r.index for r in caught.value.rejected] == [3, 11, 17]  # type: ignore[attr-defined]
        assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 0
        report = publisher.publish_many(batch)
    assert report.published == 17
    assert [r.index for r in report.rejected] == [3, 11, 17]
    assert "lines[0].sku: expected string, got int 1" in str(report.rejected[2].error)
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 17
    with consumer_for([product], kafka, client) as consumer:
        records = consume_all(consumer, 17)
    good = [decoded(batch[i]) for i in range(20) if i not in bad]
    assert sorted(r.value["order_id"] for r in records) == sorted(g["order_id"] for g in good)


def test_a_key_lands_where_java_and_the_processors_put_it_unless_the_config_says_otherwise(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """The SDK's partitioner is the mesh's (Java's murmur2, as the processors' outputs and
    faust's producer use), not librdkafka's CRC-32 default; a team may choose another."""
    product = new_product("partitioner", partitions=5)
    orders = [make_order(i) for i in range(60)]
    with publisher_for(product, kafka, client) as publisher:
        for order in orders:
            publisher.publish(order)
    messages = read_raw(kafka.bootstrap_servers, product.topic, len(orders))
    placed = {m.key().decode(): m.partition() for m in messages}
    assert len(placed) == len(orders)
    assert placed == {o["order_id"]: key_partition(o["order_id"], 5) for o in orders}
    crc = {o["order_id"]: zlib.crc32(o["order_id"].encode()) % 5 for o in orders}
    assert placed != crc  # the two partitioners differ on these keys

    other = new_product("partitioner-crc", partitions=5)
    chosen = ProductPublisher(
        other,
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        root=REPO_ROOT,
        config={"partitioner": "consistent_random"},
    )
    with chosen:
        for order in orders:
            chosen.publish(order)
    messages = read_raw(kafka.bootstrap_servers, other.topic, len(orders))
    assert {m.key().decode(): m.partition() for m in messages} == crc


def test_one_key_value_is_one_kafka_key_whatever_form_it_was_given_in(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """A timestamp key given as a datetime, as one in another zone and as epoch ms, and a
    uuid given as a UUID or as its text: one key each, on one partition (h34: three keys,
    two partitions)."""
    product = new_product("key-forms", partitions=5).model_copy(update={"key_field": "placed_at"})
    order = make_order(3)
    instant = order["placed_at"]
    paris = instant.astimezone(dt.timezone(dt.timedelta(hours=1)))
    millis = int(instant.timestamp() * 1000)
    with publisher_for(product, kafka, client) as publisher:
        for given in (instant, paris, millis):
            publisher.publish({**order, "placed_at": given})
        publisher.publish_many([{**order, "placed_at": paris}])
    messages = read_raw(kafka.bootstrap_servers, product.topic, 4)
    assert {(m.key(), m.partition()) for m in messages} == {
        (str(millis).encode(), key_partition(str(millis), 5))
    }
    by_id = new_product("key-uuid", partitions=5)
    with publisher_for(by_id, kafka, client) as publisher:
        publisher.publish({**order, "order_id": order["order_id"]})
        publisher.publish({**order, "order_id": uuid.UUID(order["order_id"])})
    keys = {m.key() for m in read_raw(kafka.bootstrap_servers, by_id.topic, 2)}
    assert keys == {order["order_id"].encode()}


def test_producer_settings_that_could_lose_or_reorder_records_are_refused(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    # partitioner=random: a campaign saw one key land in all 3 partitions, out of order
    for label, config, refused in (
        ("acks", {"acks": "1"}, "acks='1' is not allowed"),
        ("random", {"partitioner": "random"}, "partitioner='random' is not allowed: a key"),
        # h59: only failures reported, so close() took stored records for unacknowledged
        (
            "reports",
            {"delivery.report.only.error": True},
            "delivery.report.only.error=True is not allowed",
        ),
    ):
        with pytest.raises(ConfigurationError, match=refused):
            ProductPublisher(
                new_product(label),
                bootstrap_servers=kafka.bootstrap_servers,
                registry=client,
                root=REPO_ROOT,
                config=config,
            )


def test_consumers_read_every_version_with_their_own_reader_schema(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("evolve")
    with publisher_for(product, kafka, client) as v1:
        for i in range(10):
            v1.publish(make_order(i))
    v2_product = product.model_copy(update={"schema_file": SCHEMA_V2})
    v2_records = []
    with publisher_for(v2_product, kafka, client) as v2:
        assert v2.schema_id != v1.schema_id
        for i in range(10, 20):
            record = {**make_order(i), "channel": f"ch-{i}"}
            del record["note"]
            v2_records.append(record)
            v2.publish(record)

    with consumer_for(
        [product], kafka, client, reader_schemas={product.name: load_schema("order_v1.avsc")}
    ) as old:
        as_v1 = {r.key: r.value for r in consume_all(old, 20)}
    with consumer_for(
        [product], kafka, client, reader_schemas={product.name: load_schema("order_v2.avsc")}
    ) as new:
        as_v2 = {r.key: (r.schema_id, r.value) for r in consume_all(new, 20)}

    for i in range(10):
        key = make_order(i)["order_id"]
        original = decoded(make_order(i))
        assert as_v1[key] == original
        without_note = {k: v for k, v in original.items() if k != "note"}
        assert as_v2[key] == (v1.schema_id, {**without_note, "channel": "web"})
    for record in v2_records:
        value = decoded(record)
        assert as_v1[record["order_id"]] == {
            **{k: v for k, v in value.items() if k != "channel"},
            "note": None,
        }
        assert as_v2[record["order_id"]] == (v2.schema_id, value)


def test_uncommitted_records_are_read_again_by_the_group(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("commit", partitions=1)
    with publisher_for(product, kafka, client) as publisher:
        for i in range(40):
            publisher.publish(make_order(i))
    group = f"sdk-commit-{uuid.uuid4().hex[:8]}"
    first = consumer_for([product], kafka, client, group_id=group)
    processed = consume_all(first, 15)
    first.commit()
    unprocessed = consume_all(first, 10)  # fetched but the process "dies" before commit
    first.close()
    assert len(processed) == 15
    assert len(unprocessed) == 10

    with consumer_for([product], kafka, client, group_id=group) as second:
        rest = consume_all(second, 25)
    assert [r.offset for r in rest] == list(range(15, 40))
    assert [r.value for r in rest] == [decoded(make_order(i)) for i in range(15, 40)]


def test_consumer_gives_models_when_asked(kafka: KafkaAddress, client: RegistryClient) -> None:
    product = new_product("models")
    model = model_from_schema(load_schema("order_v1.avsc"))
    with publisher_for(product, kafka, client) as publisher:
        publisher.publish_many([make_order(i) for i in range(5)])
    with consumer_for([product], kafka, client, models={product.name: model}) as consumer:
        records = consume_all(consumer, 5)
    assert sorted((r.value for r in records), key=lambda v: v.order_id) == sorted(
        (model.model_validate(make_order(i)) for i in range(5)), key=lambda v: v.order_id
    )


def test_a_model_made_from_a_schema_reads_later_versions_without_a_reader_schema(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """A consumer given only `models=` (made with model_from_schema from v1) kept reading
    when the producer moved to a version that adds a defaulted field (a change the registry
    accepts): the model's own schema is its reader schema, so the new field is dropped by
    Avro instead of refused by the model (it stopped the consumer for good: h30)."""
    product = new_product("model-evolves")
    model = model_from_schema(load_schema("order_v1.avsc"))
    with publisher_for(product, kafka, client) as v1:
        v1.publish_many([make_order(i) for i in range(3)])
    v2_records = [{**make_order(i), "channel": f"ch-{i}"} for i in range(3, 6)]
    for record in v2_records:
        del record["note"]
    v2_product = product.model_copy(update={"schema_file": SCHEMA_V2})
    with publisher_for(v2_product, kafka, client) as v2:
        v2.publish_many(v2_records)
    with consumer_for([product], kafka, client, models={product.name: model}) as consumer:
        got = {r.key: r.value for r in consume_all(consumer, 6)}
    assert all(isinstance(value, model) for value in got.values())
    for i in range(3):
        assert got[make_order(i)["order_id"]] == model.model_validate(make_order(i))
    for record in v2_records:
        as_v1 = {k: v for k, v in record.items() if k != "channel"}
        assert got[record["order_id"]] == model.model_validate({**as_v1, "note": None})


def test_async_publisher_resolves_with_where_kafka_stored_the_record(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("async", partitions=1)

    async def scenario() -> list[Any]:
        async with AsyncProductPublisher(
            product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
        ) as publisher:
            return list(
                await asyncio.gather(*(publisher.publish(make_order(i)) for i in range(30)))
            )

    delivered = asyncio.run(scenario())
    assert sorted(d.offset for d in delivered) == list(range(30))
    assert {d.topic for d in delivered} == {product.topic}
    raw = read_raw(kafka.bootstrap_servers, product.topic, 30)
    assert len(raw) == 30


def test_async_publish_many_beside_awaits_loses_no_count_and_leaves_the_loop_free(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """publish_many's worker thread counted its records and served delivery reports while
    the loop's publish calls and the report thread did the same (a lost count makes close
    wait for one record less, or call one queued). Every count now holds a lock, and the
    batch is sent off the loop's thread, so a full queue never stalls the loop."""
    product = new_product("async-many", partitions=2)
    publisher = AsyncProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    )
    sending_threads: list[int] = []
    send = publisher._publisher._send

    def counted_send(*args: Any, **kwargs: Any) -> None:
        sending_threads.append(threading.get_ident())
        send(*args, **kwargs)

    publisher._publisher._send = counted_send  # type: ignore[method-assign]
    batch = [make_order(i) for i in range(40)] + [{**make_order(40), "channel": "FAX"}]
    second = [make_order(200 + i) for i in range(25)]

    at_once, most_at_once, poller_alive = 0, 0, []

    def probe() -> None:  # a flush's worker: alone, with the report thread stopped
        nonlocal at_once, most_at_once
        at_once += 1
        most_at_once = max(most_at_once, at_once)
        poller_alive.append(publisher._poller.is_alive())
        time.sleep(0.05)
        at_once -= 1

    async def scenario() -> tuple[Any, Any, list[Any], int]:
        async with publisher:
            await asyncio.gather(*(publisher._serving_alone(probe) for _ in range(3)))
            report, other, _flushed, *delivered = await asyncio.gather(
                publisher.publish_many(batch),
                publisher.publish_many(second),  # two flushes at once take turns
                publisher.flush(),
                *(publisher.publish(make_order(100 + i)) for i in range(30)),
            )
        return report, other, delivered, threading.get_ident()

    report, other, delivered, loop_thread = asyncio.run(scenario())
    assert (most_at_once, poller_alive) == (1, [False, False, False])
    assert report.published == 40
    assert [rejected.index for rejected in report.rejected] == [40]
    assert (other.published, other.rejected) == (25, ())
    assert len(delivered) == 30
    assert sending_threads.count(loop_thread) == 30  # the awaited publishes; batches elsewhere
    assert len(sending_threads) == 95
    assert publisher._publisher.in_flight == 0
    assert publisher._publisher._sent == 95
    pollers = [t for t in threading.enumerate() if t.name == f"mesh-publisher-{product.name}"]
    assert pollers == []  # closed: no thread serving reports is left behind
    stored = read_raw(kafka.bootstrap_servers, product.topic, 95)
    reader = RecordDecoder(client)
    ids = sorted(str(reader.decode(message.value())["order_id"]) for message in stored)
    written = [*range(40), *range(100, 130), *range(200, 225)]
    assert ids == sorted(str(make_order(i)["order_id"]) for i in written)


def test_a_record_over_the_topics_size_limit_is_refused_alone_and_named_with_its_size(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """The topic's max.message.bytes is lower than the producer's own limit, so only the
    broker can refuse the record. The broker refuses a whole batch: the publisher keeps its
    batches under the topic's limit, so the records sent with it still arrive, and the error
    names the record, its size and the limit, and no broker outage."""
    product = new_product("sized", partitions=1)
    with publisher_for(product, kafka, client):
        pass  # creates the topic
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    limit = ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", product.topic, incremental_configs=[limit])
    admin.incremental_alter_configs([resource])[resource].result(30)
    noise = "".join(random.Random(7).choices(string.ascii_letters, k=60_000))  # incompressible
    big = {**make_order(30), "note": noise}
    # 60 of about 800 bytes: more than one batch under the topic's limit
    small = [{**make_order(i), "note": "n" * 700} for i in range(60)]
    publisher = publisher_for(product, kafka, client)
    for record in [*small[:30], big, *small[30:]]:
        publisher.publish(record)
    with pytest.raises(DeliveryError) as caught:
        publisher.flush()
    publisher.close()
    message = str(caught.value)
    assert f"1 record(s) of {product.name} were not delivered to topic {product.topic}" in message
    assert f"key {big['order_id']!r}: refused by the broker as too large (" in message
    assert f"over the limit of topic {product.topic} (its max.message.bytes)" in message
    assert "reachable" not in message  # nothing was wrong with the broker
    assert [item.key for item in caught.value.failed] == [big["order_id"]]
    assert caught.value.failed[0].record is not None  # given back, to be sent again smaller
    assert caught.value.failed[0].record["note"] == noise
    assert end_offsets(kafka.bootstrap_servers, product.topic, 1) == [60]
    delivered = [m.key() for m in read_raw(kafka.bootstrap_servers, product.topic, 60)]
    assert delivered == [record["order_id"].encode() for record in small]

    async def one_big() -> None:
        async with AsyncProductPublisher(
            product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
        ) as publisher:
            await publisher.publish(big)

    with pytest.raises(DeliveryError, match="refused by the broker as too large") as async_caught:
        asyncio.run(one_big())
    assert "reachable" not in str(async_caught.value)
    assert async_caught.value.failed[0].record["note"] == noise  # given back here too

    # An await cancelled, or left behind by its ended event loop, does not withdraw the
    # record; its failure is close's to report (it was lost silently, and the thread serving
    # delivery reports died on the closed loop, so later awaits hung).
    publisher_async = AsyncProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    )

    async def cancelled_big() -> None:
        pending = asyncio.ensure_future(publisher_async.publish(big))
        await asyncio.sleep(0)
        pending.cancel()

    async def a_small_then_close() -> Any:
        delivered = await publisher_async.publish(small[0])
        await publisher_async.close()
        return delivered

    asyncio.run(cancelled_big())
    with pytest.raises(DeliveryError, match="refused by the broker as too large") as at_close:
        asyncio.run(a_small_then_close())
    assert [item.key for item in at_close.value.failed] == [big["order_id"]]
    assert at_close.value.failed[0].record["note"] == noise

    async def enter_closed() -> None:
        async with publisher_async:
            pass

    with pytest.raises(ConfigurationError, match="is closed"):
        asyncio.run(enter_closed())


def test_no_registry_calls_per_record_after_warm_up(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("calls")
    with publisher_for(product, kafka, client) as publisher:
        publisher.publish(make_order(0))
        publisher.flush()
        before = client.http_calls
        for i in range(1, 2000):
            publisher.publish(make_order(i))
        publisher.flush()
        assert client.http_calls == before
    with consumer_for([product], kafka, client) as consumer:
        consume_all(consumer, 1)
        before = client.http_calls
        rest = consume_all(consumer, 1999)
        assert len(rest) == 1999
        assert client.http_calls == before


def test_a_publisher_nobody_closed_still_delivers_what_it_accepted(
    kafka: KafkaAddress, registry: RegistryAddress
) -> None:
    """h53: a script that published 50 records and ended with sys.exit, the publisher never
    closed, delivered none of them, silently. Its finalizer waits for them at the exit."""
    product = new_product("unclosed")
    script = f"""
import json
import sys
from mesh_stream.descriptor import DataProduct
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.fixtures.sdk.helpers import REPO_ROOT, make_order
product = DataProduct.model_validate(json.loads({json.dumps(product.to_document())!r}))
client = RegistryClient({registry.url!r}, principal="orders", token={registry.tokens["orders"]!r})
made = ProductPublisher(product, bootstrap_servers={kafka.bootstrap_servers!r}, registry=client,
    root=REPO_ROOT, config={{"linger.ms": 2000}})
for index in range(50):
    made.publish(make_order(index))
sys.exit(0)
"""
    ended = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ended.returncode == 0, ended.stderr
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 50
    assert f"the publisher of {product.name} was not closed while records were in flight" in (
        ended.stderr
    )
    assert "every one was acknowledged" in ended.stderr


def test_a_with_block_that_fails_keeps_its_error_and_delivers_its_records(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """h53: leaving a failed block waited for the records and, were one undelivered, raised
    a DeliveryError in place of the block's own error. The block's error is the error."""
    product = new_product("failed-block")
    publisher = publisher_for(product, kafka, client)
    with pytest.raises(ValueError, match="the application's own") as raised, publisher:  # noqa: PT012
        publisher.publish(make_order(1))
        raise ValueError("the application's own error")
    assert not getattr(raised.value, "__notes__", None)  # delivered: nothing to add
    assert sum(end_offsets(kafka.bootstrap_servers, product.topic, 3)) == 1
