"""The SDK on a real SASL cluster (StandardAuthorizer) names the ACL it lacks.

A 1-node ``sasl`` cluster (users admin, orders, payments) started with the project's
launcher and stopped in teardown. ``payments`` may write only ``payments.`` topics; the
orders topic is the admin's. Publishing to it with the SDK raises
:class:`KafkaAuthorizationError` naming the topic, ``User:payments`` and the ACL (from the
delivery report; nothing is written), creating it names CREATE, and consuming it names READ.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from mesh_stream.broker import local_cluster
from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import DeliveryError, KafkaAuthenticationError, KafkaAuthorizationError
from mesh_stream.kafka.clients import make_admin, make_consumer, make_producer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import forget_cluster
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import ensure_dlq_topics, ensure_product_topic, ensure_topics
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import RegistryAddress
from tests.fixtures.sdk.helpers import REPO_ROOT, make_order, new_product


@dataclass(frozen=True)
class Sasl:
    bootstrap_servers: str
    passwords: dict[str, str]

    def connection(self, user: str) -> KafkaConnection:
        return KafkaConnection.create(
            self.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=self.passwords[user],
        )


@pytest.fixture(scope="module")
def sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sasl]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-sasl")
    cluster = local_cluster(MeshSettings(data_dir=data_dir, broker_heap="256m"))
    try:
        state = cluster.start(
            brokers=1, port=0, timeout=180, security="sasl", users=["orders", "payments"]
        )
        raw = json.loads((data_dir / "broker" / "credentials.json").read_text())
        found = Sasl(state.bootstrap_servers, dict(raw["users"]))
        # payments owns payments.* (so its idempotent producer may start), nothing else.
        admin = make_admin(found.connection("admin"), {"log_level": 0})
        grant = AclBinding(
            ResourceType.TOPIC,
            "payments.",
            ResourcePatternType.PREFIXED,
            "User:payments",
            "*",
            AclOperation.WRITE,
            AclPermissionType.ALLOW,
        )
        for future in admin.create_acls([grant]).values():
            future.result(30)
        yield found
    finally:
        cluster.stop()


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="admin", token=registry.admin_token) as c:
        yield c


def test_publishing_to_another_domains_topic_names_topic_principal_and_acl(
    sasl: Sasl, client: RegistryClient
) -> None:
    product = new_product("acl")
    assert ensure_topics(sasl.connection("admin"), [product]) == [product.topic]
    publisher = ProductPublisher(
        product,
        connection=sasl.connection("payments"),
        registry=client,
        root=REPO_ROOT,
        create_topic=False,
    )
    for i in range(3):
        publisher.publish(make_order(i))
    with pytest.raises(KafkaAuthorizationError) as caught:
        publisher.flush(60)
    message = str(caught.value)
    assert message.startswith(
        f"User:payments may not WRITE topic {product.topic} at {sasl.bootstrap_servers}: "
        f"no ACL allows it (TOPIC_AUTHORIZATION_FAILED); topic {product.topic} belongs "
        "to domain orders (its name says so) and only that domain's Kafka user writes it: "
        "publish with orders's credentials (MESH_KAFKA_SASL_USERNAME), or ask orders to publish it"
    )
    assert "3 record(s) of" in message
    assert len(caught.value.failed) == 3  # type: ignore[attr-defined]
    publisher.close()  # the refused records were reported; nothing is left in flight
    # Nothing was written.
    admin_consumer = make_consumer(sasl.connection("admin"), {"group.id": "acl-check"})
    try:
        ends = [end_offset(admin_consumer, product.topic, p) for p in range(product.partitions)]
    finally:
        admin_consumer.close()
    assert ends == [0] * product.partitions


#: What a broker answers about a partition it is still setting up.
NOT_READY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    }
)


def end_offset(consumer: Any, topic: str, partition: int) -> int:
    """The partition's end offset, asked again while the broker says it is not ready yet
    (a topic created seconds ago on a busy machine: NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)[1])
        except KafkaException as exc:
            if exc.args[0].code() not in NOT_READY or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_creating_another_domains_topic_names_the_create_acl(
    sasl: Sasl, client: RegistryClient
) -> None:
    product = new_product("acl-create")
    with pytest.raises(KafkaAuthorizationError) as caught:
        ProductPublisher(
            product, connection=sasl.connection("payments"), registry=client, root=REPO_ROOT
        )
    assert str(caught.value).startswith(f"User:payments may not CREATE topic {product.topic} ")
    # the topic's name says whose it is: no advice to grant payments a CREATE on it (a
    # campaign), but to publish with the owning domain's credentials
    assert f"its name makes it domain {product.domain}'s" in str(caught.value)
    assert "grant ALLOW" not in str(caught.value)


def test_reading_without_a_read_acl_names_the_read_acl(sasl: Sasl, client: RegistryClient) -> None:
    product = new_product("acl-read")
    ensure_topics(sasl.connection("admin"), [product])
    client.register_schema(product.value_subject, (REPO_ROOT / product.schema_file).read_text())
    consumer = ProductConsumer(
        [product],
        group_id=f"payments-{uuid.uuid4().hex[:8]}",
        connection=sasl.connection("payments"),
        registry=client,
        from_beginning=True,
    )
    try:
        with pytest.raises(KafkaAuthorizationError) as caught:
            consume_for(consumer, seconds=60)
        assert str(caught.value).startswith("User:payments may not READ ")
    finally:
        consumer.close()


