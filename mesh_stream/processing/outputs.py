"""Output records through librdkafka, with faust's guarantees kept around them.

The aggregate sends one record per key and batch to the output product. Through faust's
producer (its buffer, then aiokafka's Python sender) those sends were about a quarter of a
worker's CPU at a steady 1,000 events/s; a confluent-kafka producer does the same in C on its
own threads (docs/design/processing.md). What faust's producer guaranteed still holds:

* **nothing committed ahead of its outputs**: :meth:`OutputProducer.flush` returns once Kafka
  acknowledged every record sent so far. :func:`flush_with_commits` runs it when faust starts
  a commit (before faust picks the offsets) and when partitions are revoked (so a partition's
  next owner never sees this worker's outputs land after its own); the engine's
  ``confirmed_flush`` runs it before windows are forgotten;
* **a refused record stops the worker**: the first record Kafka refuses is handed to
  :attr:`OutputProducer.on_refused` (the worker's ``StopOnSendError``), and every later flush
  raises, so no commit follows it;
* **a key keeps its partition**: the mesh's partitioner (:mod:`mesh_stream.kafka.partitions`,
  Java's murmur2, aiokafka's too, which faust used) for keyed records, so an output key goes
  to the partition it always went to.

Everything runs on the worker's event-loop thread: a send serves the delivery reports that
have arrived (``poll(0)``), and a flush blocks that thread until the records in hand are
acknowledged (milliseconds; at most ``FLUSH_TIMEOUT_S``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import faust
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from mesh_stream.errors import MeshError, ProcessorError
from mesh_stream.kafka.clients import (
    BATCH_OVERHEAD_BYTES,
    LIBRDKAFKA_MESSAGE_MAX_BYTES,
    NO_LOSS_PRODUCER_CONFIG,
    RECORD_OVERHEAD_BYTES,
    batches_within,
    make_admin,
    make_producer,
)
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.partitions import KEY_PARTITIONER
from mesh_stream.kafka.topics import describe_topic, writes_refused_for_replicas
from mesh_stream.processing.deferred import FlushBeforeCommit

__all__ = ["OUTPUT_PRODUCER_CONFIG", "OutputProducer", "OutputRefusedError", "flush_with_commits"]

log = logging.getLogger(__name__)

#: What confluent-kafka takes as headers (a dict the engine made for this record).
_Headers = dict[str, str | bytes | None]

#: On top of the connection's settings. Idempotence keeps a key's records in order through
#: retries; no linger, since each send is one batch's output and a wait only adds latency.
OUTPUT_PRODUCER_CONFIG: dict[str, Any] = {
    **NO_LOSS_PRODUCER_CONFIG,
    "linger.ms": 0,
    "partitioner": KEY_PARTITIONER,
    # Only a refusal reaches Python: a callback per acknowledged output was CPU for nothing
    # (flush still waits for every record in flight).
    "delivery.report.only.error": True,
}
#: Longest a flush waits for acknowledgements before the worker is stopped.
FLUSH_TIMEOUT_S = 30.0


class OutputRefusedError(ProcessorError):
    """Kafka refused an output record, or did not acknowledge it in time."""


class OutputProducer:
    """The worker's sender of output records (see the module); its client is made when the
    worker starts (:func:`flush_with_commits`), not when the engine is built."""

    def __init__(self, connection: KafkaConnection, app_id: str) -> None:
        self.connection = connection
        self.app_id = app_id
        #: The client's config: :meth:`start` keeps batches under the topic's record limit.
        self.config = dict(OUTPUT_PRODUCER_CONFIG)
        #: The most bytes one record's key, value and headers may take: the producer's limit,
        #: and once :meth:`start` read it, the topic's.
        self.max_record_bytes = LIBRDKAFKA_MESSAGE_MAX_BYTES - RECORD_OVERHEAD_BYTES
        #: Told of the first refused record (the engine sets the worker's StopOnSendError).
        self.on_refused: Callable[[BaseException], None] = self._log_refusal
        #: The first refusal; once set, every flush raises it.
        self.refused: OutputRefusedError | None = None
        self._producer: Producer | None = None
        #: The output topic, once :meth:`start` was told it.
        self._topic: str | None = None

    def start(self, topic: str, timeout_s: float = 10.0) -> None:
        """Make the client and learn ``topic``'s partition leaders now, so the first output
        is sent at once rather than after the client's own start (a worker calls this as it
        starts; :meth:`send` makes the client itself if it was not).

        A topic whose ``max.message.bytes`` is below librdkafka's batch size gets batches
        under it first: Kafka refuses a whole batch over it, outputs that fit one by one
        included, and would again after every restart.
        """
        self._topic = topic
        if self._producer is None:
            limit = self._record_limit(topic, timeout_s)
            self.config = batches_within(OUTPUT_PRODUCER_CONFIG, [limit] if limit else [])
            if limit:
                alone = limit - BATCH_OVERHEAD_BYTES - RECORD_OVERHEAD_BYTES
                self.max_record_bytes = min(self.max_record_bytes, alone)
        producer = self._client()
        try:
            producer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:  # the first send will try again, and report a refusal
            log.warning("%s: could not read the metadata of %s yet: %s", self.app_id, topic, exc)

    def _record_limit(self, topic: str, timeout_s: float) -> int | None:
        """``topic``'s ``max.message.bytes``, or None when it cannot be read (no
        DescribeConfigs right, say: batches then keep librdkafka's size)."""
        try:
            state = describe_topic(
                make_admin(self.connection, {"log_level": 0}),
                self.connection,
                topic,
                timeout=timeout_s,
            )
        except MeshError as exc:
            log.warning("%s: could not read the configs of %s: %s", self.app_id, topic, exc)
            return None
        limit = state.config.get("max.message.bytes", "") if state is not None else ""
        return int(limit) if limit.isdigit() else None

    def send(
        self, topic: str, key: bytes, value: bytes | None, headers: Mapping[str, bytes]
    ) -> None:
        """Hand one record (``value`` None: a tombstone) to librdkafka (it is sent at once,
        from its own thread); a record Kafka could not take is a :class:`ProcessorError`
        (what ``emit`` returned), before anything is sent."""
        size = (
            len(key)
            + len(value or b"")
            + sum(len(name) + len(data) for name, data in headers.items())
        )
        if size > self.max_record_bytes:
            raise ProcessorError(
                f"it takes {size:,} bytes, over the {self.max_record_bytes:,} one record of "
                f"{topic} may take (the topic's max.message.bytes and the producer's "
                f"message.max.bytes, less their overhead); emit a smaller record"
            )
        producer = self._producer or self._client()
        while True:
            try:
                producer.produce(topic, value, key, headers=cast("_Headers", headers))
                break
            except BufferError:  # librdkafka's queue is full: let deliveries make room
                producer.poll(0.1)
        producer.poll(0)  # the delivery reports in hand: a refusal stops the worker now

    def _client(self) -> Producer:
        if self._producer is None:
            config = {**self.config, "on_delivery": self._delivered}  # refusals only
            self._producer = make_producer(self.connection, config)
        return self._producer

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until Kafka acknowledged every record sent so far; raises if one was refused
        (now or before) or the wait ran out (the worker is then stopped too)."""
        producer = self._producer
        if producer is not None:
            left = producer.flush(timeout_s)
            if left and self.refused is None:
                self._refuse(
                    f"{left} output record(s) of {self.app_id} not acknowledged by Kafka "
                    f"within {timeout_s:.0f} s{self._why_unacknowledged()}"
                )
        if self.refused is not None:
            raise self.refused

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and self.refused is None:
            # no question to the cluster here: this runs on the worker's event loop (h46);
            # a flush that times out asks (:meth:`_why_unacknowledged`)
            where = f"{message.topic()}[{message.partition()}]"
            self._refuse(f"output record to {where} refused: {error.name()} ({error.str()})")

    def _why_unacknowledged(self) -> str:
        """What the cluster says of the output topic's in-sync replicas, when that is why
        records go unacknowledged (librdkafka retries NOT_ENOUGH_REPLICAS to a timeout); asked
        only by a flush that ran out of time, which stops the worker anyway."""
        if self._topic is None:
            return ""
        cause = writes_refused_for_replicas(self.connection, self._topic)
        return "" if cause is None else f": {cause}"

    def _refuse(self, text: str) -> None:
        self.refused = OutputRefusedError(text)
        self.on_refused(self.refused)

    def _log_refusal(self, exc: BaseException) -> None:
        log.error("%s", exc)


def flush_with_commits(app: faust.App, outputs: OutputProducer, topic: str) -> None:
    """Start ``outputs`` (for ``topic``) as the worker starts; flush them before each of
    faust's commits and when partitions are revoked."""
    app.sensors.add(FlushBeforeCommit(outputs.flush))

    async def start_outputs() -> None:
        outputs.start(topic)

    app.task(start_outputs)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's handler type is narrow
    async def flush_outputs_before_handing_over(sender: Any, *args: Any, **kwargs: Any) -> None:
        del sender, args, kwargs
        outputs.flush()
