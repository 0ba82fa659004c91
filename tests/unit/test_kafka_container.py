"""The Docker path of the `kafka` fixture configures the official image as KRaft, host-reachable.

Starting the container needs a Docker engine, which CI here lacks; its configuration is
checked here, and the container is used by the `kafka` fixture wherever Docker answers.
"""

from __future__ import annotations

from tests.kafka_container import CLIENT_PORT, CONTROLLER_PORT, official_kafka_environment


def test_official_image_is_a_single_kraft_node_advertised_on_the_host_port() -> None:
    env = official_kafka_environment(40123)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:40123"
    assert env["KAFKA_LISTENERS"] == (f"PLAINTEXT://:{CLIENT_PORT},CONTROLLER://:{CONTROLLER_PORT}")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@localhost:{CONTROLLER_PORT}"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    protocols = dict(
        pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols == {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
    single_node = [k for k in env if k.endswith(("REPLICATION_FACTOR", "MIN_ISR"))]
    assert len(single_node) == 5
    assert all(env[k] == "1" for k in single_node)
