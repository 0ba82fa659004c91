"""The registry log in Kafka: a compacted topic, one transactional writer, replay on start.

How it stays consistent (see README "Registry"):

* The topic (``_mesh_registry`` by default) has one partition, so the log has one order, and
  ``cleanup.policy=compact``, so it keeps the latest value of each key forever.
* Writes go through a transactional producer with a fixed ``transactional.id`` (the writer
  id). When a second instance with the same id starts, its ``init_transactions`` bumps the
  producer epoch: the broker aborts the old instance's open transaction and refuses its
  later writes (it is *fenced* and answers writes with 503 ``RegistryFencedError``).
* Writers with *different* ids would not fence each other and would hand out the same
  schema ids, so each writer writes a claim record (key ``["writer"]``: writer id, instance,
  renewal time, lease) when it starts and renews it every third of its lease. Start-up is
  refused while the latest claim belongs to another writer id whose lease has not expired;
  a writer that reads, after its own claim, a claim by another writer id (or a schema id
  re-used for another schema) stops accepting writes (503 ``RegistryWriterConflictError``).
  The claim is the seed of a leader/follower mode: it names the current writer.
* A ``read_committed`` consumer replays the topic up to its end before the service answers
  (progress reported every few seconds; it fails only when no record arrives for
  ``timeout`` seconds), then keeps tailing it. A write returns only once its transaction
  is committed (durable with ``acks=all``) *and* the tail has folded it into the in-memory
  view, so the next read sees it. Ids come from that view (max + 1), ``schema`` records are
  never deleted, and the writer never writes a schema id it has already read, so ids are
  never reused, across restarts too.
* A write that fails aborts its transaction; when Kafka is unreachable or the producer is in
  a state it cannot leave (a commit still in flight, a fatal error), the writer is closed
  and recreated (``init_transactions`` again, which also settles the half-done transaction)
  in the background, and the view catches up with the log before the next write. Until
  then writes answer 503 and :meth:`KafkaStore.readiness` says why.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from mesh_stream.errors import (
    ConfigurationError,
    RegistryFencedError,
    RegistryUnavailableError,
    RegistryWriterConflictError,
    RequestTooLargeError,
)
from mesh_stream.registry.service.state import Record
from mesh_stream.registry.service.store import Apply

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "_mesh_registry"
DEFAULT_TRANSACTIONAL_ID = "mesh-registry-writer"
DEFAULT_WRITER_LEASE = 30.0
WRITER_KEY = ("writer",)
_FENCED_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)

Progress = Callable[[str], None]


def _unavailable(message: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(message, status=503, error_code=50302)


class KafkaStore:
    """:class:`~mesh_stream.registry.service.store.RegistryStore` on a compacted Kafka topic.

    ``timeout`` bounds each Kafka call and how long replay may go without progress;
    ``writer_lease`` is how long a writer claim holds after its last renewal.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = DEFAULT_TOPIC,
        transactional_id: str = DEFAULT_TRANSACTIONAL_ID,
        timeout: float = 30.0,
        writer_lease: float = DEFAULT_WRITER_LEASE,
        progress: Progress | None = None,
        progress_every: float = 5.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.transactional_id = transactional_id
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
        self._replay_end = 0
        self._max_schema_id = 0
        self._progress = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._starting: str | None = "not opened yet"
        self._failure: Exception | None = None
        self._fenced: str | None = None
        self._conflict: str | None = None
        self._writer_problem: str | None = None
        self._recovering = threading.Event()
        self._latest_claim: dict[str, Any] | None = None
        self._own_claim_offset: int | None = None
        self._probe: tuple[float, str | None] = (0.0, None)

    # -- start ---------------------------------------------------------------------------

    def _ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            metadata = admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise _unavailable(
                f"Kafka at {self.bootstrap_servers} did not answer: {exc}; check "
                f"MESH_BOOTSTRAP_SERVERS or start a broker with `mesh broker start`"
            ) from exc
        if self.topic in metadata.topics:
            self._check_compacted(admin)
            return
        replicas = min(3, max(1, len(metadata.brokers)))
        futures = admin.create_topics(
            [
                NewTopic(
                    self.topic,
                    num_partitions=1,
                    replication_factor=replicas,
                    config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
                )
            ]
        )
        try:
            futures[self.topic].result(timeout=self.timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigurationError(
                    f"cannot create registry topic {self.topic!r}: {exc}"
                ) from exc

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
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "transactional.id": self.transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
            }
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
        """Fence older writers, replay the topic to its end, claim the writer role, tail.

        ``wait=False`` returns once Kafka answered and the writer is initialised; replay and
        claim go on in a thread (:meth:`starting` says how far, :meth:`readiness` too).
        """
        self._apply = apply
        self._starting = "connecting to Kafka"
        self._ensure_topic()
        self._producer = self._new_producer(self.timeout)
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": f"mesh-registry-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "fetch.error.backoff.ms": 50,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, 0, 0)])
        # A consumer busy in consume() does not answer other calls meanwhile, so end
        # offsets (catch-up, readiness probe) come from a client of their own.
        self._offsets = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": f"mesh-registry-offsets-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
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
        self._claim_writer_role()
        self._spawn("registry-writer-lease", self._renew_loop)
        self._starting = None

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _replay(self) -> None:
        """Apply every record up to the end; fail only after ``timeout`` s without progress."""
        assert self._consumer is not None
        self._replay_end = self._end_offset(self.timeout)
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
                    f"{self._replay_end:,}); is Kafka at {self.bootstrap_servers} up?"
                )
            if now - last_report >= self.progress_every:
                last_report = now
                self._progress_report(
                    f"registry: replayed {self._next_offset:,} of {self._replay_end:,} records "
                    f"of {self.topic} ({now - started:.0f}s)"
                )
        self._progress_report(
            f"registry: replayed {self._next_offset:,} records of {self.topic} in "
            f"{time.monotonic() - started:.1f}s"
        )

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
                self._max_schema_id = max(self._max_schema_id, int(record.key[1]))
            assert self._apply is not None
            self._apply(record)
        except RegistryWriterConflictError as exc:
            where = f"{self.topic}[0]@{offset}"
            if replaying:
                log.warning("%s: %s (an old clash; the first schema is kept)", where, exc.message)
            else:
                self._set_conflict(f"{where}: {exc.message}")
        except Exception:
            log.exception("%s[0]@%s: registry record skipped", self.topic, offset)

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

    # -- the writer claim ------------------------------------------------------------------

    def _claim_value(self) -> dict[str, Any]:
        return {
            "writer_id": self.transactional_id,
            "instance": self.instance,
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
        return (
            f"writer id {claim.get('writer_id')!r} (host {claim.get('host')}, pid "
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

    def _on_claim(self, claim: dict[str, Any] | None, offset: int) -> None:
        """Decide on a claim from the log alone, so every instance decides the same.

        A claim made while the claim before it (by another writer id) was still live loses:
        its own writer refuses to start, and the others ignore it. A claim made after the
        one before it lapsed takes over: the writer of a lapsed claim stops writing.
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
            if self._own_claim_offset is None:
                self._own_claim_offset = offset
                if contested and previous is not None:
                    self._set_conflict(self._refusal(previous, "claimed it just before this one"))
            return
        if contested:
            # Its writer refuses itself (the rule above); a frozen writer's late renewal
            # lands here too. A schema it carried with a clashing id still stops writes.
            log.warning("%s[0]@%s: writer claim %s lost to a live one", self.topic, offset, claim)
            self._latest_claim = previous
            return
        if self._own_claim_offset is None:
            return  # before our claim: start-up checks the latest one
        if claim.get("writer_id") == self.transactional_id:
            self._fenced = (
                f"registry write refused: another instance took over the writer role "
                f"({self._describe(claim)} at {self.topic}[0]@{offset}); this one serves "
                f"reads only"
            )
            log.error("%s", self._fenced)
        else:
            self._set_conflict(self._refusal(claim, f"claimed it at {self.topic}[0]@{offset}"))

    def _set_conflict(self, message: str) -> None:
        if self._conflict is None:
            self._conflict = f"registry writes stopped: {message}"
            log.error("%s", self._conflict)

    def _claim_writer_role(self) -> None:
        """Refuse to start while another writer id holds a live claim; else claim."""
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
        self._write([Record(WRITER_KEY, self._claim_value())])
        if self._conflict is not None:
            raise RegistryWriterConflictError(self._conflict, status=503, error_code=50303)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.writer_lease / 3):
            if self._fenced or self._conflict:
                return
            if self._writer_problem is not None:
                continue
            try:
                self.append([Record(WRITER_KEY, self._claim_value())])
            except Exception as exc:
                log.warning("registry writer claim not renewed: %s", exc)

    # -- health ----------------------------------------------------------------------------

    def starting(self) -> str | None:
        """Why the store cannot serve yet (replay under way, start-up failed); None once up."""
        if self._starting == "replaying the registry log":
            return (
                f"replaying the registry log: {self._next_offset:,} of {self._replay_end:,} "
                f"records of {self.topic}"
            )
        return self._starting

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): replayed, writer usable and Kafka answering."""
        reason = self.starting() or self._conflict or self._fenced
        if reason is None and self._writer_problem is not None:
            reason = f"the registry writer is being recreated after: {self._writer_problem}"
        if reason is None:
            reason = self._kafka_problem()
        details: dict[str, Any] = {
            "topic": self.topic,
            "writer_id": self.transactional_id,
            "records": self._next_offset,
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
        if self._conflict is not None:
            raise RegistryWriterConflictError(self._conflict, status=503, error_code=50303)
        if self._fenced is not None:
            raise RegistryFencedError(self._fenced, status=503, error_code=50301)

    def append(self, records: Sequence[Record]) -> None:
        """One transaction for ``records``; returns once the tail applied them."""
        if self._apply is None:
            raise RuntimeError("KafkaStore.append before open")
        if self._starting is not None:
            raise _unavailable(f"the registry is not serving yet: {self.starting()}")
        self._write(records)

    def _write(self, records: Sequence[Record]) -> None:
        encoded = [record.encode() for record in records]  # a 422 before any transaction
        with self._write_lock:
            self._check_writable()
            if self._writer_problem is not None:
                self._recover_writer(min(self.timeout, 5.0))
            # Read whatever reached the log since (another writer's claim, a transaction in
            # doubt), so the checks below and the ids the caller chose see it.
            self._catch_up(self.timeout)
            self._check_writable()
            stale = [
                int(r.key[1])
                for r in records
                if r.key[0] == "schema" and int(r.key[1]) <= self._max_schema_id
            ]
            if stale:
                raise _unavailable(
                    f"schema id {stale[0]} is already in the registry log (the view moved while "
                    f"this write was prepared); nothing was stored, retry"
                )
            next_offset = self._transact(encoded)
            self._wait_applied(next_offset)

    def _transact(self, encoded: list[tuple[bytes, bytes | None]]) -> int:
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
            producer.commit_transaction(self.timeout)
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
            self._fenced = (
                f"registry write refused: another instance took over the writer role "
                f"({error.str()}); this one serves reads only"
            )
            return RegistryFencedError(self._fenced, status=503, error_code=50301)
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
                if self._fenced or self._conflict:
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

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        for client in (self._consumer, self._offsets):
            if client is not None:
                client.close()
        self._consumer = self._offsets = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            if self._writer_problem is None:
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
