"""One measured run of a stream processor over a story, whatever engine runs it.

The benchmark runs the revenue aggregation with mesh-stream's engine and with a peer (Quix
Streams); both are worker processes reading the same kind of input topic on the same broker and
writing one record per window update. A run is the same for both:

1. **backlog**: the story (:mod:`mesh_stream.bench.story_input`) is published, each record with
   its arrival time as Kafka timestamp, before the worker starts;
2. **drain**: the worker starts; the clock runs from its first output record to the output that
   makes every window equal to the story's expected totals (``exact``). The input records
   handled before the first output are left out of the rate, in proportion to the orders the
   outputs had counted by then. Worker and broker CPU (``/proc``) are read at both ends.
3. **latency**: orders at a steady ``rate`` for ``latency_seconds``; each is timed from just
   before it is published to the moment an output of its window counting it reaches the
   benchmark (:class:`OutputWatcher` reads on a thread of its own). A window's
   n-th published order is taken as counted when a count of at least n is seen; with several
   input partitions two orders published within the same few ms may be counted in the other
   order, an error of that size. Afterwards every window must again equal the expected totals
   (``exact_after_live``).

No number here is a timed assertion: a run reports, the caller compares.
"""

from __future__ import annotations

import bisect
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from mesh_stream.bench.story_input import Story, StoryRecord, WindowTotal, story_order, totals
from mesh_stream.kafka.clients import make_consumer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.producer import ProductPublisher
from mesh_stream.settings import bootstrap_addresses

#: (window id, order count, gross cents) of one output record.
OutputDecoder = Callable[[bytes], tuple[str, int, int]]

#: A drain or live phase whose outputs stop changing for this long is over (not exact).
STALL_S = 20.0
#: The drain is timed from the first output: one that already counts more than this share of
#: the story's orders left too little to time (a worker whose first output came late), and
#: the drain's rate and CPU per event are then not given.
MIN_TIMED_SHARE = 0.5


@dataclass(frozen=True)
class Worker:
    """How to start one engine's worker, and where and how it writes its window records."""

    engine: str
    command: Sequence[str]
    cwd: Path
    env: dict[str, str]
    output_topic: str
    output_partitions: int
    decode: OutputDecoder
    #: Whether an output record's Kafka timestamp is when the worker produced it (Quix stamps
    #: a window's records with the window's time instead).
    stamps_at_send: bool = False


