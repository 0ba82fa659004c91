"""`mesh verify`: run a processor through crashes and compare its outputs with a recomputation.

One run, on a throwaway Kafka and registry (:mod:`mesh_stream.verify.sandbox`):

1. the input, generated from each input's schema (:mod:`mesh_stream.verify.generate`) or
   the last N records of each live input topic, is published with the SDK in ``kills + 1``
   slices, in arrival order, with the records' own timestamps;
2. after each slice but the last, once the worker is visibly busy with it (its first new
   output record), a worker is killed with SIGKILL and started again; with two workers the
   second one joins during the first batch (a rebalance) and the kills pick a worker;
3. after the last slice the workers drain it; when every consumer group has committed the
   end of what it reads (the processor's own groups included, even before their first
   commit), the output's latest record per key is compared with
   :func:`~mesh_stream.processing.reference.recompute` over the input read back from Kafka.

A worker that stops by itself, or logs the engine's crash report, at any point fails the run
with that line. The processor's own functions are run over the input before the sandbox
starts, so a ``key``, ``apply`` or ``emit`` that raises or breaks its contract fails the run
at once (:class:`~mesh_stream.errors.ProcessorError`, naming the record). The recomputation
is made three times: once in a freshly imported module, once more in the same order in that
same module (a result that changes depends on more than the state and the event: a clock,
module globals), and once in another order of partitions in a freshly imported module.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, MeshError, ProcessorError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.processing.names import INTERNAL_TOPIC, processor_app_id, sources_group
from mesh_stream.processing.reads import check_reads, read_defaults
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.spec import Processor, inputs_problem
from mesh_stream.producer import ProductPublisher
from mesh_stream.project import MeshProject, resolve_product
from mesh_stream.registration import (
    ensure_topics,
    find_product,
    input_at_major,
    register_descriptor,
    schema_text,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from mesh_stream.verify.compare import Comparison, as_written, compare, render
from mesh_stream.verify.generate import generate_inputs, keyed_share
from mesh_stream.verify.limits import MAX_KILLS, MAX_RECORDS
from mesh_stream.verify.loading import load_processor
from mesh_stream.verify.records import (
    OutputWatcher,
    lagging_groups,
    read_inputs,
    read_live,
    uncommitted,
)
from mesh_stream.verify.sandbox import Sandbox, open_sandbox
from mesh_stream.verify.workers import JOINING_LINE, Worker, WorkerFailedError

__all__ = [
    "Recomputation",
    "VerifyOptions",
    "VerifyResult",
    "expected_records",
    "fresh_processor",
    "load_processor",
    "nondeterminism",
    "order_dependence",
    "verify",
]

Progress = Callable[[str], None]

#: Partitions each input topic gets at least in the sandbox (several: order across
#: partitions must not matter).
MIN_PARTITIONS = 3
#: Seconds without a new output record, with every group caught up, that end the drain.
SETTLE_S = 3.0
#: Longest wait for a worker to show it is busy with a slice before it is killed anyway.
BUSY_WAIT_S = 30.0
#: Seconds between the starts of the two recomputations in the same order: a wall clock read
#: by the processor (even in whole seconds) then differs between them.
REPEAT_PAUSE_S = 1.0


@dataclass(frozen=True)
class VerifyOptions:
    """What one `mesh verify` run does (the command's flags)."""

    module: str
    records: int = 2_000
    seed: int = 1
    kills: int = 3
    workers: int = 1
    #: Take the last N records of each live input topic instead of generating records.
    from_live: int | None = None
    #: Seconds the workers get to drain the last slice.
    timeout: float = 180.0
    #: Seconds a worker gets to become ready after each start.
    ready_timeout: float = 120.0
    #: Differing keys printed at most.
    show: int = 20
    #: Where the sandbox and the worker logs go (default: a temporary folder).
    work_dir: Path | None = None
    #: Keep the work folder even when the processor passes.
    keep: bool = False

    def __post_init__(self) -> None:
        if self.workers not in (1, 2):
            raise ConfigurationError(f"--workers must be 1 or 2, got {self.workers}")
        if not 0 <= self.kills <= MAX_KILLS:
            raise ConfigurationError(f"--kills must be 0 to {MAX_KILLS}, got {self.kills}")
        if not 1 <= self.records <= MAX_RECORDS:
            raise ConfigurationError(f"--records must be 1 to {MAX_RECORDS}, got {self.records}")
        if self.from_live is not None and not 1 <= self.from_live <= MAX_RECORDS:
            raise ConfigurationError(
                f"--from-live must be 1 to {MAX_RECORDS}, got {self.from_live}"
            )
        given, flag = (
            (self.records, "--records")
            if self.from_live is None
            else (self.from_live, "--from-live")
        )
        if self.kills >= given:
            raise ConfigurationError(
                f"--kills {self.kills} needs more records than kills: each kill follows a slice "
                f"of the input (--kills + 1 slices), and {flag} is {given}; give {flag} "
                f"{self.kills + 1} or more, or fewer --kills"
            )


@dataclass
class VerifyResult:
    """The outcome: the comparison, or why the run could not get that far."""

    comparison: Comparison | None
    #: A worker stopped by itself, the processor's own functions failed, or the drain timed
    #: out: the processor fails.
    failure: str | None = None
    #: The recomputation made twice in the same order, when the two differ (a processor bug:
    #: a clock, random numbers or state kept outside ``state``).
    nondeterministic: Comparison | None = None
    #: The recomputation in two orders of partitions, when they differ (a processor bug).
    order_dependent: Comparison | None = None
    #: The kept work folder (worker logs, sandbox data), None when it was removed.
    work_dir: Path | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.failure is None
            and self.comparison is not None
            and self.comparison.equal
            and self.nondeterministic is None
            and self.order_dependent is None
        )


