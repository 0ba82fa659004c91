"""A product's live sample: its newest records read from Kafka, decoded and PII-masked.

The portal and ``GET /products/{name}/sample`` show what a product's records look like
right now. :class:`ProductSampler` reads the last *k* records of each partition of the
product's topic with a throw-away consumer (``assign()`` at high watermark - *k*, no
consumer group commit, a short deadline), decodes them with the SDK's decoder against the
registry's own schemas, keeps the newest *N* across partitions and masks every field marked
``"pii": true`` (nested fields too) unless the viewer owns the product's domain or is admin.
A record that cannot be decoded becomes a short error line with its coordinates
(``topic[partition]@offset``); it never fails the whole sample.

Reading Kafka blocks; callers on an event loop use :meth:`ProductSampler.read`, which runs
the read in a worker thread (at most :data:`CONCURRENT_READS` at a time). No HTTP here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from mesh_stream.descriptor import Classification, DataProduct
from mesh_stream.errors import (
    DeserializationError,
    MeshError,
    RegistryUnavailableError,
    SchemaNotFoundError,
)
from mesh_stream.governance.avro_walk import marked_pii
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service.auth import ADMIN
from mesh_stream.registry.service.products import ProductCatalog, unknown_product
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.schema.codec import RecordDecoder, json_default

log = logging.getLogger(__name__)

#: Records a sample holds unless asked otherwise, and the most it may hold.
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: How long one sample may take, metadata, watermarks and fetches included.
DEADLINE_SECONDS = 3.0
#: Samples read at once (each one opens a consumer); more requests wait their turn.
CONCURRENT_READS = 2
#: What a masked value becomes.
MASK = "••• (PII)"
#: Longest error line kept for an undecodable record.
MAX_ERROR_CHARS = 300


def no_kafka_error() -> RegistryUnavailableError:
    """The error of a registry that has no Kafka connection (an in-memory one)."""
    return RegistryUnavailableError(
        "no Kafka connection here: this registry keeps its state in memory, so it cannot "
        "read product topics for a live sample (run it over Kafka: `mesh registry serve`)",
        status=503,
        error_code=50302,
    )


@dataclass(frozen=True)
class SampledRecord:
    """One record of a sample: where it was, and its value (masked) or why it is missing."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    #: the decoded value as JSON-able data, masked fields replaced by :data:`MASK`
    value: dict[str, Any] | None = None
    schema_id: int | None = None
    #: why the value is missing: a short line with ``topic[partition]@offset``
    error: str | None = None
    #: a tombstone: the record has no value because its key was deleted (a processor's
    #: merged session, a compacted product's deletion), which is not an error
    deleted: bool = False

    def to_document(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": self.key,
            "value": self.value,
            "schema_id": self.schema_id,
            "error": self.error,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class Sample:
    """The newest records of a product, newest first, as one viewer may see them."""

    product: str
    topic: str
    limit: int
    records: list[SampledRecord]
    #: top-level fields of the product's latest schema (the table's columns)
    fields: list[str]
    #: dotted paths of the fields masked for this viewer (empty: nothing hidden)
    masked: list[str]
    #: whether every partition was read to its end before the deadline
    complete: bool = True
    #: something the viewer should know (no topic yet, read cut short)
    note: str | None = None
    read_ms: int = 0

    def to_document(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "topic": self.topic,
            "limit": self.limit,
            "fields": self.fields,
            "masked": self.masked,
            "complete": self.complete,
            "note": self.note,
            "read_ms": self.read_ms,
            "records": [record.to_document() for record in self.records],
        }


def sees_pii(principal: str | None, product: DataProduct) -> bool:
    """Whether ``principal`` reads ``product``'s PII unmasked: its own domain, or admin."""
    return principal is not None and principal in (ADMIN, product.domain)


# -- masking ------------------------------------------------------------------------------


def pii_field_paths(schema: Any) -> set[str]:
    """Dotted paths (arrays and maps transparent) of every field marked ``"pii": true``."""
    found: set[str] = set()
    for path, field_schema, _type in _fields(schema, "", {}, set()):
        if marked_pii(field_schema):
            found.add(path)
    return found


def _fields(
    schema: Any, prefix: str, named: dict[str, Any], expanding: set[str]
) -> Iterable[tuple[str, Mapping[str, Any], Any]]:
    if isinstance(schema, list):
        for member in schema:
            yield from _fields(member, prefix, named, expanding)
    elif isinstance(schema, str):
        target = named.get(schema)
        if target is not None:  # the record's own check stops a recursive type
            yield from _fields(target, prefix, named, expanding)
    elif isinstance(schema, Mapping):
        kind = schema.get("type")
        if kind in ("record", "error"):
            name = schema.get("name")
            if isinstance(name, str):
                if name in expanding:
                    return
                _remember(schema, named)
                expanding = expanding | {name}
            for item in schema.get("fields") or ():
                if not isinstance(item, Mapping):
                    continue
                path = f"{prefix}.{item.get('name')}" if prefix else str(item.get("name"))
                yield path, item, item.get("type")
                yield from _fields(item.get("type"), path, named, expanding)
        elif kind == "array":
            yield from _fields(schema.get("items"), prefix, named, expanding)
        elif kind == "map":
            yield from _fields(schema.get("values"), prefix, named, expanding)
        elif isinstance(kind, (Mapping, list)) or (isinstance(kind, str) and kind in named):
            yield from _fields(kind, prefix, named, expanding)


def mask_value(value: Any, schema: Any, paths: set[str]) -> Any:
    """``value`` (decoded with writer ``schema``, its JSON) with every field at one of
    ``paths`` (as :func:`pii_field_paths` makes them) or marked ``"pii": true`` in ``schema``
    replaced by :data:`MASK`, in whichever record, union branch, array item or map value it
    turns up, at any depth of a recursive type."""
    return _mask(value, schema, "", paths, {})


def _mask(value: Any, schema: Any, prefix: str, paths: set[str], named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        target = named.get(schema)
        return value if target is None else _mask(value, target, prefix, paths, named)
    if isinstance(schema, list):
        branch = _branch(value, schema, named)
        return value if branch is None else _mask(value, branch, prefix, paths, named)
    if not isinstance(schema, Mapping):
        return value
    kind = schema.get("type")
    if kind in ("record", "error"):
        _remember(schema, named)
        if not isinstance(value, dict):
            return value
        masked = dict(value)
        for item in schema.get("fields") or ():
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str) or name not in value:
                continue
            path = f"{prefix}.{name}" if prefix else name
            if path in paths or marked_pii(item):  # marked here: recursive types too
                masked[name] = MASK
            else:
                masked[name] = _mask(value[name], item.get("type"), path, paths, named)
        return masked
    if kind == "array" and isinstance(value, list):
        return [_mask(item, schema.get("items"), prefix, paths, named) for item in value]
    if kind == "map" and isinstance(value, dict):
        values = schema.get("values")
        return {key: _mask(item, values, prefix, paths, named) for key, item in value.items()}
    if isinstance(kind, (Mapping, list)) or (isinstance(kind, str) and kind in named):
        return _mask(value, kind, prefix, paths, named)
    return value


def _remember(record: Mapping[str, Any], named: dict[str, Any]) -> None:
    """Note a record's name (short and full) so later references to it resolve."""
    name = record.get("name")
    if not isinstance(name, str):
        return
    named[name] = record
    namespace = record.get("namespace")
    if isinstance(namespace, str) and namespace and "." not in name:
        named[f"{namespace}.{name}"] = record
    named.setdefault(name.rpartition(".")[2], record)


def _branch(value: Any, union: list[Any], named: dict[str, Any]) -> Any:
    """The branch of ``union`` a decoded ``value`` came from (None: a primitive one)."""
    if value is None:
        return None
    resolved = [named.get(b, b) if isinstance(b, str) else b for b in union]
    for branch in resolved:
        if isinstance(branch, Mapping) and branch.get("type") in ("record", "error"):
            names = {f.get("name") for f in branch.get("fields") or () if isinstance(f, Mapping)}
            if isinstance(value, dict) and set(value) == names:
                return branch
    for branch in resolved:
        if isinstance(branch, Mapping):
            if branch.get("type") == "map" and isinstance(value, dict):
                return branch
            if branch.get("type") == "array" and isinstance(value, list):
                return branch
    return None


def jsonable(value: Any) -> Any:
    """A decoded Avro value as plain JSON data (timestamps ISO 8601, decimals as text)."""
    return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))


