"""Dead letters, the one home of their headers and of their writer: what a record refused by
a ``DLQ`` quality rule carries (the publisher sends it with the records of its batch), the
``mesh.dlq.*`` headers a poison pill carries (:data:`mesh_stream.consumer.DLQ_HEADERS`), and
:class:`DeadLetterWriter`, through which the SDK consumer and the processors' re-key stage
write the records they cannot decode.

The headers and value follow confluent-kafka's ``DlqAction`` on write, so a record
dead-lettered by our publisher and one dead-lettered by a Confluent serializer running the
same rule look alike: the value is the record as JSON (bytes as latin-1 text, anything else
JSON cannot hold as its ``str``), the ``__rule.*`` headers name the rule, the mode, the subject
and the topic, and ``__rule.exception`` says why. The ``mesh.dlq.*`` headers are our own,
the ones the consumer's dead letters carry too where they apply.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from mesh_stream.errors import DeliveryError
from mesh_stream.kafka.clients import NO_LOSS_PRODUCER_CONFIG, make_producer
from mesh_stream.kafka.connection import KafkaConnection, owner_domain
from mesh_stream.kafka.partitions import KEY_PARTITIONER
from mesh_stream.schema.wire import schema_id_of

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
    "DeadLetterWriter",
    "dead_letter_view",
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


class DeadLetterWriter:
    """Writes records that could not be decoded to a dead-letter topic: unchanged (key, value
    and their own headers), with the :func:`poison_pill_headers` of the consumer ``group``.

    :meth:`write` returns once Kafka acknowledged the dead letter, else raises
    :class:`DeliveryError`: a reader may move past a poison pill only once it is kept. Its
    producer is made at the first dead letter (most readers never write one) and made again
    after a failure.
    """

    def __init__(self, connection: KafkaConnection, group: str, *, timeout_s: float = 30.0):
        self.connection = connection
        self.group = group
        self.timeout_s = timeout_s
        self._producer: Producer | None = None

    def write(self, message: Message, dlq_topic: str, error: BaseException) -> None:
        """Dead-letter ``message``, which could not be decoded because of ``error``."""
        data = message.value()
        own = cast("list[tuple[str, bytes | None]]", message.headers() or [])
        headers: list[tuple[str, str | bytes | None]] = list(own)
        headers += poison_pill_headers(
            error=str(error),
            error_type=type(error.__cause__ or error).__name__,
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=message.timestamp()[1],
            group=self.group,
            schema_id=schema_id_of(data),
        )
        failures: list[str] = []
        codes: set[int] = set()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err.str())
                codes.add(err.code())

        if self._producer is None:
            # dead letters keep their record's key where the publisher's (DLQ rules) put it
            config = {"log_level": 3, "partitioner": KEY_PARTITIONER, **NO_LOSS_PRODUCER_CONFIG}
            self._producer = make_producer(self.connection, config)
        try:
            self._producer.produce(
                dlq_topic, data, message.key(), headers=headers, on_delivery=delivered
            )
            remaining = self._producer.flush(self.timeout_s)
        except (KafkaException, BufferError) as exc:
            failures.append(str(exc))
            remaining = 0
        if failures:
            self._producer = None  # a fresh producer for the next attempt
            raise DeliveryError(
                f"Kafka refused the dead letter to {dlq_topic}: {'; '.join(failures)} "
                f"({_refusal_advice(dlq_topic, codes, self.connection)})"
            )
        if remaining:
            self._producer = None
            raise DeliveryError(
                f"the dead letter to {dlq_topic} was not acknowledged within "
                f"{self.timeout_s:g} s: is Kafka reachable at {self.connection.bootstrap_servers}?"
            )

    def close(self) -> None:
        """Wait (at most ``timeout_s``) for anything still unacknowledged; writes are
        acknowledged one by one, so this is only for a write an interrupt cut short."""
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None


def dead_letter_view(message: Message) -> dict[str, Any]:
    """One dead letter as a person (or ``jq``) reads it: where it sits, its key, every header
    as text, and its value: text when it is UTF-8 (a rule's dead letter is the record as
    JSON), else base64 (a poison pill's bytes, as they were). A key that is no UTF-8 text
    is ``key_base64`` likewise (its repr would read as a text key), and such a header is in
    ``headers_base64`` instead of ``headers``."""
    headers: dict[str, str | None] = {}
    headers_base64: dict[str, str] = {}
    for name, raw in cast(Headers, message.headers() or []):
        if not isinstance(raw, bytes):
            headers[name] = raw
            continue
        try:
            headers[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            headers_base64[name] = base64.b64encode(raw).decode("ascii")
    value = message.value()
    key = message.key()
    view: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": message.timestamp()[1],
        "key": key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key,
        "headers": headers,
    }
    if headers_base64:
        view["headers_base64"] = headers_base64
    if isinstance(key, bytes):
        try:
            key.decode("utf-8")
        except UnicodeDecodeError:
            del view["key"]
            view["key_base64"] = base64.b64encode(key).decode("ascii")
    if isinstance(value, bytes):
        try:
            view["value"] = value.decode("utf-8")
        except UnicodeDecodeError:
            view["value_base64"] = base64.b64encode(value).decode("ascii")
    else:
        view["value"] = value
    return view


#: Kafka's answers to a write a reader may not make or to a topic that is not there (a
#: reader that may not DESCRIBE a topic cannot tell the two apart).
_ABSENT_OR_FORBIDDEN = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
    }
)


def _refusal_advice(dlq_topic: str, codes: set[int], connection: KafkaConnection) -> str:
    """What to check after a refused dead letter. A missing dead-letter topic answers a
    reader "Topic authorization failed" (h59: the advice named max.message.bytes)."""
    if not codes & _ABSENT_OR_FORBIDDEN:
        return "check that topic: its max.message.bytes, its ACLs for this reader"
    owner = owner_domain(dlq_topic) or "its owner"
    return (
        f"the topic is missing, or {connection.principal} may not write it: a product's "
        f"dead-letter topic is created by its domain, {owner} (`mesh products apply` in its "
        f"project), and its readers get WRITE on it from `mesh acl apply`"
    )
