"""The product monitor: every interval, measure every registered product, judge it, publish.

One round (:meth:`ProductMonitor.measure`): list the products (their descriptors, SLOs,
lineage and registered consumer groups) from the registry in one request; read the health
topic up to its end, so the latest health of each product -- whoever measured it -- is
known before any transition is decided; measure every product from Kafka
(:class:`~mesh_stream.monitor.measure.KafkaMeter`); judge the figures
(:mod:`mesh_stream.monitor.status`), sources before what is built from them, adding
upstream breaches; write one health record per product and the alerts of each transition
(:class:`~mesh_stream.monitor.publish.Publisher`).

Several instances are safe: they write the same key for the same product and interval, and
each reads back the latest health before alerting. The race left: two instances measuring
the same product within the moment it takes a health record to be written and read back can
both see the transition and both publish the alert (a duplicate, never a lost one).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException
from pydantic import ValidationError

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    ConfigurationError,
    DeliveryError,
    MeshError,
    RegistryError,
    validation_problem,
)
from mesh_stream.health import Alert, ProductHealth, Status
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.monitor import status as judging
from mesh_stream.monitor.measure import KafkaMeter, Reading, Target
from mesh_stream.monitor.metrics import MonitorMetrics
from mesh_stream.monitor.publish import HealthLog, Publisher, ensure_monitor_topics
from mesh_stream.processing.names import processor_of_group

log = logging.getLogger(__name__)


class Catalog(Protocol):
    """What the monitor needs of the registry (:class:`RegistryClient` is one)."""

    def list_products(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Round:
    """One measurement of every product: health records, the alerts they raised, how long."""

    healths: tuple[ProductHealth, ...]
    alerts: tuple[Alert, ...]
    seconds: float

    @property
    def breached(self) -> list[str]:
        return [h.product for h in self.healths if h.status == Status.BREACHED]

    def summary(self) -> str:
        counts = {s: sum(1 for h in self.healths if h.status == s) for s in Status}
        parts = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
        return (
            f"measured {len(self.healths)} products in {self.seconds:.1f} s"
            f"{': ' + parts if parts else ''}; {len(self.alerts)} alerts"
        )


class NotPublishedError(DeliveryError):
    """A round measured whose health records or alerts Kafka did not take: ``measured`` holds
    it all the same (`mesh monitor --once` printed nothing of it, h59)."""

    def __init__(self, message: str, measured: Round) -> None:
        super().__init__(message)
        self.measured = measured


def targets_of(documents: Sequence[Mapping[str, Any]]) -> list[Target]:
    """The products of a registry listing with their registered consumer groups; a
    document that is not a valid descriptor is logged and left out."""
    known = {info.alias or name for name, info in DataProduct.model_fields.items()}
    found: list[Target] = []
    for document in documents:
        try:
            product = DataProduct.model_validate({k: v for k, v in document.items() if k in known})
        except ValidationError as exc:
            log.warning(
                "product %s left out: %s", document.get("name"), validation_problem(exc.errors()[0])
            )
            continue
        facts = document.get("registry") or {}
        groups = tuple(str(c["group"]) for c in facts.get("consumers") or () if c.get("group"))
        found.append(Target(product, groups))
    return found


def judge_round(
    targets: Sequence[Target],
    readings: Mapping[str, Reading],
    latest: Mapping[str, ProductHealth],
    history: Callable[[str], Sequence[float]],
    *,
    monitor: str = "",
    interval_ms: int | None = None,
) -> list[ProductHealth]:
    """The health of every target from its reading: own figures first, then upstream
    breaches (lineage, transitively) from the other products' own statuses."""
    inputs = {t.product.name: t.product.inputs for t in targets}
    own: dict[str, tuple[Any, ...]] = {}
    statuses: dict[str, Status] = {}
    crashed = _crashes(readings)
    for target in targets:
        product = target.product
        reading = readings[product.name]
        newest_inputs = [
            stamp
            for name in product.inputs
            if name in readings and (stamp := readings[name].topic.newest) is not None
        ]
        figures = judging.assess(
            product,
            reading,
            inputs_newest_ms=max(newest_inputs) if newest_inputs else None,
            history=history(product.name),
        )
        stopped = judging.processor_stopped(crashed.get(product.name), latest.get(product.name))
        if stopped is not None:  # first: a crash line is the reason the output is breached
            figures = (stopped, *figures)
        own[product.name] = figures
        statuses[product.name] = judging.health(
            product.name, figures, measured_at_ms=reading.measured_at_ms
        ).status
    return [
        judging.health(
            t.product.name,
            own[t.product.name],
            measured_at_ms=readings[t.product.name].measured_at_ms,
            previous=latest.get(t.product.name),
            upstream_breached=judging.breached_upstream(t.product.name, inputs, statuses),
            monitor=monitor,
            interval_ms=interval_ms,
        )
        for t in targets
    ]


