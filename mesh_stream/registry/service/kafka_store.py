"""The registry log in Kafka: a compacted topic, one transactional writer, replay on start.

How it stays consistent (see README "Registry"):

* The topic (``_mesh_registry`` by default) has one partition, so the log has one order, and
  ``cleanup.policy=compact``, so it keeps the latest value of each key forever.
* Writes go through a transactional producer with a fixed ``transactional.id``. When a
  second instance starts, its ``init_transactions`` bumps the producer epoch: the broker
  aborts the old instance's open transaction and refuses its later writes (it is *fenced*
  and answers writes with 503 ``RegistryFencedError``). So there is one writer at a time.
* A ``read_committed`` consumer replays the topic up to its end before the service answers,
  then keeps tailing it. A write returns only once its transaction is committed (durable
  with ``acks=all``) *and* the tailing consumer has folded it into the in-memory view, so
  the next read sees it. Ids come from that view (max + 1) and ``schema`` records are never
  deleted, so ids are never reused, across restarts too.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from mesh_stream.errors import (
    ConfigurationError,
    RegistryFencedError,
    RegistryUnavailableError,
)
from mesh_stream.registry.service.state import Record
from mesh_stream.registry.service.store import Apply

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "_mesh_registry"
DEFAULT_TRANSACTIONAL_ID = "mesh-registry-writer"


class KafkaStore:
    """:class:`~mesh_stream.registry.service.store.RegistryStore` on a compacted Kafka topic."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = DEFAULT_TOPIC,
        transactional_id: str = DEFAULT_TRANSACTIONAL_ID,
        timeout: float = 30.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.transactional_id = transactional_id
        self.timeout = timeout
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._apply: Apply | None = None
        self._next_offset = 0
        self._progress = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None
        self._fenced = False

    # -- start ---------------------------------------------------------------------------

    def _ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            metadata = admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise RegistryUnavailableError(
                f"Kafka at {self.bootstrap_servers} did not answer: {exc}; check "
                f"MESH_BOOTSTRAP_SERVERS or start a broker with `mesh broker start`",
                status=503,
                error_code=50302,
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
            raise RegistryUnavailableError(
                f"cannot read the configuration of registry topic {self.topic!r}: {exc}",
                status=503,
                error_code=50302,
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

    def open(self, apply: Apply) -> None:
        """Fence older writers, replay the topic to its end, then tail it in a thread."""
        self._apply = apply
        self._ensure_topic()
        self._producer = Producer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "transactional.id": self.transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
            }
        )
        try:
            self._producer.init_transactions(self.timeout)
        except KafkaException as exc:
            raise RegistryUnavailableError(
                f"could not become the registry writer on {self.bootstrap_servers} "
                f"(transactional.id {self.transactional_id!r}): {exc}",
                status=503,
                error_code=50302,
            ) from exc
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
        self._replay()
        self._tail = threading.Thread(target=self._tail_loop, name="registry-tail", daemon=True)
        self._tail.start()

    def _replay(self) -> None:
        assert self._consumer is not None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            if self._handle(message):
                return
        raise RegistryUnavailableError(
            f"could not replay registry topic {self.topic!r} within {self.timeout}s",
            status=503,
            error_code=50302,
        )

    def _handle(self, message: Message) -> bool:
        """Apply one message; True at end of partition."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._advance(message.offset() or 0)
                return True
            log.warning("registry topic %s: %s", self.topic, error)
            return False
        offset = message.offset() or 0
        try:
            record = Record.decode(
                message.key() or b"[]", message.value(), f"{self.topic}[0]@{offset}"
            )
            assert self._apply is not None
            self._apply(record)
        except Exception:
            log.exception("registry topic %s[0]@%s: record skipped", self.topic, offset)
        self._advance(offset + 1)
        return False

    def _advance(self, next_offset: int) -> None:
        with self._progress:
            if next_offset > self._next_offset:
                self._next_offset = next_offset
                self._progress.notify_all()

    def _tail_loop(self) -> None:
        assert self._consumer is not None
        while not self._stop.is_set():
            try:
                message = self._consumer.poll(0.1)
            except Exception:  # the consumer was closed under us at shutdown
                return
            if message is not None:
                self._handle(message)

    # -- write ---------------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> None:
        """One transaction for ``records``; returns once the tail applied them."""
        if self._producer is None:
            raise RuntimeError("KafkaStore.append before open")
        if self._fenced:
            raise RegistryFencedError(
                "this registry instance was fenced by a newer one and serves reads only; "
                "send writes to the newest instance",
                status=503,
                error_code=50301,
            )
        offsets: list[int] = []
        errors: list[str] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                offsets.append(msg.offset() or 0)

        with self._write_lock:
            producer = self._producer
            try:
                producer.begin_transaction()
                for record in records:
                    key, value = record.encode()
                    producer.produce(self.topic, value, key, partition=0, on_delivery=delivered)
                producer.commit_transaction(self.timeout)
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or error.code() in (
                    KafkaError._FENCED,
                    KafkaError.PRODUCER_FENCED,
                    KafkaError.INVALID_PRODUCER_EPOCH,
                ):
                    self._fenced = True
                    raise RegistryFencedError(
                        f"registry write refused: another instance took over the writer role "
                        f"({error.str()}); this one serves reads only",
                        status=503,
                        error_code=50301,
                    ) from exc
                try:
                    producer.abort_transaction(self.timeout)
                except KafkaException:
                    log.exception("abort_transaction failed")
                raise RegistryUnavailableError(
                    f"registry write to {self.topic!r} on {self.bootstrap_servers} failed: "
                    f"{error.str()}; nothing was stored, retry",
                    status=503,
                    error_code=50302,
                ) from exc
            if errors or not offsets:
                raise RegistryUnavailableError(
                    f"registry write not acknowledged: {'; '.join(errors) or 'no report'}",
                    status=503,
                    error_code=50302,
                )
            self._wait_applied(max(offsets) + 1)

    def _wait_applied(self, next_offset: int) -> None:
        with self._progress:
            if not self._progress.wait_for(
                lambda: self._next_offset >= next_offset, timeout=self.timeout
            ):
                raise RegistryUnavailableError(
                    f"registry write committed but not read back from {self.topic!r} within "
                    f"{self.timeout}s",
                    status=503,
                    error_code=50302,
                )

    def close(self) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
