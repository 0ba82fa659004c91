"""Read data products by name: decoded records, consumer groups, at-least-once, dead letters.

::

    with ProductConsumer(["orders.order-placed"], group_id="billing.invoices",
                         settings=MeshSettings()) as consumer:
        for record in consumer:          # or consumer.consume(500, timeout=1.0)
            handle(record.value)
            consumer.commit()            # commit after processing: at-least-once

Each product name is resolved to its topic through the registry (or a local descriptor).
Records are decoded with the writer schema named by their schema id, resolved to the reader
schema the consumer chose (Avro evolution), and optionally validated into a pydantic model.
A record that cannot be decoded (a poison pill) goes to ``<topic>.dlq`` with the error and
its source topic/partition/offset/schema id in headers, and consumption goes on. The
committed position never passes a record that was neither delivered nor dead-lettered
(registry outages and a refused dead letter included; see :class:`ProductConsumer`). A
mistake of the consumer's own configuration (a model or reader schema that does not fit
records valid per the product's contract) stops it at that record instead.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field
from functools import partial
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import BaseModel, ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from mesh_stream import tracing
from mesh_stream.descriptor import DataProduct, topic_for
from mesh_stream.errors import (
    ConfigurationError,
    ConsumerError,
    DeliveryError,
    DeserializationError,
    KafkaSecurityError,
    MeshError,
    RegistryError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    validation_problem,
)
from mesh_stream.kafka import dlq
from mesh_stream.kafka.clients import (
    MAX_WAIT_SECONDS,
    ConnectRefusals,
    connect_refusal,
    earlier_reads,
    is_fatal,
    is_wait_seconds,
    make_consumer,
    refuse_connection_keys,
    unread_partitions,
)
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error, resolve_connection
from mesh_stream.project import (
    MeshProject,
    load_project,
    locate_project,
    nearest_project_root,
    resolve_product,
)
from mesh_stream.registration import ensure_product_topic, register_reader
from mesh_stream.schema.codec import (
    READ_OPTIONS,
    DecodePlan,
    RecordDecoder,
    SchemaLike,
    as_document,
    parse_schema,
    read_data,
    read_failure,
    schema_name,
    trailing_bytes_error,
)
from mesh_stream.schema.models import source_schema
from mesh_stream.schema.wire import (
    HEADER_SIZE,
    MAGIC_BYTE,
    framing_error,
    unpack_schema_id,
)
from mesh_stream.settings import (
    KAFKA_MAX_NAME_LENGTH,
    MeshSettings,
    client_name_problem,
    quoted_name,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from mesh_stream.registry.client import RegistryClient

__all__ = ["DLQ_HEADERS", "ConsumedRecord", "ProductConsumer"]

log = logging.getLogger(__name__)

#: Seconds an opening consumer waits for Kafka's list of topics (new and moved topics).
TOPICS_LIST_TIMEOUT_S = 10.0

#: Headers a dead letter carries in addition to the original record's own headers.
DLQ_HEADERS = (
    dlq.MESH_ERROR,
    dlq.MESH_ERROR_TYPE,
    dlq.MESH_SOURCE_TOPIC,
    dlq.MESH_SOURCE_PARTITION,
    dlq.MESH_SOURCE_OFFSET,
    dlq.MESH_SOURCE_TIMESTAMP,
    dlq.MESH_CONSUMER_GROUP,
    dlq.MESH_SCHEMA_ID,  # only when the record was framed (it names an id)
)
# Errors that mean "these credentials may not do this": raised as our KafkaSecurityError
# (topic or group, principal, missing ACL) rather than retried forever.
_SECURITY_CODES = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


#: The least time a registry call of consume() gets, even when its ``timeout`` is shorter
#: (``timeout=0`` polls): a registry a few hundred ms away must still be able to answer.
REGISTRY_CALL_FLOOR_S = 1.0

#: How long commit() asks again while Kafka says the group's coordinator is moving (a broker
#: restart): a routine failover is ridden out, not raised to the application.
COMMIT_RETRY_SECONDS = 30.0


#: Commit errors that mean "not now": the group's coordinator is moving or did not answer.
#: A rebalance is not among them: the offsets may no longer be this member's to commit.
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError._WAIT_COORD,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


def _commit_may_succeed_later(exc: BaseException) -> bool:
    """A commit Kafka refused for now (no coordinator yet, a request timed out)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and error.code() in _COORDINATOR_MOVING


_UNREAD = object()

#: The most records one ``consume()`` call may ask for (librdkafka's limit).
MAX_RECORDS_PER_CALL = 1_000_000
#: The longest ``consume()`` timeout in seconds (librdkafka's: 2**31 - 1 milliseconds).
MAX_TIMEOUT_SECONDS = MAX_WAIT_SECONDS