def _crashes(readings: Mapping[str, Reading]) -> dict[str, str]:
    """Output product -> the line its processor crashed with, for each whose re-key group
    noted a crash (on its inputs' offsets) newer than the output's newest record: a worker
    that went on since has published after it (a replay re-publishes what it reflects)."""
    newest: dict[str, tuple[int, str]] = {}
    for reading in readings.values():
        for lag in reading.lags:
            output = processor_of_group(lag.group)
            if output is not None and lag.crash is not None:
                newest[output] = max(newest.get(output, lag.crash), lag.crash)
    crashed = {}
    for output, (at_ms, line) in newest.items():
        built = readings.get(output)
        published = built.topic.newest if built is not None else None
        if published is None or published < at_ms:
            crashed[output] = line
    return crashed


#: How soon a failed round (registry or Kafka unavailable) is tried again.
RETRY_SECONDS = 5.0


class ProductMonitor:
    """Measures, judges and publishes every registered product, once or every interval."""

    def __init__(
        self,
        conn: KafkaConnection,
        catalog: Catalog,
        *,
        health_topic: str,
        alerts_topic: str,
        interval: float = 60.0,
        webhook_url: str | None = None,
        metrics: MonitorMetrics | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        kafka_timeout: float = 15.0,
    ) -> None:
        self.catalog = catalog
        self.interval = interval
        self.metrics = metrics
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        ensure_monitor_topics(conn, health_topic, alerts_topic)
        self._meter = KafkaMeter(conn, timeout=kafka_timeout)
        self._log = HealthLog(conn, health_topic, now_ms=self._now_ms())
        self._publisher = Publisher(
            conn,
            health_topic,
            alerts_topic,
            interval_ms=max(1, int(interval * 1000)),
            webhook_url=webhook_url,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def close(self) -> None:
        self._publisher.close()
        self._meter.close()
        self._log.close()

    def __enter__(self) -> ProductMonitor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def reconnect(self) -> None:
        """New Kafka clients for the meter and the health log (see
        :meth:`KafkaMeter.reconnect`): a long-running monitor must come back after a broker
        restart by itself. The publisher's idempotent producer recovers on its own."""
        self._meter.reconnect()
        self._log.reconnect(now_ms=self._now_ms())

    def latest(self, product: str) -> ProductHealth | None:
        """The latest known health of ``product`` (this instance's or another's)."""
        return self._log.latest.get(product)

    def measure(self) -> Round:
        """One round over every product the registry lists (see the module docstring)."""
        started = time.monotonic()
        targets = targets_of(self.catalog.list_products())
        self._log.catch_up()
        readings = self._meter.read(targets, self._now_ms())
        healths = judge_round(
            targets,
            readings,
            self._log.latest,
            self._log.history,
            monitor=self.name,
            interval_ms=max(1, int(self.interval * 1000)),
        )
        alerts = [
            alert
            for health in healths
            for alert in judging.transitions(self._log.latest.get(health.product), health)
        ]
        try:
            self._publisher.publish(healths, alerts)
        except DeliveryError as exc:
            measured = Round(tuple(healths), tuple(alerts), time.monotonic() - started)
            raise NotPublishedError(str(exc), measured) from exc
        done = Round(tuple(healths), tuple(alerts), time.monotonic() - started)
        for health in healths:
            self._log.remember(health)
        if self.metrics is not None:
            self.metrics.update(done.healths, duration=done.seconds)
        return done

    def run(self, stop: threading.Event, on_round: Callable[[Round], None] | None = None) -> None:
        """Measure every ``interval`` seconds until ``stop`` is set. A round that fails
        (registry or Kafka unavailable) is logged and tried again after ``RETRY_SECONDS``
        (at most the interval), so an outage costs no more than that of the minute."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                done = self.measure()
            except (MeshError, KafkaException, TimeoutError) as exc:
                # an admin request's future that Kafka did not answer in time raises the
                # builtin TimeoutError, without a message (a campaign: it ended the monitor)
                late = f"a Kafka request was not answered in time ({type(exc).__name__})"
                said = str(exc) or late
                retry = min(self.interval, RETRY_SECONDS)
                kafka = not isinstance(exc, (RegistryError, ConfigurationError))
                log.warning(
                    "measurement skipped: %s; trying again in %.0f s%s",
                    said,
                    retry,
                    " with new Kafka clients" if kafka else "",
                )
                if kafka:  # a registry outage leaves Kafka's clients as they are
                    try:
                        self.reconnect()
                    except Exception as failed:  # the loop never stops on a failed round
                        log.warning("new Kafka clients could not be made: %s", failed)
                stop.wait(max(0.0, retry - (time.monotonic() - started)))
                continue
            else:
                for alert in done.alerts:
                    log.warning(
                        "%s: %s %s%s: %s",
                        alert.kind,
                        alert.product,
                        str(alert.figure),
                        f" ({alert.subject})" if alert.subject else "",
                        alert.reason,
                    )
                log.info(done.summary())
                if on_round is not None:
                    on_round(done)
            stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
