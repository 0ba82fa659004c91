"""Ask Kafka, before a CLI command commits to it, whether it answers and which topics exist.

librdkafka clients never fail on an unreachable bootstrap server: they retry quietly (or
loudly, on stderr) for ever. A command such as ``mesh tail`` would then print nothing and
exit 0. One metadata request with a deadline turns that into a clear error up front.
"""

from __future__ import annotations

from functools import partial

from confluent_kafka import KafkaError, KafkaException

from mesh_stream.errors import BrokerUnreachableError, KafkaSecurityError
from mesh_stream.kafka.clients import (
    connect_refusal,
    interruptibly,
    listener_problem,
    make_admin,
    plaintext_mismatch,
)
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error

DEFAULT_PROBE_TIMEOUT = 10.0


def existing_topics(kafka: KafkaConnection | str, timeout: float | None = None) -> set[str]:
    """The topic names the cluster behind ``kafka`` knows; raises if nobody answers.

    ``kafka`` is the connection (a bare ``host:port`` string means PLAINTEXT); refused
    credentials raise :class:`KafkaSecurityError` naming the ``MESH_KAFKA_*`` setting.
    ``timeout`` defaults to :data:`DEFAULT_PROBE_TIMEOUT` seconds.
    """
    conn = kafka if isinstance(kafka, KafkaConnection) else KafkaConnection.create(kafka)
    bootstrap_servers = conn.bootstrap_servers
    timeout = DEFAULT_PROBE_TIMEOUT if timeout is None else timeout
    seen: list[KafkaError] = []
    admin = make_admin(conn, {"error_cb": seen.append, "log_level": 0})
    try:
        metadata = interruptibly(partial(admin.list_topics, timeout=timeout))
    except KafkaException as exc:
        admin.poll(0)  # serves error_cb
        refused = connect_refusal(conn, seen)  # a refused password, an untrusted certificate
        if refused is not None:
            raise refused from exc
        explained = explain_kafka_error(exc, conn, operation="DESCRIBE")
        if isinstance(explained, KafkaSecurityError):
            raise plaintext_mismatch(conn) or explained from exc
        problem = listener_problem(conn, timeout)  # a listener that wants other settings
        if problem is not None:
            raise problem from exc
        error = exc.args[0] if exc.args else exc
        reason = error.str() if hasattr(error, "str") else str(error)
        raise BrokerUnreachableError(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout:g} s ({reason}); "
            f"start one with `mesh broker start` and export the MESH_BOOTSTRAP_SERVERS it "
            f"prints, or fix MESH_BOOTSTRAP_SERVERS / --bootstrap-servers"
        ) from exc
    return set(metadata.topics)
