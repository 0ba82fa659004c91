"""How `mesh tail --dead-letters` sees one dead letter: keys and values that are no text
are base64, never a repr that reads as a text key."""

from __future__ import annotations

import base64

from confluent_kafka import KafkaError, Message

from mesh_stream.cli.tail import _dead_letter_line
from mesh_stream.kafka import dlq
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.dlq import dead_letter_view


def letter(key: bytes | None, value: bytes) -> Message:
    return Message(
        topic="orders.x.v1.dlq",
        partition=1,
        offset=7,
        key=key,
        value=value,
        headers=[("mesh.dlq.error", b"unknown magic byte 255")],
        timestamp=(1, 1_000),
    )


def test_a_key_that_is_no_text_is_base64_and_shown_as_its_bytes() -> None:
    view = dead_letter_view(letter(b"\xff\xfe", b"\xff"))
    assert "key" not in view
    assert base64.b64decode(view["key_base64"]) == b"\xff\xfe"
    assert base64.b64decode(view["value_base64"]) == b"\xff"
    line = _dead_letter_line(view)
    assert line.startswith("orders.x.v1.dlq[1]@7 key=b'\\xff\\xfe' ")
    # the text key that looks like those bytes stays distinguishable: a JSON string
    text = _dead_letter_line(dead_letter_view(letter(b"b'\\xff\\xfe'", b"x")))
    assert text.startswith("orders.x.v1.dlq[1]@7 key=\"b'\\\\xff\\\\xfe'\" ")


def test_text_and_missing_keys_are_as_they_were() -> None:
    assert dead_letter_view(letter(b"poison", b"v"))["key"] == "poison"
    assert dead_letter_view(letter(None, b"v"))["key"] is None
    assert " key=null " in _dead_letter_line(dead_letter_view(letter(None, b"v")))


def test_a_header_that_is_no_text_is_base64_not_a_repr() -> None:
    message = Message(
        topic="orders.x.v1.dlq",
        partition=1,
        offset=7,
        key=b"k",
        value=b"v",
        headers=[("mesh.dlq.error", b"bad"), ("trace", b"\xff\x00"), ("empty", None)],
        timestamp=(1, 1_000),
    )
    view = dead_letter_view(message)
    assert view["headers"] == {"mesh.dlq.error": "bad", "empty": None}
    assert base64.b64decode(view["headers_base64"]["trace"]) == b"\xff\x00"
    line = _dead_letter_line(view)
    assert 'mesh.dlq.error="bad" empty=null trace=b\'\\xff\\x00\' value="v"' in line


def test_a_tombstone_is_shown_as_null_not_as_an_empty_value() -> None:
    tombstone = Message(topic="t.dlq", partition=0, offset=1, key=b"k", value=None)
    empty = Message(topic="t.dlq", partition=0, offset=2, key=b"k", value=b"")
    assert _dead_letter_line(dead_letter_view(tombstone)).endswith(" value=null")
    assert _dead_letter_line(dead_letter_view(empty)).endswith(' value=""')


def test_a_refused_dead_letter_says_who_creates_the_topic_when_it_may_be_missing() -> None:
    """h59: a reader whose input's dead-letter topic was missing got "Topic authorization
    failed (check that topic: its max.message.bytes, ...)"; Kafka answers a reader that way
    for a topic that is not there, which its domain creates."""
    reader = KafkaConnection.create(
        "127.0.0.1:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="analytics",
        sasl_password="x",
    )
    said = dlq._refusal_advice(
        "orders.order-placed.v1.dlq", {KafkaError.TOPIC_AUTHORIZATION_FAILED}, reader
    )
    assert said == (
        "the topic is missing, or User:analytics may not write it: a product's dead-letter "
        "topic is created by its domain, orders (`mesh products apply` in its project), and "
        "its readers get WRITE on it from `mesh acl apply`"
    )
    too_large = dlq._refusal_advice(
        "orders.order-placed.v1.dlq", {KafkaError.MSG_SIZE_TOO_LARGE}, reader
    )
    assert too_large == "check that topic: its max.message.bytes, its ACLs for this reader"
