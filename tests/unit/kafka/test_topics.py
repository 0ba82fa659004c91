"""One topic-spec function: replication from the cluster or the descriptor, never a bare 1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin._metadata import ClusterMetadata

from mesh_stream.descriptor import load_descriptors, parse_descriptor
from mesh_stream.errors import ConfigurationError, DescriptorError
from mesh_stream.kafka import topics
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import (
    DLQ_RETENTION_MS,
    ClusterInfo,
    TopicSpec,
    TopicState,
    differences,
    dlq_topic_spec,
    min_insync_replicas,
    one_broker_stops_writes,
    product_topic_spec,
    topic_spec,
)

REPO = Path(__file__).resolve().parents[3]
PRODUCTS = {p.name: p for p in load_descriptors(REPO / "domains")}
ORDERS = PRODUCTS["orders.order-placed"]

ONE = ClusterInfo(brokers=1, default_replication_factor=1)
THREE = ClusterInfo(brokers=3, default_replication_factor=3)
FIVE_DEFAULT_TWO = ClusterInfo(brokers=5, default_replication_factor=2)


@pytest.mark.parametrize(("rf", "isr"), [(1, 1), (2, 1), (3, 2), (4, 3), (5, 4)], ids=str)
def test_min_insync_is_rf_minus_one_from_three_replicas(rf: int, isr: int) -> None:
    assert min_insync_replicas(rf) == isr


def test_a_single_broker_cluster_gets_one_replica_and_min_insync_one() -> None:
    spec = product_topic_spec(ORDERS, ONE)
    assert (spec.replication_factor, spec.config["min.insync.replicas"]) == (1, "1")


def test_a_three_broker_cluster_gets_three_replicas_and_min_insync_two() -> None:
    spec = product_topic_spec(ORDERS, THREE)
    assert spec.name == ORDERS.topic
    assert spec.partitions == ORDERS.partitions
    assert spec.replication_factor == 3
    assert spec.config == {
        "cleanup.policy": ORDERS.retention.cleanup_policy.value,
        "retention.ms": str(ORDERS.retention.ms),
        "min.insync.replicas": "2",
    }


def test_the_clusters_default_replication_factor_wins_over_its_size() -> None:
    assert product_topic_spec(ORDERS, FIVE_DEFAULT_TWO).replication_factor == 2


def test_the_fallback_without_broker_config_is_min_of_three_and_the_broker_count() -> None:
    assert ClusterInfo.of_size(1).default_replication_factor == 1
    assert ClusterInfo.of_size(2).default_replication_factor == 2
    assert ClusterInfo.of_size(7).default_replication_factor == 3


def test_the_descriptors_replication_factor_wins_over_the_cluster() -> None:
    product = ORDERS.model_copy(update={"replication_factor": 2})
    spec = product_topic_spec(product, THREE)
    assert (spec.replication_factor, spec.config["min.insync.replicas"]) == (2, "1")
    product = ORDERS.model_copy(update={"replication_factor": 4})
    spec = product_topic_spec(product, ClusterInfo(brokers=5, default_replication_factor=3))
    assert (spec.replication_factor, spec.config["min.insync.replicas"]) == (4, "3")


def test_a_descriptor_asking_more_replicas_than_brokers_is_a_clear_error() -> None:
    product = ORDERS.model_copy(update={"replication_factor": 3})
    with pytest.raises(ConfigurationError) as caught:
        product_topic_spec(product, ONE)
    message = str(caught.value)
    assert ORDERS.topic in message
    assert "replication_factor 3" in message
    assert "the cluster has 1" in message


def test_dlq_internal_and_changelog_topics_use_the_same_function() -> None:
    dlq = product_topic_spec(ORDERS, THREE, topic=ORDERS.dlq_topic)
    assert (dlq.name, dlq.replication_factor, dlq.config["min.insync.replicas"]) == (
        ORDERS.dlq_topic,
        3,
        "2",
    )
    changelog = topic_spec("mesh-x-totals-changelog", THREE, partitions=6, cleanup_policy="compact")
    assert changelog.replication_factor == 3
    assert changelog.config == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    compacted = product_topic_spec(ORDERS, THREE, topic="t", compacted=True)
    assert compacted.config["cleanup.policy"] == "compact"
    assert "retention.ms" not in compacted.config


def test_a_dead_letter_topic_deletes_by_age_whatever_its_product_does() -> None:
    """A compacted product's DLQ was compacted like it: one dead letter kept per key."""
    dlq = dlq_topic_spec(ORDERS, THREE)
    assert (dlq.name, dlq.partitions, dlq.replication_factor) == (
        ORDERS.dlq_topic,
        ORDERS.partitions,
        3,
    )
    assert dlq.config["cleanup.policy"] == "delete"
    assert dlq.config["retention.ms"] == str(ORDERS.retention.ms)
    [profile] = [p for p in PRODUCTS.values() if p.retention.cleanup_policy.value == "compact"][:1]
    upserts = dlq_topic_spec(profile, ONE, topic="orders.rule-letters")
    assert upserts.name == "orders.rule-letters"
    assert upserts.config["cleanup.policy"] == "delete"
    assert upserts.config["retention.ms"] == str(DLQ_RETENTION_MS)
    forever = ORDERS.model_copy(
        update={"retention": ORDERS.retention.model_copy(update={"ms": -1})}
    )
    assert dlq_topic_spec(forever, ONE).config["retention.ms"] == "-1"  # the product's


