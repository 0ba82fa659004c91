"""The re-key stage of a processor: input products in, one internal record per key and batch out.

Faust's streams cost far more CPU per input record than a batch consumer (an event object, a
queue hop, two asyncio tasks and the acknowledgement machinery: 180-213 µs against 1.3-1.7
µs per record on a loaded 2-core machine, ``benchmarks/faust_transport.py``), and faust's
``confluent://`` transport did not read at all (docs/design/processing.md). So the input
products are not read through a faust stream: :class:`RekeyStage`, a service of the faust
app, reads them with a confluent-kafka consumer in batches (librdkafka fetches and parses in
C, in its own threads), decodes each record, asks the processor's ``route`` for its key, and
sends each partition's events of a batch, grouped by key, as one record (see
:mod:`mesh_stream.processing.engine`) to the processor's internal topic through faust's
producer, on the partition faust's producer would give the key itself
(:func:`~mesh_stream.kafka.partitions.key_partition`), where its table partition is.

Offsets of the input products are committed (consumer group ``<app id>-rekey``) only after
Kafka acknowledged every internal record made from them, so nothing is lost: a crash replays
the records after the last commit, and the aggregate stage counts a replayed event once (see
:mod:`mesh_stream.processing.dedup`). Only partitions still assigned are committed, so after a
rebalance this worker never moves back the offsets of their new owner. A clean stop finishes
the batches in hand and commits them (waiting at most ``STOP_TIMEOUT_S`` for Kafka), so a
restart replays nothing. A record whose writer schema is new while the registry is
unavailable waits for it (:func:`decode_when_registry_answers`, up to
``MESH_CONSUMER_REGISTRY_WAIT_SECONDS``), and nothing after it is read meanwhile. A record
that cannot be decoded (an unknown schema id included) goes, unchanged, to its product's
dead-letter topic through the SDK consumer's writer
(:class:`mesh_stream.kafka.dlq.DeadLetterWriter`, the same ``mesh.dlq.*`` headers), and the
stage goes on once Kafka has kept it. Any other failure (a bug in the
processor's ``key``, a send Kafka refuses, a fatal consumer error such as a static member
fenced out of its group) crashes the stage, which stops the worker without committing what
it read. A crash (the aggregate's too) is noted in the group's committed offsets: committed
again, unchanged, with the crash's time and line as metadata (a partition with nothing
committed gets its first record), which the product monitor shows (:meth:`RekeyStage.crash`).
Tombstones on the inputs (records with no value: deletions) are passed over.

When OpenTelemetry tracing is active (:mod:`mesh_stream.tracing`, asked once as the stage is
built), each envelope also carries its input record's ``traceparent`` (and ``tracestate``)
header (:data:`TRACE`), for the span the aggregate stage publishes under.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import faust
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from mode import Service
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from mesh_stream import tracing
from mesh_stream.descriptor import DataProduct, topic_for
from mesh_stream.errors import DeserializationError, RegistryError, RegistryUnavailableError
from mesh_stream.kafka import dlq
from mesh_stream.kafka.clients import earlier_reads, is_fatal, make_consumer
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.processing import faust_seams
from mesh_stream.processing.names import crash_note, sources_group

if TYPE_CHECKING:
    from mesh_stream.processing.app import ProcessorSpec
    from mesh_stream.processing.codec import FramedAvroDecoder

log = logging.getLogger(__name__)

#: Most input records in one batch; the longest a batch waits to fill while the input is busy
#: is the setting processor_batch_wait_ms (a batch opened while it was idle does not wait).
BATCH_MAX_RECORDS = 2_000
#: Longest one read waits for a first record; the stage commits and checks for a stop between.
IDLE_POLL_S = 0.1
#: Most events in one internal record.
ENVELOPES_PER_RECORD = 500
#: An internal record longer than this is split in two (and again), so that events reading
#: large fields still travel in records well under the producer's and Kafka's limit (1 MB).
RECORD_SPLIT_BYTES = 256 * 1024
#: Room left under faust's ``producer_max_request_size`` for a record's own overhead and
#: its clock header: an internal record holding one event may take the rest.
RECORD_HEADROOM_BYTES = 64 * 1024
#: Batches forwarded but not yet acknowledged by Kafka; reading goes on while they are in flight.
BATCHES_IN_FLIGHT = 4
#: Acknowledged input offsets are committed at most this often (and at a clean stop), as
#: faust commits its own consumer's: small batches must not mean a commit request each.
COMMIT_INTERVAL_S = 1.0
#: librdkafka's largest ``max.poll.interval.ms`` (a day).
MAX_POLL_INTERVAL_CAP_MS = 86_400_000
#: Back-off between attempts while the registry is unavailable (seconds, doubling).
REGISTRY_RETRY_FIRST_S = 0.1
REGISTRY_RETRY_MAX_S = 2.0
#: Longest a stop waits for Kafka to acknowledge the batches in flight before leaving them.
STOP_TIMEOUT_S = 30.0

Wire = list[Any]
"""One forwarded event as the re-key stage sends it (the engine's ``route`` makes it):
``[input index, partition, offset, arrival ms, event ms, [read field values], window, trace]``,
the position and time of its input record, the values of its input's ``reads`` in order, its
window ``[key, start ms, end ms]`` (or None) and its trace context (see TRACE)."""


class FatalKafkaStop(KafkaException):
    """The re-key stage stops on a fatal Kafka error it has already logged in one line."""


#: Longest the crash note may take to reach Kafka (reading the offsets, then committing them
#: again): the worker's hard exit (``engine.CRASH_EXIT_S``) leaves the rest to faust's stop.
#: A crash on the first records of a fresh group needs more than 1.5 s (h55: the group's
#: committed offsets and a partition's first offset, asked for, took longer: no note was
#: left); a partition's first offset now comes from what was fetched when it can.
NOTE_TIMEOUT_S = 2.5


def crash_text(output: str, reason: BaseException) -> str:
    """The line a crash is noted with: the one the worker logged (an exception carrying it as
    ``crash_line``, or one raised while handling such), else the exception itself."""
    seen: set[int] = set()
    exc: BaseException | None = reason
    while exc is not None and id(exc) not in seen:
        line = getattr(exc, "crash_line", None)
        if isinstance(line, str):
            return line
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return f"processor {output} stopped: {type(reason).__name__} {reason}"


#: Header of every internal record: per input partition, how far a windowed processor's clock
#: may move once the record is handled (:func:`clock_bounds`). A batch's events reach a
#: partition grouped by key, in one or more records, so not in arrival order: until the
#: batch's last record for a partition, the clock may reach only the batch's oldest arrival
#: there, and with it, the newest (an event still to come is older than neither).
CLOCK_HEADER = "mesh.rekey.clock"

#: Place in a :data:`Wire` of the input record's trace context (``traceparent`` and
#: ``tracestate``), which the stage sets when tracing is active; None otherwise.
TRACE = 7

Route = Callable[[str, int, int, dict[str, Any], int], Iterable[tuple[str, Wire]]]
"""(input topic, partition, offset, decoded record, arrival ms) -> the (internal key, wire)
pairs to forward: none drops the record, several send it to several keys (windows)."""

Encode = Callable[[list[tuple[str, list[Wire]]], int], list[bytes]]
"""((key, its wires) of one partition of a batch, the most bytes one record may take) -> the
internal records' values, in order (see :meth:`~.engine.Aggregation.encode_records`)."""


@dataclass(slots=True)
class Envelope:
    """One forwarded event as the aggregate stage sees it: where it came from, and its fields.

    ``partition``, ``offset`` and ``index`` are its place on the internal topic (the internal
    record's position and the event's place in it), which dedup and replay guards use;
    ``topic``, ``source_partition`` and ``source_offset`` are its input record's, which a
    crash report names.
    """

    input: str
    topic: str
    source_partition: int
    source_offset: int
    arrival_ms: int
    event_ms: int
    fields: dict[str, Any]
    #: ``[key, start ms, end ms]`` of its window, for a windowed processor.
    window: list[Any] | None
    #: Its input record's trace context, when tracing was active.
    trace: dict[str, str] | None
    partition: int
    offset: int
    index: int = 0

    @property
    def where(self) -> str:
        """Its input record, e.g. ``orders.order-placed.v1[2]@1041``."""
        return f"{self.topic}[{self.source_partition}]@{self.source_offset}"


async def decode_when_registry_answers(
    attempt: Callable[[], Awaitable[dict[str, Any]]],
    where: str,
    error: RegistryError,
    wait_s: float,
    app_id: str,
) -> dict[str, Any]:
    """The record at ``where`` decoded once the registry answers for its writer schema.

    ``attempt`` decodes it again (off the event loop); ``error`` is why the first try failed.
    Tries again with back-off (tenacity: 0.1 s doubling up to 2 s) while the registry is
    unavailable; nothing after the record is read meanwhile, so nothing is skipped or
    committed past it.
    After ``wait_s`` it logs one line and raises :class:`RegistryUnavailableError`, which stops
    the worker; a restarted worker reads the record again. An answer that will not change
    (no such schema) is a :class:`DeserializationError`: a dead letter, as any other.
    """
    log.warning(
        "re-key stage of %s: %s needs a writer schema and the registry is unavailable (%s); "
        "waiting up to %.0f s for it, reading nothing else meanwhile",
        app_id,
        where,
        error,
        wait_s,
    )
    started = time.monotonic()
    retrying = AsyncRetrying(
        retry=retry_if_exception(_registry_away),
        wait=wait_exponential(multiplier=REGISTRY_RETRY_FIRST_S, max=REGISTRY_RETRY_MAX_S),
        stop=stop_after_delay(wait_s),
        reraise=True,
    )
    try:
        await asyncio.sleep(REGISTRY_RETRY_FIRST_S)  # the read that failed was the first try
        record: dict[str, Any] = await retrying(attempt)
    except RegistryError as exc:
        if not exc.retryable:  # an answer that will not change: a dead letter
            raise DeserializationError(f"{where}: {exc}") from exc
        line = (
            f"re-key stage of {app_id} stops: {where} needs a writer schema and the "
            f"registry has not answered for {time.monotonic() - started:.0f} s ({exc}); "
            f"nothing from this record on is committed, and a restarted worker reads it "
            f"again (set MESH_CONSUMER_REGISTRY_WAIT_SECONDS to wait longer)"
        )
        log.error("%s", line)
        raise RegistryUnavailableError(line) from exc
    log.warning(
        "re-key stage of %s: the registry answered after %.1f s; reading on",
        app_id,
        time.monotonic() - started,
    )
    return record


def _registry_away(exc: BaseException) -> bool:
    """Whether a decode may succeed later: the registry did not answer (not: it answered no)."""
    return isinstance(exc, RegistryError) and exc.retryable


def records_of(
    groups: list[tuple[str, list[Wire]]], most: int
) -> Iterator[list[tuple[str, list[Wire]]]]:
    """``groups`` (key, wires) split into records of at most ``most`` wires each, in order (a
    key's wires may continue in the next record)."""
    record: list[tuple[str, list[Wire]]] = []
    size = 0
    for key, wires in groups:
        start = 0
        while start < len(wires):
            piece = wires[start : start + most - size]
            record.append((key, piece))
            size += len(piece)
            start += len(piece)
            if size >= most:
                yield record
                record, size = [], 0
    if record:
        yield record


def clock_bounds(groups: Iterable[tuple[str, list[Wire]]]) -> tuple[bytes, bytes]:
    """The :data:`CLOCK_HEADER` values of the records made of ``groups`` (one partition's keys
    of a batch): for all but the last record, then for the last, as JSON
    ``[[input index, input partition, arrival ms], ...]`` with the oldest, then the newest,
    arrival of each input partition's events among them."""
    oldest: dict[tuple[int, int], int] = {}
    newest: dict[tuple[int, int], int] = {}
    for _key, wires in groups:
        for wire in wires:
            source, arrival = (wire[0], wire[1]), wire[3]
            if arrival < oldest.get(source, arrival + 1):
                oldest[source] = arrival
            if arrival > newest.get(source, arrival - 1):
                newest[source] = arrival
    return (
        json.dumps([[*source, ms] for source, ms in sorted(oldest.items())]).encode(),
        json.dumps([[*source, ms] for source, ms in sorted(newest.items())]).encode(),
    )


def offsets_to_commit(
    acknowledged: list[TopicPartition], owned: list[TopicPartition]
) -> list[TopicPartition]:
    """The newest acknowledged offset of each partition this worker still owns.

    ``acknowledged`` lists next offsets batch by batch, oldest first. A partition revoked
    meanwhile belongs to another worker, whose own commits this one must not move back.
    """
    assigned = {(tp.topic, tp.partition) for tp in owned}
    latest = {(tp.topic, tp.partition): tp for tp in acknowledged}
    return [tp for where, tp in latest.items() if where in assigned]


@dataclass(frozen=True)
class MajorMove:
    """An input now read at a later major than the re-key group last read it at."""

    product: str
    topic: str
    #: The earlier majors' topics the group committed offsets on.
    earlier: tuple[str, ...]
    #: Records of those topics past the group's committed offsets: never read by it now.
    unread: int

    def describe(self, app_id: str, group: str) -> str:
        left = (
            f"{self.unread:,} record(s) of {', '.join(self.earlier)} it had not read, and any "
            f"published there from now on, are not read by this processor (republish them to "
            f"{self.topic} if it must count them)"
            if self.unread
            else f"it had read everything on {', '.join(self.earlier)}; records published "
            f"there from now on are not read by this processor"
        )
        return (
            f"processor {app_id}: input {self.product} moved to {self.topic}: re-key group "
            f"{group} committed offsets on {', '.join(self.earlier)} and none on {self.topic} "
            f"yet, so it reads {self.topic} from its first record; {left}"
        )


def major_moves(
    consumer: Consumer, products: Iterable[DataProduct], timeout: float = 10.0
) -> list[MajorMove]:
    """The inputs (products past their first major) whose current topic ``consumer``'s group
    has committed nothing on while it has committed on an earlier major's topic, as the SDK
    consumer tells of them (:func:`~mesh_stream.kafka.clients.earlier_reads`)."""
    by_topic = {product.topic: product for product in products if product.version > 1}
    earlier = {
        topic: [topic_for(product.name, major) for major in range(1, product.version)]
        for topic, product in by_topic.items()
    }
    return [
        MajorMove(by_topic[topic].name, topic, read.topics, read.unread)
        for topic, read in earlier_reads(consumer, earlier, timeout=timeout).items()
    ]


def read_batch(
    consumer: Consumer, count: int, within: float, last_read: float
) -> tuple[list[Message], float]:
    """Up to ``count`` records, and the monotonic time they were read.

    Waits up to IDLE_POLL_S for a first record. Then, while the input is busy (the last batch
    was read, at ``last_read``, less than ``within`` ago), it waits for more until ``within``
    after that batch, so a steady flow is read in batches ``within`` apart; otherwise it takes
    only what librdkafka has already fetched, so a trickle is not held back.
    """
    first = consumer.consume(1, IDLE_POLL_S)
    if not first:
        return first, last_read
    left = within - (time.monotonic() - last_read)
    batch = first + consumer.consume(count - 1, max(0.0, left))
    return batch, time.monotonic()


class RekeyStage(Service):
    """Reads the input products in batches and forwards them, re-keyed, to ``target``."""

    def __init__(
        self,
        app: faust.App,
        spec: ProcessorSpec,
        target: faust.TopicT,
        route: Route,
        decoder: FramedAvroDecoder,
        encode: Encode,
        on_crash: Callable[[BaseException], None] | None = None,
        *,
        clocked: bool = True,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.spec = spec
        #: The internal topic the batches go to (sent with faust_seams.send_together).
        self.target_name = target.get_topic_name()
        self.route = route
        self.decoder = decoder
        self.encode = encode
        #: The most bytes one internal record may take (faust's producer refuses more).
        self.record_max_bytes = app.conf.producer_max_request_size - RECORD_HEADROOM_BYTES
        self.on_crash = on_crash
        #: Whether internal records carry CLOCK_HEADER (only a windowed aggregate reads it).
        self.clocked = clocked
        #: Each input's dead-letter topic (``prepare`` made them).
        self.dead_letter_topics = {product.topic: product.dlq_topic for product in spec.inputs}
        #: Tombstones on the inputs passed over since the worker started.
        self.deletions_skipped = 0
        self.group_id = sources_group(spec.app_id)
        #: Writes the records no input schema decodes, as the SDK consumer does.
        self._dead_letters = dlq.DeadLetterWriter(spec.connection, self.group_id)
        #: How long a record waits for an unavailable registry before the stage stops.
        self.registry_wait_s = spec.settings.consumer_registry_wait_seconds
        #: Whether envelopes carry their input record's ``traceparent`` (asked once).
        self.traced = tracing.active()
        self._consumer: Consumer | None = None
        # Every consumer call runs on this one thread, so close never overlaps a fetch.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mesh-rekey")
        self._in_flight: list[tuple[asyncio.Future[Any], list[TopicPartition]]] = []
        self._acknowledged: list[TopicPartition] = []  # not committed yet, oldest first
        self._last_commit = 0.0
        #: How long a batch waits to fill while the input is busy (see read_batch).
        self.batch_wait_s = spec.settings.processor_batch_wait_ms / 1000
        self._last_read = -self.batch_wait_s  # monotonic time the last batch was read
        self._finished = asyncio.Event()
        #: A fatal error librdkafka reported: the consumer can do nothing more (see _on_error).
        self._fatal: KafkaError | None = None
        #: Set once the worker crashes: a second failure while the first is noted is not news.
        self._crashing = False
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        config: dict[str, Any] = {
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # A worker killed hard is noticed after this long, as on faust's own consumer.
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            # Waiting for the registry stops reading; the group must not drop the stage meanwhile
            # (librdkafka's default is 300 s).
            "max.poll.interval.ms": min(
                MAX_POLL_INTERVAL_CAP_MS, max(300_000, int((self.registry_wait_s + 60) * 1000))
            ),
            "on_commit": self._on_commit,
            "error_cb": self._on_error,
        }
        instance = self.spec.settings.processor_instance_id
        if instance is not None:  # a restart takes its partitions back without waiting
            config["group.instance.id"] = instance
        consumer = make_consumer(self.spec.connection, config)
        self._consumer = consumer
        # said before reading, as the SDK consumer does: what the group leaves behind
        for move in await self._call(major_moves, consumer, self.spec.inputs):
            log.warning("%s", move.describe(self.spec.app_id, self.group_id))
        consumer.subscribe([product.topic for product in self.spec.inputs])
        self.add_future(self._run())

    async def crash(self, reason: BaseException) -> None:
        """Stop the worker because of ``reason`` (first telling ``on_crash``, with which the
        entry point arms a hard exit in case faust cannot stop). Nothing uncommitted is lost:
        like a kill -9, the next start reads it again. The crash line is left in the group's
        committed offsets (their metadata) for the product monitor (:meth:`_leave_note`)."""
        if not self.crashed and not self._crashing:
            self._crashing = True
            if self.on_crash is not None:
                self.on_crash(reason)
            try:
                await asyncio.wait_for(self._leave_note(reason), NOTE_TIMEOUT_S)
            except Exception as exc:  # best effort: the crash line is in the log already
                log.info("re-key stage of %s: crash not noted in Kafka: %r", self.spec.app_id, exc)
        await super().crash(reason)

    async def _leave_note(self, reason: BaseException) -> None:
        """Commit the group's committed offsets again, unchanged, with the crash's time and
        line as their metadata: how the product monitor learns that the processor stopped,
        and why (it shows the line while the output has no record newer than the crash).
        A partition the group committed nothing on gets its first record, where the group
        starts anyway; one whose committed offset could not be read is left alone."""
        consumer = self._consumer
        if consumer is None:
            return
        note = crash_note(crash_text(self.spec.output.name, reason), int(time.time() * 1000))
        deadline = time.monotonic() + NOTE_TIMEOUT_S

        def commit_note() -> None:
            owned = consumer.assignment()
            if not owned:
                return
            committed = consumer.committed(owned, timeout=NOTE_TIMEOUT_S / 2)
            offsets = []
            for tp in committed:
                offset = tp.offset
                if tp.error is not None:
                    continue
                if offset < 0:  # nothing committed: the first record, where the group starts
                    low, _high = consumer.get_watermark_offsets(tp, cached=True)  # if fetched
                    left = deadline - time.monotonic()
                    if low < 0 and left > 0.1:
                        low, _high = consumer.get_watermark_offsets(tp, timeout=left / 2)
                    offset = low
                if offset >= 0:
                    offsets.append(TopicPartition(tp.topic, tp.partition, offset, metadata=note))
            if offsets and time.monotonic() < deadline:
                consumer.commit(offsets=offsets, asynchronous=False)

        await self._call(commit_note)

    async def on_stop(self) -> None:
        """Let the batches in hand finish and commit them, then leave the consumer group.

        Kafka may not acknowledge them (a broker gone): after STOP_TIMEOUT_S the stage leaves
        without committing them, and the next start reads them again.
        """
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._finished.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "re-key stage of %s: %d batches not acknowledged after %.0f s; they are "
                    "not committed and will be read again",
                    self.spec.app_id,
                    len(self._in_flight),
                    STOP_TIMEOUT_S,
                )
            await self._call(self._consumer.close)
            self._consumer = None
        await self._call(self._dead_letters.close)
        self._thread.shutdown(wait=True)

    async def _run(self) -> None:
        try:
            while not self.should_stop:
                self._raise_if_fatal()
                messages = await self._call(self._consume, BATCH_MAX_RECORDS)
                if messages:
                    self._in_flight.append(await self._forward(messages))
                await self._commit_acknowledged(wait=len(self._in_flight) >= BATCHES_IN_FLIGHT)
            await self._commit_acknowledged(wait=True, final=True)
        except asyncio.CancelledError as exc:
            if self.should_stop:
                raise
            await self.crash(exc)  # cancelled by something else: the worker must not go on
        except BaseException as exc:  # a bug or a failed send: stop the worker, commit nothing
            await self.crash(exc)
        finally:
            self._finished.set()

    def _consume(self, count: int) -> list[Message]:
        assert self._consumer is not None
        batch, self._last_read = read_batch(
            self._consumer, count, self.batch_wait_s, self._last_read
        )
        return batch

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, partial(function, *args)
        )

    async def _forward(
        self, messages: list[Any]
    ) -> tuple[asyncio.Future[Any], list[TopicPartition]]:
        """Decode and route one batch; send it; returns (all sends acknowledged, offsets)."""
        by_key: dict[str, list[Wire]] = {}
        next_offsets: dict[tuple[str, int], int] = {}
        sends: list[Awaitable[Any]] = []
        decode, route, encode = self.decoder.decode, self.route, self.encode
        traced = self.traced
        for message in messages:
            if message.error() is not None:
                self._on_message_error(message)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            next_offsets[(topic, partition)] = offset + 1
            value = message.value()
            if value is None:  # a tombstone: a deletion, nothing to fold (as the SDK passes)
                self._pass_over_deletion(topic, partition, offset)
                continue
            try:
                try:
                    record = decode(value, where=f"{topic}[{partition}]@{offset}")
                except RegistryError as away:  # a new writer schema, and the registry is away
                    where = f"{topic}[{partition}]@{offset}"
                    record = await decode_when_registry_answers(
                        partial(self._call, partial(decode, value, where=where)),
                        where,
                        away,
                        self.registry_wait_s,
                        self.spec.app_id,
                    )
            except DeserializationError as exc:
                await self._dead_letter(message, exc)
                continue
            pairs = route(topic, partition, offset, record, message.timestamp()[1])
            context = tracing.carried(message.headers()) if traced else None
            for key, wire in pairs:
                if context is not None:
                    wire[TRACE] = context
                by_key.setdefault(key, []).append(wire)
        partitions = self.spec.output.partitions
        by_partition: dict[int, list[tuple[str, list[Wire]]]] = {}
        for key, wires in by_key.items():
            to = key_partition(key, partitions)
            by_partition.setdefault(to, []).append((key, wires))
        clocked = self.clocked
        internals: list[tuple[bytes, int, list[tuple[str, bytes]] | None]] = []
        for to, groups in by_partition.items():
            records = encode(groups, self.record_max_bytes)
            before_last, last = clock_bounds(groups) if clocked else (b"", b"")
            for number, internal in enumerate(records, 1):
                bound = last if number == len(records) else before_last
                headers = [(CLOCK_HEADER, bound)] if clocked else None
                internals.append((internal, to, headers))
        # One produce request for the whole batch, so the aggregate fetches it in one go.
        sends += await faust_seams.send_together(
            self.app, self.target_name, internals, what="internal record"
        )
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        return asyncio.ensure_future(asyncio.gather(*sends)), offsets

    def _pass_over_deletion(self, topic: str, partition: int, offset: int) -> None:
        """A tombstone on an input (a record deleted, e.g. a merged session of a session
        processor's product) has no fields to fold: passed over, counted, said once."""
        self.deletions_skipped += 1
        if self.deletions_skipped == 1:
            log.info(
                "processor %s passes over tombstones on its inputs (records with a key and no "
                "value: deletions), the first at %s[%d]@%d",
                self.spec.output.name,
                topic,
                partition,
                offset,
            )

    async def _dead_letter(self, message: Message, exc: Exception) -> None:
        """Write ``message`` to its dead-letter topic and wait for Kafka to keep it (on the
        stage's consumer thread: poison pills are rare); a refusal stops the worker, so
        the batch is never committed past a record neither forwarded nor kept."""
        where = self.dead_letter_topics[message.topic() or ""]
        # a warning: the record is set aside as designed and the worker goes on (at ERROR
        # it counted as a failure in the live view, h45)
        log.warning(
            "processor %s could not decode an input record: %s; sent to %s",
            self.spec.output.name,
            exc,
            where,
        )
        await self._call(self._dead_letters.write, message, where, exc)

    async def _commit_acknowledged(self, *, wait: bool, final: bool = False) -> None:
        """Commit the offsets of the oldest batches whose records Kafka acknowledged, at most
        every COMMIT_INTERVAL_S (always when ``final``).

        With ``wait``, waits for the oldest batch first (all of them when ``final``). A send
        that failed raises here, before its offsets could be committed.
        """
        ready = self._acknowledged
        while self._in_flight:
            acknowledged, offsets = self._in_flight[0]
            if not acknowledged.done() and (wait or final):
                await acknowledged
                wait = False
            if not acknowledged.done():
                break
            acknowledged.result()
            ready.extend(offsets)
            self._in_flight.pop(0)
        now = time.monotonic()
        if self._crashing:  # the crash note is the last commit (a replay covers the rest)
            return
        if ready and (final or now - self._last_commit >= COMMIT_INTERVAL_S):
            self._acknowledged, self._last_commit = [], now
            assert self._consumer is not None
            owned = await self._call(self._consumer.assignment)
            offsets = offsets_to_commit(ready, owned)
            if not offsets:
                return
            commit = partial(self._consumer.commit, offsets=offsets)
            if not final:
                await self._call(partial(commit, asynchronous=True))
                return
            try:
                await self._call(partial(commit, asynchronous=False))
            except KafkaException as exc:  # e.g. partitions revoked meanwhile: replayed later
                log.warning("re-key stage of %s: last commit failed: %s", self.spec.app_id, exc)

    def _on_message_error(self, message: Message) -> None:
        error = message.error()
        if error is not None and is_fatal(error):
            self._fatal = error
        elif error is not None and error.code() != KafkaError._PARTITION_EOF:
            log.warning("re-key stage of %s: %s", self.spec.app_id, error)

    def _raise_if_fatal(self) -> None:
        """Stop the worker once librdkafka reported a fatal error.

        A fatal error leaves the consumer unable to read or commit for good, so a stage that
        went on would read nothing, silently, for ever. The usual one is a static member
        fenced out of its group (``FENCED_INSTANCE_ID``): another consumer joined it with
        the same ``group.instance.id``, another worker given the same instance id or this
        worker's own rejoin after a broker failure. Stopping lets the worker be restarted
        (``mesh up``'s supervisor does), and a new consumer joins again.
        """
        error = self._fatal
        if error is None:
            return
        cause = error.str()
        if "Static consumer fenced" in cause or error.code() == KafkaError.FENCED_INSTANCE_ID:
            instance = self.spec.settings.processor_instance_id
            cause += (
                f" (group {self.group_id}, instance id {instance!r}: a consumer with the same "
                f"id joined, another worker with this MESH_PROCESSOR_INSTANCE_ID or this "
                f"worker's own rejoin after a broker failure; each worker needs its own id, "
                f"and a restarted worker joins again)"
            )
        line = (
            f"re-key stage of {self.spec.app_id} stops: its consumer hit a fatal Kafka error "
            f"and can read no more: {cause}"
        )
        log.error("%s", line)  # the one line that says why, before faust's stop
        raise FatalKafkaStop(KafkaError(error.code(), line, fatal=True))

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None:  # replayed after a restart, where dedup counts them once
            where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
            app_id = self.spec.app_id
            log.warning("re-key stage of %s: commit of %s failed: %s", app_id, where, error)

    def _on_error(self, error: KafkaError) -> None:
        if is_fatal(error):  # raised by the stage's loop (librdkafka's thread cannot crash it)
            self._fatal = error
        log.warning("re-key stage of %s: %s", self.spec.app_id, error)
