"""Dead letters, the one home of their headers: what a record refused by a ``DLQ`` quality
rule carries (the publisher), and the names of the ``mesh.dlq.*`` headers a poison pill
carries too (the consumer, :data:`mesh_stream.consumer.DLQ_HEADERS`).

The headers and value follow confluent-kafka's ``DlqAction`` on write, so a record
dead-lettered by our publisher and one dead-lettered by a Confluent serializer running the
same rule look alike: the value is the record as JSON (bytes as latin-1 text, anything else
JSON cannot hold as its ``str``), the ``__rule.*`` headers name the rule, the mode, the subject
and the topic, and ``__rule.exception`` says why. The ``mesh.dlq.*`` headers are our own,
the ones the consumer's dead letters carry too where they apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MESH_CONSUMER_GROUP",
    "MESH_ERROR",
    "MESH_ERROR_TYPE",
    "MESH_SCHEMA_ID",
    "MESH_SOURCE_OFFSET",
    "MESH_SOURCE_PARTITION",
    "MESH_SOURCE_TIMESTAMP",
    "MESH_SOURCE_TOPIC",
    "RULE_EXCEPTION",
    "RULE_MODE",
    "RULE_NAME",
    "RULE_SUBJECT",
    "RULE_TOPIC",
    "poison_pill_headers",
    "rule_dead_letter",
]

RULE_NAME = "__rule.name"
RULE_MODE = "__rule.mode"
RULE_SUBJECT = "__rule.subject"
RULE_TOPIC = "__rule.topic"
RULE_EXCEPTION = "__rule.exception"
MESH_ERROR = "mesh.dlq.error"
MESH_ERROR_TYPE = "mesh.dlq.error.type"
MESH_SOURCE_TOPIC = "mesh.dlq.source.topic"
MESH_SOURCE_PARTITION = "mesh.dlq.source.partition"
MESH_SOURCE_OFFSET = "mesh.dlq.source.offset"
MESH_SOURCE_TIMESTAMP = "mesh.dlq.source.timestamp"
MESH_CONSUMER_GROUP = "mesh.dlq.consumer.group"
MESH_SCHEMA_ID = "mesh.dlq.source.schema.id"

Headers = list[tuple[str, bytes | None]]


def _json_default(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


def rule_dead_letter(
    record: Mapping[str, Any],
    *,
    rule: str,
    subject: str,
    topic: str,
    exception: str,
    error: str,
    error_type: str,
    schema_id: int,
    headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None = None,
) -> tuple[bytes, Headers]:
    """(value, headers) of the dead letter of ``record``, which failed ``rule`` on its way
    to ``topic``; the record's own ``headers`` come first, as confluent-kafka keeps them."""
    carried: Headers = []
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        carried = [(str(name), value) for name, value in items]
    carried += [
        (RULE_NAME, rule.encode()),
        (RULE_MODE, b"WRITE"),
        (RULE_SUBJECT, subject.encode()),
        (RULE_TOPIC, topic.encode()),
        (RULE_EXCEPTION, exception.encode()),
        (MESH_ERROR, error.encode()),
        (MESH_ERROR_TYPE, error_type.encode()),
        (MESH_SOURCE_TOPIC, topic.encode()),
        (MESH_SCHEMA_ID, str(schema_id).encode()),
    ]
    value = json.dumps(dict(record), default=_json_default).encode()
    return value, carried


def poison_pill_headers(
    *,
    error: str,
    error_type: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    group: str,
    schema_id: int | None,
) -> Headers:
    """The ``mesh.dlq.*`` headers of a record that could not be decoded (after its own
    headers), as the SDK consumer and the processors' re-key stage write them."""
    headers: Headers = [
        (MESH_ERROR, error.encode()),
        (MESH_ERROR_TYPE, error_type.encode()),
        (MESH_SOURCE_TOPIC, topic.encode()),
        (MESH_SOURCE_PARTITION, str(partition).encode()),
        (MESH_SOURCE_OFFSET, str(offset).encode()),
        (MESH_SOURCE_TIMESTAMP, str(timestamp_ms).encode()),
        (MESH_CONSUMER_GROUP, group.encode()),
    ]
    if schema_id is not None:
        headers.append((MESH_SCHEMA_ID, str(schema_id).encode()))
    return headers