# -- reading -------------------------------------------------------------------------------


class SchemaNotRegisteredError(SchemaNotFoundError):
    """An unknown schema id met in-process: no HTTP answer was involved, so its text claims
    no status (a :class:`~mesh_stream.errors.RegistryError` says "HTTP 500" by default)."""

    def __str__(self) -> str:
        return self.message


class _RegistrySchemas:
    """The registry's own state as the decoder's schema source (no HTTP round trip)."""

    def __init__(self, schemas: SchemaRegistry) -> None:
        self.schemas = schemas

    def get_schema(self, schema_id: int) -> str:
        try:
            return self.schemas.get_schema(schema_id)
        except SchemaNotFoundError:
            raise SchemaNotRegisteredError(
                f"schema id {schema_id} is not registered (no subject version uses it)",
                status=404,
                error_code=40403,
            ) from None

    def get_schema_subjects(self, schema_id: int) -> list[str]:
        return sorted(
            {subject for subject, _version in self.schemas.subject_versions_of(schema_id)}
        )


@dataclass
class _Read:
    """What one read of a topic brought back."""

    messages: list[Any] = field(default_factory=list)
    complete: bool = True
    note: str | None = None


class ProductSampler:
    """Reads, decodes and masks the newest records of a product (see the module docstring)."""

    def __init__(
        self,
        connection: KafkaConnection,
        catalog: ProductCatalog,
        *,
        deadline_seconds: float = DEADLINE_SECONDS,
    ) -> None:
        self.connection = connection
        self.catalog = catalog
        self.deadline_seconds = deadline_seconds
        self._limiter: anyio.CapacityLimiter | None = None

    async def read(self, name: str, principal: str | None, limit: int = DEFAULT_LIMIT) -> Sample:
        """:meth:`sample` in a worker thread, so the event loop keeps serving meanwhile."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(CONCURRENT_READS)
        return await anyio.to_thread.run_sync(
            lambda: self.sample(name, principal, limit), limiter=self._limiter
        )

    def sample(self, name: str, principal: str | None, limit: int = DEFAULT_LIMIT) -> Sample:
        """The newest ``limit`` records of product ``name`` (1 to :data:`MAX_LIMIT`), newest
        first, masked for ``principal``; 404 for an unknown product, 503 when Kafka does not
        answer."""
        product = self.catalog.get_product(name)
        if product is None:
            raise unknown_product(name)
        limit = max(1, min(int(limit), MAX_LIMIT))
        started = time.monotonic()
        found = self._fetch(product.topic, limit, started + self.deadline_seconds)
        sample = self.assemble(product, found.messages, principal, limit)
        return replace(
            sample,
            complete=found.complete,
            note=found.note,
            read_ms=int((time.monotonic() - started) * 1000),
        )

    def assemble(
        self, product: DataProduct, messages: Iterable[Any], principal: str | None, limit: int
    ) -> Sample:
        """The newest ``limit`` of ``messages`` (consumed Kafka messages of ``product``'s
        topic), newest first, decoded against the registry's schemas and masked for
        ``principal``."""
        latest = self.catalog.latest_schema(product.value_subject) or {}
        columns = [
            str(item.get("name"))
            for item in latest.get("fields") or ()
            if isinstance(item, Mapping)
        ]
        masking = not sees_pii(principal, product)
        hidden, whole = self._pii_paths(product) if masking else (set(), False)
        decoder = RecordDecoder(
            _RegistrySchemas(self.catalog.schemas), subject=product.value_subject
        )
        newest = sorted(
            messages,
            key=lambda m: (m.timestamp()[1], m.offset(), -m.partition()),
            reverse=True,
        )[:limit]
        records = [
            self._record(product, message, decoder, hidden, masking=masking, whole=whole)
            for message in newest
        ]
        for record in records:  # fields of older versions the latest schema no longer has
            for name in record.value or {}:
                if name not in columns:
                    columns.append(name)
        return Sample(
            product=product.name,
            topic=product.topic,
            limit=limit,
            records=records,
            fields=columns,
            masked=sorted(hidden),
        )

    def _pii_paths(self, product: DataProduct) -> tuple[set[str], bool]:
        """What a viewer outside the domain must not see, and whether that is every field.

        Every PII-marked path of any version, soft-deleted ones too (their records may
        still be on the topic). A ``pii`` product that marks none hides every field (any
        may be personal), the key and the fields only older versions have included: then
        the paths are every version's top-level fields and ``whole`` is True.
        """
        schemas = self.catalog.schemas
        try:
            numbers = schemas.versions(product.value_subject, deleted=True)
        except MeshError:  # no version at all yet
            numbers = []
        parsed = [
            json.loads(schemas.get_version(product.value_subject, number, deleted=True).schema)
            for number in numbers
        ]
        paths: set[str] = set()
        for schema in parsed:
            paths |= pii_field_paths(schema)
        if paths or product.classification is not Classification.PII:
            return paths, False
        for schema in parsed:
            fields = schema.get("fields") if isinstance(schema, Mapping) else None
            paths |= {str(item.get("name")) for item in fields or () if isinstance(item, Mapping)}
        return paths, True

    def _record(
        self,
        product: DataProduct,
        message: Any,
        decoder: RecordDecoder,
        hidden: set[str],
        *,
        masking: bool,
        whole: bool,
    ) -> SampledRecord:
        stamp_type, stamp = message.timestamp()
        raw_key = message.key()
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else None
        if key is not None and (whole or (product.key_field or "") in hidden):
            key = MASK
        where = f"{product.topic}[{message.partition()}]@{message.offset()}"
        base = {
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp_ms": stamp if stamp_type != 0 else None,
            "key": key,
        }
        data = message.value()
        if data is None:  # a deletion of its key, not a record that failed to decode
            return SampledRecord(**base, deleted=True)
        try:
            schema_id, value = decoder.decode_with_id(data)
        except (DeserializationError, MeshError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return SampledRecord(**base, error=f"{where}: {text}"[:MAX_ERROR_CHARS])
        except Exception as exc:  # a decoder bug must not fail the whole sample
            log.warning("%s: cannot decode for a sample: %s", where, exc)
            return SampledRecord(
                **base, error=f"{where}: cannot decode ({type(exc).__name__})"[:MAX_ERROR_CHARS]
            )
        if masking:  # the writer schema's own marks count even when no version lists one
            writer = json.loads(self.catalog.schemas.get_schema(schema_id))
            value = mask_value(value, writer, hidden)
            if whole and isinstance(value, dict):
                value = dict.fromkeys(value, MASK)
            if key is not None and product.key_field in pii_field_paths(writer):
                base["key"] = MASK
        return SampledRecord(**base, value=jsonable(value), schema_id=schema_id)

    def _fetch(self, topic: str, limit: int, deadline: float) -> _Read:
        consumer = make_consumer(
            self.connection,
            {
                "group.id": f"mesh-registry-sample-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "latest",
                "fetch.wait.max.ms": 50,
            },
        )
        try:
            return self._read(consumer, topic, limit, deadline)
        except KafkaException as exc:
            raise self._unreachable(topic, exc) from exc
        finally:
            consumer.close()

    def _read(self, consumer: Consumer, topic: str, limit: int, deadline: float) -> _Read:
        metadata = consumer.list_topics(topic, timeout=_left(deadline))
        found = metadata.topics.get(topic)
        problem = found.error if found is not None else None
        if found is None or problem is not None:
            if problem is None or problem.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return _Read(note=f"topic {topic} does not exist yet: nothing published")
            raise self._unreachable(topic, KafkaException(problem))
        starts: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=_left(deadline), cached=False
            )
            if high > low:
                starts.append(TopicPartition(topic, partition, max(low, high - limit)))
                ends[partition] = high
        if not starts:
            return _Read(note=f"topic {topic} holds no records yet")
        consumer.assign(starts)
        read = _Read()
        pending = set(ends)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                read.complete = False
                read.note = (
                    f"read cut short after {self.deadline_seconds:g} s: partitions "
                    f"{', '.join(map(str, sorted(pending)))} not read to their end"
                )
                break
            for message in consumer.consume(500, min(left, 0.5)):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    elif error.fatal() or not error.retriable():
                        log.debug("sample of %s: %s", topic, error)
                    continue
                read.messages.append(message)
                partition, offset = message.partition(), message.offset()
                if partition is not None and offset is not None and offset >= ends[partition] - 1:
                    pending.discard(partition)
        return read

    def _unreachable(self, topic: str, exc: KafkaException) -> RegistryUnavailableError:
        error = exc.args[0] if exc.args else None
        text = error.str() if isinstance(error, KafkaError) else str(exc)
        return RegistryUnavailableError(
            f"cannot read {topic} for a sample: Kafka did not answer within "
            f"{self.deadline_seconds:g} s ({text}); is the broker up?",
            status=503,
            error_code=50302,
        )


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
