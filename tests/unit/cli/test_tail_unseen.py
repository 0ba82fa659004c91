"""`mesh tail` (and a processor) of a topic missing from the cluster's answer: for another
domain's user it may be one Kafka hides (no DESCRIBE), which the message says (h42: a pii
product's topic was said not to exist yet)."""

from __future__ import annotations

from pathlib import Path

from mesh_stream.descriptor import load_descriptor
from mesh_stream.kafka.connection import KafkaConnection, unseen_hint

REPO = Path(__file__).resolve().parents[3]
PROFILE = load_descriptor(REPO / "domains/customers/products/customer-profile.yaml")


def sasl_as(user: str) -> KafkaConnection:
    return KafkaConnection.create(
        "b1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password="pw",
    )


def test_another_domains_user_is_told_the_topic_may_be_hidden_from_it() -> None:
    assert unseen_hint(sasl_as("payments"), PROFILE.domain) == (
        " (or User:payments may not see it: Kafka leaves out of its answer a topic one may "
        "not DESCRIBE; a pii product: ask customers to add payments to its `readers`)"
    )


def test_the_owner_and_an_unsecured_client_are_told_nothing_more() -> None:
    assert unseen_hint(sasl_as("customers"), PROFILE.domain) == ""
    assert unseen_hint(KafkaConnection.create("b1:9092"), PROFILE.domain) == ""
