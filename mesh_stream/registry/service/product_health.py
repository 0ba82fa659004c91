"""Product health as the registry serves it: each product's latest measurement and its recent
history, read from the product monitor's compacted health topic.

The monitor (:mod:`mesh_stream.monitor`) writes one :class:`~mesh_stream.health.ProductHealth`
per product and interval to ``settings.health_topic``; every registry instance tails that
topic (a :class:`HealthFeed`) into a :class:`HealthBook`, so any instance answers and a
restart loses nothing. :class:`ProductHealthView` adds the catalog: an unknown product is
404, a registered one never measured is ``no data`` (not an error), and a measurement older
than :data:`STALE_AFTER_MS` is ``no data`` too -- a monitor that stopped must not leave a
product looking healthy. No HTTP here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from pydantic import ValidationError

from mesh_stream.health import NOT_MEASURED, ProductHealth, Status, health_key
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service.products import ProductCatalog, unknown_product

log = logging.getLogger(__name__)

#: How much history each product keeps in memory (the topic itself keeps 7 days).
HISTORY_MINUTES = 24 * 60
#: The most minutes ``/health/history`` accepts (the topic's retention).
MAX_HISTORY_MINUTES = 7 * 24 * 60
#: A latest measurement older than this is served as ``no data`` (is the monitor running?).
STALE_AFTER_MS = 5 * 60_000
#: ... or older than this many monitor intervals, when the interval is long.
STALE_AFTER_INTERVALS = 3
#: Unparsable records logged at warning before the rest are only counted.
WARN_SKIPPED = 5

#: Receives one record of the health topic: key, value (None: a tombstone), where it was.
Deliver = Callable[[bytes | None, bytes | None, str], None]


class HealthFeed(Protocol):
    """Where health records come from: the Kafka topic, or a list in unit tests."""

    def start(self, deliver: Deliver) -> None:
        """Deliver every stored record, then each new one, to ``deliver``."""
        ...

    def close(self) -> None:
        """Stop delivering and release connections."""
        ...


class InMemoryHealthFeed:
    """A feed unit tests push records into (delivered at once, on the caller's thread)."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._pending: list[tuple[bytes | None, bytes | None, str]] = []
        self._pushed = 0

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        for item in self._pending:
            deliver(*item)
        self._pending.clear()

    def push(self, value: ProductHealth | bytes | str | None, key: str | None = None) -> None:
        """Deliver ``value`` (a record, raw bytes, or None for a tombstone of ``key``)."""
        if isinstance(value, ProductHealth):
            key = key or health_key(value.product, value.measured_at_ms)
            value = value.model_dump_json()
        raw = value.encode() if isinstance(value, str) else value
        item = (None if key is None else key.encode(), raw, f"memory@{self._pushed}")
        self._pushed += 1
        if self._deliver is None:
            self._pending.append(item)
        else:
            self._deliver(*item)

    def close(self) -> None:
        self._deliver = None


class KafkaHealthFeed:
    """Tails the health topic from its beginning in a thread of its own.

    The topic is the monitor's to create; until it exists (and whenever it gains
    partitions) the feed looks again every ``refresh_seconds``.
    """

    def __init__(
        self, connection: KafkaConnection, topic: str, *, refresh_seconds: float = 10.0
    ) -> None:
        self.connection = connection
        self.topic = topic
        self.refresh_seconds = refresh_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: Deliver) -> None:
        consumer = make_consumer(
            self.connection,
            {
                "group.id": f"mesh-registry-health-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            },
        )
        self._thread = threading.Thread(
            target=self._run, args=(consumer, deliver), name="registry-health-feed", daemon=True
        )
        self._thread.start()

    def _run(self, consumer: Consumer, deliver: Deliver) -> None:
        assigned: set[int] = set()
        next_look = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self.refresh_seconds
                    self._assign_new(consumer, assigned)
                if not assigned:
                    self._stop.wait(0.2)
                    continue
                for message in consumer.consume(500, 0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.debug("health topic %s: %s", self.topic, error)
                        continue
                    where = f"{self.topic}[{message.partition()}]@{message.offset()}"
                    deliver(message.key(), message.value(), where)
        except Exception:
            log.exception("the product health feed of %s stopped", self.topic)
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer, assigned: set[int]) -> None:
        try:
            metadata = consumer.list_topics(self.topic, timeout=5)
        except Exception as exc:  # Kafka down for a moment: look again later
            log.debug("health topic %s: no metadata (%s)", self.topic, exc)
            return
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            return
        new = sorted(set(found.partitions) - assigned)
        if new:
            consumer.incremental_assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new]
            )
            assigned.update(new)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1)  # a daemon: one stuck on an absent Kafka is left


def stale_after_ms(monitor_interval_seconds: float) -> int:
    """How old a measurement may be before it is ``no data``: 5 minutes, or 3 intervals of
    the monitor (``MESH_MONITOR_INTERVAL_SECONDS``) when that is longer. A record that
    carries its monitor's own interval is judged by that one
    (:meth:`ProductHealthView.stale_ms`)."""
    return max(STALE_AFTER_MS, int(STALE_AFTER_INTERVALS * monitor_interval_seconds * 1000))