def fresh_processor(module: str, fallback: Processor) -> Processor:
    """The ``PROCESSOR`` of ``module`` imported anew, its module-level variables as a newly
    started worker has them; ``fallback`` (the one already loaded) if importing it again
    fails (a module that cannot be imported twice)."""
    loaded = sys.modules.pop(module, None)
    try:
        return load_processor(module)
    except MeshError:
        if loaded is not None:
            sys.modules[module] = loaded
        return fallback


# -- the inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    product: DataProduct
    schema: str


def _input_sources(
    processor: Processor, project: MeshProject, live: Callable[[], RegistryClient]
) -> list[_Source]:
    """Each input's descriptor and schema: the project's own, else the live registry's (an
    input read at an earlier major than the project's descriptor: the registry's too)."""
    sources = []
    for spec in processor.inputs:
        local = project.descriptor(spec.product)
        if local is not None and spec.major in (None, local.version):
            product, schema = local, schema_text(local, project.root)
        else:
            registry = live()
            try:
                product = resolve_product(spec.product, project=None, registry=registry)
                if spec.major is not None:
                    product = input_at_major(product, spec.major, processor.output)
                schema = registry.get_latest(product.value_subject).schema
            except MeshError as exc:
                raise ConfigurationError(
                    f"input {spec.product} is not in the project at {project.root}, and the "
                    f"registry at {registry.url} cannot give it: {exc}"
                ) from exc
        partitions = max(product.partitions, MIN_PARTITIONS)
        sources.append(_Source(product.model_copy(update={"partitions": partitions}), schema))
    return sources


def _live_records(
    sources: list[_Source],
    settings: MeshSettings,
    live: Callable[[], RegistryClient],
    last: int,
    progress: Progress,
) -> list[InputRecord]:
    conn = KafkaConnection.from_settings(settings, default_client_id="mesh-verify")
    decoder = FramedAvroDecoder(live().get_schema)
    records: list[InputRecord] = []
    for source in sources:
        taken, undecodable = read_live(conn, decoder, source.product, last)
        skipped = f", {undecodable} undecodable skipped" if undecodable else ""
        progress(f"input {source.product.name}: {len(taken)} live records{skipped}")
        records.extend(taken)
    records.sort(key=lambda item: item.arrival_ms)
    if not records:
        raise ConfigurationError(
            f"the live input topics ({', '.join(s.product.topic for s in sources)}) at "
            f"{conn.bootstrap_servers} hold no records; publish some or leave out --from-live"
        )
    return records


