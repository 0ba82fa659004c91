"""The live terminal view of `mesh up`: what flows where, who lags, what broke.

Two halves, kept apart so each can be tested alone:

* :class:`MeshMonitor` asks Kafka (never the children) for the numbers: per product the
  end offsets of its topic (records so far, and the rate from the change between two
  samples), the end offsets of its dead-letter topic ``<topic>.dlq``, the latest record of
  every aggregate and consumer-aligned product (decoded by the SDK's
  :class:`~mesh_stream.schema.codec.RecordDecoder` with the writer schema from the
  registry), and each consumer group's lag (committed offsets against end offsets); and,
  from the registry's ``/product-health``, each product's SLO status as the product monitor
  judged it (an unreachable registry shows ``health unknown``). It returns an immutable
  :class:`MeshSnapshot`.
* :func:`render` turns a snapshot, the supervised children and their recent events into a
  rich renderable; :class:`LiveView` redraws it in place in the terminal.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mesh_stream.descriptor import DataProduct, ProductKind
from mesh_stream.health import ProductHealth, Status
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.names import CRASH_LINE_PATTERN, processor_app_id, sources_group
from mesh_stream.schema.codec import RecordDecoder, SchemaSource
from mesh_stream.settings import shown_url
from mesh_stream.supervisor import ChildState, ChildStatus, SupervisorEvent
from mesh_stream.terminal import cell, visible

#: Decodes one Confluent-framed record value into a mapping.
Decoder = Callable[[bytes], Mapping[str, Any]]
#: Every product's latest health (``RegistryClient.all_product_health``).
HealthSource = Callable[[], Mapping[str, ProductHealth]]
HEALTH_UNKNOWN = "health unknown"
_STATUS_STYLE = {
    Status.OK: "green",
    Status.DEGRADED: "yellow",
    Status.BREACHED: "bold red",
    Status.NO_DATA: "dim",
}

#: The project's own CLI error line, which a child prints when it stops: "error: ..." or
#: "orders simulator: error: ..." (a name of words before it).
_CLI_ERROR = re.compile(rb"^(error|[\w.-]+( [\w.-]+)*: error): ")
#: A log level's name; the first one in a line is that line's level (a WARNING that quotes
#: "ERROR" or a library's "error: ..." is not an error).
_LEVEL = re.compile(rb"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")
_ERROR_LEVELS = frozenset({b"ERROR", b"CRITICAL", b"FATAL"})


def is_error_line(line: bytes) -> bool:
    """Whether a child's log line reports an error: a line at level ERROR or CRITICAL, a
    traceback's first line, or a CLI error line; a line at a lower level never is."""
    if line.startswith(b"Traceback (most recent call last)"):
        return True
    level = _LEVEL.search(line)
    cli = _CLI_ERROR.match(line)
    if cli is not None and (level is None or level.start() >= cli.end()):
        return True  # a level name only after `error:` is quoted, not the line's level
    return level is not None and level.group() in _ERROR_LEVELS


#: The one line a processor worker logs before it stops on a record
#: (:func:`mesh_stream.processing.engine.crash_line`): "processor <name> crashed on <where>: ...".
_CRASH_LINE = re.compile(CRASH_LINE_PATTERN.encode())


@dataclass(frozen=True)
class ProductStats:
    """One product's numbers at one moment."""

    name: str
    kind: str
    topic: str
    records: int | None  # sum of end offsets; None while the topic does not exist
    rate: float | None  # records/s since the previous sample
    dead_letters: int  # records in <topic>.dlq
    latest: Mapping[str, Any] | None = None  # latest value of an aggregate
    latest_error: str | None = None
    health: ProductHealth | None = None  # None: health unknown (no registry answer)


@dataclass(frozen=True)
class GroupLag:
    """A consumer group (a processor) and how far behind the end offsets it is."""

    group: str
    lag: int
    topics: tuple[str, ...]


@dataclass(frozen=True)
class MeshSnapshot:
    taken_at: float
    products: tuple[ProductStats, ...]
    groups: tuple[GroupLag, ...] = ()
    problems: tuple[str, ...] = ()  # what the monitor itself could not find out

    def product(self, name: str) -> ProductStats:
        return next(p for p in self.products if p.name == name)


def registry_decoder(registry: SchemaSource) -> Decoder:
    """Decodes Confluent-framed Avro with the SDK's codec, each writer schema fetched once."""
    return RecordDecoder(registry).decode


#: ``offsets_for_times`` with this timestamp answers each partition's end offset.
_END = -1


