"""Raw figures of products, measured from Kafka itself: offsets, record timestamps, lag.

One :class:`KafkaMeter` measures every product of a round with a handful of batched calls:
the cluster metadata, three ``ListOffsets`` (earliest, latest committed, the first offset of
the last minute), one ``OffsetFetch`` per registered consumer group, and short record reads
on one consumer that never joins a group or commits:

* the newest record of each partition: read from the last stable offset - 1; when that
  offset holds no record (a transaction marker, a compacted gap) the read steps back
  (1, 16, 256 offsets) until it finds one;
* the first unconsumed record of each lagging group partition (its committed offset), whose
  age is the group's lag in seconds.

Nothing here judges: :mod:`mesh_stream.monitor.status` turns a :class:`Reading` into a
health record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from mesh_stream.descriptor import DataProduct
from mesh_stream.health import NEWEST_INPUT_HEADER
from mesh_stream.kafka.clients import make_admin, make_consumer
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error
from mesh_stream.kafka.topics import while_no_leader
from mesh_stream.processing.names import crash_of

log = logging.getLogger(__name__)

#: The window of "records per minute": records whose timestamp is this recent.
MINUTE_MS = 60_000
#: How far back the newest-record read looks, step by step, past offsets without a record.
STEP_BACK = (1, 16, 256)
#: Longest one record read may take before the partitions still unread count as unknown.
READ_SECONDS = 10.0
#: Group id of the reading consumer; it never subscribes, so it never joins or commits.
READER_GROUP = "mesh-monitor-reader"

#: How often a ListOffsets is asked while a partition has no leader yet, and how long apart.
OFFSET_ATTEMPTS = 5
OFFSET_RETRY_SECONDS = 0.5

Partition = tuple[str, int]


@dataclass(frozen=True)
class TopicReading:
    """One topic at one instant: does it exist, its offsets, its newest record per partition."""

    topic: str
    exists: bool
    #: partition -> timestamp (epoch ms) of its newest record, None when it holds none.
    newest_ms: Mapping[int, int | None] = field(default_factory=dict)
    #: Records whose timestamp falls in the last minute (offset count, all partitions).
    records_last_minute: int = 0
    #: Offsets ever written (the sum of end offsets); 0: no record was ever written.
    end_offsets: int = 0
    #: partition -> its newest record's ``mesh.input.newest-ms`` header (a processor's
    #: output: the newest input record it reflects), None without that header.
    newest_reflects_ms: Mapping[int, int | None] = field(default_factory=dict)

    @property
    def newest(self) -> int | None:
        """The newest record timestamp over every partition (None: no record at all)."""
        found = [ms for ms in self.newest_ms.values() if ms is not None]
        return max(found) if found else None

    @property
    def newest_latency_ms(self) -> int | None:
        """The newest record's own end-to-end latency: its timestamp minus the newest input
        record it reflects (None: no record, or the newest carries no such header)."""
        stamped = [
            (ms, self.newest_reflects_ms.get(partition))
            for partition, ms in self.newest_ms.items()
            if ms is not None
        ]
        if not stamped:
            return None
        newest, reflects = max(stamped, key=lambda pair: pair[0])
        return None if reflects is None else max(0, newest - reflects)


@dataclass(frozen=True)
class GroupLag:
    """How far a consumer group is behind on a product's topic."""

    group: str
    #: End offset - committed offset, summed over partitions the group committed on;
    #: None when it committed nothing on the topic.
    records: int | None
    #: now - timestamp of the oldest first unconsumed record over those partitions; 0 when
    #: caught up; None when it committed nothing or the record could not be read.
    seconds: float | None
    #: Partitions the group has no committed offset on (left out of both figures).
    uncommitted: int = 0
    #: (when, line) of the newest crash a processor's re-key group noted in its committed
    #: offsets; None when it noted none.
    crash: tuple[int, str] | None = None


@dataclass(frozen=True)
class Reading:
    """Everything measured about one product in one round."""

    product: str
    measured_at_ms: int
    topic: TopicReading
    dlq: TopicReading
    lags: tuple[GroupLag, ...] = ()


@dataclass(frozen=True)
class Target:
    """A product to measure and the consumer groups registered on it."""

    product: DataProduct
    groups: tuple[str, ...] = ()


