"""How the CLI shows product health: the status table, a product's health block, alert lines,
and the `mesh products status --watch` loop (alerts read from Kafka, from the end on)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from mesh_stream.errors import RegistryError
from mesh_stream.governance.acl_plan import STATUS_GROUP_PREFIX
from mesh_stream.health import NOT_MEASURED, Alert, Figure, ProductHealth, worst
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.liveview import health_text, status_text
from mesh_stream.terminal import NamesTable, cell, visible

#: How often `--watch` asks the registry again.
WATCH_SECONDS = 5.0


def when(epoch_ms: int) -> str:
    """An instant as UTC, to the second."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def figure_text(figure: Figure) -> str:
    """``freshness_seconds 9 (SLO 5) breached``, with the figure's subject when it has one."""
    about = f" [{figure.subject}]" if figure.subject else ""
    slo = f" (SLO {_number(figure.slo)})" if figure.slo is not None else ""
    return f"{figure.name}{about} {_number(figure.value)}{slo} {figure.status.value}"


def worst_figure(health: ProductHealth) -> Figure | None:
    """The figure that decides the status (the first of the most severe), if any."""
    if not health.figures:
        return None
    status = worst([f.status for f in health.figures])
    return next(f for f in health.figures if f.status is status)


def status_table(every: Mapping[str, ProductHealth], title: str = "product health") -> NamesTable:
    table = NamesTable("product", "status", "since", "worst figure", "reason", title=title)
    for name, health in sorted(every.items()):
        figure = worst_figure(health)
        table.add_row(
            cell(name),
            health_text(health),
            when(health.since_ms),
            cell(figure_text(figure) if figure is not None else ""),
            cell(health.reason),
        )
    return table


def status_lines(every: Mapping[str, ProductHealth]) -> list[str]:
    """One tab-separated line per product (piped output: nothing wrapped or cut)."""
    lines = []
    for name, health in sorted(every.items()):
        figure = worst_figure(health)
        upstream = " (upstream breached)" if health.upstream_breached else ""
        lines.append(
            "\t".join(
                (
                    name,
                    health.status.value + upstream,
                    when(health.since_ms),
                    figure_text(figure) if figure is not None else "",
                    health.reason,
                )
            )
        )
    return lines


def health_block(health: ProductHealth) -> RenderableType:
    """`mesh products show`'s health: status, since, reason, each figure, upstream breached."""
    times = f" since {when(health.since_ms)} (measured {when(health.measured_at_ms)})"
    if health.reason == NOT_MEASURED:  # no measurement: the times would be the request's
        times = ""
    head = Text.assemble(("health: ", "bold"), health_text(health), times)
    parts: list[RenderableType] = [head]
    if health.reason:
        parts.append(Text(f"reason: {visible(health.reason)}"))
    if health.upstream_breached:
        parts.append(Text(f"upstream breached: {', '.join(health.upstream_breached)}", style="red"))
    if health.figures:
        figures = NamesTable("figure", "subject", "value", "SLO", "status", "reason", names=1)
        for figure in health.figures:
            figures.add_row(
                str(figure.name),
                cell(figure.subject or ""),
                _number(figure.value),
                _number(figure.slo),
                status_text(figure.status),
                cell(figure.reason),
            )
        parts.append(figures)
    return Group(*parts)


def alert_line(alert: Alert) -> str:
    """``BREACH orders.order-placed freshness_seconds 9 > SLO 5 since ... : reason``."""
    about = f" [{alert.subject}]" if alert.subject else ""
    if alert.kind == "breach":
        verdict = f"{_number(alert.value)} vs SLO {_number(alert.slo)} ({alert.status.value})"
    else:
        verdict = f"{_number(alert.value)} within SLO {_number(alert.slo)}"
    line = (
        f"{alert.kind.upper()} {alert.product} {alert.figure}{about} {verdict} "
        f"since {when(alert.since_ms)}"
    )
    return f"{line}: {alert.reason}" if alert.reason else line


