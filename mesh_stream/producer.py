"""Publish records of one data product: schema-checked, Confluent-framed Avro, nothing lost.

A :class:`ProductPublisher` is what a domain team uses::

    with open_publisher("orders.order-placed", settings=MeshSettings()) as publisher:
        publisher.publish({"order_id": "...", ...})        # dicts: the fast path
        publisher.publish(OrderPlaced(order_id="...", ...))  # or pydantic models

On the wire: magic byte + schema id + Avro body, key from the descriptor's ``key_field``,
``acks=all`` and idempotence always on. Every delivery report is checked; ``flush`` and
``close`` raise :class:`DeliveryError` naming each record Kafka did not acknowledge, so
nothing is dropped silently. When OpenTelemetry tracing is active (:mod:`mesh_stream.tracing`,
decided as the publisher is built) each record gets a PRODUCER span and a ``traceparent``
header. The value schema is registered (subject ``<topic>-value``) and
the topic created with the descriptor's partitions, retention and cleanup policy on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import threading
import time
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from confluent_kafka import KafkaError, KafkaException, Message
from pydantic import BaseModel

from mesh_stream import registration, tracing
from mesh_stream.contracts import RuleBreach, RuleEngine
from mesh_stream.descriptor import DataProduct, where_in_descriptor
from mesh_stream.errors import (
    ConfigurationError,
    DeliveryError,
    DeserializationError,
    KafkaAuthorizationError,
    KafkaSecurityError,
    MeshError,
    ProductNotFoundError,
    RegistryUnavailableError,
    RuleViolationError,
    SchemaError,
    SerializationError,
    SubjectNotFoundError,
)
from mesh_stream.kafka import topics
from mesh_stream.kafka.clients import (
    LIBRDKAFKA_MESSAGE_MAX_BYTES,
    MAX_WAIT_SECONDS,
    NO_LOSS_PRODUCER_CONFIG,
    RECORD_OVERHEAD_BYTES,
    UNANSWERED_CODES,
    batches_within,
    is_wait_seconds,
    make_producer,
    refuse_connection_keys,
)
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error, resolve_connection
from mesh_stream.kafka.dlq import RULE_NAME, rule_dead_letter
from mesh_stream.kafka.partitions import KEY_PARTITIONER
from mesh_stream.project import MeshProject, locate_project, resolve_product
from mesh_stream.schema import keys
from mesh_stream.schema.codec import FramedReader, RecordEncoder, as_document, load_schema_file
from mesh_stream.schema.models import check_model
from mesh_stream.settings import KeyPartitioner, MeshSettings

if TYPE_CHECKING:
    from mesh_stream.registry.client import RegisteredSchema, RegistryClient

log = logging.getLogger(__name__)

__all__ = [
    "AsyncProductPublisher",
    "DeadLetteredRecord",
    "DeliveredRecord",
    "ProductPublisher",
    "PublishReport",
    "RejectedRecord",
    "UndeliveredRecord",
    "catalog_local_descriptor",
    "open_publisher",
]

#: Settings no caller may weaken: they are what makes "nothing lost" true (and, with
#: ``delivery.report.only.error``, what lets a publisher know each record was delivered: with
#: it, ``close`` said records Kafka had stored were not acknowledged, h59).
FIXED_PRODUCER_CONFIG: dict[str, Any] = {
    **NO_LOSS_PRODUCER_CONFIG,
    "delivery.report.only.error": False,
}
#: Defaults a caller's producer config may change. The partitioner is Java's (the mesh's, see
#: kafka/partitions.py), so a key lands where the processors and Java services put it.
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "partitioner": KEY_PARTITIONER,
    "linger.ms": 5,
    "compression.type": "lz4",
    "log_level": 3,
}
POLL_EVERY = 256
#: Seconds ``publish`` waits while librdkafka's queue is full and Kafka acknowledges none of
#: it; then the record is refused (it waited up to ``message.timeout.ms``, 5 minutes).
QUEUE_FULL_WAIT_S = 30.0
#: Seconds a publisher nobody closed (collected, or the interpreter ending) waits for the
#: records still in flight, which were lost without a word before.
UNCLOSED_FLUSH_S = 10.0
SHOWN_RECORDS = 10
# Delivery errors that mean "this principal may not write here": raised as our
# KafkaSecurityError (topic, principal, missing ACL), not as a plain DeliveryError.
_SECURITY_CODES = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._SSL,
    }
)


@dataclass(frozen=True)
class UndeliveredRecord:
    """A record Kafka did not acknowledge: its key, the reason, and the record itself
    (decoded back from what was sent, so it can be published again; ``value`` is what was
    sent, which tells records with the same key apart)."""

    topic: str
    key: str | bytes | None
    error: str
    record: dict[str, Any] | None = None
    value: bytes | None = field(default=None, repr=False)
    maybe_stored: bool = False
    """Kafka did not answer in time (``message.timeout.ms``): the record may have been
    stored all the same (a leader kept it and its acknowledgement was lost), so sending it
    again may write it twice; a refused record (False) was not stored."""

    @property
    def reason(self) -> str:
        """``error``, with whether the record may have been stored all the same."""
        if self.maybe_stored:
            return f"{self.error} (no answer in time: it may have been stored)"
        return self.error

    def describe(self) -> str:
        return f"key {self.key!r}: {self.reason}"


@dataclass(frozen=True)
class RejectedRecord:
    """A record of a batch that failed its schema, by its position in the batch."""

    index: int
    error: SerializationError

    def describe(self) -> str:
        return f"record {self.index}: {self.error}"


@dataclass(frozen=True)
class DeadLetteredRecord:
    """A record a quality rule with ``on_failure: DLQ`` sent to ``topic`` (the product's
    dead-letter topic) instead of the product's topic; ``index`` is its place in a batch."""

    rule: str
    expr: str
    topic: str
    reason: str
    index: int | None = None

    def describe(self) -> str:
        where = f"record {self.index}" if self.index is not None else "the record"
        return f"{where}: rule {self.rule!r} ({self.expr}) failed, sent to {self.topic}"


@dataclass(frozen=True)
class PublishReport:
    """What ``publish_many`` did: how many records Kafka acknowledged on the product's
    topic, which were refused (schema or an ERROR rule), which a DLQ rule dead-lettered."""

    published: int
    rejected: tuple[RejectedRecord, ...] = ()
    dead_lettered: tuple[DeadLetteredRecord, ...] = ()

    @property
    def ok(self) -> bool:
        """Every record reached the product's topic."""
        return not self.rejected and not self.dead_lettered


#: What ``publish_many`` refuses as its batch: one record, or text.
_NOT_A_BATCH = (Mapping, BaseModel, str, bytes)


def _check_flush_timeout(timeout: Any, name: str) -> None:
    """A :class:`ConfigurationError` unless ``timeout`` is a number of seconds to flush."""
    if not is_wait_seconds(timeout):
        raise ConfigurationError(
            f"{name}={timeout!r:.60} is not a number of seconds from 0 to "
            f"{MAX_WAIT_SECONDS:_.0f}: it is how long a flush waits for Kafka's "
            f"acknowledgements (default 30; 0 does not wait)"
        )