def test_descriptor_replication_factor_is_an_optional_strict_positive_int() -> None:
    text = (REPO / "domains/orders/products/order-placed.yaml").read_text()
    assert ORDERS.replication_factor is None
    assert "replication_factor" not in ORDERS.to_document()
    assert parse_descriptor(text + "\nreplication_factor: 3\n").replication_factor == 3
    for bad in ("0", "-1", '"3"', "2.0", "true"):
        with pytest.raises(DescriptorError, match="replication_factor"):
            parse_descriptor(text + f"\nreplication_factor: {bad}\n")


SPEC = TopicSpec(
    "orders.order-placed.v1",
    6,
    3,
    {"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "2"},
)


def test_a_topic_as_specified_has_no_differences() -> None:
    state = TopicState(SPEC.name, 6, frozenset({3}), dict(SPEC.config))
    assert differences(SPEC, state) == []


def test_each_difference_is_reported_with_the_spec_and_the_actual_value() -> None:
    state = TopicState(
        SPEC.name,
        3,
        frozenset({1}),
        {"cleanup.policy": "compact", "retention.ms": "1000", "min.insync.replicas": "1"},
    )
    found = [item.describe() for item in differences(SPEC, state)]
    assert found == [
        "partitions is 3, the spec says 6",
        "replication factor is 1, the spec says 3",
        "cleanup.policy is compact, the spec says delete",
        "retention.ms is 1000, the spec says 604800000",
        "min.insync.replicas is 1, the spec says 2",
    ]


def test_a_stricter_min_insync_and_unknown_configs_are_not_differences() -> None:
    state = TopicState(SPEC.name, 6, frozenset({3}), {"min.insync.replicas": "3"})
    assert differences(SPEC, state) == []


def test_cleanup_policies_in_another_order_are_the_same_policy() -> None:
    both = TopicSpec(SPEC.name, 6, 3, {**SPEC.config, "cleanup.policy": "compact,delete"})
    state = TopicState(
        SPEC.name, 6, frozenset({3}), {**SPEC.config, "cleanup.policy": "delete, compact"}
    )
    assert differences(both, state) == []
    state = TopicState(SPEC.name, 6, frozenset({3}), {**SPEC.config, "cleanup.policy": "compact"})
    assert [d.setting for d in differences(both, state)] == ["cleanup.policy"]


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("orders.order-placed.v1", "its name makes it domain orders's"),
        (
            "orders.order-placed.v1.dlq",  # readers write there; only the owner creates it
            "dead-letter topic orders.order-placed.v1.dlq does not exist yet, and only its "
            "owner, domain orders, creates it",
        ),
        ("mesh-analytics.revenue-by-key", "belongs to a processor of domain analytics"),
        # h59: not a grant to add by hand (the topic may exist, unseen by this principal)
        ("_mesh_registry", "topic _mesh_registry is the platform's: if it exists, this"),
        ("payments.refund-issued.v1", "`mesh acl apply` grants its user CREATE on them"),
    ],
)
def test_a_refused_create_names_whose_topic_it_is(topic: str, says: str) -> None:
    """payments opening orders' product is told to use orders' credentials; refused the
    CREATE of orders' dead-letter topic, or of a processor's topic, it is told whose it is,
    never to grant itself the ACL (h42); nor to grant one on the platform's own topics or on
    its own (h59)."""
    from confluent_kafka import KafkaError, KafkaException

    from mesh_stream.kafka import KafkaConnection
    from mesh_stream.kafka.topics import TopicSpec, _create_error

    conn = KafkaConnection.create(
        "b1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="payments",
        sasl_password="p",
    )
    refused = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    message = str(_create_error(conn, TopicSpec(topic, 1, 1), refused))
    assert message.startswith(f"User:payments may not CREATE topic {topic} ")
    assert says in message, message
    assert "grant ALLOW" not in message, message


def test_a_topic_whose_min_insync_equals_its_replicas_is_said_to_stop_on_one_lost_broker() -> None:
    """`mesh products plan` said "as specified" of RF 3 with min.insync.replicas 3 (h33)."""

    def state(replicas: int, required: str) -> TopicState:
        return TopicState("t", 3, frozenset({replicas}), {"min.insync.replicas": required})

    said = one_broker_stops_writes(state(3, "3"))
    assert said is not None
    assert said.startswith("min.insync.replicas 3 is not below its replication factor 3")
    assert one_broker_stops_writes(state(3, "2")) is None
    assert one_broker_stops_writes(state(1, "1")) is None  # one broker: nothing to lose
    assert one_broker_stops_writes(TopicState("t", 3, frozenset({3}), {})) is None