class ConsumedRecord:
    """One decoded record of a product, with where Kafka keeps it. Immutable.

    Fields: ``product, topic, partition, offset, key, value, timestamp_ms, headers,
    schema_id`` (and ``trace_context``, read from the headers; ``headers`` is a dict, so a
    repeated name keeps its last value: ``header_list`` has every pair in order). The
    consumer fills ``key`` (text when it is UTF-8, else bytes), ``timestamp_ms`` and
    ``headers`` from the Kafka message the first time they are read: most consumers never
    look at them, and building them for every record cost about a sixth of decoding it.
    Compares equal to a record built with the same field values. A deletion (a tombstone: a
    key and no value, e.g. a session merged into another) has ``value`` and ``schema_id``
    None; a consumer returns those only when made with ``deletions=True``.
    """

    __slots__ = (
        "_headers",
        "_key",
        "_message",
        "_timestamp_ms",
        "offset",
        "partition",
        "product",
        "schema_id",
        "topic",
        "value",
    )

    product: str
    topic: str
    partition: int
    offset: int
    value: Any  # a dict, or the product's pydantic model when one was given; None: a deletion
    schema_id: int | None
    _message: Any  # the Kafka message the lazy fields come from (None when built by hand)
    _key: Any
    _timestamp_ms: Any
    _headers: Any

    def __init__(
        self,
        product: str,
        topic: str,
        partition: int,
        offset: int,
        key: str | bytes | None,
        value: Any,
        timestamp_ms: int,
        headers: dict[str, bytes],
        schema_id: int | None,
    ) -> None:
        fill = object.__setattr__
        for name, item in (
            ("product", product),
            ("topic", topic),
            ("partition", partition),
            ("offset", offset),
            ("_key", key),
            ("value", value),
            ("_timestamp_ms", timestamp_ms),
            ("_headers", headers),
            ("schema_id", schema_id),
            ("_message", None),
        ):
            fill(self, name, item)

    @property
    def key(self) -> str | bytes | None:
        key: Any = self._key
        if key is _UNREAD:
            key = self._message.key()
            if key is not None:
                try:  # noqa: SIM105 - contextlib.suppress costs more
                    key = key.decode()
                except UnicodeDecodeError:
                    pass  # not text: keep the bytes
            object.__setattr__(self, "_key", key)
        result: str | bytes | None = key
        return result

    @property
    def timestamp_ms(self) -> int:
        stamp: Any = self._timestamp_ms
        if stamp is _UNREAD:
            stamp = self._message.timestamp()[1]
            object.__setattr__(self, "_timestamp_ms", stamp)
        result: int = stamp
        return result

    @property
    def headers(self) -> dict[str, bytes]:
        headers: Any = self._headers
        if headers is _UNREAD:
            found = self._message.headers()
            headers = dict(found) if found else {}
            object.__setattr__(self, "_headers", headers)
        result: dict[str, bytes] = headers
        return result

    @property
    def header_list(self) -> list[tuple[str, bytes | None]]:
        """Every header as Kafka holds it, in order: a name given several times (which
        :attr:`headers`, a dict, keeps the last value of) appears once per value."""
        if self._message is None:  # built by hand: its headers are the dict it was given
            return list(self.headers.items())
        found = self._message.headers()
        return list(found) if found else []

    @property
    def trace_context(self) -> Context | None:
        """The OpenTelemetry context the record's ``traceparent`` header carries, to parent
        the span that handles the record::

            with tracer.start_as_current_span("bill", context=record.trace_context):
                ...

        None when the record carries none or OpenTelemetry is not installed. Read from the
        headers when asked, so a consumer that never asks pays nothing.
        """
        return tracing.context_from(self.headers)

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.product,
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.timestamp_ms,
            self.headers,
            self.schema_id,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not ConsumedRecord:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # headers and values are dicts

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: ConsumedRecord is immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: ConsumedRecord is immutable")

    def __reduce__(self) -> tuple[type[ConsumedRecord], tuple[Any, ...]]:
        """Pickle and copy by field values (the Kafka message itself does not pickle)."""
        return (ConsumedRecord, self._fields())

    def __repr__(self) -> str:
        names = ("product", "topic", "partition", "offset", "key", "value", "timestamp_ms")
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(names, self._fields()[:7], strict=True)
        )
        return f"ConsumedRecord({shown}, headers={self.headers!r}, schema_id={self.schema_id!r})"


class _RecordBuilder:
    """A mutable twin of :class:`ConsumedRecord` with the same slots.

    The hot loop builds one with plain assignments and then turns it into a
    ``ConsumedRecord`` by assigning ``__class__`` (allowed: identical slot layout), which
    is cheaper than going around ``ConsumedRecord``'s immutability field by field.
    """

    __slots__ = ConsumedRecord.__slots__

    def __init__(
        self,
        product: str,
        topic: str,
        partition: int,
        offset: int,
        message: Message,
        value: Any,
        schema_id: int | None,
    ) -> None:
        self.product = product
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self._message = message
        self.value = value
        self.schema_id = schema_id
        self._key = self._timestamp_ms = self._headers = _UNREAD


@dataclass
class _Source:
    """What the consumer knows about one subscribed product."""

    product: DataProduct
    decoder: RecordDecoder
    model: type[BaseModel] | None
    #: The consumer's reader schema as Apache Avro parsed it (None: records as written).
    reader: Any = None
    #: Whether that reader schema is the one ``model`` was made from (not reader_schemas).
    reader_of_model: bool = False

    name: str = ""
    #: The decoder's plans for fastavro's reader by schema id (read on the hot path).
    plans: dict[int, DecodePlan] = field(default_factory=dict)
    #: Writer schema ids the reader schema was checked against and can read.
    readable: set[int] = field(default_factory=set)
    #: Writer schema ids of the product the reader schema cannot read, with the error.
    unreadable: dict[int, ConfigurationError] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = self.product.name
        self.plans = self.decoder.plans


class _Blocked(Exception):  # noqa: N818 - internal signal, never leaves the consumer
    """A record's schema cannot be fetched now: its partition waits, re-read from it later."""

    def __init__(self, error: MeshError | None) -> None:
        super().__init__(str(error))
        self.error = error


