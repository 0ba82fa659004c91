"""Where the monitor's results go: the health topic, the alerts topic, an optional webhook;
and what it reads back from the health topic (the latest health and recent volume of each
product), so statuses, ``since`` and alerts carry across restarts and instances.

Both topics have one partition and are created through :mod:`mesh_stream.kafka.topics`
(the cluster's replication factor): the health topic compacted and deleted after
:data:`~mesh_stream.health.HEALTH_RETENTION_MS` (several instances write the same key per
minute, compaction keeps one), the alerts topic deleted after
:data:`~mesh_stream.health.ALERT_RETENTION_MS`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from mesh_stream.errors import ConfigurationError, DeliveryError
from mesh_stream.health import (
    ALERT_RETENTION_MS,
    HEALTH_RETENTION_MS,
    Alert,
    FigureName,
    ProductHealth,
    health_key,
)
from mesh_stream.http_failures import failure_words
from mesh_stream.kafka import topics
from mesh_stream.kafka.clients import (
    NO_LOSS_PRODUCER_CONFIG,
    make_admin,
    make_consumer,
    make_producer,
)
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error

log = logging.getLogger(__name__)

#: How much of the health topic a starting monitor reads back (latest health, volume history).
READ_BACK_MS = 60 * 60_000
#: Records-per-minute figures kept per product to compare the newest with.
HISTORY_SIZE = 60
#: Pause between asks while the health topic's partitions have no leader yet.
LEADER_PAUSE_S = 0.2
#: Seconds a webhook POST may take before it counts as failed.
WEBHOOK_TIMEOUT = 5.0


def ensure_monitor_topics(
    conn: KafkaConnection, health_topic: str, alerts_topic: str, *, timeout: float = 30.0
) -> None:
    """Create the health and alerts topics when missing; an existing one whose configs
    differ (a broker that auto-created it with its defaults: not compacted, kept 7 days)
    is corrected, since the platform owns them. A topic that holds something else is
    refused before anything is changed or written (h51: MESH_ALERTS_TOPIC=_mesh_registry
    turned the registry's compacted topic into one Kafka deletes from, and wrote alerts
    into it): a product's topic, Kafka's own, the other setting's, or a topic whose
    ``cleanup.policy`` was set on it to something else (the registry's, say)."""
    settings = {"MESH_HEALTH_TOPIC": health_topic, "MESH_ALERTS_TOPIC": alerts_topic}
    if health_topic == alerts_topic:
        raise ConfigurationError(
            f"MESH_HEALTH_TOPIC and MESH_ALERTS_TOPIC are both {health_topic!r}: health "
            f"records (compacted, one per product and interval) and alerts (kept 30 days) "
            f"need a topic each"
        )
    for setting, name in settings.items():
        kind = topics.product_topic_kind(name) or ("Kafka's own" if name.startswith("__") else None)
        if kind is not None:
            raise ConfigurationError(
                f"{setting}={name!r} is {kind}; the monitor sets its topic's configs and "
                f"writes its records there: name a topic of its own (or unset {setting})"
            )
    admin = make_admin(conn, {"log_level": 0})
    cluster = topics.cluster_info(conn, admin=admin, timeout=timeout)
    specs = {
        "MESH_HEALTH_TOPIC": topics.topic_spec(
            health_topic,
            cluster,
            partitions=1,
            cleanup_policy="compact,delete",
            retention_ms=HEALTH_RETENTION_MS,
        ),
        "MESH_ALERTS_TOPIC": topics.topic_spec(
            alerts_topic,
            cluster,
            partitions=1,
            cleanup_policy="delete",
            retention_ms=ALERT_RETENTION_MS,
        ),
    }
    existing = topics.list_topic_names(admin, conn, timeout=timeout)
    for setting, spec in specs.items():
        # asking a broker that auto-creates topics about a missing one would create it
        state = (
            topics.describe_topic(admin, conn, spec.name, timeout=timeout)
            if spec.name in existing
            else None
        )
        policy = None if state is None else state.config.get("cleanup.policy")
        explicit = state is not None and "cleanup.policy" in state.explicit
        wanted = spec.config["cleanup.policy"]
        if explicit and topics.cleanup_policies(policy or "") != topics.cleanup_policies(wanted):
            raise ConfigurationError(
                f"{setting}={spec.name!r}: that topic exists with cleanup.policy={policy} set "
                f"on it, so it holds something else (the monitor's is "
                f"{spec.config['cleanup.policy']}); the monitor would change it and write its "
                f"records into it: name a topic of its own (or unset {setting})"
            )
    topics.ensure_topics(conn, list(specs.values()), admin=admin, timeout=timeout, correct=True)


class HealthLog:
    """The health topic as read back: each product's latest measurement (by measure time,
    whoever wrote it) and its recent records-per-minute figures."""

    def __init__(self, conn: KafkaConnection, topic: str, *, now_ms: int) -> None:
        self.topic = topic
        self.latest: dict[str, ProductHealth] = {}
        self.volumes: dict[str, deque[tuple[int, float]]] = {}
        self._conn = conn
        self._consumer = self._new_consumer()
        self._read_back_from(now_ms)

    def _read_back_from(self, now_ms: int) -> None:
        """Assign again at the next catch-up, from the hour before ``now_ms``."""
        self._assigned = False
        self._next: dict[int, int] = {}  # partition -> next offset to read
        self._start_ms = now_ms - READ_BACK_MS

    def _new_consumer(self) -> Consumer:
        return make_consumer(
            self._conn,
            {
                "group.id": "mesh-monitor-health-reader",  # never subscribes nor commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "log_level": 0,
            },
        )

    def close(self) -> None:
        self._consumer.close()

    def reconnect(self, *, now_ms: int) -> None:
        """A new consumer that reads the last hour back again (a round failed: a restarted
        or recreated topic may have left the old one's positions behind). What was read
        stays; reading it twice changes nothing."""
        consumer, self._consumer = self._consumer, self._new_consumer()  # no closed one left
        consumer.close()
        self._read_back_from(now_ms)

    def remember(self, health: ProductHealth) -> None:
        """Take one measurement in (read back or just written); the newest one wins."""
        known = self.latest.get(health.product)
        if known is None or health.measured_at_ms >= known.measured_at_ms:
            self.latest[health.product] = health
        volume = next(
            (
                f.value
                for f in health.figures
                if f.name == FigureName.RECORDS_PER_MINUTE and f.subject is None
            ),
            None,
        )
        if volume is not None:
            kept = self.volumes.setdefault(health.product, deque(maxlen=HISTORY_SIZE))
            if all(at != health.measured_at_ms for at, _ in kept):
                kept.append((health.measured_at_ms, volume))

    def history(self, product: str) -> list[float]:
        return [value for _, value in self.volumes.get(product, ())]

    def catch_up(self, timeout: float = 10.0) -> int:
        """Read what was written since the last call (at first: the last hour) up to the
        topic's end; returns how many measurements were read."""
        if not self._assigned:
            self._assign(timeout)
        ends: dict[int, int] = {}
        for partition in self._next:
            tp = TopicPartition(self.topic, partition)
            try:
                ends[partition] = self._consumer.get_watermark_offsets(
                    tp, timeout=timeout, cached=False
                )[1]
            except KafkaException as exc:
                problem = explain_kafka_error(exc, self._conn, topic=self.topic, operation="READ")
                raise type(problem)(
                    f"reading back the health topic {self.topic}[{partition}]: {problem}"
                ) from exc
        pending = {p for p, high in ends.items() if high > self._next[p]}
        read = 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in self._consumer.consume(500, 0.5):
                where, at = message.partition(), message.offset()
                if where is None or at is None:
                    continue
                partition, offset = where, at
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._next[partition] = max(self._next[partition], offset)
                        pending.discard(partition)
                    continue
                self._next[partition] = offset + 1
                read += self._take(message)
                if offset + 1 >= ends.get(partition, 0):
                    pending.discard(partition)
        return read

    def _assign(self, timeout: float) -> None:
        try:
            found = self._consumer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        except KafkaException as exc:
            raise explain_kafka_error(
                exc, self._conn, topic=self.topic, operation="DESCRIBE"
            ) from exc
        if found is None or found.error is not None:
            return  # created by ensure_monitor_topics; looked for again next time
        wanted = [TopicPartition(self.topic, p, self._start_ms) for p in sorted(found.partitions)]
        try:  # a topic created a moment ago may not have its leaders known yet
            positions = topics.while_no_leader(
                lambda: self._consumer.offsets_for_times(wanted, timeout=timeout),
                attempts=int(timeout / LEADER_PAUSE_S) + 1,
                pause_s=LEADER_PAUSE_S,
            )
        except KafkaException as exc:
            if topics.no_leader_yet(exc):
                return  # looked for again next time
            raise explain_kafka_error(
                exc, self._conn, topic=self.topic, operation="DESCRIBE"
            ) from exc
        for tp in positions:
            if tp.offset < 0:  # nothing that recent: start at the end
                tp.offset = self._consumer.get_watermark_offsets(tp, timeout=timeout)[1]
            self._next[tp.partition] = tp.offset
        self._consumer.assign(
            [TopicPartition(self.topic, p, offset) for p, offset in self._next.items()]
        )
        self._assigned = True

    def _take(self, message: Message) -> int:
        value = message.value()
        if value is None:
            return 0
        try:
            health = ProductHealth.model_validate_json(value)
        except ValidationError:
            log.warning(
                "%s[%d]@%d is not a product health record; skipped",
                self.topic,
                message.partition(),
                message.offset(),
            )
            return 0
        self.remember(health)
        return 1


class Publisher:
    """Writes health and alert records (acks=all, idempotent, every delivery checked) and
    POSTs each alert to the webhook when one is set."""

    def __init__(
        self,
        conn: KafkaConnection,
        health_topic: str,
        alerts_topic: str,
        *,
        interval_ms: int = 60_000,
        webhook_url: str | None = None,
    ) -> None:
        self.health_topic = health_topic
        self.alerts_topic = alerts_topic
        self.interval_ms = interval_ms
        self._conn = conn
        self._webhook_url = webhook_url
        self._producer = make_producer(
            conn, {**NO_LOSS_PRODUCER_CONFIG, "linger.ms": 20, "log_level": 0}
        )
        self._http: httpx.Client | None = None
        #: Whether the last POST got no HTTP answer at all (the rest of a round is skipped).
        self._unreachable = False
        if webhook_url is not None:
            self._http = httpx.Client(timeout=WEBHOOK_TIMEOUT)

    def close(self) -> None:
        self._producer.flush(10)
        if self._http is not None:
            self._http.close()

    def publish(self, healths: Sequence[ProductHealth], alerts: Sequence[Alert]) -> None:
        """Write every health record (key ``health_key``) and alert (key the product), wait
        for each delivery, then POST the alerts to the webhook."""
        failures: list[str] = []
        acknowledged = 0

        def delivered(error: KafkaError | None, message: Message) -> None:
            nonlocal acknowledged
            if error is not None:
                failures.append(f"{message.topic()}: {error.str()}")
            else:
                acknowledged += 1

        for health in healths:
            self._producer.produce(
                self.health_topic,
                key=health_key(health.product, health.measured_at_ms, self.interval_ms),
                value=health.model_dump_json(),
                on_delivery=delivered,
            )
        for alert in alerts:
            self._producer.produce(
                self.alerts_topic,
                key=alert.product,
                value=alert.model_dump_json(),
                on_delivery=delivered,
            )
        self._producer.flush(30)
        total = len(healths) + len(alerts)
        # this round's own: the producer may still hold an earlier failed round's records
        left = max(0, total - acknowledged - len(failures))
        if failures or left:
            first = failures[0] if failures else "not acknowledged within 30 s"
            cause = (
                topics.writes_refused_for_replicas(self._conn, self.health_topic) if left else None
            )
            raise DeliveryError(
                f"product monitor: {len(failures) + left} of {total} records not written at "
                f"{self._conn.bootstrap_servers} (the first: {first})"
                + (
                    f": {cause}"
                    if cause
                    else f"; check that the broker runs and that this principal may write "
                    f"{self.health_topic} and {self.alerts_topic}"
                )
            )
        self.post_all(alerts)

    def post_all(self, alerts: Sequence[Alert]) -> None:
        """POST a round's alerts to the webhook, in order, until one gets no answer."""
        for posted, alert in enumerate(alerts):
            if not self.post(alert) and self._unreachable:
                # the next ones would each wait as long (h51: 11 alerts held a round, and a
                # Ctrl-C, for 55 s); they are in the alerts topic all the same
                left = len(alerts) - posted - 1
                if left:
                    log.warning(
                        "alert webhook: %d more alert(s) of this round not posted (they are in %s)",
                        left,
                        self.alerts_topic,
                    )
                break

    def post(self, alert: Alert) -> bool:
        """POST ``alert`` to the webhook; a failure is logged with the URL's host and port
        only (the URL may carry a token) and the monitor goes on."""
        self._unreachable = False
        if self._http is None or self._webhook_url is None:
            return False
        parts = urlsplit(self._webhook_url)
        where = f"{parts.hostname or '?'}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        try:
            answer = self._http.post(
                self._webhook_url,
                content=alert.model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            self._unreachable = True
            log.warning(
                "alert webhook at %s (MESH_ALERT_WEBHOOK_URL) failed: %s",
                where,
                _webhook_failure(exc),
            )
            return False
        if answer.status_code >= 300:
            log.warning(
                "alert webhook at %s (MESH_ALERT_WEBHOOK_URL) answered HTTP %d",
                where,
                answer.status_code,
            )
            return False
        return True


def _webhook_failure(exc: httpx.HTTPError) -> str:
    """Why a webhook POST failed, in words (never the URL, which may hold a token)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {WEBHOOK_TIMEOUT:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({failure_words(exc, own_text=False)})"
    return failure_words(exc, own_text=False)