def _is_derived(product: DataProduct) -> bool:
    return product.kind in (ProductKind.AGGREGATE, ProductKind.CONSUMER_ALIGNED)


class MeshMonitor:
    """Samples the mesh's topics and consumer groups on a Kafka cluster (see module doc)."""

    def __init__(
        self,
        kafka: KafkaConnection | str,
        products: Sequence[DataProduct],
        *,
        decoder: Decoder | None = None,
        health: HealthSource | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from mesh_stream.kafka.clients import make_consumer

        conn = kafka if isinstance(kafka, KafkaConnection) else KafkaConnection.create(kafka)
        self.products = list(products)
        self.decoder = decoder
        self.health = health
        self.timeout = timeout
        self._clock = clock
        self._connection = conn
        common: dict[str, str | int | float | bool] = {"log_level": 0}
        # Consumers only, no admin client: librdkafka aborts the process when admin requests
        # time out while a broker is down (rd_kafka_enq_once assertion, librdkafka #4605),
        # and the live view must outlive a broker.
        self._consumer = make_consumer(
            conn,
            {
                **common,
                "group.id": "mesh-up-live-view",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
        self._previous: dict[str, tuple[float, int]] = {}
        self._latest: dict[str, tuple[int, Mapping[str, Any] | None, str | None]] = {}
        self._group_readers: dict[str, Any] = {}

    def close(self) -> None:
        for reader in self._group_readers.values():
            reader.close()
        self._consumer.close()

    def _group_reader(self, group: str) -> Any:
        """A consumer carrying ``group``'s id that never subscribes: it only asks the group's
        coordinator for committed offsets, so the group's members never see it."""
        from mesh_stream.kafka.clients import make_consumer

        reader = self._group_readers.get(group)
        if reader is None:
            reader = make_consumer(
                self._connection,
                {"log_level": 0, "group.id": group, "enable.auto.commit": False},
            )
            self._group_readers[group] = reader
        return reader

    def __enter__(self) -> MeshMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sampling --------------------------------------------------------------------------
    def sample(self) -> MeshSnapshot:
        """One look at the cluster. Problems are reported in the snapshot, never raised."""
        problems: list[str] = []
        now = self._clock()
        health = self._health(problems)
        try:
            metadata = self._consumer.list_topics(timeout=self.timeout)
        except Exception as exc:
            problems.append(f"Kafka does not answer: {exc}")
            return MeshSnapshot(now, self._unknown(health), (), tuple(problems))
        partitions = {name: len(t.partitions) for name, t in metadata.topics.items()}
        wanted = [p.topic for p in self.products] + [p.dlq_topic for p in self.products]
        ends = self._end_offsets({t: partitions[t] for t in wanted if t in partitions}, problems)
        stats = []
        for product in self.products:
            records = self._total(ends, product.topic)
            rate = self._rate(product.topic, now, records)
            latest, latest_error = None, None
            if _is_derived(product) and records:
                latest, latest_error = self._latest_value(product, ends, problems)
            stats.append(
                ProductStats(
                    name=product.name,
                    kind=product.kind.value,
                    topic=product.topic,
                    records=records,
                    rate=rate,
                    dead_letters=self._total(ends, product.dlq_topic) or 0,
                    latest=latest,
                    latest_error=latest_error,
                    health=health.get(product.name),
                )
            )
        groups = self._group_lags(partitions, ends, problems)
        return MeshSnapshot(now, tuple(stats), groups, tuple(problems))

    def _unknown(self, health: Mapping[str, ProductHealth]) -> tuple[ProductStats, ...]:
        return tuple(
            ProductStats(p.name, p.kind.value, p.topic, None, None, 0, health=health.get(p.name))
            for p in self.products
        )

    def _health(self, problems: list[str]) -> Mapping[str, ProductHealth]:
        """Every product's health from the registry; nothing (health unknown) when it fails."""
        if self.health is None:
            return {}
        try:
            return self.health()
        except Exception as exc:
            said = getattr(exc, "message", None) or str(exc)
            problems.append(f"{HEALTH_UNKNOWN}: {' '.join(str(said).split())[:200]}")
            return {}

    @staticmethod
    def _total(ends: Mapping[tuple[str, int], int], topic: str) -> int | None:
        values = [offset for (name, _), offset in ends.items() if name == topic]
        return sum(values) if values else None

    def _rate(self, topic: str, now: float, records: int | None) -> float | None:
        if records is None:
            return None
        previous = self._previous.get(topic)
        self._previous[topic] = (now, records)
        if previous is None or now <= previous[0]:
            return None
        return max(records - previous[1], 0) / (now - previous[0])

    def _end_offsets(
        self, topics: Mapping[str, int], problems: list[str]
    ) -> dict[tuple[str, int], int]:
        """End offsets of every partition of ``topics`` (topic -> partition count), in one
        request per partition leader."""
        from confluent_kafka import TopicPartition

        request = [
            TopicPartition(topic, partition, _END)
            for topic, count in topics.items()
            for partition in range(count)
        ]
        if not request:
            return {}
        try:
            answered = self._consumer.offsets_for_times(request, timeout=self.timeout)
        except Exception as exc:
            problems.append(f"end offsets unknown: {exc}")
            return {}
        ends: dict[tuple[str, int], int] = {}
        for tp in answered:
            if tp.error is not None or tp.offset < 0:
                problems.append(f"end offset of {tp.topic}[{tp.partition}] unknown: {tp.error}")
            else:
                ends[(tp.topic, tp.partition)] = int(tp.offset)
        return ends

    def _group_lags(
        self,
        partitions: Mapping[str, int],
        ends: Mapping[tuple[str, int], int],
        problems: list[str],
    ) -> tuple[GroupLag, ...]:
        """Each processor's lag: its re-key stage's group over the input products, and its
        faust app's group over its internal topics (both named by processing.names)."""
        from confluent_kafka import TopicPartition

        topic_of = {p.name: p.topic for p in self.products}
        watched: list[tuple[str, list[str]]] = []
        for product in self.products:
            if not _is_derived(product):
                continue
            app_id = processor_app_id(product.name)
            inputs = [topic_of[name] for name in product.inputs if name in topic_of]
            internal = [
                t for t in partitions if t.startswith(f"{app_id}-") and "changelog" not in t
            ]
            watched += [(sources_group(app_id), inputs), (app_id, sorted(internal))]
        committed: dict[str, list[Any]] = {}
        for group, topics in watched:
            wanted = [
                TopicPartition(topic, partition)
                for topic in topics
                if topic in partitions
                for partition in range(partitions[topic])
            ]
            if not wanted:
                continue
            try:
                answered = self._group_reader(group).committed(wanted, timeout=self.timeout)
            except Exception as exc:
                problems.append(f"offsets of consumer group {group} unknown: {exc}")
                continue
            offsets = [tp for tp in answered if tp.error is None and tp.offset >= 0]
            if offsets:
                committed[group] = offsets
        known = dict(ends)
        missing = {
            (tp.topic, tp.partition)
            for offsets in committed.values()
            for tp in offsets
            if (tp.topic, tp.partition) not in known
        }
        if missing:
            counts: dict[str, int] = {}
            for topic, _partition in missing:
                counts[topic] = partitions[topic]
            known.update(self._end_offsets(counts, problems))
        return tuple(
            GroupLag(
                group,
                sum(
                    max(known[(tp.topic, tp.partition)] - tp.offset, 0)
                    for tp in offsets
                    if (tp.topic, tp.partition) in known
                ),
                tuple(sorted({tp.topic for tp in offsets})),
            )
            for group, offsets in committed.items()
        )

    def _latest_value(
        self,
        product: DataProduct,
        ends: Mapping[tuple[str, int], int],
        problems: list[str],
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """Decode the newest record of ``product`` (re-read only when its topic grew)."""
        from confluent_kafka import KafkaError, TopicPartition

        total = self._total(ends, product.topic) or 0
        cached = self._latest.get(product.topic)
        if cached is not None and cached[0] == total:
            return cached[1], cached[2]
        # A few records back from the end, because transaction markers take offsets too.
        assignment = [
            TopicPartition(topic, partition, max(end - 5, 0))
            for (topic, partition), end in ends.items()
            if topic == product.topic and end > 0
        ]
        self._consumer.assign(assignment)
        pending = {tp.partition for tp in assignment}
        newest: Any = None
        deadline = time.monotonic() + self.timeout
        try:
            while pending and time.monotonic() < deadline:
                message = self._consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                if message.value() is None:  # a tombstone (a merged session): no value
                    continue
                if newest is None or message.timestamp()[1] >= newest.timestamp()[1]:
                    newest = message
        finally:
            self._consumer.unassign()
        value: Mapping[str, Any] | None = None
        problem: str | None = None
        if newest is not None and self.decoder is not None:
            try:
                value = self.decoder(newest.value())
            except Exception as exc:
                problem = (
                    f"cannot decode {newest.topic()}[{newest.partition()}]@{newest.offset()}: {exc}"
                )
                problems.append(problem)
        elif newest is not None:
            problem = "no decoder (registry unknown)"
        self._latest[product.topic] = (total, value, problem)
        return value, problem


class LogErrorCounter:
    """Counts ERROR / CRITICAL / Traceback lines appended to each child's log since start,
    and keeps the latest processor crash line of each (what the worker stopped on)."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}
        self._counts: dict[Path, int] = {}
        self._crashes: dict[Path, str] = {}

    def crash(self, log_file: Path) -> str | None:
        """The latest "processor ... crashed on topic[partition]@offset: ..." line of
        ``log_file`` read so far (:meth:`count` reads), or None."""
        return self._crashes.get(log_file)

    def count(self, log_file: Path) -> int:
        offset = self._offsets.get(log_file)
        try:
            size = log_file.stat().st_size
        except OSError:
            return self._counts.get(log_file, 0)
        if offset is None or size < offset:
            offset = 0
        if size > offset:
            with log_file.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(size - offset)
            # Only whole lines; the rest is read next time.
            end = chunk.rfind(b"\n") + 1
            found = 0
            for line in chunk[:end].splitlines():
                if is_error_line(line):
                    found += 1
                    crash = _CRASH_LINE.search(line)
                    if crash is not None:
                        self._crashes[log_file] = crash.group().decode("utf-8", "replace")
            self._counts[log_file] = self._counts.get(log_file, 0) + found
            offset += end
        self._offsets[log_file] = offset
        return self._counts.get(log_file, 0)


# -- rendering -----------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A compact, human-readable rendering of a decoded field value."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def format_record(record: Mapping[str, Any], width: int = 90) -> str:
    text = " ".join(f"{key}={format_value(value)}" for key, value in record.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def status_text(status: Status) -> Text:
    """A status, coloured (breached red, degraded yellow, ok green)."""
    return Text(status.value, style=_STATUS_STYLE[status])


def health_text(health: ProductHealth | None) -> Text:
    """A product's SLO status for a table cell, with "upstream breached" where listed."""
    if health is None:
        return Text(HEALTH_UNKNOWN, style="dim")
    text = status_text(health.status)
    if health.upstream_breached:
        text.append(" · upstream breached", style="red")
    return text


def _rate_text(rate: float | None) -> str:
    return "…" if rate is None else f"{rate:.1f}"


@dataclass(frozen=True)
class ViewContext:
    """What the view shows besides the snapshot: where things are and for how long."""

    bootstrap_servers: str
    registry_url: str | None
    log_dir: Path
    started_at: float
    notes: tuple[str, ...] = field(default_factory=tuple)


def render(
    context: ViewContext,
    snapshot: MeshSnapshot | None,
    children: Iterable[ChildStatus],
    events: Iterable[SupervisorEvent],
    *,
    log_errors: Mapping[str, int] | None = None,
    crashes: Mapping[str, str] | None = None,
    now: float | None = None,
    max_events: int = 8,
    size: tuple[int, int] | None = None,
) -> RenderableType:
    """The whole screen: header, products, processors' lag, children, crashes, recent events.

    With ``size`` (the terminal's columns and rows), a frame taller than the terminal leaves
    out the latest values first, then the lag table, then older events: what went wrong
    (crashes, events) must stay on screen, where a terminal would cut the bottom."""
    now = time.monotonic() if now is None else now
    up_for = int(now - context.started_at)
    registry = shown_url(context.registry_url) if context.registry_url else "(none)"
    header = Text.assemble(
        ("mesh up", "bold"),
        f"  up {up_for // 60}m{up_for % 60:02d}s  Kafka {context.bootstrap_servers}  ",
        f"registry {registry}  logs {context.log_dir}  ",
        ("Ctrl-C stops everything", "dim"),
    )
    top: list[RenderableType] = [header]
    top.extend(Text(note, style="yellow") for note in context.notes)

    products = _table("Products")
    products.add_column("product", no_wrap=True)
    products.add_column("kind", no_wrap=True)
    products.add_column("topic", no_wrap=True)
    products.add_column("records", justify="right", no_wrap=True)
    products.add_column("msg/s", justify="right", no_wrap=True)
    products.add_column("DLQ", justify="right", no_wrap=True)
    products.add_column("SLO status", no_wrap=True)
    latest = _table("Latest value of each derived product")
    latest.add_column("product", no_wrap=True)
    latest.add_column("value", no_wrap=True, overflow="ellipsis", ratio=1)
    for stats in snapshot.products if snapshot else ():
        dlq = f"[red]{stats.dead_letters}[/]" if stats.dead_letters else "0"
        products.add_row(
            cell(stats.name),
            stats.kind,
            cell(stats.topic),
            "no topic" if stats.records is None else str(stats.records),
            _rate_text(stats.rate),
            dlq,
            health_text(stats.health),
        )
        if stats.latest is not None:
            latest.add_row(cell(stats.name), cell(format_record(stats.latest, width=400)))
        elif stats.latest_error:
            latest.add_row(cell(stats.name), cell(stats.latest_error, style="red"))

    lag: Table | None = None
    if snapshot and snapshot.groups:
        lag = _table("Processor lag (consumer groups)")
        lag.add_column("group", no_wrap=True)
        lag.add_column("lag", justify="right")
        lag.add_column("topics")
        for group in snapshot.groups:
            lag.add_row(cell(group.group), str(group.lag), cell(", ".join(group.topics)))

    counts = log_errors or {}
    processes = _table("Processes")
    for column in ("name", "kind", "state", "pid", "restarts", "errors in log", "log"):
        processes.add_column(column, no_wrap=column != "log")
    for child in children:
        style = {ChildState.RUNNING: "green", ChildState.RESTARTING: "red"}.get(child.state, "")
        errors = counts.get(child.name, 0)
        processes.add_row(
            child.name,
            child.kind,
            f"[{style}]{child.state.value}[/]" if style else child.state.value,
            str(child.pid or "-"),
            str(child.restarts),
            f"[red]{errors}[/]" if errors else "0",
            str(child.log_file),
        )
    stopped: list[RenderableType] = []
    if crashes:
        lines = Text()
        for name, line in sorted(crashes.items()):
            lines.append(f"{name}: ", style="bold")
            lines.append(f"{visible(line)}\n", style="red")
        lines.rstrip()
        stopped = [Text("Processor crashes (latest per process)", style="bold italic"), lines]

    problems = [f"monitor: {visible(p)}" for p in (snapshot.problems if snapshot else ())]
    # the supervisor's events, oldest first, then what the monitor finds wrong now: a short
    # terminal loses the oldest events first
    happened = [(visible(e.line()), e.is_problem) for e in list(events)[-max_events:]]
    happened += [(problem, True) for problem in problems[-max_events:]]

    def recent(count: int) -> list[RenderableType]:
        shown = happened[-count:] if count else []
        if not shown:
            return []
        lines = Text()
        for line, is_problem in shown:
            lines.append(line + "\n", style="red" if is_problem else "")
        lines.rstrip()
        return [Text("Recent events", style="bold italic"), lines]

    optional = [table for table in (latest, lag) if table is not None and table.row_count]

    def frame(
        kept: Sequence[Table], events_shown: int, *, first: bool = False
    ) -> list[RenderableType]:
        middle = [products, *kept, processes]
        wrong = [*stopped, *recent(events_shown)]
        if first:  # nothing else can go: what went wrong above the tables a terminal cuts
            return [*top, *wrong, *middle]
        return [*top, *middle, *wrong]

    shown = len(happened)
    parts = frame(optional, shown)
    if size is not None:
        width, height = size
        while _height(parts, width) > height:
            if optional:
                optional.pop(0)  # the latest values first, then the lag table
            elif shown > 2:
                shown -= 1
            else:
                parts = frame(optional, shown, first=True)
                break
            parts = frame(optional, shown)
    return Group(*parts)


def _table(title: str) -> Table:
    """A table of the view, without the outer border (two lines fewer each)."""
    return Table(title=title, expand=True, title_justify="left", show_edge=False)


def _height(parts: Sequence[RenderableType], width: int) -> int:
    """How many terminal lines ``parts`` take at ``width`` columns."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    options = console.options.update(width=width)
    return sum(len(console.render_lines(part, options, pad=False)) for part in parts)


def render_text(renderable: RenderableType, width: int = 160) -> str:
    """``renderable`` as plain text (for --no-view summaries and tests)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


class LiveView:
    """Redraws the screen in place; leaves the last frame visible when it stops."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 2) -> None:
        self._live = Live(
            console=console,
            refresh_per_second=refresh_per_second,
            auto_refresh=False,
            screen=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def update(self, renderable: RenderableType) -> None:
        self._live.update(renderable, refresh=True)

    @property
    def size(self) -> tuple[int, int]:
        """The terminal's columns and rows (a line fewer: the cursor's)."""
        width, height = self._live.console.size
        return width, max(1, height - 1)
