"""Ask Kafka, before a CLI command commits to it, whether it answers and which topics exist.

librdkafka clients never fail on an unreachable bootstrap server: they retry quietly (or
loudly, on stderr) for ever. A command such as ``mesh tail`` would then print nothing and
exit 0. One metadata request with a deadline turns that into a clear error up front.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from mesh_stream.errors import BrokerUnreachableError

DEFAULT_PROBE_TIMEOUT = 10.0


def existing_topics(bootstrap_servers: str, timeout: float | None = None) -> set[str]:
    """The topic names the cluster at ``bootstrap_servers`` knows; raises if nobody answers.

    ``timeout`` defaults to :data:`DEFAULT_PROBE_TIMEOUT` seconds.
    """
    timeout = DEFAULT_PROBE_TIMEOUT if timeout is None else timeout
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = error.str() if hasattr(error, "str") else str(error)
        raise BrokerUnreachableError(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout:g} s ({reason}); "
            f"start one with `mesh broker start` and export the MESH_BOOTSTRAP_SERVERS it "
            f"prints, or fix MESH_BOOTSTRAP_SERVERS / --bootstrap-servers"
        ) from exc
    return set(metadata.topics)