@dataclass
class OutputWatcher:
    """Reads the output topic on a thread of its own; keeps each window's latest record and
    when each count showed.

    The thread hands each record over as librdkafka delivers it, so the time a count is
    seen is the time it reached this process, whatever the publishing loop is doing (a
    batch ``consume`` would stamp a whole wait's records with the wait's end).
    """

    connection: KafkaConnection
    worker: Worker
    latest: dict[str, WindowTotal] = field(default_factory=dict)
    seen_at: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    created_at: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    first_output_at: float | None = None
    #: Called on the reading thread with the orders counted by the first output, as it arrives.
    on_first_output: Callable[[int], None] | None = None
    last_change_at: float | None = None
    total: int = 0

    def __post_init__(self) -> None:
        self.consumer = make_consumer(
            self.connection,
            {
                "group.id": f"bench-watch-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "fetch.min.bytes": 1,
            },
        )
        self.consumer.assign(
            [
                TopicPartition(self.worker.output_topic, p, 0)
                for p in range(self.worker.output_partitions)
            ]
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="bench-watcher", daemon=True)

    def start(self) -> None:
        """Start reading. Until then :attr:`consumer` may be asked other things (librdkafka's
        client must not be called from two threads at once)."""
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.consumer.poll(0.05)
                if message is None or message.error() is not None:
                    continue
                value = message.value()
                if value is not None:
                    stamped = message.timestamp()[1] / 1000
                    self._take(time.time(), stamped, *self.worker.decode(value))
        except BaseException as exc:  # handed to the caller by poll()
            self._failed = exc

    def _take(self, now: float, created: float, key: str, count: int, cents: int) -> None:
        with self._lock:
            first = self.first_output_at is None
            if first:
                self.first_output_at = now
            before = self.latest.get(key)
            # A key lives in one output partition, so the last record read is its latest.
            self.latest[key] = WindowTotal(count, cents)
            self.total += count - (before.order_count if before else 0)
            if before != self.latest[key]:
                self.last_change_at = now
            self.seen_at[key].setdefault(count, now)
            self.created_at[key].setdefault(count, created)
            if first and self.on_first_output is not None:
                self.on_first_output(self.total)

    def poll(self, timeout: float = 0.005) -> None:
        """Let the reading thread work for ``timeout``; raises what stopped it, if anything."""
        time.sleep(timeout)
        if self._failed is not None:
            raise RunFailedError(f"reading the output failed: {self._failed!r}")

    def exact(self, expected: dict[str, WindowTotal], expected_total: int) -> bool:
        """Whether every window's latest record equals ``expected``."""
        with self._lock:
            return self.total == expected_total and self.latest == expected

    def snapshot(self) -> dict[str, WindowTotal]:
        """A copy of each window's latest total."""
        with self._lock:
            return dict(self.latest)

    def visible_at(self, key: str, nth: int) -> float | None:
        """When a record of window ``key`` counting at least ``nth`` orders was first seen."""
        return self._first(self.seen_at, key, nth)

    def created_for(self, key: str, nth: int) -> float | None:
        """The Kafka timestamp of the first record of window ``key`` counting at least ``nth``
        orders: when the worker produced it."""
        return self._first(self.created_at, key, nth)

    def _first(self, times: dict[str, dict[int, float]], key: str, nth: int) -> float | None:
        with self._lock:
            seen = dict(times.get(key, {}))
        counts = sorted(seen)
        index = bisect.bisect_left(counts, nth)
        return min((seen[count] for count in counts[index:]), default=None)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.consumer.close()


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listening_pid(bootstrap_servers: str) -> int | None:
    """The pid of the local process listening on the first bootstrap server's port (the
    broker), from ``/proc/net/tcp*``; None for a remote broker or without ``/proc``."""
    port = int(bootstrap_addresses(bootstrap_servers)[0][1])
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            columns = line.split()
            if columns[3] == "0A" and int(columns[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{columns[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def _difference(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def _per_event_us(seconds: float | None, events: int) -> float | None:
    return None if seconds is None or events <= 0 else round(seconds / events * 1e6, 1)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of ``values`` sorted, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class RunFailedError(RuntimeError):
    """A worker died or produced nothing; carries the tail of its log."""


def measure_run(
    worker: Worker,
    *,
    story: Story,
    publisher: ProductPublisher,
    connection: KafkaConnection,
    broker_pid: int | None,
    log_path: Path,
    rate: float,
    latency_seconds: float,
    timeout: float,
) -> dict[str, Any]:
    """Publish ``story`` through ``publisher`` (this run's input topic), start ``worker``,
    measure drain and latency as the module says; the worker is stopped on the way out."""
    for item in story.records:
        publisher.publish(item.record, timestamp_ms=item.arrival_ms)
    publisher.flush()
    expected = totals(story.records, story.window_ms, story.grace_ms)
    watcher = OutputWatcher(connection, worker)
    # What reached each input partition (the story says where each record should land).
    published = [
        watcher.consumer.get_watermark_offsets(TopicPartition(publisher.topic, p), timeout=10)[1]
        for p in range(story.partitions)
    ]
    watcher.start()
    process: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(worker.command),
                cwd=worker.cwd,
                env=worker.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started = time.time()
        drain = _drain(watcher, process, expected, broker_pid, log_path, timeout)
        drain["worker_start_to_done_seconds"] = round(time.time() - started, 2)
        live = _live(
            watcher, process, story, publisher, broker_pid, log_path, rate, latency_seconds, timeout
        )
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        watcher.close()
    records = len(story.records)
    expected_orders = sum(total.order_count for total in expected.values())
    counted_first = drain.pop("counted_at_first_output")
    timed = round(records * (1 - counted_first / expected_orders))
    seconds = drain.pop("seconds")
    worker_cpu, broker_cpu = drain.pop("worker_cpu"), drain.pop("broker_cpu")
    untimed = None
    if timed < records * MIN_TIMED_SHARE:
        untimed = (
            f"the first output already counted {counted_first / expected_orders:.0%} of the "
            f"backlog's orders: too little was left to time the drain"
        )
        worker_cpu = broker_cpu = None
    return {
        "engine": worker.engine,
        "records": records,
        "windows": len(expected),
        "input_partitions_published": published,
        "exact": drain.pop("exact"),
        "events_timed": timed,
        "drain_seconds": round(seconds, 3),
        "events_per_s": round(timed / seconds) if seconds > 0 and untimed is None else None,
        "drain_untimed": untimed,
        "worker_cpu_us_per_event": _per_event_us(worker_cpu, timed),
        "broker_cpu_us_per_event": _per_event_us(broker_cpu, timed),
        **drain,
        **live,
    }


def _wait_until_exact(
    watcher: OutputWatcher,
    process: subprocess.Popen[bytes],
    expected: dict[str, WindowTotal],
    log_path: Path,
    deadline: float,
) -> bool:
    """Read outputs until every window equals ``expected`` (True) or they stop changing for
    STALL_S or the deadline passes (False)."""
    expected_total = sum(total.order_count for total in expected.values())
    while True:
        watcher.poll()
        if watcher.exact(expected, expected_total):
            return True
        if process.poll() is not None:
            raise RunFailedError(
                f"{log_path.parent.name}: the worker exited with status {process.returncode}; "
                f"log:\n{log_path.read_text(errors='replace')[-3000:]}"
            )
        now = time.monotonic()
        quiet = watcher.last_change_at is not None and time.time() - watcher.last_change_at
        if now > deadline or (quiet and quiet > STALL_S):
            if watcher.first_output_at is None:
                raise RunFailedError(
                    f"the worker wrote no output in {STALL_S:.0f} s; log:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            return False


def _drain(
    watcher: OutputWatcher,
    process: subprocess.Popen[bytes],
    expected: dict[str, WindowTotal],
    broker_pid: int | None,
    log_path: Path,
    timeout: float,
) -> dict[str, Any]:
    marks: dict[str, Any] = {}

    def first_output(counted: int) -> None:  # on the watcher's thread, as it arrives
        marks["worker_cpu"] = process_cpu_seconds(process.pid)
        marks["broker_cpu"] = process_cpu_seconds(broker_pid)
        marks["counted"] = counted

    watcher.on_first_output = first_output
    exact = _wait_until_exact(watcher, process, expected, log_path, time.monotonic() + timeout)
    worker_cpu = _difference(process_cpu_seconds(process.pid), marks.get("worker_cpu"))
    broker_cpu = _difference(process_cpu_seconds(broker_pid), marks.get("broker_cpu"))
    assert watcher.first_output_at is not None
    assert watcher.last_change_at is not None
    return {
        "exact": exact,
        "counted_at_first_output": marks.get("counted", 0),
        "seconds": watcher.last_change_at - watcher.first_output_at,
        "worker_cpu": worker_cpu,
        "broker_cpu": broker_cpu,
        "wrong_windows": _wrong(watcher.snapshot(), expected),
    }


def _wrong(found: dict[str, WindowTotal], expected: dict[str, WindowTotal]) -> int:
    """Windows whose latest output differs from the expected total (or is missing/extra)."""
    return sum(1 for key in found.keys() | expected.keys() if found.get(key) != expected.get(key))


def _live(
    watcher: OutputWatcher,
    process: subprocess.Popen[bytes],
    story: Story,
    publisher: ProductPublisher,
    broker_pid: int | None,
    log_path: Path,
    rate: float,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    rng = random.Random(16)
    baseline = {key: total.order_count for key, total in watcher.snapshot().items()}
    published_at: dict[str, list[float]] = defaultdict(list)
    live: list[StoryRecord] = []
    count = int(rate * seconds)
    tick = 0.01  # publish a tick's share every 10 ms; read outputs in between
    worker_cpu = process_cpu_seconds(process.pid)
    broker_cpu = process_cpu_seconds(broker_pid)
    started_at = time.time()
    sent = 0
    while sent < count:
        due = min(count, int((time.time() - started_at) / tick * rate * tick) + 1)
        while sent < due:
            now = time.time()
            placed = int(now * 1000)
            order = story_order(rng, placed)
            live.append(StoryRecord(order, placed, "order", 0))
            published_at[f"{order['region']}@{placed - placed % story.window_ms}"].append(now)
            publisher.publish(order, timestamp_ms=placed)
            sent += 1
        publisher.flush()
        watcher.poll(timeout=tick / 2)
    publisher.flush()
    expected = totals((*story.records, *live), story.window_ms, story.grace_ms)
    exact = _wait_until_exact(
        watcher, process, expected, log_path, time.monotonic() + seconds + timeout
    )
    worker_cpu = _difference(process_cpu_seconds(process.pid), worker_cpu)
    broker_cpu = _difference(process_cpu_seconds(broker_pid), broker_cpu)
    latencies = []
    in_worker = []
    by_second: dict[int, list[float]] = defaultdict(list)
    missing = 0
    for key, times in published_at.items():
        for n, sent_at in enumerate(times, start=1):
            seen = watcher.visible_at(key, baseline.get(key, 0) + n)
            if seen is None:
                missing += 1
            else:
                latencies.append((seen - sent_at) * 1000)
                created = watcher.created_for(key, baseline.get(key, 0) + n)
                if created is not None and watcher.worker.stamps_at_send:
                    in_worker.append((created - sent_at) * 1000)
                by_second[int(sent_at - started_at)].append(latencies[-1])
    return {
        "exact_after_live": exact,
        "latency_rate_per_s": rate,
        "latency_events": len(latencies),
        "latency_never_seen": missing,
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "latency_max_ms": round(max(latencies), 1) if latencies else None,
        # Up to the output record's Kafka timestamp (when the worker produced it, ms
        # resolution): the part of the latency before the output's own delivery.
        "latency_to_output_p50_ms": round(statistics.median(in_worker), 1) if in_worker else None,
        # When in the phase the slow ones were published: a stall shows as one bad second.
        "latency_max_ms_by_second": [round(max(by_second[s]), 1) for s in sorted(by_second)],
        "live_worker_cpu_us_per_event": _per_event_us(worker_cpu, count),
        "live_broker_cpu_us_per_event": _per_event_us(broker_cpu, count),
    }