class AlertSource(Protocol):
    def poll(self, timeout: float) -> list[Alert | str]:
        """New alerts (or a line saying why a record was not one) within ``timeout`` s."""
        ...

    def close(self) -> None: ...


class KafkaAlerts:
    """Reads the alerts topic from its end on (only alerts published from now)."""

    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._consumer: Consumer = make_consumer(
            connection,
            {
                "group.id": f"{STATUS_GROUP_PREFIX}{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "log_level": 0,
            },
        )
        self._assigned = False
        #: Why the topic could not be read, as last said (said again only when it changes).
        self._told: str | None = None

    def _assign(self) -> str | None:
        """Every partition at its end; the topic may not exist yet (asked again next time).
        Returns why it could not be assigned."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=2)
        except Exception as exc:  # librdkafka's KafkaException, or its client refusing
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            why = error.str() if error is not None else str(exc)
            return (
                f"alerts topic {self.topic} cannot be read: {why}; new alerts show once "
                f"Kafka answers"
            )
        found = metadata.topics.get(self.topic)
        if (
            found is not None
            and found.error is not None
            and found.error.code() != (KafkaError.UNKNOWN_TOPIC_OR_PART)
        ):
            return f"alerts topic {self.topic} cannot be read: {found.error.str()}"
        if found is None or found.error is not None or not found.partitions:
            return (
                f"alerts topic {self.topic} does not exist yet (no `mesh monitor` has "
                f"published to it); new alerts show once it does"
            )
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in found.partitions])
        self._assigned = True
        return None

    def poll(self, timeout: float) -> list[Alert | str]:
        if not self._assigned:
            started = time.monotonic()
            why = self._assign()
            if not self._assigned:
                time.sleep(max(0.0, timeout - (time.monotonic() - started)))
                told, self._told = self._told, why
                return [why] if why is not None and why != told else []
            self._told = None
        found: list[Alert | str] = []
        for message in self._consumer.consume(100, timeout):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    found.append(f"alerts topic {self.topic}: {error.str()}")
                continue
            try:
                found.append(Alert.model_validate_json(message.value() or b""))
            except (ValidationError, ValueError):
                where = f"{self.topic}[{message.partition()}]@{message.offset()}"
                found.append(f"{where}: not an alert record, skipped")
        return found

    def close(self) -> None:
        self._consumer.close()


def watch(
    fetch: Callable[[], Mapping[str, ProductHealth]],
    alerts: AlertSource,
    console: Console,
    *,
    interval: float = WATCH_SECONDS,
    stop: threading.Event | None = None,
) -> None:
    """Redraw the status table every ``interval`` s and print each new alert above it, until
    ``stop`` is set (Ctrl-C is the caller's to catch). The first fetch's error is raised; a
    later one is printed and the last table stays."""
    stop = stop or threading.Event()
    with Live(status_table(fetch()), console=console, auto_refresh=False) as live:
        next_fetch = time.monotonic() + interval
        while not stop.is_set():
            for item in alerts.poll(min(1.0, interval)):
                if isinstance(item, Alert):
                    style = "red" if item.kind == "breach" else "green"
                    live.console.print(Text(alert_line(item), style=style))
                else:
                    live.console.print(Text(item, style="yellow"))
                live.console.file.flush()  # a redirected stdout gets each alert as it comes
            if time.monotonic() >= next_fetch:
                next_fetch = time.monotonic() + interval
                try:
                    live.update(status_table(fetch()), refresh=True)
                except RegistryError as exc:  # keep watching: the registry may come back
                    live.console.print(Text(f"registry: {exc.message}", style="yellow"))
        live.refresh()


def health_json(every: Mapping[str, ProductHealth]) -> dict[str, object]:
    return {name: health.model_dump(mode="json") for name, health in sorted(every.items())}
