"""The official ``apache/kafka`` image as a testcontainers container (for machines with Docker).

testcontainers' own ``KafkaContainer`` drives Confluent's ``cp-kafka`` images (their start
scripts, their version numbers), so it cannot run ``apache/kafka:4.x``. This configures a
generic container the way the official image expects: a single KRaft node whose client
listener is published on a fixed free host port, advertised as ``127.0.0.1:<port>``.
"""

from __future__ import annotations

from testcontainers.core.container import DockerContainer

CLIENT_PORT = 9092
CONTROLLER_PORT = 9093


def official_kafka_environment(host_port: int) -> dict[str, str]:
    """The official image's settings for one KRaft node advertised at ``127.0.0.1:host_port``."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{CONTROLLER_PORT}",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{CLIENT_PORT},CONTROLLER://:{CONTROLLER_PORT}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


def official_kafka_container(image: str, host_port: int) -> DockerContainer:
    """A single-node KRaft broker reachable from the host at ``127.0.0.1:host_port``.

    Building it needs a Docker engine (the client connects at construction).
    """
    environment = official_kafka_environment(host_port)
    return DockerContainer(image).with_bind_ports(CLIENT_PORT, host_port).with_envs(**environment)