class _Stopped(Exception):  # noqa: N818 - internal signal, never leaves the consumer
    """The consumer's configuration cannot take a record: the batch was already sought back
    from it (the records dead-lettered before it stay handled)."""

    def __init__(self, error: ConfigurationError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Outage:
    """The registry has been failing since ``since``; ask again at ``retry_at``."""

    since: float
    retry_at: float = 0.0
    delay: float = 0.0

    def failed(self, now: float) -> None:
        self.delay = min(_RETRY_MAX, self.delay * 2) if self.delay else _RETRY_FIRST
        self.retry_at = now + self.delay


#: Back-off between registry attempts while it is unavailable (seconds, doubling).
_RETRY_FIRST = 0.1
_RETRY_MAX = 2.0


def _project_of(root: Path | None, settings: MeshSettings | None) -> MeshProject | None:
    """The project product names resolve in (see :class:`ProductConsumer`); None: none."""
    if settings is not None:
        return locate_project(root, settings)
    if root is not None:
        return load_project(root)  # no mesh.yaml there: ProjectNotFoundError says so
    found = nearest_project_root(Path.cwd())
    return load_project(found) if found is not None else None


#: librdkafka settings the consumer keeps off: it stores and commits offsets itself.
_OWN_COMMITS = ("enable.auto.commit", "enable.auto.offset.store")


class ProductConsumer:
    """Consume one or more products as decoded records, in a consumer group.

    ``settings`` (a :class:`~mesh_stream.settings.MeshSettings`) gives the Kafka connection
    and the registry client when ``connection``/``bootstrap_servers`` and ``registry`` are
    not given, as :func:`~mesh_stream.producer.open_publisher` does.

    Offsets are committed only by :meth:`commit` (and on a clean exit of the ``with``
    block), covering the records returned so far: at-least-once with commit after
    processing. ``from_beginning`` reads from the oldest record when the group has no
    committed offset yet (else from new records). ``reader_schemas`` maps product name to
    the Avro schema to decode into; ``models`` to a pydantic model for ``value`` (one made by
    :func:`~mesh_stream.schema.models.model_from_schema` decodes with its schema unless
    ``reader_schemas`` names another, so fields later versions add do not stop it). With
    ``dead_letters=False`` a poison pill raises :class:`DeserializationError` instead
    (the consumer has moved past it; catching the error and continuing skips it).
    A tombstone (a key with no value: the deletion of that key's record, which a session
    processor's product publishes when a session merges into another) is no poison pill: it
    is passed over (counted in :attr:`deletions_skipped`, said once in the log), or with
    ``deletions=True`` returned as a record whose ``value`` is None.
    Product names resolve like :func:`~mesh_stream.producer.open_publisher` resolves them:
    in the project (``root``, else ``settings.project_root`` i.e. ``MESH_PROJECT_ROOT``,
    else the nearest ``mesh.yaml`` upwards from the working directory) when it holds the
    product, else in the registry; outside any project, in the registry only. Descriptors
    given as :class:`DataProduct` are used as they are (no project is looked for).

    The committed position never passes a record that was neither returned nor
    dead-lettered:

    - A record whose schema id is new while the registry is unavailable waits, and so do
      the records after it in its partition (they are read again from it later; records of
      other partitions keep coming). ``consume()`` retries the registry with back-off
      for up to its ``timeout`` more (at least 1 s) once the records are in hand; once the
      outage is older than ``registry_wait_seconds`` it
      raises :class:`RegistryUnavailableError` naming the record, and calling it again
      keeps waiting.
    - Undecodable records (bad framing, unknown, foreign or non-record schema id, a bad
      body, bytes after the body) go to ``<topic>.dlq``.
    - A record its writer schema decodes is valid per the product's contract, so when the
      consumer's own configuration cannot take it (``models`` refuses the value, or the
      reader schema cannot read that registered writer schema, checked with Avro's checker
      once per schema id) the consumer is wrong, not the record: :class:`ConfigurationError`
      names the record (``topic[partition]@offset``), the model and field path or the
      writer schema id, version and incompatibility, whatever ``dead_letters`` says. The
      records decoded before it are returned first; nothing from it on is dead-lettered or
      committed: its partition is read again from it, so every later call meets it and
      raises again until the configuration is fixed.
    - If Kafka refuses the dead letter, :class:`DeliveryError` names the record and the
      DLQ topic, and the whole batch is read again (nothing of it is committed).

    A topic that did not exist when the consumer subscribed (the broker said so) is read
    from its first record by a group with no committed offset for it, whatever
    ``from_beginning`` says: its records were all published after the consumer started,
    and "only new records" must not skip the ones published before the consumer's first
    metadata refresh saw the topic. If the broker cannot be asked at construction, topics
    count as existing (``from_beginning`` alone decides). Subscribed topics are looked for
    every 5 s (``topic.metadata.refresh.interval.ms`` in ``config``; librdkafka's default
    is 5 minutes). Likewise a product's new major (``.v2``) is read from its first record
    by a group that committed offsets on an earlier major's topic and none on the new one
    (logged as a warning): the group has not seen what the new topic holds, so restarting
    after the product moved skips nothing. To stay on an earlier major, pass its
    :class:`DataProduct` with that ``version`` (e.g. ``descriptor.model_copy(update={"version":
    1})``).

    ``reads`` names the top-level fields the application reads: a list when it consumes one
    product, else a mapping of product name to fields. With it (or ``register=True``) the
    group is registered on those products in the registry when the consumer starts
    (``PUT /products/{name}/consumers/{group}``), and from then on the registry refuses a
    schema version that removes or retypes one of those fields, and holds the product to
    FULL_TRANSITIVE. Best effort: a registry that is down or refuses is a logged warning,
    never a failed consumer; :attr:`registered` names the products it succeeded on.
    ``register=True`` registers on every consumed product, ``False`` on none.
    """

    def __init__(
        self,
        products: Sequence[str | DataProduct],
        *,
        group_id: str,
        connection: KafkaConnection | None = None,
        bootstrap_servers: str | None = None,
        registry: RegistryClient | None = None,
        reader_schemas: Mapping[str, SchemaLike] | None = None,
        models: Mapping[str, type[BaseModel]] | None = None,
        from_beginning: bool = False,
        dead_letters: bool = True,
        deletions: bool = False,
        registry_wait_seconds: float = 300.0,
        config: Mapping[str, Any] | None = None,
        root: Path | None = None,
        settings: MeshSettings | None = None,
        reads: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        register: bool | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, MeshSettings):
            raise ConfigurationError(
                f"settings must be a MeshSettings (e.g. MeshSettings(), which reads MESH_*), "
                f"got {type(settings).__name__}"
            )
        consumed = _consumed_names(products)
        if not products:
            raise ConfigurationError(
                "products is empty: give at least one product to consume, e.g. "
                '["orders.order-placed"]'
            )
        readers = _by_consumed_product("reader_schemas", reader_schemas, consumed)
        chosen_models = _by_consumed_product("models", models, consumed)
        from_models: set[str] = set()  # products whose reader schema is their model's
        for name, model in chosen_models.items():
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                shown = model.__name__ if isinstance(model, type) else repr(model)
                raise ConfigurationError(
                    f"models[{name!r}] is {shown}, not a pydantic model class: give a subclass "
                    f"of pydantic.BaseModel (e.g. mesh_stream.schema.models.model_from_schema("
                    f"schema)), or leave {name} out of models to get its values as dicts"
                )
            # A model made from a schema reads with that schema: fields a later version adds
            # (a change the registry accepts) are dropped by Avro, not refused by the model.
            made_from = source_schema(model)
            if made_from is not None and name not in readers:
                readers[name] = made_from
                from_models.add(name)
        if not is_wait_seconds(registry_wait_seconds):
            raise ConfigurationError(
                f"registry_wait_seconds={_short(registry_wait_seconds)} is not a number of "
                f"seconds from 0 to {MAX_TIMEOUT_SECONDS:_.0f}"
            )
        # Before librdkafka sees it: a NUL aborts the process, an overlong id never joins.
        problem = client_name_problem(group_id) if isinstance(group_id, str) else "is not text"
        if problem is not None:
            raise ConfigurationError(
                f"consumer group id {quoted_name(str(group_id))} {problem} (non-empty printable "
                f"text, at most {KAFKA_MAX_NAME_LENGTH} characters, e.g. billing-service)"
            )
        if connection is None and bootstrap_servers is None:
            if settings is None:
                raise ConfigurationError(
                    "no Kafka to talk to: give settings=MeshSettings() (its "
                    "MESH_BOOTSTRAP_SERVERS and MESH_KAFKA_*), connection=KafkaConnection(...) "
                    "or bootstrap_servers='host:port' for a PLAINTEXT cluster"
                )
            connection = KafkaConnection.from_settings(settings)
        self.connection = resolve_connection(connection, bootstrap_servers)
        with contextlib.ExitStack() as undo:
            #: Whether close() closes the registry client (made here from ``settings``).
            self._owns_registry = registry is None
            if registry is None:
                if settings is None:
                    raise ConfigurationError(
                        "no registry to decode with: give settings=MeshSettings() (its "
                        "MESH_REGISTRY_URL and credentials) or registry=RegistryClient(...)"
                    )
                from mesh_stream.registry.client import RegistryClient

                registry = RegistryClient.from_settings(settings)
                undo.callback(registry.close)  # a refusal below leaves nothing open
            self.registry = registry
            self.group_id = group_id
            self.bootstrap_servers = self.connection.bootstrap_servers
            self.dead_letters = dead_letters
            #: Whether tombstones are returned (value None) rather than passed over.
            self.deletions = deletions
            #: Tombstones passed over since the consumer started (``deletions=False``).
            self.deletions_skipped = 0
            self.registry_wait_seconds = registry_wait_seconds
            self._sources: dict[str, _Source] = {}
            named = any(not isinstance(item, DataProduct) for item in products)
            project = _project_of(root, settings) if named else None
            for item in products:
                product = resolve_product(item, project=project, registry=registry)
                reader = readers.get(product.name)
                implicit = product.name in from_models
                if implicit and not _usable_reader(product.name, reader):
                    reader = None  # a model's schema Avro refuses: records as written
                # first: Avro's own parser names the product and what is wrong with the schema
                checked = _avro_reader(product.name, reader) if reader is not None else None
                try:
                    decoder = RecordDecoder(registry, reader, subject=product.value_subject)
                except SchemaError as exc:  # a default fastavro refuses, which Avro's took
                    raise ConfigurationError(
                        f"reader_schemas[{product.name!r}] is not a valid Avro schema: {exc}"
                    ) from exc
                self._sources[product.topic] = _Source(
                    product,
                    decoder,
                    chosen_models.get(product.name),
                    checked,
                    reader_of_model=implicit and reader is not None,
                )
            # Checked before any Kafka client exists, so a wrong argument leaves nothing open.
            fields = _reads_by_product(reads, [s.product.name for s in self._sources.values()])
            wanted = bool(fields) if register is None else register
            config = refuse_connection_keys(
                config,
                "consumer",
                also={
                    "group.id": f"the group is group_id={group_id!r} (its registration, dead "
                    f"letters and errors name it)"
                },
            )
            for name in _OWN_COMMITS:  # refused as a publisher refuses acks=1, not ignored
                given = config.get(name)
                if given is not None and str(given).lower() not in ("false", "0"):
                    raise ConfigurationError(
                        f"consumer config {name}={given!r} is not allowed: the consumer "
                        f"commits a record's offset only once it was handled or dead-lettered "
                        f"(commit() or leaving the `with` block), never on a timer"
                    )
            client_config = {
                "group.id": group_id,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.partition.eof": False,
                "log_level": 3,
                # How soon a subscribed topic created later is noticed (librdkafka: 5 minutes).
                "topic.metadata.refresh.interval.ms": 5000,
                **config,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
            # A refused password or certificate comes only through error_cb: kept, to be
            # raised instead of polling nothing for ever (h42).
            self._refusals = ConnectRefusals(client_config.get("error_cb"))
            client_config["error_cb"] = self._refusals
            strategy = client_config.get("partition.assignment.strategy")
            self._cooperative = "cooperative" in str(strategy)
            self._consumer = make_consumer(self.connection, client_config)
            undo.callback(self._consumer.close)
            known = None if from_beginning else self._known_topics()
            self._raise_refusal()
            self._new_topics = set() if known is None else set(self._sources) - set(known)
            #: Current topic -> the earlier majors' topics this group committed offsets on
            #: while it has none on the current one (until it commits there).
            self._moved = {} if known is None else self._moved_majors(known)
            for topic, earlier in self._moved.items():
                log.warning(
                    "group %s committed offsets on %s, an earlier major of %s, and none on %s "
                    "yet: it reads %s from its first record, so no record published since the "
                    "product moved is skipped",
                    group_id,
                    ", ".join(earlier),
                    self._sources[topic].product.name,
                    topic,
                    topic,
                )
            #: Topics whose partitions start at their oldest record without a committed offset.
            reset = str(client_config.get("auto.offset.reset", "")).lower()
            self._from_start = (
                set(self._sources)
                if reset in ("earliest", "smallest", "beginning")
                else self._new_topics | set(self._moved)
            )
            self._consumer.subscribe(
                list(self._sources), on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            self._positions: dict[tuple[str, int], int] = {}
            self._buffered: deque[Any] = deque()
            self._outage: _Outage | None = None
            self._joined = False
            self._dlq = dlq.DeadLetterWriter(self.connection, group_id)
            self._dlq_topics: set[str] = set()
            self._closed = False
            #: Where reading stood at close() with records not committed (None: nothing left).
            self._left_at_close: str | None = None
            self.registered: tuple[str, ...] = (
                self._register_group(fields, every=bool(register)) if wanted else ()
            )
            undo.pop_all()  # opened: close() closes them from now on

    @property
    def products(self) -> list[DataProduct]:
        return [source.product for source in self._sources.values()]

    def _register_group(
        self, fields: Mapping[str, Sequence[str]], *, every: bool
    ) -> tuple[str, ...]:
        """Register the group on each product in ``fields`` (on ``every`` consumed product
        when asked); a failure is a warning naming the command that does it later."""
        names = [s.product.name for s in self._sources.values()] if every else list(fields)
        done: list[str] = []
        for name in names:
            if register_reader(self.registry, name, self.group_id, list(fields.get(name, ()))):
                done.append(name)
        return tuple(done)

    @property
    def new_topics(self) -> frozenset[str]:
        """The topics that did not exist when the consumer subscribed (read from the first
        record when the group has no committed offset for them)."""
        return frozenset(self._new_topics)

    # -- reading ---------------------------------------------------------------------------
    def poll(self, timeout: float = 1.0) -> ConsumedRecord | None:
        """The next record, or None if none arrived within ``timeout`` seconds."""
        records = self.consume(1, timeout)
        return records[0] if records else None

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[ConsumedRecord]:
        """Up to ``max_records`` decoded records, waiting at most ``timeout`` for the first.

        ``max_records`` is 1 to 1,000,000 and ``timeout`` 0 to 2,147,483 seconds (librdkafka's
        limits); else :class:`ConfigurationError` names the argument. A record whose writer
        schema is not cached yet gets up to ``timeout`` more (at least 1 s) for the registry's
        answer; while the registry is unavailable, this may return fewer records (or none)
        then; see the class. After :meth:`close` it raises :class:`ConfigurationError`.
        """
        if self._closed:
            raise self._closed_error()
        _check_batch(max_records, timeout)
        messages: list[Any]
        if self._buffered:
            count = min(max_records, len(self._buffered))
            messages = [self._buffered.popleft() for _ in range(count)]
        else:
            try:
                messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
            except KafkaException as exc:
                raise ConsumerError(
                    f"cannot consume {', '.join(self._sources)} in group {self.group_id} "
                    f"(read up to {self.position_text()}): {exc}"
                ) from exc
            if messages:
                self._refusals.clear()  # the connection works: an earlier refusal healed
            else:
                self._raise_refusal()
        # the registry gets its own ``timeout`` from when the records are in hand: librdkafka
        # may have used all of it waiting for them (a quiet topic)
        return self._decode(messages, time.monotonic() + timeout)

    def _decode(self, messages: list[Any], until: float = 0.0) -> list[ConsumedRecord]:
        """Decode a batch.

        The cyclic garbage collector is left alone, as everything process-wide is: a batch
        keeps every record it builds alive until it is returned, so the collections during
        it rescan them (about a fifth of the decoding cost with a large heap); an
        application that wants it back can raise ``gc``'s first threshold or call
        ``gc.freeze()`` after start-up (docs/how-to/consume.md).

        Anything unexpected (a refused dead letter, a configuration error, an interrupt)
        forgets the batch: the positions go back to where they were and its partitions are
        read again from it.
        """
        before = dict(self._positions)
        try:
            return self._decode_batch(messages, until)
        except DeserializationError:
            raise  # dead_letters=False: the consumer moved past the pill on purpose
        except _Stopped as stop:  # already read again from the record that stopped it
            raise stop.error from stop.error.__cause__
        except BaseException:
            self._positions = before
            self._seek_back(_first_offsets(messages))
            raise

    def _decode_batch(self, messages: list[Any], until: float) -> list[ConsumedRecord]:
        """The hot loop, so everything it needs is a local name.

        Records are built as :class:`_RecordBuilder` and re-classed to ``ConsumedRecord``
        (see there why); key, timestamp and headers are read from the message only when
        asked for. A partition whose record waits for the registry is skipped for the rest
        of the batch and read again from that record (``blocked``).
        """
        records: list[ConsumedRecord] = []
        append = records.append
        sources = self._sources
        positions = self._positions
        unpack = unpack_schema_id
        read = read_data  # fastavro's, measuring the nesting of recursive types first
        options = READ_OPTIONS
        builder = _RecordBuilder
        record_class = ConsumedRecord
        blocked: dict[tuple[str, int], int] = {}
        waited: MeshError | None = None
        index = -1
        for message in messages:
            index += 1
            if message.error() is not None:
                self._on_error(message)
                continue
            topic = message.topic()
            if blocked and (topic, message.partition()) in blocked:
                continue
            source = sources[topic]
            data = message.value()
            value: Any
            try:
                if data is None or len(data) < HEADER_SIZE or data[0] != MAGIC_BYTE:
                    if data is None:  # a tombstone: a deletion, not a poison pill
                        self._deletion(message, source, records)
                        continue
                    raise framing_error(data)
                schema_id = unpack(data, 1)[0]
                plan = source.plans.get(schema_id)
                if plan is None:
                    plan = self._plan(source, schema_id, message, bool(records or blocked), until)
                fast = plan[3]  # the compiled decoder (None with a reader schema)
                value = _UNREAD
                if fast is not None:
                    try:  # noqa: SIM105 - contextlib.suppress costs more per record
                        value = fast(data)
                    except Exception:  # fastavro below reads it or says what is wrong
                        pass
                if value is _UNREAD:
                    body = BytesIO(data)
                    body.seek(HEADER_SIZE)
                    try:
                        value = read(body, plan[0], plan[1], plan[2], options)
                    except Exception as exc:
                        raise DeserializationError(
                            f"cannot decode the Avro body with writer schema id {schema_id} "
                            f"({schema_name(plan[0])}): "
                            f"{read_failure(exc, data, HEADER_SIZE, plan[0], plan[1])}"
                        ) from exc
                    if body.tell() != len(data):
                        raise trailing_bytes_error(len(data) - body.tell(), schema_id, plan[0])
                if source.model is not None:
                    value = _as_model(source, value, message, schema_id)
            except _Blocked as wait:
                blocked[(topic, message.partition())] = message.offset()
                waited = waited or wait.error
                continue
            except DeserializationError as exc:
                if not self.dead_letters:
                    # Hand out what was decoded first; the pill raises on the next call.
                    self._buffered.extendleft(reversed(messages[index + (not records) :]))
                    self._seek_back(blocked)
                    if records:
                        return records
                self._poison(message, source, exc)
                continue
            except ConfigurationError as exc:
                # The consumer's own configuration cannot take this record (a model or a
                # reader schema that does not fit it): stop at it, never dead-letter it or
                # move past it. Its partition and the rest of the batch are read again from
                # Kafka; what was delivered or dead-lettered before it stays so, and records
                # decoded before it are handed out first (the next call meets it again).
                self._seek_back({**_first_offsets(messages[index:]), **blocked})
                if records:
                    return records
                raise _Stopped(exc) from exc
            partition = message.partition()
            offset = message.offset()
            positions[(topic, partition)] = offset + 1
            record: Any = builder(source.name, topic, partition, offset, message, value, schema_id)
            record.__class__ = record_class
            append(record)
        if blocked:
            self._seek_back(blocked)
            if waited is not None and not records:
                raise waited
        return records

    def __iter__(self) -> Iterator[ConsumedRecord]:
        """Records forever (until :meth:`close`); commit as you go with :meth:`commit`.
        Iterating a consumer already closed is a :class:`ConfigurationError`, as reading it is
        (it yielded nothing, like a consumer with nothing to read)."""
        if self._closed:
            raise self._closed_error()
        return self._records()

    def _records(self) -> Iterator[ConsumedRecord]:
        while not self._closed:
            yield from self.consume(500, 1.0)

    # -- writer schemas while the registry is away -------------------------------------------
    def _plan(
        self, source: _Source, schema_id: int, message: Any, moved: bool, until: float
    ) -> DecodePlan:
        """The plan for a schema id this consumer meets for the first time (a registry call).

        A poison pill raises :class:`DeserializationError`. If the registry cannot answer,
        this retries with back-off until it does, the caller's ``until`` passes, or the
        outage is older than ``registry_wait_seconds``; then, or at once when the batch has
        already ``moved`` (records to hand out, or a partition already waiting), it raises
        :class:`_Blocked`: the record's partition is read again from it.
        """
        while True:
            outage = self._outage
            if outage is not None:
                pause = outage.retry_at - time.monotonic()
                if pause > 0:
                    if moved:
                        raise _Blocked(None)
                    left = until - time.monotonic()
                    if pause > left:
                        time.sleep(max(0.0, left))
                        raise _Blocked(None)
                    time.sleep(pause)
            asked = time.monotonic()
            try:
                # a hung registry holds a call for 10 s a read, retried for 30 s: bound it by
                # what is left of consume()'s timeout
                with self._within(max(until - asked, REGISTRY_CALL_FLOOR_S)):
                    if source.reader is not None and schema_id not in source.readable:
                        self._check_reader(source, schema_id, message)
                    plan = source.decoder.plan_for(schema_id)
            except RegistryError as exc:
                where = _where(message)
                if not exc.retryable:
                    raise _Blocked(
                        ConsumerError(
                            f"{where}: cannot fetch writer schema id {schema_id} from the "
                            f"registry: {exc}; nothing from this record on was delivered or "
                            f"committed"
                        )
                    ) from exc
                now = time.monotonic()
                if outage is None:  # failing since the call that failed was made
                    outage = self._outage = _Outage(asked)
                outage.failed(now)
                if moved:
                    raise _Blocked(None) from exc
                if now - outage.since >= self.registry_wait_seconds:
                    self._outage = None  # calling consume() again waits anew
                    gave_up = RegistryUnavailableError(
                        f"{where}: writer schema id {schema_id} is not cached and the "
                        f"registry has failed for {now - outage.since:.1f}s, beyond "
                        f"registry_wait_seconds={self.registry_wait_seconds:g} "
                        f"({exc.message}); nothing from this record on was delivered or "
                        f"committed: consume() again to keep waiting, or raise "
                        f"registry_wait_seconds (MESH_CONSUMER_REGISTRY_WAIT_SECONDS for "
                        f"`mesh tail` and processors)",
                        status=exc.status,
                        error_code=exc.error_code,
                    )
                    gave_up.record, gave_up.schema_id = where, schema_id
                    raise _Blocked(gave_up) from exc
                continue
            self._outage = None
            return plan

    def _within(self, seconds: float) -> contextlib.AbstractContextManager[None]:
        """Registry calls bounded to ``seconds`` (a client without deadlines: unbounded)."""
        bound = getattr(self.registry, "within", None)
        return bound(seconds) if bound is not None else contextlib.nullcontext()

    def _check_reader(self, source: _Source, schema_id: int, message: Any) -> None:
        """Refuse, as the consumer's configuration error, a reader schema that cannot read a
        writer schema registered for the product: every record of that version is valid per
        the product's contract, so dead-lettering them would lose them for the consumer's
        mistake. Checked with Apache Avro's checker once per writer schema id; any other
        refusal (unknown id, a foreign id of another product, a schema that is no record)
        is the record's and left to the decoder."""
        from mesh_stream.schema.avro import incompatibilities, type_name
        from mesh_stream.schema.avro import parse_schema as avro_parse

        known = source.unreadable.get(schema_id)
        if known is not None:
            raise known
        try:
            text = self.registry.get_schema(schema_id)
        except SchemaNotFoundError:
            return  # the decoder dead-letters it: the id is unknown
        try:
            writer = avro_parse(text, strict=False)
        except Exception:  # the decoder says why it cannot read this schema
            return
        subject = source.product.value_subject
        try:
            found = incompatibilities(
                source.reader, [(schema_id, writer)], "BACKWARD", subject=subject
            )
        except Exception:  # Avro's checker refused the writer schema: the decoder says so
            return
        if not found:
            source.readable.add(schema_id)
            return
        try:
            subjects = self.registry.get_schema_subjects(schema_id)
        except SchemaNotFoundError:
            subjects = []
        if subject not in subjects:
            return  # a foreign id (another product's record): dead-lettered by the decoder
        version = ""
        with contextlib.suppress(Exception):  # the version only adds to the message
            version = f", version {self.registry.lookup(subject, text).version} of {subject}"
        problems = "; ".join(
            f"{f'field {spot.field}' if spot.field else 'the record'}: {spot.change} (fix: "
            f"{spot.fix})"
            for spot in found
        )
        if source.reader_of_model:
            which = (
                f"the schema models[{source.name!r}] was made from (model_from_schema, its "
                f"reader schema)"
            )
            instead = (
                f"or give reader_schemas[{source.name!r}] a schema that reads it (or a "
                f"hand-written model, which gets records as written)"
            )
        else:
            which = f"the reader schema reader_schemas[{source.name!r}]"
            instead = "or consume without reader_schemas to get records as written"
        error = ConfigurationError(
            f"{source.name}: {which} ({type_name(source.reader)}) cannot read the product's "
            f"writer schema id {schema_id}{version} (met at {_where(message)}): {problems}; "
            f"records written with it are valid per the product's contract, so nothing from "
            f"this record on was delivered, dead-lettered or committed: fix that schema (new "
            f"fields need defaults, the record keeps the writer's name or lists it in "
            f"`aliases`), {instead}"
        )
        source.unreadable[schema_id] = error
        raise error

    def _seek_back(self, first: Mapping[tuple[str, int], int]) -> None:
        """Read each partition again from the given offset (dropping what is buffered)."""
        if not first:
            return
        self._buffered = deque(m for m in self._buffered if (m.topic(), m.partition()) not in first)
        for (topic, partition), offset in first.items():
            # Not ours any more (KafkaException): the next owner starts at the committed
            # offset, and no commit ever passed this record.
            with contextlib.suppress(KafkaException):
                self._consumer.seek(TopicPartition(topic, partition, offset))

    # -- poison pills and errors ----------------------------------------------------------
    def _deletion(self, message: Any, source: _Source, records: list[ConsumedRecord]) -> None:
        """A tombstone: returned as a record with value None (``deletions=True``), else
        passed over; either way its position counts as handled."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        self._positions[(topic, partition)] = offset + 1
        if self.deletions:
            record: Any = _RecordBuilder(source.name, topic, partition, offset, message, None, None)
            record.__class__ = ConsumedRecord
            records.append(record)
            return
        self.deletions_skipped += 1
        if self.deletions_skipped == 1:
            log.info(
                "%s: passing over tombstones (records with a key and no value, deletions of "
                "that key's record, e.g. a merged session); the first at %s. Consume with "
                "deletions=True to receive them (value None)",
                self.group_id,
                _where(message),
            )

    def _poison(
        self,
        message: Any,
        source: _Source,
        error: DeserializationError,
    ) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        where = f"{topic}[{partition}]@{offset}"
        if not self.dead_letters:
            self._positions[(topic, partition)] = offset + 1
            raised = DeserializationError(
                f"{where}: {error} (consume with dead_letters=True to route such records to "
                f"{source.product.dlq_topic} and keep going)"
            )
            raised.topic, raised.partition, raised.offset = topic, partition, offset  # type: ignore[attr-defined]
            raise raised from error
        self._send_dead_letter(message, source, error)
        self._positions[(topic, partition)] = offset + 1

    def _send_dead_letter(self, message: Any, source: _Source, error: DeserializationError) -> None:
        dlq_topic = source.product.dlq_topic
        where = _where(message)
        stop = (
            f"consumption stopped before it: nothing from {where} on was committed and this "
            f"batch will be read again"
        )
        try:
            if dlq_topic not in self._dlq_topics:
                ensure_product_topic(
                    source.product, self.connection, topic=dlq_topic, dead_letters=True
                )
                self._dlq_topics.add(dlq_topic)
            self._dlq.write(message, dlq_topic, error)
        except MeshError as exc:
            raise DeliveryError(
                f"cannot dead-letter the undecodable record {where}: {exc}; {stop}"
            ) from exc

    def _on_error(self, message: Any) -> None:
        error = message.error()
        if error.code() in _SECURITY_CODES:
            refused = explain_kafka_error(
                error,
                self.connection,
                topic=message.topic(),
                group=self.group_id,
                operation="READ",
            )
            if isinstance(refused, KafkaSecurityError):
                raise refused
        if is_fatal(error):
            raise ConsumerError(
                f"fatal Kafka error while consuming {_where(message)}: {error.str()} "
                f"(read up to {self.position_text()})"
            )
        # Other errors (partition EOF, a topic not created yet, a broker restarting) are
        # transient: librdkafka retries them itself.

    @property
    def joined(self) -> bool:
        """Whether the group has given this consumer its partitions (at least once): until
        then no record can come, however long one waits."""
        return self._joined

    def unread(self, timeout: float = 5.0) -> list[str]:
        """This consumer's partitions holding records it has not returned yet, each as
        ``topic[partition]@next..high`` (empty when it has returned all there was; a
        partition Kafka cannot say of within ``timeout`` s is listed as not checked): whether
        waiting longer may give more."""
        if self._closed:
            return []
        held = sorted({f"{m.topic()}[{m.partition()}] (waiting)" for m in self._buffered})
        return held or unread_partitions(
            self._consumer, from_start=self._from_start, timeout=timeout
        )

    @property
    def registry_outage_seconds(self) -> float | None:
        """How long records have been waiting for the registry to give a writer schema (None
        when none waits): they and their partitions' later records are not returned yet."""
        outage = self._outage
        return None if outage is None else time.monotonic() - outage.since

    def position_text(self) -> str:
        """Where reading stands: each partition's next offset as ``topic[partition]@offset``
        (the records returned and not yet committed), for error messages."""
        found = ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(self._positions.items()))
        return found or "no record returned since the last commit"

    # -- offsets ---------------------------------------------------------------------------
    def commit(self) -> None:
        """Commit the offsets of every record returned so far (call after processing them)."""
        if self._closed:  # first: close() forgets the positions as it leaves the group
            left = self._left_at_close
            raise self._closed_error(
                f"; the records returned since the last commit ({left}) were not committed and "
                f"the group reads them again"
                if left
                else ""
            )
        if not self._positions:
            return
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._positions.items()
        ]
        try:
            retrying = Retrying(
                retry=retry_if_exception(_commit_may_succeed_later),
                wait=wait_exponential(multiplier=0.1, max=2.0),
                stop=stop_after_delay(COMMIT_RETRY_SECONDS),
                reraise=True,
            )
            retrying(partial(self._consumer.commit, offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET:
                return
            if isinstance(error, KafkaError) and error.code() in _SECURITY_CODES:
                raise explain_kafka_error(
                    error, self.connection, group=self.group_id, operation="READ"
                ) from exc
            raise ConsumerError(
                f"cannot commit offsets of group {self.group_id} "
                f"({', '.join(f'{tp.topic}[{tp.partition}]@{tp.offset}' for tp in offsets)}): "
                f"{exc}"
            ) from exc
        self._positions.clear()
        for tp in offsets:  # committed there now: a later rebalance resumes as for any topic
            self._moved.pop(tp.topic, None)

    def _raise_refusal(self) -> None:
        """Raise the refused login or TLS handshake librdkafka reported, if any, naming the
        settings to fix (:class:`KafkaSecurityError`); it never heals by waiting."""
        first = self._refusals.first
        if first is not None:
            refused = connect_refusal(self.connection, [first])
            if refused is not None:
                raise refused

    def _known_topics(self) -> dict[str, Any] | None:
        """The cluster's topics and their partitions (None when the broker cannot say: every
        subscribed topic then counts as existing, and none as moved)."""
        try:
            return dict(self._consumer.list_topics(timeout=TOPICS_LIST_TIMEOUT_S).topics)
        except KafkaException as exc:
            # said, not raised: a consumer outlasts an outage, one started early included;
            # but "reads nothing" must not look like "nothing to read" (h53)
            log.warning(
                "the consumer of group %s could not list Kafka's topics at %s (%s); it waits "
                "for the cluster and reads nothing until it answers",
                self.group_id,
                self.connection.bootstrap_servers,
                exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc,
            )
            return None

    def _moved_majors(self, known: Mapping[str, Any]) -> dict[str, list[str]]:
        """For each consumed product past its first major whose topic the group has committed
        nothing on, the earlier majors' topics it has committed offsets on (empty when the
        broker cannot say): a group that read ``.v1`` and now subscribes to ``.v2`` has not
        seen what ``.v2`` holds. A group already reading ``.v2`` has not moved."""
        earlier = {
            topic: [topic_for(source.product.name, k) for k in range(1, source.product.version)]
            for topic, source in self._sources.items()
        }
        moved = earlier_reads(self._consumer, earlier, known, count_unread=False)
        return {topic: list(read.topics) for topic, read in moved.items()}

    @property
    def moved_topics(self) -> Mapping[str, tuple[str, ...]]:
        """Topics of products that moved to a new major since this group last read them
        (each with the earlier topics it committed on): the group has committed nothing on
        them yet, so they are read from their first record (until it commits there)."""
        return {topic: tuple(olds) for topic, olds in self._moved.items()}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start partitions of topics created after subscribing, or of a product's new major
        the group read an earlier one of, at their first record when the group has no
        committed offset for them (see the class docstring)."""
        self._joined = True
        fresh = [tp for tp in partitions if tp.topic in self._new_topics or tp.topic in self._moved]
        if not fresh:
            return
        try:
            committed = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in fresh], timeout=10
            )
            start = {(tp.topic, tp.partition) for tp in committed if tp.offset < 0}
        except KafkaException:
            # A new topic is re-read rather than skipped; a moved major's partitions are
            # left to the group's committed offsets (it may have read there since): a lookup
            # failing in a rebalance must not replay a whole topic.
            start = {(tp.topic, tp.partition) for tp in fresh if tp.topic in self._new_topics}
        if not start:
            return
        for tp in partitions:
            if (tp.topic, tp.partition) in start:
                tp.offset = OFFSET_BEGINNING
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Forget revoked partitions without committing: records returned but not yet
        committed may not be processed, so the next owner reads them again (at-least-once).
        """
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._positions = {tp: off for tp, off in self._positions.items() if tp not in revoked}
        self._buffered = deque(
            m for m in self._buffered if (m.topic(), m.partition()) not in revoked
        )

    def _closed_error(self, more: str = "") -> ConfigurationError:
        names = ", ".join(source.name for source in self._sources.values())
        return ConfigurationError(
            f"the consumer of {names} (group {self.group_id}) is closed{more}; open a new "
            f"ProductConsumer to read on"
        )

    def close(self) -> None:
        """Leave the group and release the connection (uncommitted records are re-read).
        Closing again does nothing; reading or committing afterwards is
        :class:`ConfigurationError`."""
        if self._closed:
            return
        self._closed = True
        self._left_at_close = self.position_text() if self._positions else None
        try:
            self._dlq.close()
        finally:
            self._consumer.close()
            if self._owns_registry:
                self.registry.close()

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
        try:
            if exc_type is None and not self._closed:
                self.commit()
        finally:
            self.close()


def _consumed_names(products: Any) -> list[str]:
    """The product names ``products`` holds: a list or tuple of names and descriptors.

    A bare string is refused rather than read letter by letter."""
    if not isinstance(products, (list, tuple)):
        hint = f" (products=[{products!r}])" if isinstance(products, str) else ""
        raise ConfigurationError(
            f"products={_short(products)} is not a list of products: give a list or tuple of "
            f"product names or DataProduct descriptors{hint}"
        )
    names: list[str] = []
    for item in products:
        if isinstance(item, DataProduct):
            names.append(item.name)
        elif isinstance(item, str):
            names.append(item)
        else:
            raise ConfigurationError(
                f"products holds {_short(item)} ({type(item).__name__}), neither a product name "
                f"(e.g. 'orders.order-placed') nor a DataProduct descriptor"
            )
    return names


def _by_consumed_product(
    option: str, given: Mapping[str, Any] | None, consumed: Sequence[str]
) -> dict[str, Any]:
    """``given`` (``models`` or ``reader_schemas``) as a dict keyed by consumed products only:
    a key naming no consumed product is a typo, refused rather than silently ignored."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(
            f"{option}={_short(given)} is not a mapping: give {option}={{product name: ...}} "
            f"keyed by consumed product names"
        )
    unknown = [key for key in given if key not in consumed]
    if unknown:
        raise ConfigurationError(
            f"{option} names {', '.join(_short(key) for key in unknown)}, which this consumer "
            f"does not consume (it consumes {', '.join(consumed)}); key {option} by consumed "
            f"product names"
        )
    return dict(given)


def _usable_reader(product: str, reader: SchemaLike | None) -> bool:
    """Whether both Avro's parser and fastavro take ``reader`` (a model's schema that one of
    them refuses is not made the reader: the model then gets records as written)."""
    if reader is None:
        return False
    try:
        _avro_reader(product, reader)
        parse_schema(reader, source="reader schema")
    except (ConfigurationError, SchemaError):
        return False
    return True


def _avro_reader(product: str, reader: SchemaLike) -> Any:
    """The reader schema as Apache Avro parses it, to check it against writer schemas."""
    from mesh_stream.schema.avro import parse_schema as avro_parse  # avro: only when needed

    try:
        return avro_parse(as_document(reader))  # strict: a reader schema is written now
    except (SchemaError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"reader_schemas[{product!r}] is not a valid Avro schema: {exc}"
        ) from exc


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."


def _check_batch(max_records: Any, timeout: Any) -> None:
    """Refuse ``consume()`` arguments librdkafka would refuse in its own words (or misread:
    it takes an infinite or huge timeout as no wait at all)."""
    if (
        isinstance(max_records, bool)
        or not isinstance(max_records, numbers.Integral)
        or not 1 <= int(max_records) <= MAX_RECORDS_PER_CALL
    ):
        raise ConfigurationError(
            f"max_records={_short(max_records)} is not a whole number from 1 to "
            f"{MAX_RECORDS_PER_CALL:_}: it is how many records one consume() call returns at "
            f"most (default 500)"
        )
    if not is_wait_seconds(timeout):
        raise ConfigurationError(
            f"timeout={_short(timeout)} is not a number of seconds from 0 to "
            f"{MAX_TIMEOUT_SECONDS:_.0f}: it is how long consume() or poll() waits for a first "
            f"record (default 1.0; 0 does not wait)"
        )


def _reads_by_product(
    reads: Sequence[str] | Mapping[str, Sequence[str]] | None, consumed: Sequence[str]
) -> dict[str, list[str]]:
    """``reads`` as product -> fields: a list applies to the one consumed product."""
    if reads is None:
        return {}
    if isinstance(reads, str):
        raise ConfigurationError(
            f"reads={reads!r} is a string; give a list of field names (reads=[{reads!r}])"
        )
    if isinstance(reads, Mapping):
        unknown = sorted(set(reads) - set(consumed))
        if unknown:
            raise ConfigurationError(
                f"reads names {', '.join(unknown)}, which this consumer does not consume "
                f"(it consumes {', '.join(consumed)}); key reads by consumed product names"
            )
        return {name: list(fields) for name, fields in reads.items()}
    if len(consumed) != 1:
        raise ConfigurationError(
            f"reads is a list but this consumer consumes {len(consumed)} products "
            f"({', '.join(consumed)}); give a mapping of product name to fields instead"
        )
    return {consumed[0]: list(reads)}


def _where(message: Any) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


def _first_offsets(messages: Sequence[Any]) -> dict[tuple[str, int], int]:
    """Each partition's first offset in a batch (a partition's records come in order)."""
    first: dict[tuple[str, int], int] = {}
    for message in messages:
        if message.error() is None:
            first.setdefault((message.topic(), message.partition()), message.offset())
    return first


def _as_model(source: _Source, value: Any, message: Any, schema_id: int) -> BaseModel:
    """``value`` as the product's model. A record that decoded with its writer schema is valid
    per the product's contract, so a model that refuses it is the consumer's configuration
    error (:class:`ConfigurationError`), never a dead letter."""
    model: Any = source.model
    try:
        result: BaseModel = model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(the record)'}: "
            f"{validation_problem(item)}"
            for item in exc.errors()
        )
        raise _misfit(source, message, schema_id, problems) from exc
    except Exception as exc:  # a validator of the model failed otherwise: still the model
        raise _misfit(source, message, schema_id, f"{type(exc).__name__}: {exc}") from exc
    return result


def _misfit(source: _Source, message: Any, schema_id: int, problems: str) -> ConfigurationError:
    model: Any = source.model
    return ConfigurationError(
        f"{_where(message)}: the record does not fit model {model.__name__} "
        f"(models[{source.name!r}]): {problems}; it decoded with its writer schema id "
        f"{schema_id}, so it is valid per the product's contract and the model is wrong: "
        f"nothing from this record on was delivered, dead-lettered or committed (fix the model "
        f"to accept every record the schema allows, e.g. model_from_schema(schema), which reads "
        f"with that schema; give a hand-written model the schema it was written for as "
        f"reader_schemas[{source.name!r}]; or consume without models to get dicts)"
    )
