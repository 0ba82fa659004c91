"""Which Kafka errors leave a client unusable: both ways librdkafka reports them."""

from __future__ import annotations

from confluent_kafka import KafkaError

from mesh_stream.kafka.clients import is_fatal


def test_a_fatal_error_counts_whether_or_not_its_flag_is_set() -> None:
    # a consumer gets a message with code _FATAL and the flag unset (a fenced static member)
    as_message = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced")
    assert not as_message.fatal()
    assert is_fatal(as_message)
    # error_cb gets the flag set
    assert is_fatal(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True))


def test_transient_errors_are_not_fatal() -> None:
    for code in (KafkaError._TRANSPORT, KafkaError._PARTITION_EOF, KafkaError._ALL_BROKERS_DOWN):
        assert not is_fatal(KafkaError(code))