@dataclass
class _CheckedBatch:
    """A ``publish_many`` batch checked and encoded, not yet sent."""

    prepared: list[tuple[bytes, str | bytes | None]] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    diverted: list[tuple[int, RuleBreach, Mapping[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class DeliveredRecord:
    """Where Kafka stored a record (what the asyncio API's ``publish`` resolves to)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


#: How long what the cluster said of a topic's in-sync replicas is reused by a publisher.
_DIAGNOSIS_KEPT_S = 10.0
#: The most of a flush's wait that asking the cluster why records are unacknowledged takes.
_DIAGNOSIS_MOST_S = 5.0


def _diagnosis_share(timeout: float) -> float:
    """The part of a flush's ``timeout`` kept for asking the cluster why records are still
    unacknowledged: a quarter, at most 5 s; none under 2 s (``flush(0)`` in a loop)."""
    return min(_DIAGNOSIS_MOST_S, timeout / 4) if timeout >= 2 else 0.0


#: librdkafka's words for NOT_ENOUGH_REPLICAS, should a record fail with it rather than
#: time out retrying it.
_TOO_FEW_IN_SYNC = KafkaError(KafkaError.NOT_ENOUGH_REPLICAS).str()
#: What a refusal for size says in place of librdkafka's "Broker: Message size too large".
TOO_LARGE = "refused by the broker as too large"


def _delivery_failure(error: KafkaError, topic: str, message: Message) -> str:
    """Why a record was not delivered, in words that say what to change."""
    if error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
        return str(error.str())
    size = len(message.value() or b"") + len(message.key() or b"")
    return (
        f"{TOO_LARGE} ({size:,} bytes of key and value before compression): over the "
        f"limit of topic {topic} (its max.message.bytes) or of the broker (message.max.bytes);"
        f" send smaller records, or have the limit raised"
    )


def _describe_failures(
    product: str,
    topic: str,
    failed: list[UndeliveredRecord],
    queued: int = 0,
    *,
    cause: str | None = None,
) -> str:
    """The DeliveryError's message; ``cause`` is what the cluster says about the topic
    (:func:`~mesh_stream.kafka.topics.writes_refused_for_replicas`), when it said why."""
    shown = "; ".join(item.describe() for item in failed[:SHOWN_RECORDS])
    more = f"; and {len(failed) - SHOWN_RECORDS} more" if len(failed) > SHOWN_RECORDS else ""
    still = f"; {queued} more still queued" if queued else ""
    sized = all(item.error.startswith(TOO_LARGE) for item in failed) and not queued
    if sized:
        hint = ""
    elif cause is not None:
        hint = f". The cluster says why: {cause}"
    else:
        hint = (
            ". Check that the broker is reachable and the topic's partitions have "
            "min.insync.replicas in sync; records wait up to `message.timeout.ms` (publisher "
            "config) before they fail"
        )
    unknown = sum(item.maybe_stored for item in failed)
    if unknown:
        hint += (
            f". {unknown} of them got no answer in time and may have been stored all the "
            f"same: sending them again may write them twice (readers dedupe by key or id)"
        )
    outcome = "were not acknowledged by" if unknown else "were not delivered to"
    return (
        f"{len(failed)} record(s) of {product} {outcome} topic {topic}: {shown}{more}{still}{hint}"
    )


#: What a publisher takes as ``headers=``: confluent-kafka's two forms, checked and copied
#: by :func:`_checked_headers` (a list keeps repeated names, as Kafka does).
Headers = Mapping[str, bytes | str | None] | list[tuple[str, bytes | str | None]]
#: librdkafka takes a record timestamp as a signed 64-bit count of milliseconds.
_MAX_TIMESTAMP_MS = 2**63 - 1


def _described(value: Any) -> str:
    """``int 123``, ``dict {...}``: a refused argument as the messages show it."""
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _most_key_bytes(key: str | bytes | None) -> int:
    """The most bytes ``key`` can take on the wire (a character is at most 4 in UTF-8)."""
    if key is None:
        return 0
    return len(key) if isinstance(key, bytes) else 4 * len(key)


def _check_key(key: Any) -> Any:
    """An explicit ``key=`` as confluent-kafka sends it (str or bytes; a bytearray or
    memoryview as its bytes); refused otherwise (a descriptor's ``key_field`` value is turned
    into text, an explicit key is not)."""
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    if key is not None and not isinstance(key, (str, bytes)):
        raise ConfigurationError(
            f"key must be str or bytes, got {_described(key)}; give str(key) for its text, or "
            f"leave key= out to key the record by the descriptor's key_field"
        )
    return key


def _check_timestamp(timestamp_ms: Any) -> int | None:
    """A ``timestamp_ms=`` as an int (anything integral, numpy's too, but not a bool);
    refused when Kafka would not store it as given: negative, beyond 64 bits, or 0 (which
    librdkafka reads as "now")."""
    if timestamp_ms is None:
        return None
    try:
        if isinstance(timestamp_ms, bool):
            raise TypeError("a bool")
        stamp: int = operator.index(timestamp_ms)
    except TypeError:
        raise ConfigurationError(
            f"timestamp_ms must be an int of milliseconds since the epoch, got "
            f"{_described(timestamp_ms)}"
        ) from None
    if stamp == 0:
        raise ConfigurationError(
            "timestamp_ms must be positive, got 0: Kafka's client reads 0 as 'now', so the "
            "record would not carry it; leave timestamp_ms out to stamp the record now"
        )
    if not 0 < stamp <= _MAX_TIMESTAMP_MS:
        raise ConfigurationError(
            f"timestamp_ms must be from 1 to {_MAX_TIMESTAMP_MS} (milliseconds since the "
            f"epoch), got {stamp}"
        )
    return stamp


def _checked_headers(headers: Any) -> dict[str, Any] | list[tuple[str, Any]]:
    """``headers=`` as confluent-kafka takes it, or :class:`ConfigurationError` naming the
    header that is not a name (str) with a value of bytes, str or None."""
    if isinstance(headers, Mapping):
        pairs: list[Any] = list(headers.items())
    elif isinstance(headers, (list, tuple)):
        pairs = list(headers)
    else:
        raise ConfigurationError(
            f"headers must be a mapping of name to bytes, str or None, or a list of (name, "
            f"value) pairs, got {_described(headers)}"
        )
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigurationError(
                f"headers[{index}] must be a (name, value) pair, got {_described(pair)}"
            )
        name, value = pair
        if not isinstance(name, str):
            raise ConfigurationError(
                f"header names must be str, got {_described(name)} (headers[{index}])"
            )
        if value is not None and not isinstance(value, (bytes, str)):
            raise ConfigurationError(
                f"header {name!r} must be bytes, str or None, got {_described(value)}"
            )
    if isinstance(headers, Mapping):
        return dict(pairs)
    return [(name, value) for name, value in pairs]


def _header_pairs(headers: Headers | None) -> Iterable[tuple[str, bytes | str | None]]:
    if not headers:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def _replayed_rule(headers: Headers | None) -> str | None:
    """The rule a dead letter published again failed (its ``__rule.name`` header)."""
    if not headers:
        return None
    found = dict(_header_pairs(headers))
    name = found.get(RULE_NAME)
    if isinstance(name, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            return name.decode()
        return None
    return name if isinstance(name, str) else None


def _model_converter(
    model: type[BaseModel], schema: Mapping[str, Any]
) -> Callable[[BaseModel], Mapping[str, Any]]:
    """How to turn instances of ``model`` into encoder input, once the model is checked.

    Flat models (no nested models) are read through their ``__dict__`` (pydantic keeps the
    validated field values there): the encoder only reads, and this skips ``model_dump``'s
    copy. Models with nested models are dumped.
    """
    check_model(model, schema)
    if any(_mentions_model(info.annotation) for info in model.model_fields.values()):
        return _dump
    return _fields_of


def _dump(record: BaseModel) -> Mapping[str, Any]:
    return record.model_dump()


def _fields_of(record: BaseModel) -> Mapping[str, Any]:
    fields: Mapping[str, Any] = record.__dict__
    return fields


def _mentions_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


class ProductPublisher:
    """Synchronous publisher for one product; a context manager that flushes on exit.

    ``schema`` defaults to the descriptor's ``.avsc`` below ``root`` (when given and the
    file exists), else the latest version registered for the product's value subject.
    ``config`` adds librdkafka settings (for example ``message.timeout.ms``); ``acks`` and
    ``enable.idempotence`` cannot be weakened. Not thread-safe: one publisher per thread.

    ``connection`` says where Kafka is and how to authenticate (``KafkaConnection``);
    ``bootstrap_servers="host:port"`` is the shorthand for a PLAINTEXT connection. A record
    the broker refuses for lack of an ACL raises :class:`KafkaAuthorizationError` naming
    the topic, the principal and the missing ACL.

    A record whose encoded size is over the producer's ``message.max.bytes`` (librdkafka's
    default 1000000, or ``config=``) is refused like a record that fails its schema, before
    anything is sent. ``schema_source`` names a given ``schema`` in errors (a command line
    says ``--schema FILE``).

    The schema is registered with the descriptor's data contract unless ``auto_register``
    is False: then the version must already hold them (``mesh products apply``), else a
    :class:`ConfigurationError` says so and nothing is written. ``registered`` (a version the
    registry holds, e.g. an earlier major's latest) is published under as it is: its schema,
    id and rules, whatever the descriptor's ``rules`` say.
    """

    def __init__(
        self,
        product: DataProduct,
        *,
        connection: KafkaConnection | None = None,
        bootstrap_servers: str | None = None,
        registry: RegistryClient,
        schema: Mapping[str, Any] | str | None = None,
        config: Mapping[str, Any] | None = None,
        root: Path | None = None,
        create_topic: bool = True,
        schema_source: str | None = None,
        auto_register: bool = True,
        registered: RegisteredSchema | None = None,
    ) -> None:
        self.connection = resolve_connection(connection, bootstrap_servers)
        #: (when, what) the cluster last said of the topic's in-sync replicas.
        self._diagnosis: tuple[float, str | None] | None = None
        self.product = product
        self.topic = product.topic
        self.registry = registry
        if registered is not None:  # a version as the registry holds it: its own contract
            schema = registered.schema
        document = self._schema_document(product, registry, schema, root)
        local = product.schema_path(root) if root is not None and schema is None else None
        source: Path | str | None = local if local is not None and local.exists() else None
        if schema is not None:  # a refusal must not send the user to the descriptor's file
            source = schema_source or f"the schema given to {type(self).__name__}(schema=...)"
        if create_topic:  # a topic Kafka cannot have is refused before anything is registered
            registration.ensure_product_topic(product, self.connection, create=False)
        if registered is not None:
            version: registration.ContractVersion = registered
        else:
            find = (
                registration.register_contract
                if auto_register
                else registration.registered_contract
            )
            made = find(registry, product, document, source=source)
            version = registration.enforced_version(registry, product, made)
        self.schema_id = version.schema_id
        #: The CEL rules of the registered version (its ruleSet), or of the subject's latest
        #: version when it holds the same schema (as use.latest.version), None when none.
        self.rules = RuleEngine.from_rule_set(
            version.rule_set,
            owner=f"{product.name} ({product.value_subject})",
            dlq_topic=product.dlq_topic,
            schema=document,
        )
        self.encoder = RecordEncoder(document, self.schema_id)
        #: Reads an undelivered record's bytes back for its report (see _undelivered).
        self._read_back: FramedReader | None = None
        self._key_field = product.key_field
        if self._key_field is not None and not any(
            item.get("name") == self._key_field for item in document.get("fields", [])
        ):
            where = where_in_descriptor(product, "key_field") or product.name
            raise ConfigurationError(
                f"{where}: key_field {self._key_field!r} is not a field of the schema "
                f"{self.encoder.name} of {product.name}; fix `key_field` in the product "
                f"descriptor"
            )
        #: The key of a key_field value: the text of what Avro writes (mesh_stream.schema.keys),
        #: so one value gives one key whether given as a datetime or an int, say.
        kind = keys.key_type(document, self._key_field) if self._key_field is not None else None
        self._key_text = keys.key_text(kind)
        #: Whether a str value is its own key (a string or uuid field): no call for it.
        self._key_str_as_is = kind is None or kind.logical_type in (None, "uuid")
        settings = self._producer_config(config)
        #: The largest key + value librdkafka sends with this config (``message.max.bytes``).
        self.max_record_bytes = self._max_record_bytes(settings)
        #: How the existing topic contradicts what the descriptor promises its consumers
        #: (partitions, retention, cleanup policy): the catalog must not get the descriptor.
        self.topic_contradictions: tuple[str, ...] = ()
        if create_topic:
            drift: list[topics.TopicDifference] = []
            limits = [
                registration.ensure_product_topic(product, self.connection, differences=drift)
            ]
            self.topic_contradictions = tuple(
                d.describe() for d in drift if d.setting in topics.PROMISED_SETTINGS
            )
            for dlq_topic in self._dlq_topics():
                limits.append(
                    registration.ensure_product_topic(
                        product, self.connection, topic=dlq_topic, dead_letters=True
                    )
                )
            if product.dlq_topic not in self._dlq_topics():
                # where its readers dead-letter what they cannot decode: the owner creates
                # it, readers may only write there (they would choose its retention). Not the
                # publisher's own need: a principal that may not create it still publishes.
                try:
                    registration.ensure_product_topic(
                        product, self.connection, topic=product.dlq_topic, dead_letters=True
                    )
                except KafkaAuthorizationError as exc:
                    log.warning(
                        "%s; its readers cannot dead-letter records until it exists (`mesh "
                        "products apply` with the owning domain's credentials creates it)",
                        exc,
                    )
            settings = batches_within(settings, [limit for limit in limits if limit])
        self._producer = make_producer(self.connection, settings)
        self._lifetime = _Lifetime(self._producer, self.product.name)
        weakref.finalize(self, _flush_unclosed, self._lifetime)
        self._produce = self._producer.produce
        self._poll = self._producer.poll
        self._sent = 0
        self._settled = 0
        #: Set when several threads send or serve delivery reports (the asyncio publisher):
        #: then every change of the two counts above holds it, so none is lost.
        self._count_lock: threading.Lock | None = None
        self._failed: list[UndeliveredRecord] = []
        self._refusal: KafkaError | None = None
        self._model_converters: dict[type[BaseModel], Callable[[BaseModel], Mapping[str, Any]]] = {}
        self._encode = self.encoder.encode
        #: Below this size of value and key (at most 4 bytes a character) no record can be
        #: over the limit: no exact size check.
        self._unchecked_bytes = self.max_record_bytes - 4096
        self._fast_encode = self.encoder.fast or self.encoder.encode_checked
        #: Spans and ``traceparent`` headers, when tracing was active as the publisher was built.
        self._trace = tracing.PublishTrace(self.topic) if tracing.active() else None
        self._closed = False

    def _dlq_topics(self) -> list[str]:
        if self.rules is None:
            return []
        return sorted({str(c.dlq_topic) for c in self.rules.checks if c.action == "DLQ"})

    # -- construction helpers ------------------------------------------------------------
    @staticmethod
    def _schema_document(
        product: DataProduct,
        registry: RegistryClient,
        schema: Mapping[str, Any] | str | None,
        root: Path | None,
    ) -> dict[str, Any]:
        if schema is not None:
            return as_document(schema)
        if root is not None:
            path = product.schema_path(root)
            if path.exists():
                return load_schema_file(path)
        try:
            latest = registry.get_latest(product.value_subject)
        except RegistryUnavailableError:
            raise
        except Exception as exc:
            where = f" under {root}" if root is not None else ""
            raise SchemaError(
                f"{product.name}: no schema to publish with: {product.schema_file} was not "
                f"found{where} and subject {product.value_subject} has no version in the "
                f"registry ({exc}); give the schema (`schema=` in Python, `--schema` on the "
                f"command line) or run from the repository root"
            ) from exc
        return as_document(latest.schema)

    @staticmethod
    def _producer_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
        given = refuse_connection_keys(config, "producer")
        partitioner = given.get("partitioner", KEY_PARTITIONER)
        if partitioner not in typing.get_args(KeyPartitioner):
            raise ConfigurationError(
                f"producer config partitioner={partitioner!r} is not allowed: a key must keep "
                f"one partition (its records their order); use one of "
                f"{', '.join(typing.get_args(KeyPartitioner))}"
            )
        for key, value in FIXED_PRODUCER_CONFIG.items():
            if key in given and str(given[key]).lower() not in (str(value).lower(), "-1"):
                raise ConfigurationError(
                    f"producer config {key}={given[key]!r} is not allowed: publishers always "
                    f"use {key}={str(value).lower()} so that no record is lost unsaid (each "
                    f"one acknowledged by every in-sync replica, and its delivery reported)"
                )
        return {**DEFAULT_PRODUCER_CONFIG, **given, **FIXED_PRODUCER_CONFIG}

    @staticmethod
    def _max_record_bytes(settings: Mapping[str, Any]) -> int:
        given = settings.get("message.max.bytes", LIBRDKAFKA_MESSAGE_MAX_BYTES)
        try:
            limit = int(given)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"producer config message.max.bytes={given!r} is not a number of bytes"
            ) from exc
        return limit - RECORD_OVERHEAD_BYTES

    def _check_size(
        self, value: bytes, key: str | bytes | None, headers: Headers | None = None
    ) -> None:
        """Refuse a record librdkafka would refuse for its size (MSG_SIZE_TOO_LARGE)."""
        size = len(value)
        if key is not None:
            size += len(key.encode() if isinstance(key, str) else key)
        for name, item in _header_pairs(headers):
            data = item.encode() if isinstance(item, str) else item or b""
            size += len(name.encode()) + len(data) + 10  # two varints
        if self._trace is not None:
            size += 80  # the traceparent header a traced send adds
        if size > self.max_record_bytes:
            limit = self.max_record_bytes + RECORD_OVERHEAD_BYTES
            raise SerializationError(
                f"record of {self.product.name} is {size + RECORD_OVERHEAD_BYTES} bytes "
                f"encoded, over the producer's limit of {limit} bytes (message.max.bytes; "
                f"the broker's message.max.bytes and the topic's max.message.bytes cap it "
                f"too); it was not published"
            )

    # -- publishing ------------------------------------------------------------------------
    def _key_of(self, record: Mapping[str, Any]) -> str | bytes | None:
        value = record.get(self._key_field) if self._key_field is not None else None
        if value is None or (type(value) is str and self._key_str_as_is):
            return value
        return self._key_text(value)

    def _as_record(self, record: Any) -> Mapping[str, Any]:
        """A dict-like view of ``record``: Mappings as they are, pydantic models converted."""
        convert = self._model_converters.get(type(record))  # first: Mapping's check is slow
        if convert is not None:
            return convert(record)
        if isinstance(record, Mapping):
            return record
        if isinstance(record, BaseModel):
            convert = _model_converter(type(record), self.encoder.document)
            self._model_converters[type(record)] = convert
            return convert(record)
        raise SerializationError(
            f"{self.product.name}: cannot publish a {type(record).__name__}; give a dict or a "
            f"pydantic model matching schema {self.encoder.name}"
        )

    def prepare(
        self, record: Mapping[str, Any] | BaseModel, key: str | bytes | None = None
    ) -> tuple[bytes, str | bytes | None]:
        """(framed value, key) for ``record``; raises :class:`SerializationError` if it is bad,
        :class:`RuleViolationError` if it fails a quality rule whose failure action is ERROR
        (a record a DLQ rule would divert passes: :meth:`publish` dead-letters it)."""
        return self._prepared(record, key, check_rules=True)

    def _prepared(
        self, record: Mapping[str, Any] | BaseModel, key: str | bytes | None, *, check_rules: bool
    ) -> tuple[bytes, str | bytes | None]:
        if type(record) is not dict:
            record = self._as_record(record)
        value = self._encode(record)  # the schema first: a misfit never reaches the rules
        if check_rules and self.rules is not None:
            breach = self.rules.first_breach(record)
            if breach is not None and breach.rule.action == "ERROR":
                raise self._violation(breach, None)
        if key is None and self._key_field is not None:
            key = self._key_of(record)
        if len(value) + _most_key_bytes(key) > self._unchecked_bytes:
            self._check_size(value, key)
        return value, key

    def publish(
        self,
        record: Mapping[str, Any] | BaseModel,
        *,
        key: str | bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> DeadLetteredRecord | None:
        """Validate, encode and hand ``record`` to Kafka; ``flush`` confirms delivery.

        A record that does not fit the schema raises :class:`SerializationError` (field
        path, expected type, value received) and reaches neither Kafka nor the dead-letter
        topic. When the product's registered schema version has quality rules (CEL), they
        then run on the record as given: a failed ``ERROR`` rule raises
        :class:`RuleViolationError`; a failed ``DLQ``
        rule sends the record to the dead-letter topic instead, and the
        :class:`DeadLetteredRecord` returned says so (None: the record went to the product's
        topic). This is the hot path: keep it free of lookups that could be done once in
        ``__init__``.

        ``key`` (str or bytes) replaces the ``key_field`` key; ``timestamp_ms`` (a positive
        int) the time of sending; ``headers`` is a mapping of name to bytes, str or None, or a
        list of such (name, value) pairs. Anything else raises :class:`ConfigurationError`
        naming the argument.
        """
        if self._closed:
            raise self._closed_error()
        if key is not None or timestamp_ms is not None or headers is not None:
            key = _check_key(key)
            timestamp_ms = _check_timestamp(timestamp_ms)
            if headers is not None:
                headers = _checked_headers(headers)
        if type(record) is dict:
            try:  # a valid plain dict: the encoder compiled for the schema
                value = self._fast_encode(record)
            except Exception:  # defaults, bad records: the checked path decides
                value = self._encode(record)
        else:
            record = self._as_record(record)
            value = self._encode(record)
        if self.rules is not None:  # on a record that fits the schema only
            breach = self.rules.first_breach(record, skip=_replayed_rule(headers))
            if breach is not None:
                return self._divert(breach, record, None, key, headers)
        if key is None and self._key_field is not None:
            key = record.get(self._key_field)
            if key is not None and (type(key) is not str or not self._key_str_as_is):
                key = self._key_text(key)
        if headers is not None or len(value) + _most_key_bytes(key) > self._unchecked_bytes:
            self._check_size(value, key, headers)
        if self._trace is not None:
            self._send_traced(
                value, key, self._on_delivery, timestamp=timestamp_ms, headers=headers
            )
        elif timestamp_ms is None and headers is None:
            try:
                self._produce(self.topic, value, key, on_delivery=self._on_delivery)
            except (BufferError, KafkaException):
                self._send(value, key, self._on_delivery)
        else:
            self._send(value, key, self._on_delivery, timestamp=timestamp_ms or 0, headers=headers)
        self._sent = sent = self._sent + 1
        if not sent % POLL_EVERY:
            self._poll(0)  # serve delivery reports now and then (they also come on flush)
        return None

    def _closed_error(self) -> ConfigurationError:
        return ConfigurationError(f"the publisher of {self.product.name} is closed")

    # -- quality rules ----------------------------------------------------------------------
    def _violation(self, breach: RuleBreach, index: int | None) -> RuleViolationError:
        rule = breach.rule
        where = f"record {index}" if index is not None else "a record"
        return RuleViolationError(
            f"{self.product.name}: {where} fails quality rule {rule.name!r} ({rule.expr}): "
            f"{breach.reason}; it was not published. Fix the record, or the rule in the "
            f"product descriptor",
            rule=rule.name,
            expr=rule.expr,
            record_index=index,
        )

    def _divert(
        self,
        breach: RuleBreach,
        record: Mapping[str, Any],
        index: int | None,
        key: str | bytes | None,
        headers: Headers | None,
    ) -> DeadLetteredRecord:
        """Refuse ``record`` (ERROR rule) or send it to the dead-letter topic (DLQ rule)."""
        rule = breach.rule
        if rule.action != "DLQ":
            raise self._violation(breach, index)
        if key is None and self._key_field is not None:
            key = self._key_of(record)
        topic = str(rule.dlq_topic)
        value, dlq_headers = rule_dead_letter(
            record,
            rule=rule.name,
            subject=self.product.value_subject,
            topic=self.topic,
            exception=breach.reason,
            error=str(self._violation(breach, index)),
            error_type=RuleViolationError.__name__,
            schema_id=self.schema_id,
            # carried as given: str and None values too, which confluent-kafka sends as it does
            # for the record itself (rule_dead_letter's annotation says bytes only)
            headers=typing.cast("Mapping[str, bytes] | None", headers),
        )
        self._send(value, key, self._on_delivery, topic=topic, headers=dlq_headers)
        self._count_sent()
        return DeadLetteredRecord(rule.name, rule.expr, topic, breach.reason, index)

    def _send_traced(
        self,
        value: bytes,
        key: Any,
        callback: Any,
        *,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Send one record under a PRODUCER span whose context its headers carry; the span
        ends with the record's delivery report."""
        trace = self._trace
        assert trace is not None
        pairs = list(headers) if isinstance(headers, (list, tuple)) else None
        # start copies the headers with dict(), which takes (name, value) pairs too
        sent: Any
        sent, span = trace.start(typing.cast("Mapping[str, bytes] | None", headers))
        if pairs is not None:  # a list keeps repeated names: only the span's context changes
            context = (tracing.TRACEPARENT, tracing.TRACESTATE)
            sent = [pair for pair in pairs if pair[0] not in context] + [
                (name, sent[name]) for name in context if name in sent
            ]
        try:
            self._send(
                value, key, trace.reporting(span, callback), timestamp=timestamp or 0, headers=sent
            )
        except BaseException as exc:
            if span.is_recording():  # not ended by a delivery report already
                trace.end(span, exc)
            raise

    def _send(
        self, value: bytes, key: Any, callback: Any, *, topic: str | None = None, **extra: Any
    ) -> None:
        target = topic or self.topic
        stalled_since, settled = time.monotonic(), self._settled
        while True:
            try:
                self._produce(target, value, key, on_delivery=callback, **extra)
                return
            except BufferError:  # queue full: let deliveries drain, then retry
                if self._settled != settled:  # Kafka is taking records: keep waiting
                    stalled_since, settled = time.monotonic(), self._settled
                elif time.monotonic() - stalled_since > QUEUE_FULL_WAIT_S:
                    raise DeliveryError(
                        f"a record of {self.product.name} was not published: the producer's "
                        f"queue is full ({self.in_flight:,} records in flight; config "
                        f"queue.buffering.max.messages / .kbytes) and Kafka acknowledged none "
                        f"of them for {QUEUE_FULL_WAIT_S:g} s; flush() says what became of "
                        f"them"
                    ) from None
                self._poll(0.05)
            except KafkaException as exc:
                refused = self._security_error(exc)
                if refused is not None:
                    raise refused from exc
                error = exc.args[0] if exc.args else None
                said = (  # librdkafka's words and code name, not KafkaError{code=...} (h53)
                    f"{error.str()} ({error.name()})" if isinstance(error, KafkaError) else exc
                )
                raise DeliveryError(
                    f"Kafka refused a record of {self.product.name} for topic {target}: {said}"
                ) from exc

    def _count_sent(self) -> None:
        lock = self._count_lock
        if lock is None:
            self._sent += 1
        else:
            with lock:
                self._sent += 1

    def _count_settled(self) -> None:
        lock = self._count_lock
        if lock is None:
            self._settled += 1
        else:
            with lock:
                self._settled += 1

    def _security_error(self, error: KafkaError | KafkaException) -> KafkaSecurityError | None:
        """Our authentication/authorization error for ``error``, None for any other."""
        explained = explain_kafka_error(error, self.connection, topic=self.topic, operation="WRITE")
        return explained if isinstance(explained, KafkaSecurityError) else None

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """The delivery report of every record: one shared callback, no per-record state."""
        self._count_settled()
        if error is not None:
            self._failed.append(self._undelivered(error, message))
            self._lifetime.failed += 1
            if self._refusal is None and error.code() in _SECURITY_CODES:
                self._refusal = error

    def _undelivered(self, error: KafkaError, message: Message) -> UndeliveredRecord:
        key: str | bytes | None = message.key()
        if isinstance(key, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                key = key.decode()
        record: dict[str, Any] | None = None
        data = message.value()
        if data is not None:
            if self._read_back is None:  # made once, at the first record Kafka refused
                self._read_back = FramedReader(self.encoder.parsed, self.schema_id)
            with contextlib.suppress(DeserializationError):
                record = self._read_back(data)
        return UndeliveredRecord(
            self.topic,
            key,
            _delivery_failure(error, self.topic, message),
            record,
            data,
            maybe_stored=error.code() in UNANSWERED_CODES,
        )

    def publish_many(
        self,
        records: Iterable[Mapping[str, Any] | BaseModel],
        *,
        all_or_nothing: bool = False,
        flush_timeout: float = 30.0,
    ) -> PublishReport:
        """Publish a batch and wait for Kafka to acknowledge it.

        Records that fail their schema or an ERROR quality rule are reported with their
        index in the batch (``rejected``; a rule failure is a :class:`RuleViolationError`
        naming the rule) and the others are published; records a DLQ rule diverts go to
        the dead-letter topic (``dead_lettered``). With ``all_or_nothing`` a single bad
        record means none is published nor dead-lettered (a :class:`SerializationError`
        lists them all). Records Kafka refuses raise :class:`DeliveryError`.
        """
        if self._closed:
            raise self._closed_error()
        _check_flush_timeout(flush_timeout, "flush_timeout")
        report = self._send_batch(self._checked_batch(records, all_or_nothing))
        self._flush(flush_timeout)
        return report

    def _checked_batch(
        self, records: Iterable[Mapping[str, Any] | BaseModel], all_or_nothing: bool
    ) -> _CheckedBatch:
        """``publish_many``'s records checked and encoded, nothing sent (so it may run on
        another thread than the one sending: it touches no count)."""
        if isinstance(records, _NOT_A_BATCH) or not isinstance(records, Iterable):
            raise ConfigurationError(
                f"publish_many takes a list of records (dicts or models), got "
                f"{type(records).__name__}; publish one record with publish()"
            )
        batch = _CheckedBatch()
        rules = self.rules
        count = 0
        for index, record in enumerate(records):
            count += 1
            try:
                mapping = record if type(record) is dict else self._as_record(record)
                prepared = self._prepared(mapping, None, check_rules=False)
                if rules is not None:
                    breach = rules.first_breach(mapping)
                    if breach is not None:
                        if breach.rule.action != "DLQ":
                            raise self._violation(breach, index)
                        batch.diverted.append((index, breach, mapping))
                        continue
                batch.prepared.append(prepared)
            except SerializationError as exc:
                batch.rejected.append(RejectedRecord(index, exc))
        rejected = batch.rejected
        if rejected and all_or_nothing:
            details = "; ".join(item.describe() for item in rejected[:SHOWN_RECORDS])
            error = SerializationError(
                f"{len(rejected)} of {count} records do not fit schema {self.encoder.name} or "
                f"fail a quality rule, so none was published (all_or_nothing): {details}"
            )
            error.rejected = rejected  # type: ignore[attr-defined]
            raise error
        return batch

    def _send_batch(self, batch: _CheckedBatch) -> PublishReport:
        """Send a checked batch (its dead letters first); the report once it is flushed."""
        dead = [
            self._divert(breach, mapping, index, None, None)
            for index, breach, mapping in batch.diverted
        ]
        send = self._send if self._trace is None else self._send_traced
        for value, key in batch.prepared:
            send(value, key, self._on_delivery)
            self._count_sent()
        return PublishReport(
            published=len(batch.prepared), rejected=tuple(batch.rejected), dead_lettered=tuple(dead)
        )

    # -- delivery --------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> None:
        """Wait until Kafka acknowledged every record published so far.

        Raises :class:`DeliveryError` naming (by key) each record Kafka refused or that
        timed out (``.failed`` holds them as :class:`UndeliveredRecord`, with the record),
        or saying how many are still queued after ``timeout`` seconds. After :meth:`close`
        it raises :class:`ConfigurationError`, unless records are still queued (a ``close``
        that raised :class:`DeliveryError` for them): it waits for those again.
        """
        _check_flush_timeout(timeout, "timeout")
        if self._closed and not self.in_flight:
            raise self._closed_error()
        self._flush(timeout)

    def _refused_for_replicas(self, timeout: float) -> str | None:
        """What the cluster says of the topic's in-sync replicas, asked for at most as long
        as the caller was ready to wait (up to 5 s): an unreachable cluster says nothing. A
        caller that waits under half a second (``flush(0)`` in a loop) is not kept waiting,
        and an answer is reused for ``_DIAGNOSIS_KEPT_S`` (h46: an admin client per call)."""
        if timeout < 0.5:
            return None
        now = time.monotonic()
        kept = self._diagnosis
        if kept is not None and now - kept[0] < _DIAGNOSIS_KEPT_S:
            return kept[1]
        wait = min(_DIAGNOSIS_MOST_S, timeout)
        said = topics.writes_refused_for_replicas(self.connection, self.topic, timeout=wait)
        self._diagnosis = (time.monotonic(), said)
        return said

    def _flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` s in all: when records are still queued once all but the
        diagnosis's share of it has passed, the cluster is asked why (``flush(30)`` took up to
        35 s, h53: a service that sized ``close`` to its shutdown grace got killed in it)."""
        deadline = time.monotonic() + timeout
        share = _diagnosis_share(timeout)
        self._producer.flush(timeout - share)
        early: str | None = None
        if self.in_flight and share:
            early = self._refused_for_replicas(share)
            self._producer.flush(max(0.0, deadline - time.monotonic()))
        queued = self.in_flight
        failed, self._failed = self._failed, []
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            refused = self._security_error(refusal)
            if refused is not None:
                message = (
                    f"{refused} — {len(failed)} record(s) of {self.product.name} were not "
                    f"written (.failed lists them)"
                )
                error = type(refused)(message)
                error.failed = failed  # type: ignore[attr-defined]
                raise error from KafkaException(refusal)
        if failed:
            cause = None
            if any(item.maybe_stored or item.error == _TOO_FEW_IN_SYNC for item in failed):
                left = max(0.0, deadline - time.monotonic())
                cause = early or self._refused_for_replicas(left)
            raise DeliveryError(
                _describe_failures(self.product.name, self.topic, failed, queued, cause=cause),
                failed=failed,
            )
        if queued:
            why = "the broker is slow or unreachable" if early is None else early
            raise DeliveryError(
                f"{queued} record(s) of {self.product.name} are not yet acknowledged by Kafka "
                f"after {timeout:g}s (still queued for topic {self.topic}): {why}. librdkafka "
                f"keeps retrying them until `message.timeout.ms` (publisher config), then "
                f"reports each as failed; call flush() again to wait"
            )

    @property
    def in_flight(self) -> int:
        """Records handed to Kafka and not yet acknowledged or failed."""
        return self._sent - self._settled

    def close(self, timeout: float = 30.0) -> None:
        """Flush (raising :class:`DeliveryError` for anything undelivered), then release.
        Closing again does nothing, unless records are still queued (a ``close`` that raised
        for them): it waits for those again, as ``flush`` does."""
        _check_flush_timeout(timeout, "timeout")
        if self._closed and not self.in_flight:
            return
        self._closed = True
        self._lifetime.closed = True
        try:
            self._flush(timeout)
        finally:
            if not self.in_flight:
                with contextlib.suppress(Exception):
                    self._producer.close()

    def __enter__(self) -> Self:
        if self._closed:  # a with block on a closed one would do nothing, silently
            raise self._closed_error()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:  # the block failed: its records are still delivered, its error stays the error
            self.close()
        except MeshError as undelivered:
            _note_undelivered(exc, undelivered)


def _note_undelivered(exc: BaseException, undelivered: MeshError) -> None:
    """Tell of records a failed ``with`` block left undelivered, on the block's own error
    (which a :class:`DeliveryError` raised instead would have hidden) and in the log."""
    log.warning("%s (while leaving a with block on %s)", undelivered, type(exc).__name__)
    exc.add_note(f"while closing the publisher: {undelivered}")


@dataclass
class _Lifetime:
    """What a publisher's finalizer may hold (never the publisher itself): its client, its
    product's name, and whether it was closed."""

    producer: Any
    name: str
    closed: bool = False
    #: Records Kafka refused or that timed out, since the publisher was made.
    failed: int = 0


def _flush_unclosed(lifetime: _Lifetime) -> None:
    """A publisher nobody closed: wait a while for its records in flight and say so, rather
    than let them die with the process (librdkafka drops its queue at exit)."""
    if lifetime.closed:
        return
    with contextlib.suppress(Exception):
        if not len(lifetime.producer):  # nothing queued, no delivery report unread
            return
        failed_before = lifetime.failed
        unsent = lifetime.producer.flush(UNCLOSED_FLUSH_S)  # serves the delivery reports
        lost = unsent + lifetime.failed - failed_before
        log.warning(
            "the publisher of %s was not closed while records were in flight: %s; close it "
            "(or use `with`) so that delivery is checked and failures raised",
            lifetime.name,
            f"{lost} record(s) not delivered (refused, timed out or still queued after "
            f"{UNCLOSED_FLUSH_S:g} s), lost"
            if lost
            else "every one was acknowledged as it was collected",
        )


class AsyncProductPublisher:
    """asyncio publisher: ``await publish(record)`` resolves once Kafka stored the record.

    A background thread serves librdkafka's delivery reports and hands each result to the
    event loop, so awaiting never blocks the loop. Use ``async with``. Cancelling an await
    does not withdraw its record, which Kafka may still store; if it fails instead, ``flush``
    and ``close`` report it, as they report every record no await is left to hear of.
    """

    def __init__(
        self,
        product: DataProduct,
        *,
        connection: KafkaConnection | None = None,
        bootstrap_servers: str | None = None,
        registry: RegistryClient,
        schema: Mapping[str, Any] | str | None = None,
        config: Mapping[str, Any] | None = None,
        root: Path | None = None,
    ) -> None:
        self._publisher = ProductPublisher(
            product,
            connection=connection,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
            schema=schema,
            config=config,
            root=root,
        )
        # The loop's thread sends, a worker thread sends publish_many's batches, and the
        # report thread and flushes serve delivery reports: every count holds a lock.
        self._publisher._count_lock = threading.Lock()
        self.product = product
        self.topic = product.topic
        self._stop = threading.Event()
        #: Held by the worker thread of a flush, close or publish_many (:meth:`_serving_alone`).
        self._flushing = threading.Lock()
        self._poller = self._start_poller()

    def _start_poller(self) -> threading.Thread:
        """The thread serving delivery reports while no flush does."""
        self._stop.clear()
        poller = threading.Thread(
            target=self._serve_reports, name=f"mesh-publisher-{self.product.name}", daemon=True
        )
        poller.start()
        return poller

    async def _serving_alone(self, call: Callable[[], None]) -> None:
        """``call`` (a flush) on a worker thread, with the report thread stopped meanwhile:
        one thread at a time serves delivery reports, so no count of them is lost to a race
        (concurrent flushes take turns). The report thread starts again unless the
        publisher is closed with nothing left."""

        def alone() -> None:
            with self._flushing:
                self._stop.set()
                self._poller.join()
                try:
                    call()
                finally:
                    publisher = self._publisher
                    if not publisher._closed or publisher.in_flight:
                        self._poller = self._start_poller()

        await asyncio.to_thread(alone)

    @property
    def schema_id(self) -> int:
        return self._publisher.schema_id

    def _serve_reports(self) -> None:
        poll = self._publisher._producer.poll
        while not self._stop.is_set():
            poll(0.05)

    async def publish(
        self,
        record: Mapping[str, Any] | BaseModel,
        *,
        key: str | bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> DeliveredRecord | DeadLetteredRecord:
        """Publish ``record`` and wait for Kafka's acknowledgement (or a DeliveryError).

        A record a DLQ quality rule diverts resolves at once to a :class:`DeadLetteredRecord`
        (its delivery to the dead-letter topic is checked by ``flush``/``close``). ``key``,
        ``timestamp_ms`` and ``headers`` are checked as :meth:`ProductPublisher.publish`
        checks them.
        """
        publisher = self._publisher
        if publisher._closed:
            raise publisher._closed_error()
        key = _check_key(key)
        timestamp_ms = _check_timestamp(timestamp_ms)
        if headers is not None:
            headers = _checked_headers(headers)
        mapping = record if type(record) is dict else publisher._as_record(record)
        value, key = publisher._prepared(mapping, key, check_rules=False)
        if publisher.rules is not None:  # on a record that fits the schema only
            breach = publisher.rules.first_breach(mapping, skip=_replayed_rule(headers))
            if breach is not None:
                return publisher._divert(breach, mapping, None, key, headers)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DeliveredRecord] = loop.create_future()
        name, topic = self.product.name, self.topic

        def settle(error: KafkaError | None, message: Message) -> None:
            if future.done():  # cancelled: a failure is flush's and close's to report
                if error is not None:
                    publisher._failed.append(publisher._undelivered(error, message))
                return
            if error is not None:
                failed = publisher._undelivered(error, message)
                refused = publisher._security_error(error)
                future.set_exception(
                    refused
                    or DeliveryError(_describe_failures(name, topic, [failed]), failed=[failed])
                )
            else:
                timestamp = message.timestamp()[1]
                partition, offset = message.partition(), message.offset()
                future.set_result(
                    DeliveredRecord(
                        topic, partition or 0, -1 if offset is None else offset, timestamp
                    )
                )

        def report(error: KafkaError | None, message: Message) -> None:
            publisher._count_settled()
            try:
                loop.call_soon_threadsafe(settle, error, message)
            except RuntimeError:  # the loop has ended: nobody awaits this record any more
                if error is not None:
                    publisher._failed.append(publisher._undelivered(error, message))

        if publisher._trace is not None:
            publisher._send_traced(value, key, report, timestamp=timestamp_ms, headers=headers)
        else:
            extra: dict[str, Any] = {}
            if timestamp_ms is not None:
                extra["timestamp"] = timestamp_ms
            if headers is not None:
                extra["headers"] = headers
            publisher._send(value, key, report, **extra)
        publisher._count_sent()  # counted, so flush and close wait for it too
        return await future

    async def publish_many(
        self,
        records: Iterable[Mapping[str, Any] | BaseModel],
        *,
        all_or_nothing: bool = False,
        flush_timeout: float = 30.0,
    ) -> PublishReport:
        """Like :meth:`ProductPublisher.publish_many`, without blocking the event loop: the
        records are checked, encoded, sent and flushed on worker threads (a full queue
        waits there), the report thread stopped meanwhile, as :meth:`flush` does."""
        publisher = self._publisher
        if publisher._closed:
            raise publisher._closed_error()
        _check_flush_timeout(flush_timeout, "flush_timeout")
        if isinstance(records, Iterable) and not isinstance(records, _NOT_A_BATCH):
            records = list(records)  # a generator is read here, on the loop's thread
        batch = await asyncio.to_thread(publisher._checked_batch, records, all_or_nothing)
        reported: list[PublishReport] = []

        def send_and_flush() -> None:  # a full queue waits here, never on the loop
            if publisher._closed:  # closed while the batch was checked
                raise publisher._closed_error()
            reported.append(publisher._send_batch(batch))
            publisher._flush(flush_timeout)

        await self._serving_alone(send_and_flush)
        return reported[0]

    async def flush(self, timeout: float = 30.0) -> None:
        await self._serving_alone(lambda: self._publisher.flush(timeout))

    async def close(self, timeout: float = 30.0) -> None:
        """Wait for every record sent (raising :class:`DeliveryError` for any refused, timed
        out, or still queued after ``timeout``), then release. Records still queued keep
        being served, so their awaits settle; closing again waits for them again."""
        _check_flush_timeout(timeout, "timeout")
        publisher = self._publisher
        if publisher._closed and not self._poller.is_alive():  # closing twice is fine
            return
        publisher._closed = True
        publisher._lifetime.closed = True
        try:
            await self._serving_alone(lambda: publisher._flush(timeout))
        finally:
            if not publisher.in_flight:
                with contextlib.suppress(Exception):
                    publisher._producer.close()

    async def __aenter__(self) -> Self:
        if self._publisher._closed:  # an async with block on a closed one would do nothing
            raise self._publisher._closed_error()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
            return
        try:  # as ProductPublisher's: the block's error stays the error
            await self.close()
        except MeshError as undelivered:
            _note_undelivered(exc, undelivered)


def open_publisher(
    product: str | DataProduct,
    *,
    settings: MeshSettings,
    registry: RegistryClient | None = None,
    root: Path | None = None,
    config: Mapping[str, Any] | None = None,
    connection: KafkaConnection | None = None,
    major: int | None = None,
) -> ProductPublisher:
    """A :class:`ProductPublisher` for ``product`` (a name or descriptor), set up from settings.

    ``major`` (below the descriptor's ``version``) publishes to an earlier major version's
    topic with that subject's latest registered schema, registering nothing: the old topic
    is kept going while its consumers move (:func:`earlier_major`).

    The Kafka connection defaults to ``KafkaConnection.from_settings(settings)``
    (``MESH_BOOTSTRAP_SERVERS``, ``MESH_KAFKA_*``); the registry client to one built from
    ``settings`` (URL and credentials). The product and its ``.avsc`` come from the project
    (``root``, else ``MESH_PROJECT_ROOT``, else the nearest ``mesh.yaml`` upwards); a product
    the project does not hold, or code outside any project, uses the registry's descriptor
    and latest schema. A product of the project that the registry's catalog lacks gets its
    descriptor registered (after its schema), so publishing makes it discoverable; a
    governance refusal raises :class:`ProductRejectedError` naming the policy and the file,
    before any schema or topic is written (the registry checks the descriptor first).
    With ``MESH_PRODUCER_AUTO_REGISTER=false`` nothing is registered: the schema and contract
    must be the ones `mesh products apply` registered, and a descriptor the catalog lacks
    is only a warning.
    """
    if not isinstance(product, (str, DataProduct)):
        raise ConfigurationError(
            f"product must be a product name like orders.order-placed, got {_described(product)}"
        )
    if not isinstance(settings, MeshSettings):
        raise ConfigurationError(
            f"settings must be a MeshSettings (e.g. MeshSettings(), which reads MESH_*), got "
            f"{_described(settings)}"
        )
    config = refuse_connection_keys(config, "producer")  # a list: said, not a TypeError
    if registry is not None:
        return _open_publisher(product, settings, registry, root, config, connection, major)
    from mesh_stream.registry.client import RegistryClient

    made = RegistryClient.from_settings(settings)
    try:
        return _open_publisher(product, settings, made, root, config, connection, major)
    except BaseException:  # the client it made is closed, not left to a ResourceWarning
        made.close()
        raise


def _open_publisher(
    product: str | DataProduct,
    settings: MeshSettings,
    registry: RegistryClient,
    root: Path | None,
    config: Mapping[str, Any],
    connection: KafkaConnection | None,
    major: int | None,
) -> ProductPublisher:
    project = locate_project(root, settings)
    local = local_product(product, project)
    descriptor = local or resolve_product(product, project=None, registry=registry)
    if major is not None and major != descriptor.version:
        old, latest = earlier_major(descriptor, major, registry)
        return ProductPublisher(
            old,
            connection=connection or KafkaConnection.from_settings(settings),
            registry=registry,
            config={"partitioner": settings.producer_partitioner, **config},
            schema_source=f"the latest version of subject {old.value_subject}",
            registered=latest,
        )
    warn_if_schema_missing(local, project)
    # the registry judges a descriptor it lacks before the publisher writes a schema or topic
    auto_register = settings.producer_auto_register
    missing = (
        local is not None
        and project is not None
        and registration.check_missing_descriptor(registry, local, project)
    )
    publisher = ProductPublisher(
        descriptor,
        connection=connection or KafkaConnection.from_settings(settings),
        registry=registry,
        config={"partitioner": settings.producer_partitioner, **config},
        root=project.root if project is not None else None,
        auto_register=auto_register,
    )
    if missing and local is not None and not auto_register:
        log.warning(
            "the catalog has no descriptor of %s; publishing anyway, but consumers cannot "
            "discover it until `mesh products apply` registers it (MESH_PRODUCER_AUTO_REGISTER"
            "=false: publishers register nothing)",
            local.name,
        )
    elif missing and local is not None and project is not None:
        try:  # the schema is registered now; the catalog gets the descriptor too
            catalog_local_descriptor(publisher, local, project)
        except BaseException:
            publisher.close()
            raise
    return publisher


def warn_if_schema_missing(local: DataProduct | None, project: MeshProject | None) -> None:
    """Say so when a product of the project has no `.avsc` where its descriptor says: the
    publisher then uses the registry's latest schema (a service image that forgot to ship
    its schema would otherwise publish under whatever is latest, silently)."""
    if local is None or project is None:
        return
    path = project.schema_path(local)
    if not path.exists():
        log.warning(
            "%s: its schema %s is not in the project (%s); publishing with the latest schema "
            "registered for %s",
            local.name,
            local.schema_file,
            path,
            local.value_subject,
        )


def earlier_major(
    descriptor: DataProduct, major: object, registry: RegistryClient
) -> tuple[DataProduct, RegisteredSchema]:
    """The descriptor of ``descriptor``'s earlier major version ``major`` and the latest
    version registered for it: what publishing to the old topic while consumers move takes.
    The project's ``.avsc`` and the descriptor's ``rules`` are the current major's, so
    neither is used: the old major keeps its registered contract (h44: a rule renamed with
    its field in major 2 stopped every publish to major 1)."""
    if type(major) is not int or not 1 <= major <= descriptor.version:
        raise ConfigurationError(
            f"major must be a major version of {descriptor.name}, 1 to {descriptor.version}, "
            f"got {_described(major)}"
        )
    old = descriptor.model_copy(update={"version": major})
    try:
        latest = registry.get_latest(old.value_subject)
    except SubjectNotFoundError as exc:
        raise ConfigurationError(
            f"major version {major} of {descriptor.name} has no schema registered (subject "
            f"{old.value_subject}): nothing was published to {old.topic}, so there is no "
            f"contract to keep publishing under"
        ) from exc
    schema = as_document(latest.schema)
    if descriptor.key_field is not None and keys.key_type(schema, descriptor.key_field) is None:
        raise ConfigurationError(
            f"major version {major} of {descriptor.name} has no field {descriptor.key_field!r} "
            f"(the key_field of version {descriptor.version}) in its latest schema (subject "
            f"{old.value_subject}), so its records cannot be keyed by it; publish to it with "
            f"the SDK, giving each record's key (`publish(record, key=...)`), from a "
            f"descriptor of major {major} with its own key_field"
        )
    return old, latest


def catalog_local_descriptor(
    publisher: ProductPublisher, local: DataProduct, project: MeshProject
) -> bool:
    """Put the project's descriptor the catalog lacks into it (True when it did), unless
    the existing topic contradicts it: then the catalog would describe a topic that is not
    there (what `mesh products apply` refuses), so it is left out, with a warning."""
    if publisher.topic_contradictions:
        log.warning(
            "the descriptor of %s is not registered in the catalog: its topic %s %s; fix the "
            "descriptor or the topic, then run `mesh products apply`",
            local.name,
            publisher.topic,
            "; ".join(publisher.topic_contradictions),
        )
        return False
    return registration.register_missing_descriptor(publisher.registry, local, project)


def local_product(product: str | DataProduct, project: MeshProject | None) -> DataProduct | None:
    """The project's own descriptor of the product named ``product`` (None: not local)."""
    if project is None or isinstance(product, DataProduct):
        return None
    try:
        return resolve_product(product, project=project, registry=None)
    except ProductNotFoundError:
        return None