def consume_for(consumer: ProductConsumer, *, seconds: int) -> None:
    for _ in range(seconds):
        consumer.consume(10, 1.0)


@pytest.mark.parametrize("from_beginning", [False, True])
def test_a_consumer_with_a_refused_password_raises_naming_the_settings(
    sasl: Sasl, client: RegistryClient, from_beginning: bool
) -> None:
    """A wrong password came only through librdkafka's error callback: the consumer opened
    and then polled nothing for ever (h42). It now raises KafkaAuthenticationError naming
    the username and password settings: as it opens (which asks the cluster for its topics),
    or at the first empty consume (from the beginning it asks nothing as it opens)."""
    product = new_product("acl-refused")
    ensure_topics(sasl.connection("admin"), [product])
    client.register_schema(product.value_subject, (REPO_ROOT / product.schema_file).read_text())
    wrong = sasl.connection("payments").replace(sasl_password="not-the-password")

    def open_and_read() -> None:
        with ProductConsumer(
            [product],
            group_id=f"payments-{uuid.uuid4().hex[:8]}",
            connection=wrong,
            registry=client,
            from_beginning=from_beginning,
        ) as consumer:
            consume_for(consumer, seconds=30)

    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as caught:
        open_and_read()
    assert time.monotonic() - started < 25
    message = str(caught.value)
    assert "failed as payments with SCRAM-SHA-512" in message
    assert "MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message


def test_a_publisher_with_a_refused_password_is_told_so_not_that_no_broker_answers(
    sasl: Sasl,
) -> None:
    """`mesh publish` with a wrong password, mechanism or protocol said "no Kafka broker
    answers ... start Kafka" (h42): the cluster's description asked without the probe that
    names refused credentials."""
    product = new_product("acl-refused-publisher")
    wrong = sasl.connection("orders").replace(sasl_password="not-the-password")
    forget_cluster(wrong)  # what this process learnt as orders before
    with pytest.raises(KafkaAuthenticationError) as caught:
        ensure_product_topic(product, wrong)
    assert "failed as orders with SCRAM-SHA-512" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_a_reader_without_its_inputs_dead_letter_topic_stops_naming_the_owner_then_goes_on(
    sasl: Sasl, client: RegistryClient
) -> None:
    """Readers write another domain's dead-letter topic but may not create it (h42): a poison
    pill with no DLQ stops the consumer, committing nothing past it and naming the domain that
    creates the topic; once the owner has, the same group dead-letters it and goes on."""
    product = new_product("dlq-owner")
    admin = make_admin(sasl.connection("admin"), {"log_level": 0})
    ensure_topics(sasl.connection("admin"), [product])
    client.register_schema(product.value_subject, (REPO_ROOT / product.schema_file).read_text())
    group = f"payments-{uuid.uuid4().hex[:8]}"
    grants = [  # what the ACL plan gives a reader: READ the product, WRITE (not CREATE) its DLQ
        (ResourceType.TOPIC, product.topic, AclOperation.READ),
        (ResourceType.TOPIC, product.topic, AclOperation.DESCRIBE),
        (ResourceType.TOPIC, product.dlq_topic, AclOperation.WRITE),
        (ResourceType.TOPIC, product.dlq_topic, AclOperation.DESCRIBE),
        (ResourceType.GROUP, group, AclOperation.READ),
    ]
    bindings = [
        AclBinding(kind, name, ResourcePatternType.LITERAL, "User:payments", "*", op,
                   AclPermissionType.ALLOW)
        for kind, name, op in grants
    ]  # fmt: skip
    for future in admin.create_acls(bindings).values():
        future.result(30)
    pill = make_producer(sasl.connection("admin"), {"acks": "all"})
    pill.produce(product.topic, b"not a framed record", b"pill", partition=0)
    assert pill.flush(30) == 0

    def read(seconds: int) -> None:
        with ProductConsumer(
            [product],
            group_id=group,
            connection=sasl.connection("payments"),
            registry=client,
            from_beginning=True,
        ) as consumer:
            consume_for(consumer, seconds=seconds)

    with pytest.raises(DeliveryError) as stopped:
        read(60)
    message = str(stopped.value)
    assert f"cannot dead-letter the undecodable record {product.topic}[0]@0" in message
    assert f"dead-letter topic {product.dlq_topic} does not exist yet, and only its owner, " in (
        message
    )
    assert "domain orders, creates it" in message
    assert "grant ALLOW CREATE" not in message
    assert committed_offset(sasl, group, product.topic) is None  # nothing past the pill
    ensure_dlq_topics(sasl.connection("admin"), [product], every=True)  # the owner's apply
    read(10)  # the pill goes to the DLQ now, and the group goes on past it
    assert committed_offset(sasl, group, product.topic) == 1


def committed_offset(sasl: Sasl, group: str, topic: str) -> int | None:
    consumer = make_consumer(sasl.connection("admin"), {"group.id": group})
    try:
        [found] = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    finally:
        consumer.close()
    return found.offset if found.offset >= 0 else None