def _generated_records(
    processor: Processor, sources: list[_Source], options: VerifyOptions, progress: Progress
) -> list[InputRecord]:
    schemas = {source.product.name: json.loads(source.schema) for source in sources}
    now = int(time.time() * 1000)
    start = now - now % 60_000 - 30 * 60_000  # recent: retention never deletes it
    generated = generate_inputs(
        processor, schemas, records=options.records, seed=options.seed, start_ms=start
    )
    for name, stats in generated.stats.items():
        progress(
            f"input {name}: {stats.records} generated records + {stats.copies} copies, "
            f"{stats.late} late within grace, {stats.too_late} too late; "
            f"{stats.keyed * 100 // max(stats.records, 1)}% get a key"
        )
    if keyed_share(generated.stats.values()) == 0:
        raise ConfigurationError(
            f"no generated record gets a key from the key functions of {processor.output}: "
            f"they may accept only values the generator cannot guess; use --from-live N "
            f"(the last N records of each live input topic)"
        )
    return generated.records


@dataclass(frozen=True)
class Recomputation:
    """The expected final record per key, and two checks of the recomputation itself."""

    #: As the output's schema writes them (see :func:`~mesh_stream.verify.compare.as_written`).
    expected: dict[str, Any]
    #: ``expected`` against the same input recomputed again in the same order, by the same
    #: module: keys differing there depend on more than their state and the event.
    repeated: Comparison
    #: ``expected`` against the input recomputed one partition after the other, by a freshly
    #: imported module: keys differing there depend on the order of partitions.
    reordered: Comparison
    #: Keys whose result hangs on a duplicate past the dedup horizon, which a worker may
    #: count or drop: the reason, and the key's record with that copy dropped, the other
    #: result it may end with (None, for several such copies: any result, not judged).
    allowed: dict[str, tuple[str, Any]] = field(default_factory=dict)


def expected_records(
    load: Callable[[], Processor],
    inputs: list[InputRecord],
    schema: str,
    output: DataProduct | None = None,
    *,
    pause_s: float = REPEAT_PAUSE_S,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> Recomputation:
    """The final record per key that ``inputs`` (partitions merged by timestamp) must give,
    as ``schema`` writes it, by the processor ``load`` returns (a freshly imported one each
    call), and the two checks of that recomputation:

    * the same input again, in the same order, by the same processor, at least ``pause_s``
      after the first began: what differs depends on a wall clock, random numbers or state
      kept outside ``state`` (module globals, caches), which a restarted worker loses;
    * the input applied one partition after the other, by a freshly loaded processor, in
      descending and then ascending order of partitions (the first that differs is kept):
      what differs depends on the order of events from different partitions, which no
      engine keeps. Two orders, since with few records one may happen to match the merged
      one (a campaign: an apply keeping the first event seen passed at 100 records).

    A ``key``, ``apply`` or ``emit`` that raises or breaks its contract, or an expected record
    the engine would refuse (see :func:`~mesh_stream.verify.compare.as_written`), is a
    :class:`~mesh_stream.errors.ProcessorError`.
    """
    processor = load()
    began = time.monotonic()
    past_horizon: dict[str, list[str]] = {}
    newest: dict[str, str] = {}
    recomputed = recompute(
        processor, inputs, defaults=defaults, past_horizon=past_horizon, newest_inputs=newest
    )
    expected = as_written(schema, recomputed, output, newest)
    time.sleep(max(0.0, began + pause_s - time.monotonic()))
    again = as_written(schema, recompute(processor, inputs, defaults=defaults), output)
    reordered = compare(expected, expected)
    for descending in (True, False):
        by_partition = sorted(
            inputs, key=lambda item: item.where.rpartition("@")[0], reverse=descending
        )
        reordered = compare(
            expected, as_written(schema, recompute(load(), by_partition, defaults=defaults), output)
        )
        if _keys(reordered):
            break
    allowed: dict[str, tuple[str, Any]] = {}
    if past_horizon and processor.dedup is not None:  # the result with such a copy dropped
        remembering = dataclasses.replace(
            processor, dedup=dataclasses.replace(processor.dedup, horizon_ms=None)
        )
        dropped = as_written(schema, recompute(remembering, inputs, defaults=defaults), output)
        for key, copies in past_horizon.items():
            if len(copies) == 1:  # counted or dropped: one of two results
                allowed[key] = (copies[0], dropped.get(key))
            else:  # a worker decides copy by copy: any mix of them, not judged
                more = f" (and {len(copies) - 1} more such copies: not judged)"
                allowed[key] = (copies[0] + more, None)
    return Recomputation(expected, compare(expected, again), reordered, allowed)


def _examples(comparison: Comparison, first: str, second: str) -> list[str]:
    lines = []
    for difference in comparison.differing[:3]:
        item = difference.fields[0]
        lines.append(
            f"    e.g. key {difference.key}: {item.path} is {item.expected!r} in {first}, "
            f"{item.got!r} in {second}"
        )
    return lines


def _keys(comparison: Comparison) -> list[str]:
    return [d.key for d in comparison.differing] + comparison.missing + comparison.unexpected


def nondeterminism(repeated: Comparison) -> list[str]:
    """Lines explaining keys whose recomputation changes when it is simply made again."""
    keys = _keys(repeated)
    return [
        f"NOT DETERMINISTIC: {len(keys)} keys get other records when the same input is "
        f"recomputed a second time in the same order, so no worker can be expected to match: "
        f"apply is not deterministic or keeps state outside `state` (a wall clock, random "
        f"numbers, module globals or caches, which a restarted worker does not have); apply "
        f"must depend on the state and the event only, key and emit on their arguments only.",
        *_examples(repeated, "the first recomputation", "the second"),
    ]


def order_dependence(dependent: Comparison) -> list[str]:
    """Lines explaining keys whose recomputation depends on the order of partitions."""
    keys = _keys(dependent)
    return [
        f"ORDER-DEPENDENT: {len(keys)} keys get other records when the same input is applied "
        f"in another order of partitions (each partition's own order kept), so no worker can "
        f"be expected to match: apply must not depend on the order of events from different "
        f"partitions (take min/max/latest-by-time, not the first or last seen).",
        *_examples(dependent, "one order", "the other"),
    ]


# -- the run ------------------------------------------------------------------------------


def _slices(records: list[InputRecord], count: int) -> list[list[InputRecord]]:
    """``records`` in order, in ``count`` slices whose sizes differ by one at most (one
    slice per record when there are fewer; one empty slice when there are none)."""
    count = max(1, min(count, len(records)))
    size, longer = divmod(len(records), count)
    slices, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < longer else 0)
        slices.append(records[start:end])
        start = end
    return slices


