"""The producer's promises under broker failure, on a broker of the test's own.

* stopped and restarted mid-stream: every record arrives, exactly once;
* down longer than the delivery timeout: ``flush`` raises a DeliveryError naming each
  undelivered record instead of hanging.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from mesh_stream.broker import LocalCluster
from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import DeliveryError
from mesh_stream.producer import ProductPublisher, UndeliveredRecord
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, decoded, make_order, new_product
from tests.integration.own_broker import own_cluster, running

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A one-node cluster on free ports that these tests stop and start at will."""
    with own_cluster(tmp_path_factory.mktemp("sdk-chaos")) as cluster:
        yield cluster


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


def read_all(
    bootstrap: str, product: DataProduct, client: RegistryClient, count: int
) -> list[ConsumedRecord]:
    """Everything on the product's topic (a few idle polls past ``count``, to catch duplicates)."""
    records: list[ConsumedRecord] = []
    with ProductConsumer(
        [product],
        group_id=f"chaos-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=bootstrap,
        registry=client,
        from_beginning=True,
    ) as consumer:
        idle = 0
        while idle < 10:
            batch = consumer.consume(1000, 1.0)
            idle = 0 if batch else idle + 1
            records += batch
            if len(records) >= count:
                idle = max(idle, 8)  # linger two more polls to catch duplicates
    return records


def test_restart_mid_stream_loses_nothing_and_duplicates_nothing(
    own_broker: LocalCluster, kafka: KafkaAddress, client: RegistryClient
) -> None:
    bootstrap = running(own_broker)
    product = new_product("restart")
    total = 900
    with ProductPublisher(
        product,
        bootstrap_servers=bootstrap,
        registry=client,
        root=REPO_ROOT,
        config={"message.timeout.ms": 180_000},
    ) as publisher:
        for i in range(300):
            publisher.publish(make_order(i))
        own_broker.stop()  # records still in flight when the broker goes away
        for i in range(300, 600):
            publisher.publish(make_order(i))  # queued while the broker is down
        own_broker.start(brokers=1, port=0, timeout=120)
        for i in range(600, total):
            publisher.publish(make_order(i))
        publisher.flush(180)
        assert publisher.in_flight == 0

    records = read_all(bootstrap, product, client, total)
    counts = Counter(r.key for r in records)
    assert len(records) == total
    assert counts == Counter(make_order(i)["order_id"] for i in range(total))
    assert {r.key: r.value for r in records} == {
        make_order(i)["order_id"]: decoded(make_order(i)) for i in range(total)
    }


def test_outage_longer_than_the_delivery_timeout_names_every_lost_record(
    own_broker: LocalCluster, kafka: KafkaAddress, client: RegistryClient
) -> None:
    bootstrap = running(own_broker)
    product = new_product("outage")
    publisher = ProductPublisher(
        product,
        bootstrap_servers=bootstrap,
        registry=client,
        root=REPO_ROOT,
        config={"message.timeout.ms": 4000},
    )
    for i in range(5):
        publisher.publish(make_order(i))
    publisher.flush(30)
    own_broker.stop()
    for i in range(5, 12):
        publisher.publish(make_order(i))
    keys = sorted(make_order(index)["order_id"] for index in range(5, 12))

    with pytest.raises(DeliveryError) as queued:
        publisher.flush(0.5)  # shorter than the delivery timeout: still queued
    assert str(queued.value).startswith(
        f"7 record(s) of {product.name} are not yet acknowledged by Kafka after 0.5s "
        f"(still queued for topic {product.topic})"
    )
    assert queued.value.failed == []
    assert publisher.in_flight == 7

    with pytest.raises(DeliveryError) as lost:
        publisher.flush(60)  # the delivery timeout expires first: they fail
    failed: list[UndeliveredRecord] = lost.value.failed
    assert sorted(f.key for f in failed if isinstance(f.key, str)) == keys
    assert all("timed out" in f.error for f in failed)
    by_key = {f.key: f.record for f in failed}
    for index in range(5, 12):  # each failure carries its record, ready to publish again
        assert by_key[make_order(index)["order_id"]] == decoded(make_order(index))
    message = str(lost.value)
    assert message.startswith(
        f"7 record(s) of {product.name} were not acknowledged by topic {product.topic}: "
    )
    assert all(f.maybe_stored for f in failed)  # no answer: their outcome is not known
    assert "7 of them got no answer in time and may have been stored all the same" in message
    for key in keys:
        assert f"key {key!r}: " in message
    assert "`message.timeout.ms`" in message
    assert publisher.in_flight == 0
    publisher.close()  # nothing left: closing does not raise again