def test_too_few_in_sync_names_partitions_brokers_and_the_older_brokers_refusal() -> None:
    """What the publisher says of a write timed out for its replicas (h46: no unit test,
    and brokers before Kafka 4 refuse every write when min.insync.replicas is above the
    replica count, which Kafka 4 caps)."""
    from mesh_stream.kafka.topics import too_few_in_sync

    healthy = {0: ([1, 2, 3], [1, 2, 3]), 1: ([2, 3, 1], [2, 3, 1])}
    assert too_few_in_sync("t.v1", 2, healthy) is None
    one_down = {0: ([1, 2, 3], [1, 2]), 1: ([2, 3, 1], [2, 1]), 2: ([3, 1, 2], [1, 2])}
    assert too_few_in_sync("t.v1", 2, one_down) is None  # 2 in sync are enough
    assert too_few_in_sync("t.v1", 3, one_down) == (
        "partition(s) 0, 1, 2 of topic t.v1 have 2 replica(s) in sync, fewer than its "
        "min.insync.replicas 3, so Kafka refuses every acks=all write to them "
        "(NOT_ENOUGH_REPLICAS) until broker(s) 3 are back in sync"
    )
    mixed = {0: ([1, 2, 3], [1]), 1: ([2, 3, 1], [2, 3, 1])}
    assert too_few_in_sync("t.v1", 2, mixed) == (
        "partition(s) 0 of topic t.v1 have 1 replica(s) in sync, fewer than its "
        "min.insync.replicas 2, so Kafka refuses every acks=all write to them "
        "(NOT_ENOUGH_REPLICAS) until broker(s) 2, 3 are back in sync"
    )
    single = {0: ([1], [1])}
    assert too_few_in_sync("t.v1", 2, single) == (
        "topic t.v1 has min.insync.replicas 2, more than its 1 replica(s): brokers before "
        "Kafka 4.0 refuse every acks=all write to it (NOT_ENOUGH_REPLICAS); lower it to at "
        "most 1"
    )


def test_a_call_is_asked_again_only_while_a_partition_has_no_leader_yet() -> None:
    """One retry for "no leader yet" (a topic created a moment ago), used by the monitor's
    offsets and health read-back: asked again up to the attempts given, anything else raised
    at once, the last refusal raised when the leader never comes."""
    calls: list[int] = []

    def failing(times: int, code: int) -> Callable[[], str]:
        def call() -> str:
            calls.append(code)
            if len(calls) <= times:
                raise KafkaException(KafkaError(code))
            return "answered"

        return call

    leaderless = KafkaError.LEADER_NOT_AVAILABLE
    assert topics.while_no_leader(failing(2, leaderless), attempts=5, pause_s=0) == "answered"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(KafkaException) as refused:
        topics.while_no_leader(failing(9, leaderless), attempts=4, pause_s=0)
    assert (len(calls), refused.value.args[0].code()) == (4, leaderless)
    calls.clear()
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException):
        topics.while_no_leader(failing(1, denied), attempts=5, pause_s=0)
    assert len(calls) == 1
    assert not topics.no_leader_yet(ValueError("not Kafka's"))


def test_a_consumers_group_and_connection_come_from_its_arguments_not_its_config() -> None:
    from mesh_stream.kafka.clients import refuse_connection_keys

    also = {"group.id": "the group is group_id='billing.x'"}
    assert refuse_connection_keys({"fetch.min.bytes": 1}, "consumer", also=also) == {
        "fetch.min.bytes": 1
    }
    assert refuse_connection_keys(None, "consumer") == {}
    for bad in ({"group.id": "other"}, {"Bootstrap.Servers": "x:1"}, {"sasl.username": "u"}):
        with pytest.raises(ConfigurationError, match=r"^consumer config .* is not allowed"):
            refuse_connection_keys(bad, "consumer", also=also)
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        refuse_connection_keys(["group.id"], "consumer")  # type: ignore[arg-type]


def test_creating_a_topic_asks_again_until_the_cluster_names_a_controller() -> None:
    """librdkafka waits for the controller its metadata named and never asks again: an admin
    client whose first answer came from a cluster still electing one failed after its whole
    timeout ("Failed while waiting for controller"). The cluster is asked until it names one."""
    answers = [-1, -1, 2]

    class Electing:
        calls = 0

        def list_topics(self, timeout: float) -> ClusterMetadata:
            assert 0 < timeout <= 2.0
            self.calls += 1
            metadata = ClusterMetadata()
            metadata.controller_id = answers.pop(0)
            return metadata

    admin = Electing()
    first = ClusterMetadata()
    first.controller_id = -1
    topics._wait_for_controller(admin, KafkaConnection.create("127.0.0.1:1"), first, 10.0)  # type: ignore[arg-type]
    assert (admin.calls, answers) == (3, [])
    admin.calls = 0
    named = ClusterMetadata()
    named.controller_id = 1
    topics._wait_for_controller(admin, KafkaConnection.create("127.0.0.1:1"), named, 10.0)  # type: ignore[arg-type]
    assert admin.calls == 0  # known at once: nothing asked