class _Run:
    """One run's moving parts on the sandbox."""

    def __init__(
        self,
        processor: Processor,
        output: DataProduct,
        sources: list[_Source],
        sandbox: Sandbox,
        options: VerifyOptions,
        workers: list[Worker],
        progress: Progress,
        stack: ExitStack,
    ) -> None:
        self.processor = processor
        self.output = output
        self.sources = sources
        self.options = options
        self.workers = workers
        self.progress = progress
        self.rng = random.Random(options.seed)
        self.conn = KafkaConnection.from_settings(sandbox.settings, default_client_id="mesh-verify")
        self.registry = stack.enter_context(sandbox.registry())
        ensure_topics(self.conn, [*(s.product for s in sources), output])
        self.publishers: dict[str, ProductPublisher] = {}
        for source in sources:
            publisher = ProductPublisher(
                source.product,
                connection=self.conn,
                registry=self.registry,
                schema=json.loads(source.schema),
            )
            stack.callback(publisher.close)
            self.publishers[source.product.name] = publisher
            register_descriptor(self.registry, source.product.model_copy(update={"inputs": ()}))
        self.decoder = FramedAvroDecoder(self.registry.get_schema)
        self.watcher = OutputWatcher(self.conn, self.decoder, output)
        stack.callback(self.watcher.close)
        self.recomputation: Recomputation | None = None
        self.group = processor_app_id(output.name)  # the aggregate's, on the internal topic
        self.internal_topic = f"{self.group}-{INTERNAL_TOPIC}"
        #: The processor's groups and what each must have read to the end: the re-key stage's
        #: the inputs, the aggregate's the internal topic.
        self.required_groups = {
            sources_group(self.group): [s.product.topic for s in sources],
            self.group: [self.internal_topic],
        }
        #: Internal records not committed when the kills came, summed: what restarts replay.
        self.replayed = 0

    def publish(self, records: list[InputRecord]) -> None:
        for item in records:
            self.publishers[item.product].publish(dict(item.record), timestamp_ms=item.arrival_ms)
        for publisher in self.publishers.values():
            publisher.flush()

    def check_workers(self) -> None:
        for worker in self.workers:
            if worker.starts:
                worker.check_alive()

    def start(self, worker: Worker) -> None:
        worker.start()
        took = worker.wait_ready(self.options.ready_timeout)
        self.progress(f"{worker.name} ready ({took:.1f} s, start {worker.starts})")

    def wait_busy(self, before: int) -> bool:
        """Until an output record arrives after ``before`` were seen; False on timeout."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while self.watcher.received <= before:
            if time.monotonic() > deadline:
                return False
            self.check_workers()
            self.watcher.poll(0.05)
        return True

    def crash_point(self, number: int) -> None:
        """Kill (and restart) a worker during the batch in progress: the first time as soon
        as its first output shows (its offsets are not committed yet), later at a random
        point of the batch."""
        if number > 1:
            time.sleep(self.rng.uniform(0.0, 0.5))
        first, *others = self.workers
        if len(self.workers) == 2 and not others[0].starts:
            second = others[0]
            second.start()  # joins the group while the first is busy: a rebalance
            # the kill falls in the rebalance: after the newcomer asked to join, before the
            # first worker (told at its next heartbeat) has joined again
            asked = second.wait_for(JOINING_LINE, self.options.ready_timeout)
            time.sleep(self.rng.uniform(0.0, 0.5))
            victim = first
            when = (
                "rebalance"
                if asked is not None
                else f"no rebalance seen: it did not ask to join within "
                f"{self.options.ready_timeout:.0f} s"
            )
            self.progress(
                f"kill {number}: {second.name} joined during the batch ({when}); "
                f"SIGKILL {victim.name}"
            )
            self._kill(victim)
            self.start(victim)
            second.wait_ready(self.options.ready_timeout)
            return
        victim = self.rng.choice(self.workers)
        self.progress(f"kill {number}: SIGKILL {victim.name} during its batch")
        self._kill(victim)
        self.start(victim)

    def _kill(self, victim: Worker) -> None:
        """SIGKILL ``victim``, counting the internal records its group had not committed:
        the restart reads them again, some already applied (what the replay guard is for).
        A victim that has already crashed by itself is reported, not killed and forgotten."""
        victim.check_alive()
        victim.kill()
        pending = uncommitted(self.conn, self.group, self.internal_topic)
        self.replayed += pending
        self.progress(f"  {pending} internal records not committed at the kill: read again")

    def drain(self, expected: Mapping[str, Mapping[str, Any]]) -> str | None:
        """Until every group caught up and the output is quiet (or equals ``expected``);
        returns why it stopped early, if it did."""
        deadline = time.monotonic() + self.options.timeout
        checked = 0.0
        while True:
            self.check_workers()
            self.watcher.poll(0.3)
            now = time.monotonic()
            if now - checked >= 1.0:
                checked = now
                quiet = now - self.watcher.last_change >= SETTLE_S
                if quiet or compare(expected, self.watcher.latest).equal:
                    lagging = lagging_groups(self.conn, self.required_groups)
                    if not lagging:
                        self.watcher.poll(0.5)
                        self.check_workers()  # a worker that died meanwhile is no catch-up
                        self.progress(
                            f"drained: every consumer group caught up, "
                            f"{self.watcher.received} output records read"
                        )
                        return None
            if now > deadline:
                return (
                    f"the workers did not finish within --timeout {self.options.timeout:.0f} s "
                    f"(still lagging: "
                    f"{', '.join(lagging_groups(self.conn, self.required_groups)[:5]) or 'none'})"
                )

    def expected(self) -> dict[str, Any]:
        """The recomputation over the input as Kafka holds it (see :func:`expected_records`)."""
        inputs = read_inputs(self.conn, self.decoder, [s.product for s in self.sources])
        self.progress(f"recomputing over {len(inputs)} input records read back from Kafka")
        schema = self.registry.get_latest(self.output.value_subject).schema
        module, declared = self.options.module, self.processor
        self.recomputation = expected_records(
            lambda: fresh_processor(module, declared),
            inputs,
            schema,
            self.output,
            defaults=read_defaults(declared, {s.product.name: s.schema for s in self.sources}),
        )
        return self.recomputation.expected

    def stop(self) -> None:
        """The sandbox is thrown away: nothing a clean stop would save is needed."""
        for worker in self.workers:
            worker.kill()


def verify(
    processor: Processor,
    options: VerifyOptions,
    *,
    settings: MeshSettings,
    project: MeshProject,
    worker_env: Mapping[str, str],
    worker_cwd: Path,
    progress: Progress,
) -> VerifyResult:
    """Run ``processor`` (``options.module``) through kills on a sandbox and compare.

    ``settings`` reach the live mesh (only read, for ``--from-live`` and inputs the project
    lacks); ``worker_env`` is the environment workers inherit (``MESH_*`` variables are
    replaced by the sandbox's), ``worker_cwd`` where they start.
    """
    output = find_product(project.descriptors(), processor.output)
    problem = inputs_problem(processor, output.inputs, output.name)
    if problem is not None:
        raise ConfigurationError(problem)
    with ExitStack() as stack:
        live_clients: list[RegistryClient] = []

        def live() -> RegistryClient:
            if not live_clients:
                live_clients.append(stack.enter_context(RegistryClient.from_settings(settings)))
            return live_clients[0]

        sources = _input_sources(processor, project, live)
        # the fields it reads and its event time's type, as a worker checks them at start
        check_reads(processor, {source.product.name: source.schema for source in sources})
        if options.from_live is not None:
            records = _live_records(sources, settings, live, options.from_live, progress)
        else:
            records = _generated_records(processor, sources, options, progress)
    # The processor's own functions over this input, before any Kafka: one that raises or
    # breaks its contract is named with its record at once (a ProcessorError).
    newest: dict[str, str] = {}
    recomputed = recompute(
        processor,
        records,
        defaults=read_defaults(processor, {s.product.name: s.schema for s in sources}),
        newest_inputs=newest,
    )
    as_written(schema_text(output, project.root), recomputed, output, newest)
    work_dir = options.work_dir or Path(tempfile.mkdtemp(prefix="mesh-verify-"))
    _prepare_work_dir(work_dir, progress)
    result = VerifyResult(None)
    try:
        _run(
            processor,
            output,
            sources,
            records,
            options,
            settings,
            project,
            worker_env,
            worker_cwd,
            work_dir,
            progress,
            result,
        )
    except BaseException:
        progress(f"worker logs and Kafka data kept in {work_dir}")
        raise
    finally:
        if result.passed and not options.keep and options.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            result.work_dir = work_dir
    return result


#: What a run keeps in its ``--work-dir``: the sandbox's Kafka, registry and worker state,
#: and the worker logs.
SANDBOX_FOLDER, LOGS_FOLDER = "sandbox", "logs"
RUN_FOLDERS = (SANDBOX_FOLDER, LOGS_FOLDER)


def _prepare_work_dir(work_dir: Path, progress: Callable[[str], None]) -> None:
    """Erase what an earlier run left in ``work_dir`` (its Kafka's topics, the workers'
    state), which this run's sandbox would otherwise start from: its outputs would mix both
    runs' inputs and could not be told again from the seed printed. Then make the run's
    folders, so a folder that cannot be written is named as ``--work-dir`` at once."""
    found = [work_dir / name for name in RUN_FOLDERS if (work_dir / name).exists()]
    try:
        for folder in found:
            shutil.rmtree(folder)
        for name in RUN_FOLDERS:
            (work_dir / name).mkdir(parents=True)
    except OSError as exc:
        raise ConfigurationError(
            f"--work-dir {work_dir} cannot be used: {exc.strerror} ({exc.filename}); pick a "
            f"writable folder, or leave the option out for a temporary one"
        ) from exc
    if found:
        named = ", ".join(f"{folder.name}/" for folder in found)
        progress(
            f"--work-dir {work_dir} held an earlier run ({named}): erased, this run starts anew"
        )


def _run(
    processor: Processor,
    output: DataProduct,
    sources: list[_Source],
    records: list[InputRecord],
    options: VerifyOptions,
    settings: MeshSettings,
    project: MeshProject,
    worker_env: Mapping[str, str],
    worker_cwd: Path,
    work_dir: Path,
    progress: Progress,
    result: VerifyResult,
) -> None:
    with ExitStack() as stack:
        sandbox = stack.enter_context(open_sandbox(settings, work_dir / SANDBOX_FOLDER, progress))
        env = {key: value for key, value in worker_env.items() if not key.startswith("MESH_")}
        paths = [str(worker_cwd), str(project.root), env.get("PYTHONPATH", "")]
        env |= sandbox.worker_environment()
        env |= {
            "MESH_PROJECT_ROOT": str(project.root),
            "PYTHONPATH": ":".join(dict.fromkeys(p for p in paths if p)),
            "PYTHONUNBUFFERED": "1",
        }
        log_dir = work_dir / LOGS_FOLDER  # made by _prepare_work_dir
        # Each worker restarts with its own static membership id, as `mesh up` restarts one,
        # and writes its state at once rather than at its commits, so that a kill finds state
        # ahead of the committed offsets (what the replay guard and `apply` must survive) as
        # often as the engine allows.
        workers = [
            Worker(
                f"worker-{n}",
                options.module,
                {
                    **env,
                    "MESH_PROCESSOR_INSTANCE_ID": f"worker-{n}",
                    "MESH_PROCESSOR_STATE_FLUSH_AT": "1",
                },
                worker_cwd,
                log_dir,
            )
            for n in range(1, options.workers + 1)
        ]
        for worker in workers:
            stack.callback(worker.kill)
        run = _Run(processor, output, sources, sandbox, options, workers, progress, stack)
        progress(f"worker logs: {log_dir}")
        try:
            run.start(workers[0])
        except WorkerFailedError as exc:
            raise ConfigurationError(f"the first worker never became ready: {exc}") from exc
        if options.workers == 2 and options.kills == 0:
            run.start(workers[1])
        slices = _slices(records, options.kills + 1)
        kills = len(slices) - 1  # no record at all: nothing to interrupt, no kill
        if kills < options.kills:  # live topics held fewer records than --kills asks for
            progress(
                f"only {len(records)} input records: {kills} kill(s), one after each slice "
                f"but the last, instead of --kills {options.kills}"
            )
        try:
            for number, chunk in enumerate(slices, start=1):
                before = run.watcher.received
                run.publish(chunk)
                progress(f"slice {number}/{len(slices)}: {len(chunk)} records published")
                if number <= kills:
                    if not run.wait_busy(before):
                        progress(f"(no output within {BUSY_WAIT_S:.0f} s of slice {number})")
                    run.crash_point(number)
            expected = run.expected()
            progress("draining: waiting for every consumer group to catch up ...")
            result.failure = run.drain(expected)
            run.watcher.poll(0.5)
            run.check_workers()  # one that crashed on the last records it read
        except (WorkerFailedError, ProcessorError) as exc:
            # the crash line, or the processor's own error, says it all: the keys a dead
            # worker never wrote would only hide it
            result.failure = str(exc)
            run.stop()
            return
        allowed = run.recomputation.allowed if run.recomputation is not None else {}
        result.comparison = compare(expected, run.watcher.latest, allowed)
        run.stop()
        if run.watcher.undecodable:
            progress(
                f"{len(run.watcher.undecodable)} output records could not be decoded, "
                f"e.g. {run.watcher.undecodable[0]}"
            )
        result.lines = render(result.comparison, limit=options.show)
        if options.kills and not run.replayed:
            more = "--records" if options.from_live is None else "--from-live (or live records)"
            result.lines.append(
                "note: no kill found work that was not committed yet, so nothing was replayed "
                f"and the replay guard went untested; run again with more {more}"
            )
        recomputation = run.recomputation
        if recomputation is not None and not recomputation.repeated.equal:
            result.nondeterministic = recomputation.repeated
            result.lines += nondeterminism(recomputation.repeated)
        elif recomputation is not None and not recomputation.reordered.equal:
            result.order_dependent = recomputation.reordered
            result.lines += order_dependence(recomputation.reordered)
