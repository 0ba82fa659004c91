"""The registry log in Kafka: a compacted topic, one transactional writer, replay on start.

How it stays consistent (see docs/design/registry.md):

* The topic (``_mesh_registry`` by default) has one partition, so the log has one order, and
  ``cleanup.policy=compact``, so it keeps the latest value of each key forever.
* Any number of instances share the topic (Confluent's leader/follower model). Every one
  replays it and serves reads; exactly one, the *writer*, writes. The others forward writes
  to the writer's advertised URL (:mod:`.forwarding`). All instances share one
  ``transactional.id`` (the writer id), so a writer that takes over calls
  ``init_transactions``, which bumps the producer epoch: the broker aborts the old writer's
  open transaction and refuses its later writes (it is *fenced*).
* The writer writes a claim record (key ``["writer"]``: writer id, instance, advertised URL,
  renewal time, lease) when it takes the role and renews it every third of its lease. The
  latest claim in the log names the writer; every instance decides from the log alone. An
  instance takes over when the latest claim has lapsed (the writer died: within a lease),
  and at start-up when no live claim exists or the claimed writer's URL does not answer (a
  restarted writer need not wait for its own lease). Claims come in the log in the order of
  the producer epochs, so when two instances take over at once the later one wins and the
  earlier one, fenced, follows it.
* A claim by another writer id means two groups of writers that would not fence each other
  and would hand out the same schema ids: start-up is refused while such a claim is live,
  and an instance that reads one after it joined (or a schema id re-used for another
  schema) stops accepting writes (503 ``RegistryWriterConflictError``).
* A ``read_committed`` consumer replays the topic up to its end before the service answers
  (progress reported every few seconds; it fails only when no record arrives for
  ``timeout`` seconds), then keeps tailing it. A write returns only once its transaction
  is committed (durable with ``acks=all``) *and* the tail has folded it into the in-memory
  view, so the next read sees it. Ids come from that view (max + 1), ``schema`` records are
  never deleted, the writer reads the log to its end before each write (so a new writer
  sees all its predecessor committed) and never writes a schema id it has already read, so
  ids are never reused, across restarts and takeovers too.
* A write that fails aborts its transaction; when Kafka is unreachable or the producer is in
  a state it cannot leave (a commit still in flight, a fatal error), the writer is closed
  and recreated (``init_transactions`` again, which also settles the half-done transaction)
  in the background, and the view catches up with the log before the next write. Until
  then writes answer 503 and :meth:`KafkaStore.readiness` says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from mesh_stream.errors import (
    ConfigurationError,
    RegistryFencedError,
    RegistryUnavailableError,
    RegistryWriterConflictError,
    RequestTooLargeError,
)
from mesh_stream.kafka.clients import (
    NO_LOSS_PRODUCER_CONFIG,
    make_admin,
    make_consumer,
    make_producer,
)
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topic, topic_spec
from mesh_stream.registry.service.state import Record
from mesh_stream.registry.service.store import Apply, WriteRoute, WriteTimer

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "_mesh_registry"
DEFAULT_TRANSACTIONAL_ID = "mesh-registry-writer"
#: Records that are no registry records told one by one, before only every 1000th is.
SKIPPED_SHOWN = 10
#: A dead writer is replaced within this (plus a second or two); renewed every third of it.
DEFAULT_WRITER_LEASE = 10.0
#: How often a follower checks whether the writer's claim has lapsed.
ELECTION_EVERY = 0.5
#: How long a write waits for Kafka to name its log's end before answering 503 (nothing
#: stored). Below the registry client's 10 s, so a client never gives up on a write that
#: has not started yet and then sees it applied.
WRITE_CATCH_UP_S = 5.0
#: How long a closing writer asks Kafka whether it answers (to release its claim), and then
#: waits for each of its threads when it does not.
CLOSE_PROBE_S = 1.0
WRITER_KEY = ("writer",)
_FENCED_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)

Progress = Callable[[str], None]


def _unavailable(message: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(message, status=503, error_code=50302)


class KafkaStore:
    """:class:`~mesh_stream.registry.service.store.RegistryStore` on a compacted Kafka topic.

    ``connection`` is a :class:`KafkaConnection` (or plain bootstrap servers); ``timeout``
    bounds each Kafka call and how long replay may go without progress; ``writer_lease`` is
    how long a writer claim holds after its last renewal; ``advertised_url`` is where the
    other instances forward writes while this one is the writer (None: they cannot, and an
    instance starting on the topic takes the writer role over at once).
    """

    def __init__(
        self,
        connection: KafkaConnection | str,
        *,
        topic: str = DEFAULT_TOPIC,
        transactional_id: str = DEFAULT_TRANSACTIONAL_ID,
        timeout: float = 30.0,
        writer_lease: float = DEFAULT_WRITER_LEASE,
        advertised_url: str | None = None,
        progress: Progress | None = None,
        progress_every: float = 5.0,
    ) -> None:
        if isinstance(connection, str):
            connection = KafkaConnection.create(connection, client_id="mesh-registry")
        self.connection = connection
        self.bootstrap_servers = connection.bootstrap_servers
        self.advertised_url = advertised_url.rstrip("/") if advertised_url else None
        self.topic = topic
        self.transactional_id = transactional_id
        #: The Kafka cluster the registry keeps its log on (from its first metadata answer):
        #: `mesh up` checks that a registry it finds running uses its cluster.
        self.kafka_cluster_id: str | None = None
        #: Records of the topic that were no registry records (each told up to SKIPPED_SHOWN).
        self._skipped = 0
        self.timeout = timeout
        self.writer_lease = writer_lease
        self.progress_every = progress_every
        self._progress_report: Progress = progress or log.info
        self.instance = uuid.uuid4().hex
        self._partition = TopicPartition(topic, 0)
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None  # only asks for end offsets, never consumes
        self._apply: Apply | None = None
        self._next_offset = 0
        self._replay_end: int | None = None  # known once the first end offset is read
        #: Every schema id in the log: a write of one of them was prepared on an older view.
        self._schema_ids: set[int] = set()
        self._progress = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._starting: str | None = "not opened yet"
        self._failure: Exception | None = None
        self._lost: str | None = None  # why this instance stopped being the writer
        self._joined = False  # start-up decided: claims read from now on are judged
        self._conflict: str | None = None
        self._writer_problem: str | None = None
        #: (when, why) this instance last failed to renew or take the writer role; said in the
        #: 503 of a write that finds no writer (the cause was only in this log, h59)
        self._takeover_problem: tuple[float, str] | None = None
        self._recovering = threading.Event()
        self._latest_claim: dict[str, Any] | None = None
        self._probe: tuple[float, str | None] = (0.0, None)
        self._view_lock = threading.Lock()
        #: (when the last end-offset request for catch_up_view started, the offset it got)
        self._view_end: tuple[float, int | RegistryUnavailableError] = (float("-inf"), 0)
        self._write_timer: WriteTimer | None = None
        #: how long the start-up replay took (None until it is done)
        self.replay_seconds: float | None = None
        self._on_close: list[Callable[[], None]] = []

    # -- start ---------------------------------------------------------------------------

    def _ensure_topic(self) -> None:
        admin = make_admin(self.connection)
        try:
            metadata = admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise _unavailable(
                f"Kafka at {self.bootstrap_servers} did not answer: {exc}; check "
                f"MESH_BOOTSTRAP_SERVERS or start a broker with `mesh broker start`"
            ) from exc
        self.kafka_cluster_id = metadata.cluster_id
        if self.topic in metadata.topics:
            self._check_compacted(admin)
        # One partition (one order), compacted, replicated as every topic of the mesh; an
        # existing topic that differs from this spec is reported (a warning), not altered.
        spec = topic_spec(
            self.topic,
            cluster_info(self.connection, admin=admin, timeout=self.timeout),
            partitions=1,
            cleanup_policy="compact",
        )
        spec = dataclasses.replace(spec, config={**spec.config, "min.compaction.lag.ms": "0"})
        ensure_topic(self.connection, spec, admin=admin, timeout=self.timeout)

    def _check_compacted(self, admin: AdminClient) -> None:
        """An existing topic must be compacted, or old schemas would expire with retention."""
        resource = ConfigResource("topic", self.topic)
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=self.timeout)
        except KafkaException as exc:
            raise _unavailable(
                f"cannot read the configuration of registry topic {self.topic!r}: {exc}"
            ) from exc
        policy = configs["cleanup.policy"].value if "cleanup.policy" in configs else ""
        if "compact" not in str(policy).split(","):
            raise ConfigurationError(
                f"registry topic {self.topic!r} has cleanup.policy={policy}, so Kafka would "
                f"delete old registry records; set cleanup.policy=compact on it "
                f"(kafka-configs.sh --alter --entity-type topics --entity-name {self.topic} "
                f"--add-config cleanup.policy=compact) or choose another topic with "
                f"--topic / MESH_REGISTRY_TOPIC"
            )

    def _new_producer(self, timeout: float) -> Producer:
        """A transactional producer, initialised (which fences older ones with this id)."""
        producer = make_producer(
            self.connection,
            {**NO_LOSS_PRODUCER_CONFIG, "transactional.id": self.transactional_id, "linger.ms": 0},
        )
        try:
            producer.init_transactions(timeout)
        except KafkaException as exc:
            _dispose(producer)
            raise _unavailable(
                f"could not become the registry writer on {self.bootstrap_servers} "
                f"(transactional.id {self.transactional_id!r}): {exc.args[0].str()}"
            ) from exc
        return producer

    def open(self, apply: Apply, *, wait: bool = True) -> None:
        """Replay the topic to its end, then take the writer role or follow the writer; tail.

        ``wait=False`` returns once Kafka answered; replay and election go on in a thread
        (:meth:`starting` says how far, :meth:`readiness` too).
        """
        self._apply = apply
        self._starting = "connecting to Kafka"
        self._ensure_topic()
        self._consumer = make_consumer(
            self.connection,
            {
                "group.id": f"mesh-registry-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "fetch.error.backoff.ms": 50,
                # After a broker restart a write commits as soon as the producer is back;
                # librdkafka's default 10 s reconnect backoff would leave its read-back
                # waiting past the write timeout (503 50302) on this idle reader.
                "reconnect.backoff.max.ms": 500,
            },
        )
        self._consumer.assign([TopicPartition(self.topic, 0, 0)])
        # A consumer busy in consume() does not answer other calls meanwhile, so end
        # offsets (catch-up, readiness probe) come from a client of their own.
        self._offsets = make_consumer(
            self.connection,
            {
                "group.id": f"mesh-registry-offsets-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "reconnect.backoff.max.ms": 500,
                # It only asks for end offsets, so no fetch error tells it the partition's
                # leader moved: without a short refresh it would ask a dead leader until
                # librdkafka's periodic refresh (5 min), refusing every credentialed request.
                "topic.metadata.refresh.interval.ms": 5_000,
            },
        )
        self._starting = "replaying the registry log"
        if wait:
            try:
                self._finish_open()
            except BaseException:
                self.close()
                raise
            return

        def finish() -> None:
            try:
                self._finish_open()
            except Exception as exc:
                log.error("registry start-up failed: %s", exc)
                self._failure = exc
                self._starting = f"start-up failed: {exc}"

        self._spawn("registry-open", finish)

    def wait_started(self, stop: threading.Event | None = None) -> None:
        """After ``open(wait=False)``: block until replayed and claimed, or raise what failed."""
        while self._starting is not None and not (stop is not None and stop.is_set()):
            if self._failure is not None:
                raise self._failure
            time.sleep(0.1)

    def _finish_open(self) -> None:
        self._replay()
        self._spawn("registry-tail", self._tail_loop)
        self._join()
        self._spawn("registry-writer-lease", self._lease_loop)
        self._starting = None

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _replay(self) -> None:
        """Apply every record up to the end; fail only after ``timeout`` s without progress."""
        assert self._consumer is not None
        self._replay_end = end = self._first_end_offset()
        started = last_report = last_progress = time.monotonic()
        seen = self._next_offset
        while True:
            if self._handle(self._consumer.consume(1000, 0.2), replaying=True):
                break
            now = time.monotonic()
            if self._next_offset > seen:
                seen, last_progress = self._next_offset, now
            elif now - last_progress > self.timeout:
                raise _unavailable(
                    f"replaying registry topic {self.topic!r} made no progress for "
                    f"{self.timeout:.0f}s (at offset {self._next_offset:,} of "
                    f"{end:,}); is Kafka at {self.bootstrap_servers} up?"
                )
            if now - last_report >= self.progress_every:
                last_report = now
                self._progress_report(
                    f"registry: replayed {self._next_offset:,} of {end:,} records "
                    f"of {self.topic} ({now - started:.0f}s)"
                )
        self.replay_seconds = time.monotonic() - started
        self._progress_report(
            f"registry: replayed {self._next_offset:,} records of {self.topic} in "
            f"{self.replay_seconds:.1f}s"
        )

    def _first_end_offset(self) -> int:
        """The end offset at start-up; a topic just created may lack its leader for a moment."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._end_offset(min(self.timeout, 5.0))
            except RegistryUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _handle(self, messages: Sequence[Message], *, replaying: bool = False) -> bool:
        """Apply a batch of messages, then advance once; True at end of partition."""
        at_end = False
        next_offset = -1
        for message in messages:
            error = message.error()
            if error is None:
                offset = message.offset() or 0
                self._apply_message(message, offset, replaying)
                next_offset = offset + 1
            elif error.code() == KafkaError._PARTITION_EOF:
                next_offset = max(next_offset, message.offset() or 0)
                at_end = True
            else:
                log.warning("registry topic %s: %s", self.topic, error)
        if next_offset >= 0:
            self._advance(next_offset)
        return at_end

    def _apply_message(self, message: Message, offset: int, replaying: bool) -> None:
        try:
            record = Record.decode(message.key() or b"[]", message.value(), self.topic)
            kind = record.key[0]
            if kind == "writer":
                self._on_claim(record.value, offset)
            elif kind == "schema":
                self._schema_ids.add(int(record.key[1]))
            assert self._apply is not None
            self._apply(record)
        except RegistryWriterConflictError as exc:
            where = f"{self.topic}[0]@{offset}"
            if replaying:
                log.warning("%s: %s (an old clash; the first schema is kept)", where, exc.message)
            else:
                self._set_conflict(f"{where}: {exc.message}")
        except Exception as exc:  # not a registry record (another tool's topic?) or a bug
            self._skipped += 1
            if self._skipped <= SKIPPED_SHOWN or self._skipped % 1000 == 0:
                log.error(
                    "%s[0]@%s: registry record skipped: %s: %s%s",
                    self.topic,
                    offset,
                    type(exc).__name__,
                    str(exc)[:300],
                    f" ({self._skipped} skipped so far; only every 1000th is told from here)"
                    if self._skipped >= SKIPPED_SHOWN
                    else "",
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )

    def _advance(self, next_offset: int) -> None:
        with self._progress:
            if next_offset > self._next_offset:
                self._next_offset = next_offset
                self._progress.notify_all()

    def _tail_loop(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.1)
            except Exception:  # the consumer was closed under us at shutdown
                return
            self._handle(messages)

    # -- the writer role -------------------------------------------------------------------

    def _claim_value(self) -> dict[str, Any]:
        return {
            "writer_id": self.transactional_id,
            "instance": self.instance,
            "url": self.advertised_url,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed_at_ms": int(time.time() * 1000),
            "lease_ms": int(self.writer_lease * 1000),
        }

    @staticmethod
    def _alive(claim: dict[str, Any], at_ms: float | None = None) -> bool:
        """Whether ``claim``'s lease still ran at ``at_ms`` (default: now)."""
        expires = int(claim.get("renewed_at_ms", 0)) + int(claim.get("lease_ms", 0))
        return expires > (time.time() * 1000 if at_ms is None else at_ms)

    def _describe(self, claim: dict[str, Any]) -> str:
        where = f"at {claim['url']}, " if claim.get("url") else ""
        return (
            f"writer id {claim.get('writer_id')!r} ({where}host {claim.get('host')}, pid "
            f"{claim.get('pid')})"
        )

    def _refusal(self, other: dict[str, Any], what: str) -> str:
        return (
            f"registry topic {self.topic!r} has another writer: {self._describe(other)} "
            f"{what}, and this instance's writer id is {self.transactional_id!r}. Two writers "
            f"with different ids would hand out the same schema ids. Run every registry "
            f"instance on this topic with the same MESH_REGISTRY_WRITER_ID (`mesh registry "
            f"serve --writer-id`), or stop the other one (its claim lapses "
            f"{int(other.get('lease_ms', 0)) / 1000:.0f}s after it stops)"
        )

    def is_writer(self) -> bool:
        """Whether this instance holds the writer role now (the latest claim is its own)."""
        claim = self._latest_claim
        return (
            claim is not None
            and claim.get("instance") == self.instance
            and self._lost is None
            and self._conflict is None
        )

    def _on_claim(self, claim: dict[str, Any] | None, offset: int) -> None:
        """Decide on a claim from the log alone, so every instance decides the same.

        Same writer id: the latest claim names the writer. Another writer id: a claim made
        while the claim before it was still live loses (its own writer refuses to start, the
        others ignore it); one made after the claim before it lapsed takes over, and every
        instance that had joined stops writing.
        """
        previous, self._latest_claim = self._latest_claim, claim
        if claim is None:
            return
        claimed_at = int(claim.get("renewed_at_ms", 0))
        contested = (
            previous is not None
            and previous.get("writer_id") != claim.get("writer_id")
            and self._alive(previous, claimed_at)
        )
        if claim.get("instance") == self.instance:
            if contested and previous is not None:
                self._set_conflict(self._refusal(previous, "claimed it just before this one"))
            return
        if contested:
            # Its writer refuses itself (the rule above); a frozen writer's late renewal
            # lands here too. A schema it carried with a clashing id still stops writes.
            log.warning("%s[0]@%s: writer claim %s lost to a live one", self.topic, offset, claim)
            self._latest_claim = previous
            return
        if not self._joined:
            return  # start-up decides on the latest claim
        if claim.get("writer_id") != self.transactional_id:
            self._set_conflict(self._refusal(claim, f"claimed it at {self.topic}[0]@{offset}"))
        elif previous is None or previous.get("instance") != claim.get("instance"):
            if previous is not None and previous.get("instance") == self.instance:
                self._lost = (
                    f"another instance took over the writer role ({self._describe(claim)} at "
                    f"{self.topic}[0]@{offset})"
                )
                # a warning: the role moving is what several instances are for, and this one
                # goes on serving (h59: two started a second apart logged an ERROR)
                log.warning("registry: %s; this one serves reads and forwards writes", self._lost)
            else:
                log.warning(
                    "registry: the writer is now %s (%s[0]@%s)",
                    self._describe(claim),
                    self.topic,
                    offset,
                )

    def _set_conflict(self, message: str) -> None:
        if self._conflict is None:
            self._conflict = f"registry writes stopped: {message}"
            log.error("%s", self._conflict)

    def _join(self) -> None:
        """After replay: refuse a live claim of another writer id, else lead or follow."""
        claim = self._latest_claim
        if (
            claim is not None
            and claim.get("writer_id") != self.transactional_id
            and self._alive(claim)
        ):
            raise RegistryWriterConflictError(
                "refusing to start: " + self._refusal(claim, "holds a live claim"),
                status=503,
                error_code=50303,
            )
        self._joined = True
        if claim is not None and self._alive(claim) and self._answers(claim):
            log.warning("registry: following the writer %s", self._describe(claim))
            return
        self._take_over(self.timeout)
        if self._conflict is not None:
            raise RegistryWriterConflictError(self._conflict, status=503, error_code=50303)

    def _answers(self, claim: dict[str, Any]) -> bool:
        """Whether the claimed writer may still be alive: its URL does not refuse connections
        (a crashed one does).

        A writer too slow to answer within 2 s (a loaded machine) counts as alive: its claim
        is live, and if it is frozen rather than slow, the claim lapses and the lease loop
        takes over then. Taking over from a slow but live writer would fence it needlessly.
        """
        url = claim.get("url")
        if not url or url == self.advertised_url:  # this instance holds that address now
            return False
        try:
            httpx.get(f"{url}/health", timeout=2.0)
        except httpx.TimeoutException as exc:
            log.warning(
                "registry: the writer at %s is slow to answer (%s); following it while its "
                "claim is live",
                url,
                exc,
            )
        except httpx.HTTPError as exc:
            log.warning("registry: the writer at %s does not answer (%s); taking over", url, exc)
            return False
        return True

    def _take_over(self, timeout: float) -> bool:
        """Become the writer: ``init_transactions`` (fencing the last one), catch up, claim.

        False when another instance took over right after this one (it fenced this one).
        No catch-up before ``init_transactions``: a dead writer's open transaction holds
        the log's end until a new producer with its id aborts it.
        """
        with self._write_lock:
            if self._conflict is not None:
                raise RegistryWriterConflictError(self._conflict, status=503, error_code=50303)
            old, self._producer = self._producer, None
            if old is not None:
                _dispose(old)
            self._producer = self._new_producer(timeout)
            self._writer_problem = None
            self._catch_up(timeout)
            try:
                next_offset = self._transact([Record(WRITER_KEY, self._claim_value()).encode()])
            except RegistryFencedError:
                log.warning("registry: another instance took the writer role at the same time")
                return False
            self._lost = None
            self._wait_applied(next_offset)
        if self.is_writer():
            log.warning(
                "registry: this instance (%s) is the writer of %s",
                self.advertised_url or "no advertised URL",
                self.topic,
            )
        return self.is_writer()

    def _lease_loop(self) -> None:
        """The writer renews its claim; a follower takes over once the claim has lapsed."""
        renewed = time.monotonic()
        while not self._stop.wait(ELECTION_EVERY):
            if self._conflict:
                return
            try:
                if self.is_writer():
                    due = time.monotonic() - renewed >= self.writer_lease / 3
                    if due and self._writer_problem is None:
                        renewed = time.monotonic()
                        self.append([Record(WRITER_KEY, self._claim_value())])
                elif self._latest_claim is None or not self._alive(self._latest_claim):
                    renewed = time.monotonic()
                    self._take_over(min(self.timeout, 10.0))
            except Exception as exc:
                log.warning("registry writer claim not renewed or taken: %s", exc)
                self._takeover_problem = (time.monotonic(), str(exc) or type(exc).__name__)
            else:
                self._takeover_problem = None

    def write_route(self) -> WriteRoute:
        """Where a write request goes now: here, to the writer's URL, or nowhere yet."""
        if self._starting is not None or self._conflict is not None or self.is_writer():
            return WriteRoute.here()  # the write path answers (503 with the reason)
        claim = self._latest_claim
        retry = max(1, round(self.writer_lease / 3))
        if claim is None or not self._alive(claim):
            failed = self._takeover_problem
            why = (
                f"; this instance's last try to take it over failed: {failed[1]}"
                if failed is not None and time.monotonic() - failed[0] < self.writer_lease
                else ""
            )  # h59: Kafka refusing the takeover (too few brokers) was said only in a log
            return WriteRoute.nowhere(
                f"no registry instance holds the writer role of {self.topic!r} now (the last "
                f"writer's claim lapsed); one takes over within seconds: retry{why}",
                retry,
            )
        if claim.get("instance") == self.instance:  # our claim, but fenced: another inits
            return WriteRoute.nowhere(
                f"this registry instance lost the writer role of {self.topic!r} ({self._lost}) "
                f"and the new writer has not claimed it yet: retry",
                1,
            )
        if not claim.get("url"):
            return WriteRoute.nowhere(
                f"the registry writer, {self._describe(claim)}, has no advertised URL to forward "
                f"writes to; start it with `mesh registry serve --advertised-url` "
                f"(MESH_REGISTRY_ADVERTISED_URL), or write to it directly",
                retry,
            )
        return WriteRoute.forward(
            str(claim["url"]), self._describe(claim), self.timeout, retry_after=retry
        )

    # -- health ----------------------------------------------------------------------------

    def starting(self) -> str | None:
        """Why the store cannot serve yet (replay under way, start-up failed); None once up."""
        if self._starting == "replaying the registry log":
            if self._replay_end is None:
                return f"replaying the registry log: reading where {self.topic} ends"
            return (
                f"replaying the registry log: {self._next_offset:,} of {self._replay_end:,} "
                f"records of {self.topic}"
            )
        return self._starting

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): replayed, Kafka answering and, on the writer, the writer usable.

        A follower is ready while it serves reads: writes it forwards, or answers 503 with
        Retry-After while no writer is known.
        """
        writer = self.is_writer()
        reason = self.starting() or self._conflict
        if reason is None and writer and self._writer_problem is not None:
            reason = f"the registry writer is being recreated after: {self._writer_problem}"
        if reason is None:
            reason = self._kafka_problem()
        claim = self._latest_claim or {}
        details: dict[str, Any] = {
            "topic": self.topic,
            "writer_id": self.transactional_id,
            "records": self._next_offset,
            "role": "writer" if writer else "follower",
            "writer_url": claim.get("url") if claim and self._alive(claim) else None,
            "kafka_cluster_id": self.kafka_cluster_id,
        }
        if reason is not None:
            return False, {"reason": reason, **details}
        return True, details

    def _kafka_problem(self, timeout: float = 2.0) -> str | None:
        """None when the partition leader answers now (cached for a second)."""
        checked, problem = self._probe
        if time.monotonic() - checked < 1.0:
            return problem
        try:
            self._end_offset(timeout)
            problem = None
        except RegistryUnavailableError as exc:
            problem = f"Kafka at {self.bootstrap_servers} is unreachable: {exc.message}"
        except RuntimeError as exc:
            problem = str(exc)
        self._probe = (time.monotonic(), problem)
        return problem

    # -- write ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        """(Under the write lock.) Refuse unless this instance is the writer."""
        if self._conflict is not None:
            raise RegistryWriterConflictError(self._conflict, status=503, error_code=50303)
        if self.is_writer():
            return
        if self._producer is not None:
            producer, self._producer = self._producer, None
            _dispose(producer)
        claim = self._latest_claim
        why = self._lost or (
            f"the writer is {self._describe(claim)}"
            if claim is not None and claim.get("instance") != self.instance
            else "no instance holds the writer role now"
        )
        raise RegistryFencedError(
            f"registry write refused: this instance is not the writer of {self.topic!r} "
            f"({why}); it serves reads and forwards writes to the writer: retry",
            status=503,
            error_code=50301,
        )

    def append(self, records: Sequence[Record]) -> None:
        """One transaction for ``records``; returns once the tail applied them."""
        if self._apply is None:
            raise RuntimeError("KafkaStore.append before open")
        if self._starting is not None:
            raise _unavailable(f"the registry is not serving yet: {self.starting()}")
        self._write(records)

    def observe_writes(self, timer: WriteTimer) -> None:
        """Tell ``timer`` the seconds of each stored write: ``append`` (all of it: its turn,
        the transaction, its records read back) and ``commit`` (the transaction alone)."""
        self._write_timer = timer

    def _write(self, records: Sequence[Record]) -> None:
        started = time.monotonic()
        encoded = [record.encode() for record in records]  # a 422 before any transaction
        with self._write_lock:
            self._check_writable()
            if self._writer_problem is not None:
                self._recover_writer(min(self.timeout, 5.0))
            # Read whatever reached the log since (another writer's claim, a transaction in
            # doubt), so the checks below and the ids the caller chose see it.
            self._catch_up(min(self.timeout, WRITE_CATCH_UP_S))
            self._check_writable()
            # an id is in the log once; an imported one may be below those already there
            stale = [
                int(r.key[1])
                for r in records
                if r.key[0] == "schema" and int(r.key[1]) in self._schema_ids
            ]
            if stale:
                raise _unavailable(
                    f"schema id {stale[0]} is already in the registry log (the view moved while "
                    f"this write was prepared); nothing was stored, retry"
                )
            committing = time.monotonic()
            next_offset = self._transact(encoded)
            committed = time.monotonic()
            self._wait_applied(next_offset)
        if self._write_timer is not None:
            self._write_timer("commit", committed - committing)
            self._write_timer("append", time.monotonic() - started)

    def _transact(
        self, encoded: list[tuple[bytes, bytes | None]], timeout: float | None = None
    ) -> int:
        """Produce ``encoded`` in one transaction; the offset after the last one."""
        producer = self._producer
        assert producer is not None
        offsets: list[int] = []
        errors: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                offsets.append(msg.offset() or 0)

        try:
            producer.begin_transaction()
            for key, value in encoded:
                producer.produce(self.topic, value, key, partition=0, on_delivery=delivered)
            producer.commit_transaction(self.timeout if timeout is None else timeout)
        except KafkaException as exc:
            raise self._failed_transaction(producer, exc.args[0]) from exc
        except Exception as exc:
            self._abort(producer, f"{type(exc).__name__}: {exc}")
            raise
        if errors or not offsets:
            raise _unavailable(
                f"registry write not acknowledged: {'; '.join(errors) or 'no report'}"
            )
        return max(offsets) + 1

    def _failed_transaction(self, producer: Producer, error: KafkaError) -> Exception:
        """Abort, or hand the producer to recovery; the error to raise."""
        if error.code() in _FENCED_CODES:
            self._lost = f"another instance took over the writer role ({error.str()})"
            return RegistryFencedError(
                f"registry write refused: {self._lost}; nothing was stored. This instance "
                f"serves reads and forwards writes to the new writer: retry",
                status=503,
                error_code=50301,
            )
        aborted = self._abort(producer, error.str())
        if aborted and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return RequestTooLargeError(
                f"a registry record is larger than Kafka accepts on {self.topic!r} "
                f"({error.str()}); nothing was stored: send a smaller schema or descriptor",
                status=413,
                error_code=41301,
            )
        if aborted:
            return _unavailable(
                f"registry write to {self.topic!r} on {self.bootstrap_servers} failed: "
                f"{error.str()}; nothing was stored, retry"
            )
        return _unavailable(
            f"registry write to {self.topic!r} on {self.bootstrap_servers} failed: "
            f"{error.str()}; Kafka is unreachable or too slow (timeout {self.timeout:.0f}s). "
            f"The registry recreates its writer by itself (GET /health/ready answers 200 "
            f"once it has); retry then: registering the same schema again returns one id"
        )

    def _abort(self, producer: Producer, reason: str) -> bool:
        """Abort the open transaction; False (and recovery started) when that fails too."""
        try:
            producer.abort_transaction(self.timeout)
            return True
        except KafkaException as exc:
            log.warning("registry write failed (%s) and abort_transaction too: %s", reason, exc)
        self._writer_problem = reason
        if not self._recovering.is_set():
            self._recovering.set()
            self._spawn("registry-writer-recovery", self._recovery_loop)
        return False

    def _recovery_loop(self) -> None:
        try:
            while self._writer_problem is not None and not self._stop.is_set():
                if self._lost or self._conflict:
                    return
                try:
                    with self._write_lock:
                        if self._writer_problem is not None:
                            self._recover_writer(min(self.timeout, 10.0))
                except Exception as exc:
                    log.warning("registry writer not recreated yet: %s", exc)
                    self._stop.wait(1.0)
        finally:
            self._recovering.clear()

    def _recover_writer(self, timeout: float) -> None:
        """(Under the write lock.) Close the broken producer, init a new one, catch up."""
        problem = self._writer_problem
        reachable = self._kafka_problem(timeout)
        if reachable is not None:
            raise _unavailable(
                f"the registry writer is unusable since a write failed ({problem}) and "
                f"{reachable}; it is recreated once Kafka answers, retry then"
            )
        self._check_writable()
        old, self._producer = self._producer, None
        if old is not None:
            _dispose(old)
        try:
            self._producer = self._new_producer(timeout)
        except RegistryUnavailableError as exc:
            raise _unavailable(f"the registry writer is being recreated: {exc.message}") from exc
        self._catch_up(timeout)
        self._check_writable()
        self._writer_problem = None
        self._probe = (0.0, None)
        log.warning("registry writer recreated after: %s", problem)

    def _catch_up(self, timeout: float) -> None:
        """Wait until the view holds everything committed (e.g. a transaction in doubt)."""
        high = self._end_offset(timeout)
        with self._progress:
            if not self._progress.wait_for(lambda: self._next_offset >= high, timeout=timeout):
                raise _unavailable(
                    f"the registry view is behind its log (offset {self._next_offset:,} of "
                    f"{high:,} of {self.topic!r} after {timeout:.0f}s); nothing was stored, retry"
                )

    def catch_up_view(self, timeout: float) -> None:
        """Return once the view holds every record committed before this call.

        For authentication (a token revoked through another instance must be refused here at
        once): one end-offset request to the partition leader, then a wait for the tail,
        which is usually already there (it fetches every 10 ms). Calls arriving while a
        request is in flight wait for the next one and share it: a request that started
        after a call arrived answers it as well as its own would, so the broker sees at most
        one at a time however many requests authenticate (a failed request is shared too,
        so an outage does not queue them one timeout each). Kafka unreachable: 503, never a
        stale answer.
        """
        arrived = time.monotonic()
        with self._view_lock:
            started, end = self._view_end
            if started <= arrived:
                started = time.monotonic()
                try:
                    end = self._end_offset(timeout)
                except RegistryUnavailableError as exc:
                    end = exc  # the calls queued behind this one share the answer, not retry
                self._view_end = (started, end)
        if isinstance(end, RegistryUnavailableError):
            raise _unavailable(
                f"cannot bring this instance up to its log's end (to check a credential "
                f"against the latest revocations, or look up a schema registered through "
                f"another instance): {end.message}"
            )
        with self._progress:
            if not self._progress.wait_for(lambda: self._next_offset >= end, timeout=timeout):
                raise _unavailable(
                    f"the registry view is behind its log (offset {self._next_offset:,} of "
                    f"{end:,} of {self.topic!r} after {timeout:.0f}s), so a credential cannot "
                    f"be checked against the latest revocations, nor a schema registered "
                    f"through another instance found; retry"
                )

    def _end_offset(self, timeout: float) -> int:
        """The offset after the last committed record of the topic, asked of the broker."""
        client = self._offsets
        if client is None:
            raise RuntimeError("the registry store is closed")
        try:
            _low, high = client.get_watermark_offsets(
                self._partition, timeout=timeout, cached=False
            )
        except KafkaException as exc:
            # The leader may have moved (a broker died): learn the new one now, so the next
            # request goes there instead of to the dead node.
            with contextlib.suppress(KafkaException):
                client.list_topics(self.topic, timeout=min(timeout, 2.0))
            raise _unavailable(
                f"cannot read the end offset of registry topic {self.topic!r} from "
                f"{self.bootstrap_servers}: {exc.args[0].str()}"
            ) from exc
        return int(high)

    def _wait_applied(self, next_offset: int) -> None:
        with self._progress:
            if not self._progress.wait_for(
                lambda: self._next_offset >= next_offset, timeout=self.timeout
            ):
                raise _unavailable(
                    f"registry write committed but not read back from {self.topic!r} within "
                    f"{self.timeout}s"
                )

    def _release(self) -> None:
        """A writer stopping cleanly lets its claim lapse now, so a follower takes over at once."""
        if not self.is_writer() or self._writer_problem is not None:
            return
        value = {**self._claim_value(), "lease_ms": 0}
        try:
            with self._write_lock:
                self._transact([Record(WRITER_KEY, value).encode()], timeout=5.0)
        except Exception as exc:
            log.warning("registry writer claim not released (it lapses by itself): %s", exc)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` first when the store closes (what was started with it)."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Stop: release the writer claim, stop the threads, close the clients. With Kafka
        away, nothing waits for it (a stop took 16 s): the threads, each in a Kafka call
        then, are daemons, and what the producer still holds could not be sent anyway."""
        for callback in self._on_close:
            callback()
        kafka_away = self._offsets is None or self._kafka_problem(CLOSE_PROBE_S) is not None
        if not kafka_away:
            self._release()
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=CLOSE_PROBE_S if kafka_away else 5)
        for client in (self._consumer, self._offsets):
            if client is not None and kafka_away:  # librdkafka's close waits for the broker
                threading.Thread(
                    target=client.close, name="registry-consumer-close", daemon=True
                ).start()
            elif client is not None:
                client.close()
        self._consumer = self._offsets = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            if self._writer_problem is None and not kafka_away:
                producer.flush(5)
            _dispose(producer)


def _dispose(producer: Producer) -> None:
    """Drop a producer without waiting on a broker that may be gone (in a daemon thread)."""

    def drop(held: list[Producer]) -> None:
        try:
            held[0].purge()
        except Exception:  # a producer in a fatal state may refuse even that
            log.debug("purge of a discarded registry producer failed", exc_info=True)
        held.clear()

    threading.Thread(
        target=drop, args=([producer],), name="registry-producer-drop", daemon=True
    ).start()