class HealthBook:
    """Each product's latest measurement and its last ``history_minutes`` of measurements.

    Records of one product land on several partitions (the key holds the minute), so
    *latest* is the newest measurement, not the last record read; a key read twice (two
    monitor instances measured the same minute) keeps the last one, as compaction does.

    The history keeps each measurement as the JSON it arrived as, parsed again only when
    asked for: a parsed measurement with five figures takes about 7 KB, its JSON under 1 KB,
    and a day of minutes is 1,440 of them per product (10 MB against about 1.3 MB; a
    thousand products would have held 10 GB).
    """

    def __init__(
        self,
        *,
        history_minutes: int = HISTORY_MINUTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history_ms = history_minutes * 60_000
        self.clock = clock
        self.skipped = 0
        self._latest: dict[str, ProductHealth] = {}
        #: product -> slot (the record's key) -> (measured at, the record's JSON)
        self._history: dict[str, dict[str, tuple[int, bytes]]] = {}
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def receive(self, key: bytes | None, value: bytes | None, where: str) -> None:
        """Take one record of the health topic; one that does not parse is logged, skipped."""
        slot = key.decode("utf-8", "replace") if key is not None else None
        if value is None:
            if slot is not None:
                self._forget(slot)
            return
        try:
            record = ProductHealth.model_validate_json(value)
        except (ValidationError, ValueError) as exc:
            self.skipped += 1
            first = str(exc).splitlines()[0]
            level = logging.WARNING if self.skipped <= WARN_SKIPPED else logging.DEBUG
            log.log(level, "%s: not a product health record, skipped (%s)", where, first)
            return
        self.add(record, slot, bytes(value))

    def add(self, record: ProductHealth, slot: str | None = None, raw: bytes | None = None) -> None:
        """Take ``record`` (``raw``: the JSON it was parsed from, made from it if not given)."""
        slot = slot or f"{record.product}@{record.measured_at_ms}"
        with self._lock:
            current = self._latest.get(record.product)
            if current is None or record.measured_at_ms >= current.measured_at_ms:
                self._latest[record.product] = record
            if record.measured_at_ms < self.now_ms() - self.history_ms:
                return
            history = self._history.setdefault(record.product, {})
            history[slot] = (record.measured_at_ms, raw or record.model_dump_json().encode())
            if len(history) % 64 == 0:
                self._prune(history)

    def _prune(self, history: dict[str, tuple[int, bytes]]) -> None:
        cutoff = self.now_ms() - self.history_ms
        for slot in [s for s, (at, _) in history.items() if at < cutoff]:
            del history[slot]

    def _forget(self, slot: str) -> None:
        product = slot.rpartition("@")[0]
        with self._lock:
            self._history.get(product, {}).pop(slot, None)

    def latest(self, product: str) -> ProductHealth | None:
        with self._lock:
            return self._latest.get(product)

    def history(self, product: str, minutes: int) -> list[ProductHealth]:
        """The measurements of the last ``minutes`` minutes, oldest first."""
        cutoff = self.now_ms() - minutes * 60_000
        with self._lock:
            kept = self._history.get(product, {}).values()
            found = sorted(item for item in kept if item[0] >= cutoff)
        return [ProductHealth.model_validate_json(raw) for _, raw in found]


class ProductHealthView:
    """Health for the registry's routes: the book, judged against the catalog and the clock."""

    def __init__(
        self,
        catalog: ProductCatalog,
        feed: HealthFeed,
        *,
        book: HealthBook | None = None,
        stale_after_ms: int = STALE_AFTER_MS,
    ) -> None:
        self.catalog = catalog
        self.feed = feed
        self.book = book or HealthBook()
        self.stale_after_ms = stale_after_ms

    def start(self) -> None:
        self.feed.start(self.book.receive)

    def close(self) -> None:
        self.feed.close()

    def _known(self, name: str) -> None:
        if name not in self.catalog.schemas.state.products:
            raise unknown_product(name)

    def health(self, name: str) -> ProductHealth:
        """``name``'s latest health; 404 (40404) when no such product is registered."""
        self._known(name)
        return self._current(name)

    def _current(self, name: str) -> ProductHealth:
        now = self.book.now_ms()
        latest = self.book.latest(name)
        if latest is None:
            return ProductHealth(
                product=name,
                measured_at_ms=now,
                status=Status.NO_DATA,
                reason=NOT_MEASURED,
                since_ms=now,
            )
        age = now - latest.measured_at_ms
        if age <= self.stale_ms(latest) or latest.status is Status.NO_DATA:
            return latest
        return latest.model_copy(
            update={
                "status": Status.NO_DATA,
                # as stale as the status: "no data (upstream breached)" read as a verdict
                "upstream_breached": (),
                "since_ms": latest.measured_at_ms,
                "reason": f"last measured {age // 60_000} min ago (then {latest.status.value}"
                f"{': ' + latest.reason if latest.reason else ''}); is `mesh monitor` running?",
            }
        )

    def stale_ms(self, record: ProductHealth) -> int:
        """The age after which ``record`` is served as ``no data``: 3 intervals of the
        monitor that wrote it, at least 5 minutes (a monitor run with `--interval 600` is
        not judged by this registry's own ``MESH_MONITOR_INTERVAL_SECONDS``, which only
        serves for records that do not carry an interval)."""
        if record.interval_ms is None:
            return self.stale_after_ms
        return max(STALE_AFTER_MS, STALE_AFTER_INTERVALS * record.interval_ms)

    def history(self, name: str, minutes: int = 60) -> list[ProductHealth]:
        """``name``'s measurements of the last ``minutes`` minutes, oldest first."""
        self._known(name)
        return self.book.history(name, minutes)

    def every(self) -> dict[str, ProductHealth]:
        """The current health of every registered product, by name."""
        return {name: self._current(name) for name in sorted(self.catalog.schemas.state.products)}
