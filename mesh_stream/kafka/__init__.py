"""Kafka access for every part of the mesh: one typed connection, one client factory.

``KafkaConnection`` (validated settings that render librdkafka and faust configs) lives
in :mod:`mesh_stream.kafka.connection`; the functions that build confluent-kafka clients
live in :mod:`mesh_stream.kafka.clients`. Importing this package does not import faust.
"""

from __future__ import annotations

from mesh_stream.kafka.clients import make_admin, make_consumer, make_producer, new_topic, probe
from mesh_stream.kafka.connection import KafkaConfig, KafkaConnection, explain_kafka_error
from mesh_stream.settings import SaslMechanism, SecurityProtocol

__all__ = [
    "KafkaConfig",
    "KafkaConnection",
    "SaslMechanism",
    "SecurityProtocol",
    "explain_kafka_error",
    "make_admin",
    "make_consumer",
    "make_producer",
    "new_topic",
    "probe",
]
