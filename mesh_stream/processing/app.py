"""The parts of a processor worker: a faust app, re-keying, aggregation, keyed outputs.

:mod:`mesh_stream.processing.engine` assembles them from a processor's declaration; nothing
here knows what a processor computes. A worker is two stages:

1. **re-key** (:mod:`mesh_stream.processing.rekey`): reads the input products
   (Confluent-framed Avro written by the SDK) in batches, keeps the fields it needs and
   forwards them, keyed by what the aggregate is grouped by, to an internal topic. Each key
   goes to the partition faust's own producer would give it, so every key's events reach one
   partition and therefore one table partition, whatever partitioner the publishers used.
   Each partition's events of a batch travel as one internal record, grouped by key.
2. **aggregate**: a faust agent that reads the internal topic in batches (``take_ready_events``),
   updates a RocksDB table (changelogged to Kafka) through :mod:`mesh_stream.processing.dedup`
   so each event counts once, and publishes the key's new value to the output product, framed
   with the output's registered schema id, once per key and batch.

Outputs are keyed upserts: the latest record per key is the aggregate's current value, so a
record repeated after a crash is harmless. Each stage commits the offsets it read only after
Kafka acknowledged what it wrote from them (faust flushes its producer's changelogs, and the
outputs' producer is flushed, before it commits), so nothing is lost: this is at-least-once
processing with idempotent, keyed outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import faust
from mode import Service

from mesh_stream import tracing
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    ConfigurationError,
    DeliveryError,
    KafkaAuthorizationError,
    MeshError,
    ProcessorError,
)
from mesh_stream.health import NEWEST_INPUT_HEADER
from mesh_stream.kafka import topics
from mesh_stream.kafka.clients import make_admin, probe
from mesh_stream.kafka.connection import KafkaConnection, unseen_hint
from mesh_stream.processing import faust_seams
from mesh_stream.processing.codec import FramedAvroDecoder, FramedAvroEncoder
from mesh_stream.processing.names import INTERNAL_TOPIC, processor_app_id, sources_group
from mesh_stream.processing.outputs import OutputProducer
from mesh_stream.processing.reads import check_reads
from mesh_stream.processing.rekey import Encode, Envelope, RekeyStage, Route
from mesh_stream.processing.spec import (
    Processor,
    inputs_problem,
    key_field_differs,
    shown_key,
)
from mesh_stream.project import MeshProject, find_project
from mesh_stream.registration import (
    absent_topics,
    ensure_dlq_topics,
    ensure_internal_topic,
    ensure_topics,
    find_product,
    register_product,
    register_reader,
    registered_inputs,
    schema_text,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema import keys
from mesh_stream.settings import MeshSettings

log = logging.getLogger(__name__)

#: "exactly_once" was tried with faust-streaming 0.15.3 / aiokafka 0.14: after a kill -9 and
#: restart the correctness test found lost updates, so at-least-once + dedup is used instead.
PROCESSING_GUARANTEE = "at_least_once"
#: Seconds a worker waits at start for Kafka to answer before it says why it cannot connect
#: (an authentication, TLS or protocol error is said at once).
KAFKA_WAIT_S = 30.0
#: How often faust commits what the aggregate agent has processed (and flushed).
COMMIT_INTERVAL_S = 1.0

#: Records faust's producer buffer holds before faust's consumer waits for it to drain. An
#: aggregate batch queues an output and changelog records per key, thousands for per-order keys;
#: faust's 100 stalled every such batch and logged "producer buffer full" each time.
PRODUCER_BUFFER_MESSAGES = 10_000

#: Longest the broker holds a fetch of the internal topic that leaves a partition out (see
#: faust_seams.adapt_fetch_wait): records of that partition wait at most this long. A fetch
#: of every partition ends with the first new record, so it may wait longer: an idle worker
#: then sends two fetches a second, not a hundred.
FETCH_MAX_WAIT_MS = 10
FETCH_MAX_WAIT_IDLE_MS = 500

#: Events per batch of the aggregate agent; the longest a batch waits to fill while the
#: stream's queue holds more (take_ready_events) is the setting processor_batch_wait_ms.
BATCH_MAX_EVENTS = 2_000
#: A batch is handed over as soon as it holds every event faust has fetched, busy or idle: the
#: re-key stage already gathers a steady flow into one internal record per partition every
#: processor_batch_wait_ms (20 ms), so waiting again here only added latency (at 1,000
#: events/s p50 ~40 -> ~27 ms, for ~14 % more worker CPU per event: docs/design/processing.md).
BATCH_IDLE_S = 0.0


@dataclass(frozen=True)
class ProcessorSpec:
    """Everything a processor worker needs, resolved before faust starts.

    The output and its schema come from the processor's own project; the inputs (their
    descriptors and latest value schemas) from the registry, so a processor builds on other
    domains' products without their YAML.
    """

    output: DataProduct
    inputs: tuple[DataProduct, ...]
    output_schema_id: int
    settings: MeshSettings
    output_schema: str
    input_schemas: Mapping[str, str] = field(default_factory=dict)

    @property
    def app_id(self) -> str:
        """Faust app id; also the consumer group and the prefix of internal topics."""
        return processor_app_id(self.output.name)

    @cached_property
    def connection(self) -> KafkaConnection:
        """The Kafka connection of every client of this worker (faust's and ours)."""
        return KafkaConnection.from_settings(self.settings, default_client_id=self.app_id)


def prepare(
    settings: MeshSettings,
    output_name: str,
    *,
    project: MeshProject | None = None,
    registry: RegistryClient | None = None,
    wait_for_inputs: float = 120.0,
    processor: Processor | None = None,
) -> ProcessorSpec:
    """Resolve the processor's products, create the output's topic, register the output.

    The output is the ``project``'s own descriptor and ``.avsc`` (default: the project
    :func:`~mesh_stream.project.find_project` finds from ``settings``); each input is read
    from the ``registry`` (default: one built from ``settings``): its descriptor and the
    latest schema of its value subject (of the major an :class:`Input` names, if it names
    one). An input not registered within ``wait_for_inputs``
    seconds (its publisher may be starting too) is an error naming it, before any topic is
    created; so is an input whose topic the cluster lacks (its domain creates it, not a
    reader). With ``processor``, the fields it reads are checked against those schemas
    (:func:`~mesh_stream.processing.reads.check_reads`), also before any topic is created,
    and its re-key group is registered on each input with the fields it reads (best effort),
    so the registry refuses an input version that removes or retypes one of them.
    """
    project = project if project is not None else find_project(None, settings, named_by=None)
    output = find_product(project.descriptors(), output_name)
    if processor is not None:  # before waiting for inputs it may not even read
        problem = inputs_problem(processor, output.inputs, output.name)
        if problem is not None:
            raise ConfigurationError(problem)
    output_schema = schema_text(output, project.root)
    with contextlib.ExitStack() as stack:
        if registry is None:
            registry = stack.enter_context(RegistryClient.from_settings(settings))
        majors = {} if processor is None else processor.majors()
        inputs, input_schemas = registered_inputs(
            registry, output, wait=wait_for_inputs, majors=majors
        )
        if processor is not None:
            check_reads(processor, input_schemas)
        conn = KafkaConnection.from_settings(
            settings, default_client_id=processor_app_id(output.name)
        )
        # Kafka checked the way the CLI checks it: a wrong protocol or credential is named
        # at once (TLS against a PLAINTEXT listener waited 30 s in the topics' creation,
        # then said that no broker answers).
        probe(conn, timeout=KAFKA_WAIT_S)
        absent = absent_topics(conn, inputs)
        if absent:
            raise ConfigurationError(_absent_inputs_message(absent, output, conn))
        if majors:  # an earlier major's topic may have other partitions than the current's
            inputs = tuple(
                _as_on_cluster(conn, product) if product.name in majors else product
                for product in inputs
            )
        ensure_topics(conn, (output,))
        try:  # where undecodable input records go: their owners' to create
            ensure_dlq_topics(conn, inputs, every=True)
        except KafkaAuthorizationError as exc:  # a secured cluster: readers may not create it
            log.warning(
                "%s; the processor starts all the same, and an undecodable record of that input "
                "stops it (nothing is committed past it) until the topic exists",
                exc,
            )
        schema_id = register_product(registry, output, project.root, wait_for_inputs=0)
        if processor is not None:  # the registry then protects what the processor reads
            group = sources_group(processor_app_id(output.name))
            module = getattr(processor.apply, "__module__", None) or "?"
            for declared in processor.inputs:
                if declared.major is not None:
                    # the registry checks a group's `reads` against the product's current
                    # major; one held at an earlier major may read fields the current one
                    # dropped (h46: refused, with advice that did not apply)
                    log.info(
                        "%s: input %s is held at major %d; its re-key group is not registered "
                        "as a reader (the registry protects the current major's fields)",
                        output.name,
                        declared.product,
                        declared.major,
                    )
                    continue
                _warn_if_declared_elsewhere(registry, declared.product, group, module)
                register_reader(
                    registry,
                    declared.product,
                    group,
                    declared.reads,
                    description=f"{REKEY_READER} {output.name} ({module})",
                )
    spec = ProcessorSpec(output, inputs, schema_id, settings, output_schema, input_schemas)
    spec.__dict__["connection"] = conn  # the cached_property's value: built once
    return spec


#: How a processor's re-key group is described where it is registered as a reader, before
#: the output's name and, in parentheses, the module its ``apply`` comes from.
REKEY_READER = "the re-key stage of the processor of"


def _warn_if_declared_elsewhere(
    registry: RegistryClient, product: str, group: str, module: str
) -> None:
    """Warn when ``group`` was registered on ``product`` by a worker whose processor's
    ``apply`` came from another module than ``module``: two different processors declared for
    one output share its consumer groups, split its partitions between them and mix their
    outputs, without an error (h55). Best effort: a registry that cannot say says nothing."""
    try:
        registered = registry.consumers(product)
    except MeshError:
        return
    for entry in registered:
        said = str(entry.get("description") or "")
        if entry.get("group") != group or not said.startswith(REKEY_READER):
            continue
        found = re.fullmatch(r".* \(([^()]+)\)", said)
        if found is None or found.group(1) == module:
            return
        log.warning(
            "consumer group %s on %s was registered by a worker whose processor comes from "
            "module %s; this one runs %s. Two different processors for one output share its "
            "consumer groups, split its partitions between them and mix their outputs: run "
            "one of them (if %s no longer runs anywhere, this is a renamed module: ignore this)",
            group,
            product,
            found.group(1),
            module,
            found.group(1),
        )
        return


def _as_on_cluster(conn: KafkaConnection, product: DataProduct) -> DataProduct:
    """An input held at an earlier major with that major's topic's partition count: its
    descriptor is the current major's, whose count may differ, and the window clock waits
    for every input partition (h46: windows never forgotten, or forgotten early)."""
    state = topics.describe_topic(make_admin(conn, {"log_level": 0}), conn, product.topic)
    if state is None or state.partitions == product.partitions:
        return product
    return product.model_copy(update={"partitions": state.partitions})


def _absent_inputs_message(
    absent: Sequence[DataProduct], output: DataProduct, conn: KafkaConnection
) -> str:
    named = ", ".join(f"{product.name} ({product.topic})" for product in absent)
    owners = sorted({product.domain for product in absent})
    what = (
        f"the topic of input {named} does not"
        if len(absent) == 1
        else (f"the topics of inputs {named} do not")
    )
    hidden = "".join(dict.fromkeys(unseen_hint(conn, product.domain) for product in absent))
    return (
        f"processor {output.name}: {what} exist on the cluster at "
        f"{conn.bootstrap_servers}{hidden}, though the registry has the product; a processor "
        f"never creates its inputs' topics: their domain ({', '.join(owners)}) does, with "
        "`mesh products apply` in its project or its publisher's first start (or point "
        "MESH_BOOTSTRAP_SERVERS at the cluster that has them)"
    )


def processor_app(spec: ProcessorSpec) -> faust.App:
    """A faust app with RocksDB state under ``MESH_DATA_DIR/processors/<app id>``."""
    conn = spec.connection
    # Changelog and repartition topics faust creates get the cluster's replication factor,
    # as every topic the mesh creates does (mesh_stream.kafka.topics).
    replicas = topics.cluster_info(conn).default_replication_factor
    datadir = Path(spec.settings.data_dir) / "processors" / spec.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        spec.app_id,
        broker=conn.faust_broker_url(),
        broker_credentials=conn.faust_broker_credentials(),
        store="rocksdb://",
        datadir=str(datadir),
        processing_guarantee=PROCESSING_GUARANTEE,
        topic_partitions=spec.output.partitions,
        topic_replication_factor=replicas,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=COMMIT_INTERVAL_S,
        # A worker killed hard is noticed after this long, so its replacement starts soon.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        # No linger: a send goes out at once, and sends made while a request is in flight
        # wait for it and go together. A 5 ms linger (when every key had its own internal
        # record) added 5 ms per hop; now it saved ~5% CPU at 1,000 events/s for ~13 ms of p50.
        producer_linger=0.0,
        # Internal records carry a partition's events of a batch; bigger produce batches, fewer
        # requests (faust's default is 16 KiB).
        producer_max_batch_size=256 * 1024,
        web_enabled=False,
        # Static membership: a restarted worker rejoins without waiting out the session.
        consumer_group_instance_id=spec.settings.processor_instance_id,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def size_producer_buffer() -> None:
        faust_seams.size_producer_buffer(app, PRODUCER_BUFFER_MESSAGES)
        faust_seams.flush_producer_buffer_fully(app)

    async def adapt_fetch_wait() -> None:
        read = [f"{spec.app_id}-{INTERNAL_TOPIC}"]
        waits = (FETCH_MAX_WAIT_MS, FETCH_MAX_WAIT_IDLE_MS)
        if not await faust_seams.adapt_fetch_wait(app, read, *waits):
            log.warning(
                "%s: faust's consumer did not start; its fetch wait stays 1.5 s", spec.app_id
            )

    app.task(size_producer_buffer)
    app.task(adapt_fetch_wait)
    faust_seams.take_consumer_calls_as_they_come(app)
    return app


class StopOnSendError(faust.Sensor):
    """Stops the worker when Kafka refuses a record it sent (output, changelog, internal).

    Faust itself only logs such an error and goes on, committing the offsets of what it read,
    so the update would be lost without anyone noticing; a stopped worker is visible, and it
    is restarted (by `mesh up`'s supervisor) from its last commit. The worker is stopped by
    crashing ``service`` (the re-key stage): a crash of the app itself leaves faust's worker
    process waiting.
    """

    def __init__(self, app_id: str, service: Service) -> None:
        super().__init__()
        self.app_id = app_id
        self.service = service
        self._crashing: asyncio.Future[None] | None = None
        #: The first error Kafka refused a record with (the worker is stopping).
        self.refused: BaseException | None = None

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        del producer, state
        if self._crashing is None:
            log.error("Kafka refused a record of %s: %r; stopping the worker", self.app_id, exc)
            self.refused = exc
            self._crashing = asyncio.ensure_future(self.service.crash(exc))


def confirmed_flush(
    app: faust.App, refusals: StopOnSendError, outputs: OutputProducer
) -> Callable[[], Awaitable[None]]:
    """The outputs' flush, then faust's producer flush, raising if Kafka refused any record so
    far: faust's flush returns once every send is done, whether or not Kafka took it."""

    async def flush() -> None:
        outputs.flush()
        await app.producer.flush()
        if refusals.refused is not None:
            raise DeliveryError(
                f"Kafka refused a record of {refusals.app_id} ({refusals.refused!r}): "
                f"nothing more is written"
            )

    return flush


def internal_topic(app: faust.App, spec: ProcessorSpec, name: str) -> faust.TopicT:
    """An internal topic of this processor (created now, see ensure_internal_topic); its
    values are bytes the engine encodes."""
    topic = f"{spec.app_id}-{name}"
    ensure_internal_topic(spec.connection, topic, spec.output.partitions)
    return app.topic(
        topic,
        internal=True,
        partitions=spec.output.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )


def changelogged_table(app: faust.App, spec: ProcessorSpec, name: str) -> Any:
    """A RocksDB table whose changelog topic (compacted) exists before faust starts."""
    ensure_internal_topic(
        spec.connection,
        f"{spec.app_id}-{name}-changelog",
        spec.output.partitions,
        compacted=True,
    )
    return app.Table(name, partitions=spec.output.partitions)


def add_rekey_stage(
    app: faust.App,
    spec: ProcessorSpec,
    target: faust.TopicT,
    route: Route,
    decoder: FramedAvroDecoder,
    encode: Encode,
    on_crash: Callable[[BaseException], None] | None = None,
    *,
    clocked: bool = True,
) -> RekeyStage:
    """Forward every input record through ``route`` to ``target``; undecodable ones to DLQ.

    The stage (:class:`~mesh_stream.processing.rekey.RekeyStage`) starts with the app's other
    services once the tables are recovered, and stops before the app's producer. Only a
    ``clocked`` (windowed) aggregate needs the window clock's header on internal records.
    """
    stage = RekeyStage(app, spec, target, route, decoder, encode, on_crash, clocked=clocked)

    async def start_rekey_stage() -> None:
        await app.add_runtime_dependency(stage)

    app.task(start_rekey_stage)
    return stage


Update = Callable[[str, list[Envelope]], None]
"""(key, the key's envelopes of one batch in order) -> None; reads and writes tables, publishes.

It must not await: a batch is processed without a suspension point, so a stop never cuts a
batch in half after faust has taken it for acknowledged."""


class Forgetting(Protocol):
    """What a batch asks of a windowed processor's expiry (:class:`.engine.Aggregation`)."""

    @property
    def generation(self) -> int: ...

    def settle(self, partition: int) -> bool: ...

    def save_clock(self, partition: int) -> None: ...

    def forget_due(self, partition: int) -> None: ...


Headers = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None
"""A Kafka record's headers as faust hands them over."""

Unpack = Callable[
    [bytes, bytes | None, int, int, Headers],
    list[tuple[str, list[Envelope]]],
]
"""(value, Kafka key, partition, offset, headers) of an internal record -> each key's envelopes."""


async def handle_batch(
    groups: Mapping[int, Mapping[str, list[Envelope]]],
    update: Update,
    forgetting: Forgetting | None,
    flush: Callable[[], Awaitable[None]],
    within: Callable[[int], contextlib.AbstractContextManager[None]],
) -> None:
    """Update each partition's keys of a batch (``within`` that partition), then forget the
    windows it made due.

    The updates run without a suspension point. Forgetting then goes in three steps, each
    after a ``flush`` (faust's producer: every record sent so far in Kafka, see
    :func:`confirmed_flush`). A forgotten window's clock makes a replay drop the window's
    events, since its last output counts them: so first the outputs, then the clocks, and only
    then the tombstones, which for the seen table go to another topic than the clock. A crash
    between two steps loses nothing; a revoke during a flush leaves the forgetting to the
    partition's next owner.
    """
    due = []
    for partition, by_key in groups.items():
        with within(partition):
            for key, envelopes in by_key.items():
                update(key, envelopes)
            if forgetting is not None and forgetting.settle(partition):
                due.append(partition)
    if forgetting is None or not due:
        return
    generation = forgetting.generation
    await flush()
    if forgetting.generation != generation:
        return
    for partition in due:
        with within(partition):
            forgetting.save_clock(partition)
    await flush()
    if forgetting.generation != generation:
        return
    for partition in due:
        with within(partition):
            forgetting.forget_due(partition)


def _under_events(
    current: Mapping[int, faust.EventT[Any]],
) -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """Per partition, a block with that partition's event of a batch made current."""

    def within(partition: int) -> contextlib.AbstractContextManager[None]:
        return faust_seams.current_event(current[partition])

    return within


def add_aggregate_agent(
    app: faust.App,
    spec: ProcessorSpec,
    source: faust.TopicT,
    update: Update,
    unpack: Unpack,
    crash: Callable[[BaseException], Awaitable[None]],
    forgetting: Forgetting | None = None,
    flush: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Feed the forwarded envelopes of each batch, grouped by key, to ``update``; with
    ``forgetting`` (a windowed processor), then forget the windows past their retention
    (:func:`handle_batch`, after ``flush``, by default faust's producer flush).

    Faust tables write a changelog record to the partition of the *current event*, which
    the batching does not set in the agent's task; so each partition's keys are updated
    with one of that partition's events made current (every key lives in one partition).

    If ``update`` raises, the batch is never acknowledged (so never committed), ``crash``
    stops the worker, and the agent waits to be stopped with it: faust would otherwise restart
    the agent, which would go on past the failed batch.
    """

    flush_all = flush if flush is not None else app.producer.flush

    # A coroutine, not an async generator: faust's loop over a generator agent's values
    # (``Agent._slurp``) logs and looks up the current event once per batch, for nothing here.
    async def aggregate(stream: faust.StreamT[Any]) -> None:
        within_s = spec.settings.processor_batch_wait_ms / 1000
        take = faust_seams.take_ready_events(
            stream,
            BATCH_MAX_EVENTS,
            within_s,
            idle_s=BATCH_IDLE_S,
            crash=crash,
            stall_s=spec.settings.processor_stall_seconds,
        )
        async for events in take:
            current: dict[int, faust.EventT[Any]] = {}
            groups: dict[int, dict[str, list[Envelope]]] = {}
            try:
                for event in events:
                    message = event.message
                    partition = message.partition
                    current.setdefault(partition, event)
                    keys = groups.setdefault(partition, {})
                    # The position that dedup and replay guards use is the internal topic's.
                    for key, envelopes in unpack(
                        event.value, message.key, partition, message.offset, message.headers
                    ):
                        keys.setdefault(key, []).extend(envelopes)
                within = _under_events(current)
                await handle_batch(groups, update, forgetting, flush_all, within)
            except Exception as exc:
                faust_seams.withhold_acks(events)
                await crash(exc)
                await asyncio.Event().wait()  # until the stop cancels this agent

    app.agent(source, name=f"{spec.app_id}-aggregate")(aggregate)


class KeyedOutput:
    """Publishes the current value of one key to the output product (a keyed upsert).

    With tracing active (asked once), a record published while a span is current (the
    aggregate's, see :class:`~mesh_stream.tracing.ProcessTrace`) gets a PRODUCER span, child
    of it, whose context its ``traceparent`` header carries; the span ends once the record is
    in the producer's queue (:class:`~mesh_stream.processing.outputs.OutputProducer`).
    """

    def __init__(self, spec: ProcessorSpec, sender: OutputProducer) -> None:
        self.topic = spec.output.topic
        self.sender = sender
        self.encoder = FramedAvroEncoder(
            spec.output_schema,
            spec.output_schema_id,
            where=spec.output.name,
        )
        self.trace = tracing.PublishTrace(spec.output.topic) if tracing.active() else None
        #: The descriptor's key field, whose value must be the record's Kafka key.
        self.key_field = spec.output.key_field
        self.key_text = keys.field_key_text(json.loads(spec.output_schema), self.key_field)

    def publish(self, key: str, record: Mapping[str, Any] | None, newest_input_ms: int) -> None:
        """Queue the record in the output producer, flushed before offsets are committed;
        None queues a tombstone of ``key`` (a session merged into another).

        Its ``mesh.input.newest-ms`` header carries the timestamp of the newest input record
        it reflects, so anyone (the product monitor) can tell the pipeline's end-to-end
        latency from the output alone: its own timestamp minus that one. A record whose
        ``key_field`` value is not its key is a :class:`ProcessorError`: readers of the
        product (and its compaction) go by the key.
        """
        key_field = self.key_field
        if record is None:
            value: bytes | None = None
        elif key_field is not None and key_field_differs(key_field, key, record, self.key_text):
            value = record[key_field]
            as_key = self.key_text(value) if value is not None else None
            raise ProcessorError(
                f"its key field {key_field!r} is {shown_key(value)} (as a key: "
                f"{shown_key(as_key)}), but the record is published under the processor's key "
                f"{shown_key(key)}; the two must be equal"
            )
        else:
            value = self.encoder.encode(record)
        stamp = str(newest_input_ms).encode()
        if self.trace is None or not tracing.in_span():
            self.sender.send(self.topic, key.encode(), value, {NEWEST_INPUT_HEADER: stamp})
            return
        headers, span = self.trace.start()
        headers[NEWEST_INPUT_HEADER] = stamp
        try:
            self.sender.send(self.topic, key.encode(), value, headers)
        finally:
            self.trace.end(span)


def schema_decoder(spec: ProcessorSpec) -> FramedAvroDecoder:
    """Decoder of the input products, fetching writer schemas by id from the registry."""
    return FramedAvroDecoder(RegistryClient.from_settings(spec.settings).get_schema)