class KafkaMeter:
    """Measures products with one admin client and one (group-less) reading consumer."""

    def __init__(self, conn: KafkaConnection, *, timeout: float = 15.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self._admin = self._new_admin()
        self._reader = self._new_reader()

    def reconnect(self) -> None:
        """New Kafka clients for the next round. After a broker restart, librdkafka's admin
        client keeps asking for consumer groups' committed offsets where no answer comes
        (every request times out until the client is replaced; a new one is answered at
        once), so a round that failed or timed out asks with new clients."""
        reader, self._reader = self._reader, self._new_reader()  # new first: no closed one
        self._admin = self._new_admin()
        reader.close()

    def _new_admin(self) -> AdminClient:
        return make_admin(self.conn, {"log_level": 0})

    def _new_reader(self) -> Consumer:
        return make_consumer(
            self.conn,
            {
                "group.id": READER_GROUP,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                # A record read needs one record, not a 50 MB fetch per partition.
                "fetch.max.bytes": 1024 * 1024,
                "max.partition.fetch.bytes": 64 * 1024,
                "log_level": 0,
            },
        )

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> KafkaMeter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- one round ------------------------------------------------------------------------
    def read(self, targets: Sequence[Target], now_ms: int) -> dict[str, Reading]:
        """A :class:`Reading` of every target, measured at ``now_ms`` (epoch ms)."""
        metadata = self._call(lambda: self._admin.list_topics(timeout=self.timeout), "DESCRIBE")
        partitions = {
            name: sorted(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }
        topics = sorted({t.product.topic for t in targets} | {t.product.dlq_topic for t in targets})
        tps = [(name, p) for name in topics for p in partitions.get(name, [])]
        earliest = self._offsets(tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        latest = self._offsets(tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        minute = self._offsets(tps, OffsetSpec.for_timestamp(now_ms - MINUTE_MS))
        product_topics = {t.product.topic for t in targets}
        reflects: dict[Partition, int | None] = {}
        newest = self.newest_timestamps(
            {tp: (earliest[tp], latest[tp]) for tp in tps if tp[0] in product_topics}, reflects
        )
        notes: dict[tuple[str, str], tuple[int, str]] = {}
        committed = self._committed(targets, partitions, notes)
        unconsumed = self._unconsumed(committed, latest)

        def topic_reading(name: str) -> TopicReading:
            if name not in partitions:
                return TopicReading(name, exists=False)
            mine = [(name, p) for p in partitions[name]]
            return TopicReading(
                name,
                exists=True,
                newest_ms={p: newest.get((name, p)) for _, p in mine},
                records_last_minute=sum(
                    _recent(minute[tp], latest[tp], earliest[tp]) for tp in mine
                ),
                end_offsets=sum(max(0, latest[tp]) for tp in mine),
                newest_reflects_ms={p: reflects.get((name, p)) for _, p in mine},
            )

        readings: dict[str, Reading] = {}
        for target in targets:
            product = target.product
            lags = tuple(
                _group_lag(
                    group,
                    committed.get((group, product.topic), {}),
                    latest,
                    unconsumed.get(group, {}),
                    product.topic,
                    partitions.get(product.topic, []),
                    now_ms,
                    crash=notes.get((group, product.topic)),
                )
                for group in target.groups
            )
            readings[product.name] = Reading(
                product.name,
                now_ms,
                topic_reading(product.topic),
                topic_reading(product.dlq_topic),
                lags,
            )
        return readings

    # -- offsets --------------------------------------------------------------------------
    def _offsets(self, tps: Sequence[Partition], spec: OffsetSpec) -> dict[Partition, int]:
        """``spec``'s offset of each partition (read committed: the last stable offset).

        Asked again (up to :data:`OFFSET_ATTEMPTS` times) while a partition has no leader
        yet: a topic created a moment ago (a processor's DLQ as `mesh up` starts) would
        otherwise fail the whole round."""
        if not tps:
            return {}

        def ask() -> dict[tuple[str, int], int]:
            futures = self._call(
                lambda: self._admin.list_offsets(
                    {TopicPartition(t, p): spec for t, p in tps},
                    isolation_level=IsolationLevel.READ_COMMITTED,
                    request_timeout=self.timeout,
                ),
                "DESCRIBE",
            )
            return {
                (tp.topic, tp.partition): int(future.result(self.timeout).offset)
                for tp, future in futures.items()
            }

        try:
            return while_no_leader(ask, attempts=OFFSET_ATTEMPTS, pause_s=OFFSET_RETRY_SECONDS)
        except KafkaException as exc:
            raise explain_kafka_error(exc, self.conn, operation="DESCRIBE") from exc

    def _committed(
        self,
        targets: Sequence[Target],
        partitions: Mapping[str, list[int]],
        notes: dict[tuple[str, str], tuple[int, str]] | None = None,
    ) -> dict[tuple[str, str], dict[int, int]]:
        """(group, topic) -> partition -> committed offset (-1: none) of each registered group;
        into ``notes``, (group, topic) -> (when, line) of the newest crash a processor's
        re-key group noted in its offsets' metadata
        (:data:`~mesh_stream.processing.names.CRASH_NOTE`)."""
        asked: dict[tuple[str, str], Future[Any]] = {}
        for target in targets:
            topic = target.product.topic
            if topic not in partitions:
                continue
            for group in target.groups:
                request = ConsumerGroupTopicPartitions(
                    group, [TopicPartition(topic, p) for p in partitions[topic]]
                )
                futures = self._call(
                    lambda request=request: self._admin.list_consumer_group_offsets(
                        [request], request_timeout=self.timeout
                    ),
                    "DESCRIBE",
                )
                asked[(group, topic)] = futures[group]
        found: dict[tuple[str, str], dict[int, int]] = {}
        unanswered = False
        for key, future in asked.items():
            try:
                answer = future.result(self.timeout)
            except (KafkaException, TimeoutError) as exc:
                # only no answer calls for a new client; a refusal (no DESCRIBE on the group)
                # would make one every round
                unanswered = unanswered or _unanswered(exc)
                said = str(exc) or f"no answer within {self.timeout:.0f} s"
                log.warning("committed offsets of group %s on %s: %s", key[0], key[1], said)
                continue
            found[key] = {
                tp.partition: (tp.offset if tp.error is None and tp.offset >= 0 else -1)
                for tp in answer.topic_partitions
            }
            crashes = [crash_of(tp.metadata) for tp in answer.topic_partitions]
            newest = max((item for item in crashes if item is not None), default=None)
            if notes is not None and newest is not None:
                notes[key] = newest
        if unanswered:
            log.info("the next round asks with a new admin client (see KafkaMeter.reconnect)")
            self._admin = self._new_admin()
        return found

    def _unconsumed(
        self,
        committed: Mapping[tuple[str, str], Mapping[int, int]],
        latest: Mapping[Partition, int],
    ) -> dict[str, dict[Partition, int | None]]:
        """group -> partition -> timestamp of its first unconsumed record, for partitions
        the group lags on; read in layers, since a consumer assigns a partition only once."""
        wanted: dict[Partition, list[tuple[str, int]]] = {}
        for (group, topic), offsets in committed.items():
            for p, offset in offsets.items():
                if 0 <= offset < latest.get((topic, p), 0):
                    wanted.setdefault((topic, p), []).append((group, offset))
        found: dict[str, dict[Partition, int | None]] = {}
        for layer in range(max((len(asks) for asks in wanted.values()), default=0)):
            asks = {tp: asks[layer] for tp, asks in wanted.items() if len(asks) > layer}
            read = self.first_timestamps({tp: offset for tp, (_, offset) in asks.items()}, latest)
            for tp, stamp in read.items():
                found.setdefault(asks[tp][0], {})[tp] = stamp
        return found

    # -- records --------------------------------------------------------------------------
    def newest_timestamps(
        self,
        spans: Mapping[Partition, tuple[int, int]],
        reflects: dict[Partition, int | None] | None = None,
    ) -> dict[Partition, int | None]:
        """The newest record timestamp of each partition (``(earliest, end)`` offsets), None
        for a partition without records; steps back past offsets that hold none. With
        ``reflects``, each newest record's ``mesh.input.newest-ms`` header goes there."""
        found: dict[Partition, int | None] = dict.fromkeys(spans)
        pending = {tp: span for tp, span in spans.items() if span[1] > max(span[0], 0)}
        for back in STEP_BACK:
            if not pending:
                break
            starts = {tp: max(low, end - back) for tp, (low, end) in pending.items()}
            read = self._read(
                starts, {tp: end for tp, (_, end) in pending.items()}, first=False, stamps=reflects
            )
            for tp in list(pending):
                if tp not in read:  # no answer in time: unknown, not worth a longer read
                    pending.pop(tp)
                elif read[tp] is not None or starts[tp] <= pending[tp][0]:
                    found[tp] = read[tp]
                    pending.pop(tp)
        return found

    def first_timestamps(
        self, starts: Mapping[Partition, int], ends: Mapping[Partition, int]
    ) -> dict[Partition, int | None]:
        """The timestamp of the first record at or after each start offset (None: none
        before the end offset; left out: no answer in time)."""
        return self._read(starts, {tp: ends[tp] for tp in starts}, first=True) if starts else {}

    def _read(
        self,
        starts: Mapping[Partition, int],
        ends: Mapping[Partition, int],
        *,
        first: bool,
        stamps: dict[Partition, int | None] | None = None,
    ) -> dict[Partition, int | None]:
        """Read each partition from its start offset: its first record's timestamp
        (``first``), or the newest timestamp up to its end offset; None when it holds no
        record there. Partitions that gave no answer in time are left out."""
        found: dict[Partition, int | None] = dict.fromkeys(starts)
        if not starts:
            return found
        pending = set(starts)
        assigned = [TopicPartition(t, p, offset) for (t, p), offset in starts.items()]
        self._reader.assign(assigned)
        deadline = time.monotonic() + READ_SECONDS
        try:
            while pending and time.monotonic() < deadline:
                for message in self._reader.consume(500, 0.5):
                    tp = (message.topic(), message.partition())
                    if tp not in pending:
                        continue
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(tp)
                        else:
                            log.warning("reading %s[%d]: %s", tp[0], tp[1], error.str())
                        continue
                    kind, stamp = message.timestamp()
                    if stamp is not None and stamp >= 0 and kind != 0:
                        seen = found[tp]
                        if first or seen is None or stamp >= seen:
                            found[tp] = stamp
                            if stamps is not None:
                                stamps[tp] = _reflected(message.headers())
                    offset = message.offset()
                    if first or (offset is not None and offset >= ends[tp] - 1):
                        pending.discard(tp)
                        self._reader.pause([TopicPartition(tp[0], tp[1])])
        finally:
            self._reader.resume(assigned)  # a partition's pause outlives its assignment
            self._reader.unassign()
        if pending:
            log.warning(
                "no answer within %.0f s reading %s",
                READ_SECONDS,
                ", ".join(f"{t}[{p}]" for t, p in sorted(pending)),
            )
        return {tp: stamp for tp, stamp in found.items() if tp not in pending}

    # -- errors ---------------------------------------------------------------------------
    def _call(self, call: Any, operation: str) -> Any:
        try:
            return call()
        except KafkaException as exc:
            raise explain_kafka_error(exc, self.conn, operation=operation) from exc


#: Errors of a request nobody answered (not a refusal): a new admin client may be answered.
_NO_ANSWER = frozenset({KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT})


def _unanswered(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in _NO_ANSWER


def _recent(minute_offset: int, end: int, earliest: int) -> int:
    """Records from the first offset of the last minute to the end (-1: none that recent)."""
    if minute_offset < 0:
        return 0
    return max(0, end - max(minute_offset, earliest))


def _group_lag(
    group: str,
    committed: Mapping[int, int],
    latest: Mapping[Partition, int],
    unconsumed: Mapping[Partition, int | None],
    topic: str,
    partitions: Iterable[int],
    now_ms: int,
    crash: tuple[int, str] | None = None,
) -> GroupLag:
    """The lag of ``group`` on ``topic`` from its committed offsets and the first
    unconsumed record of each partition (``crash``: the crash line it noted)."""
    records = 0
    oldest: int | None = None
    unread = False
    counted = 0
    uncommitted = 0
    for p in partitions:
        offset = committed.get(p, -1)
        if offset < 0:
            uncommitted += 1
            continue
        counted += 1
        end = latest[(topic, p)]
        records += max(0, end - offset)
        if offset < end:
            if (topic, p) not in unconsumed:
                unread = True  # no answer: the age is unknown
                continue
            stamp = unconsumed[(topic, p)]
            if stamp is not None and (oldest is None or stamp < oldest):
                oldest = stamp
    if counted == 0:
        return GroupLag(group, None, None, uncommitted, crash)
    seconds: float | None
    if unread:
        seconds = None
    elif oldest is not None:
        seconds = max(0.0, (now_ms - oldest) / 1000)
    else:
        seconds = 0.0  # caught up, or only offsets without records left (markers)
    return GroupLag(group, records, seconds, uncommitted, crash)


def _reflected(headers: Any) -> int | None:
    """The ``mesh.input.newest-ms`` header's value (None: absent or not a number); headers as
    confluent-kafka gives them (a list of (name, value) pairs, or None)."""
    for name, value in headers or ():
        if name == NEWEST_INPUT_HEADER and isinstance(value, (bytes, str)) and value:
            try:
                return int(value)
            except ValueError:
                return None
    return None
