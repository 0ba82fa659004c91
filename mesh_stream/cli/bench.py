"""`mesh bench`: the SDK against raw confluent-kafka on one broker, as ratios.

The code lives in :mod:`mesh_stream.bench` (see ``mesh_stream/bench/run.py``); it ships in
the wheel, so an installed ``mesh bench`` works outside a checkout (the processing benchmark
alone needs the sample mesh, a mesh-stream checkout, and is skipped without it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from mesh_stream.bench.cases import cases_problem
from mesh_stream.cli.extras import require_extras
from mesh_stream.cli.options import WholeNumberRange
from mesh_stream.cli.signals import terminate_as_interrupt
from mesh_stream.settings import MeshSettings

#: The codec benchmark's defaults (mesh_stream.bench.codec_bench, which needs fastavro only).
CODEC_RECORDS = 2_000
CODEC_REPEATS = 11
#: Exit status after SIGTERM, once what the run started is stopped (128 + the signal, as a
#: shell reports a process the signal ended).
TERMINATED = 128 + signal.SIGTERM
#: The most counts a list option (--monitor-products, --scale-subjects, --portal-products)
#: takes: each is a benchmark run of its own.
MAX_SIZES = 10


class Counts(click.ParamType):
    """A comma-separated list of counts, each 1 to ``most``, at most :data:`MAX_SIZES` of
    them; refused while the options are parsed, before anything starts."""

    name = "counts"

    def __init__(self, noun: str, example: str, most: int) -> None:
        self.noun, self.example, self.most = noun, example, most

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        try:
            sizes = tuple(int(part) for part in text.split(","))
        except ValueError:
            sizes = ()
        if not sizes or any(size < 1 for size in sizes):
            self.fail(
                f"{text!r} is not a list of positive {self.noun} counts; e.g. {self.example}",
                param,
                ctx,
            )
        if len(sizes) > MAX_SIZES:
            self.fail(
                f"{text!r} lists {len(sizes)} counts, each a benchmark run of its own; give at "
                f"most {MAX_SIZES}",
                param,
                ctx,
            )
        if max(sizes) > self.most:
            self.fail(
                f"{text!r}: {max(sizes):,} {self.noun}s is more than this benchmark takes "
                f"(at most {self.most:,}); e.g. {self.example}",
                param,
                ctx,
            )
        return sizes


#: The options each benchmark run alone reads (besides --json and --output); any other
#: given with it would be ignored, so it is refused. ``None``: the full run (no such flag).
USED_BY: dict[str | None, frozenset[str]] = {
    "--codec-only": frozenset({"codec_records", "codec_repeats"}),
    "--registry-scale": frozenset({"scale_subjects"}),
    "--portal": frozenset({"portal_products"}),
    "--instructions": frozenset({"instruction_records", "warmup"}),
    "--monitor-only": frozenset({"monitor_products", "repeats"}),
    "--sdk-only": frozenset(
        {"records", "warmup", "repeats", "cases", "codec_records", "codec_repeats"}
    ),
    None: frozenset(
        {
            "records",
            "warmup",
            "repeats",
            "cases",
            "codec_records",
            "codec_repeats",
            "processing_peer",
            "scale_subjects",
            "monitor_products",
        }
    ),
}
#: Options every run reads, or that choose the run.
EVERY_RUN = frozenset(
    {
        "as_json",
        "output",
        "codec_only",
        "sdk_only",
        "registry_scale",
        "monitor_only",
        "portal",
        "instructions",
    }
)
#: Options read by one benchmark only: named in the refusal of a run without it.
OWNER = {"portal_products": "--portal", "instruction_records": "--instructions"}


@dataclass(frozen=True)
class BenchOptions:
    """`mesh bench`'s options as click parsed them: one field per option, named as its
    parameter (``bench(**options)`` builds it, so an option without a field fails at once).
    """

    as_json: bool
    records: int
    warmup: int
    repeats: int
    cases: str
    codec_records: int
    codec_repeats: int
    codec_only: bool
    sdk_only: bool
    processing_peer: str | None
    registry_scale: bool
    scale_subjects: tuple[int, ...] | None
    monitor_only: bool
    monitor_products: tuple[int, ...]
    portal: bool
    portal_products: tuple[int, ...]
    instructions: bool
    instruction_records: int
    output: Path


@click.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON on stdout.")
@click.option(
    "--records",
    type=WholeNumberRange(min=1000, max=10_000_000),
    default=100_000,
    show_default=True,
    help="Records per case in the timed part (after the warm-up).",
)
@click.option(
    "--warmup",
    type=WholeNumberRange(min=100, max=1_000_000),
    default=5_000,
    show_default=True,
    help="Records per case before the clock starts (connections, schema, group join).",
)
@click.option(
    "--repeats",
    type=WholeNumberRange(min=1, max=10),
    default=3,
    show_default=True,
    help="Interleaved runs of every case; each figure is their median (min-max shown).",
)
@click.option(
    "--cases",
    default="abcdefghij",
    show_default=True,
    callback=lambda _ctx, _param, value: _cases(value),
    help="Which cases to run, in order, each once: a-e and j write, f-i read (reads need d, "
    "before them); j is d with 3 CEL rules (the cost of rules, j/d); see "
    "mesh_stream.bench.sdk_bench.",
)
@click.option(
    "--codec-records",
    type=WholeNumberRange(min=0, max=1_000_000),
    default=CODEC_RECORDS,
    show_default=True,
    help="Records per schema in the codec benchmark (encode/decode vs fastavro, no Kafka); "
    "0 skips it.",
)
@click.option(
    "--codec-repeats",
    type=WholeNumberRange(min=1, max=100),
    default=CODEC_REPEATS,
    show_default=True,
    help="Interleaved runs of each codec loop; each figure is their median (min-max shown).",
)
@click.option(
    "--codec-only",
    is_flag=True,
    help="Run only the codec benchmark: the benchmark record and, in a mesh-stream checkout, "
    "every sample contract (no broker, no registry).",
)
@click.option(
    "--sdk-only",
    is_flag=True,
    help="Skip the registry and processing benchmarks (run the SDK cases only).",
)
@click.option(
    "--processing-peer",
    type=click.Choice(["quix"]),
    default=None,
    help="Run the processing benchmark side by side with a peer: Quix Streams 3 doing the "
    "same windowed revenue on the same broker and story-like input, --repeats interleaved "
    "runs each, medians with min-max. The peer runs in its own virtualenv under "
    "MESH_DATA_DIR (created with pip on first use, which needs the package index).",
)
@click.option(
    "--registry-scale",
    is_flag=True,
    help="Run only the registry scale benchmark: start-up replay time and lookup p99 at "
    "--scale-subjects subjects (default 1000,10000,100000).",
)
@click.option(
    "--scale-subjects",
    type=Counts("subject", "1000,10000", 1_000_000),
    default=None,
    metavar="N,N,...",
    help="Subject counts of the registry scale benchmark, each 1 to 1,000,000 [default: "
    "1000,10000; with --registry-scale 1000,10000,100000].",
)
@click.option(
    "--monitor-only",
    is_flag=True,
    help="Run only the product monitor benchmark: CPU, registry and Kafka requests a minute "
    "of one monitor at --monitor-products products (default 12,1000).",
)
@click.option(
    "--monitor-products",
    type=Counts("product", "12,1000", 10_000),
    default="12,1000",
    show_default=True,
    metavar="N,N,...",
    help="Product counts of the product monitor benchmark, each 1 to 10,000; each is set up "
    "on a registry of its own (descriptor, topic, DLQ topic, records, a consumer group per "
    "product).",
)
@click.option(
    "--portal",
    is_flag=True,
    help="Run only the portal page-speed benchmark: /ui/products and a query in Debian's "
    "headless Chromium with --portal-products products (no Kafka; needs /usr/bin/chromium "
    "and Playwright, `make browser`).",
)
@click.option(
    "--portal-products",
    type=Counts("product", "1000", 10_000),
    default="1000",
    show_default=True,
    metavar="N,N,...",
    help="Product counts of the portal benchmark, each 1 to 10,000; each on an in-memory "
    "registry of its own.",
)
@click.option(
    "--instructions",
    is_flag=True,
    help="Run only the quality rules' cost counted in instructions: cases (d) and (j) under "
    "valgrind's callgrind at --instruction-records and three times as many timed records; "
    "per record, whole process and main thread, j/d against its 1.25 target. Unlike CPU time "
    "it does not move with the load of a shared machine. Needs valgrind on PATH; takes a few "
    "minutes.",
)
@click.option(
    "--instruction-records",
    type=WholeNumberRange(min=1000, max=1_000_000),
    default=10_000,
    show_default=True,
    help="Timed records of the shorter --instructions run (valgrind runs ~50x slower).",
)
@click.option(
    "--output",
    type=click.Path(),
    metavar="DIRECTORY",
    callback=lambda _ctx, _param, value: _output_folder(value),
    default="bench-results",
    show_default=True,
    help="Folder for sdk-bench.json and sdk-bench.txt (made if missing).",
)
@click.pass_obj
def bench(settings: MeshSettings, /, **options: Any) -> None:
    """Measure publishing and consuming: raw confluent-kafka, hand-written fastavro,
    confluent-kafka's Avro serde and mesh-stream, with acks=all and idempotence.

    Starts its own Kafka (free port, temporary data) and an in-process registry unless
    MESH_BOOTSTRAP_SERVERS / MESH_REGISTRY_URL are set. Prints, per case, the median of its
    interleaved runs with their min-max (msgs/s, CPU per record), peak RSS, registry HTTP
    calls during the timed part and the ratios with their targets, and writes them to OUTPUT
    as JSON and text. The codec benchmark runs too (encode/decode CPU per record against
    fastavro on the benchmark record and, in a mesh-stream checkout, every sample contract;
    `--codec-only` alone), the registry benchmark, the registry scale benchmark at 1k and
    10k subjects (`--registry-scale` alone), the product monitor's cost at 12 and 1,000
    products (`--monitor-only` alone) and, inside a checkout (the sample mesh), the
    processing benchmark. `--portal` runs the portal's page-speed benchmark alone, and
    `--instructions` the quality rules' cost counted in instructions (valgrind).

    SIGTERM stops it like Ctrl-C: the broker and registry it started are stopped and its
    temporary folder removed; then it exits 143.
    """
    require_extras("bench")
    given = BenchOptions(**options)
    alone = {
        "--codec-only": given.codec_only,
        "--registry-scale": given.registry_scale,
        "--portal": given.portal,
        "--instructions": given.instructions,
        "--monitor-only": given.monitor_only,
        "--sdk-only": given.sdk_only,
    }
    chosen = [flag for flag, on in alone.items() if on]
    if len(chosen) > 1:  # each runs one benchmark alone: the first used to win, silently
        raise click.UsageError(f"{' and '.join(chosen)} each run one benchmark alone; pick one")
    _refuse_ignored_options(click.get_current_context(), chosen[0] if chosen else None)
    if given.codec_only and given.codec_records == 0:
        raise click.UsageError(
            "--codec-records 0 skips the codec benchmark, which --codec-only runs alone; "
            "give a count above 0 or drop --codec-records"
        )
    try:  # made now, not after the benchmark ran (a place where no folder can be made)
        given.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(
            f"{str(given.output)!r} cannot be made: {exc.strerror or exc}; name a folder for "
            "the report, e.g. bench-results",
            param_hint="--output",
        ) from exc
    with _terminated_like_interrupted():
        _run(settings, given)


def _run(settings: MeshSettings, given: BenchOptions) -> None:
    """The benchmark the options chose, its report printed and written to ``--output``."""
    from mesh_stream.bench.run import (
        render_table,
        run_benchmarks,
        sample_mesh_root,
        write_report,
    )

    def progress(message: str) -> None:
        click.echo(message, err=True)

    sizes = _scale_sizes(given.scale_subjects, given.registry_scale)
    output, as_json = given.output, given.as_json
    if given.codec_only:
        from mesh_stream.bench.run import (
            render_codec_report,
            run_codec_only,
            write_codec_report,
        )

        codec = run_codec_only(
            sample_mesh_root(settings), given.codec_records, given.codec_repeats, progress
        )
        _emit(codec, write_codec_report(codec, output), render_codec_report(codec), as_json)
        return

    if given.registry_scale:
        from mesh_stream.bench.registry_scale import render_scale
        from mesh_stream.bench.run import run_registry_scale_only, write_scale_report

        scale = run_registry_scale_only(settings, sizes, progress)
        _emit(
            scale, write_scale_report(scale, output), render_scale(scale["registry_scale"]), as_json
        )
        return

    if given.portal:
        from mesh_stream.bench.portal_bench import LOADS, render_portal
        from mesh_stream.bench.run import run_portal_only, write_portal_report

        speed = run_portal_only(given.portal_products, LOADS, progress)
        _emit(speed, write_portal_report(speed, output), render_portal(speed["portal"]), as_json)
        return

    if given.instructions:
        from mesh_stream.bench.instructions import find_valgrind, render_instructions
        from mesh_stream.bench.run import run_instructions_only, write_instructions_report

        find_valgrind()  # before a broker is started for nothing
        counted = run_instructions_only(settings, given.instruction_records, given.warmup, progress)
        _emit(
            counted,
            write_instructions_report(counted, output),
            render_instructions(counted["instructions"]),
            as_json,
        )
        return

    if given.monitor_only:
        from mesh_stream.bench.monitor_bench import render_monitor
        from mesh_stream.bench.run import run_monitor_only, write_monitor_report

        cost = run_monitor_only(settings, given.monitor_products, max(3, given.repeats), progress)
        _emit(cost, write_monitor_report(cost, output), render_monitor(cost["monitor"]), as_json)
        return

    sample_root = sample_mesh_root(settings)
    report = run_benchmarks(
        settings,
        records=given.records,
        warmup=given.warmup,
        cases=given.cases,
        repeats=given.repeats,
        progress=progress,
        others=not given.sdk_only,
        scale_sizes=sizes,
        monitor_products=given.monitor_products,
        sample_root=None if given.sdk_only else sample_root,
        codec_root=sample_root,
        codec_records=given.codec_records,
        codec_repeats=given.codec_repeats,
        processing_peer=given.processing_peer,
    )
    _emit(report, write_report(report, output), render_table(report), as_json)


def _emit(report: dict[str, Any], written: tuple[Path, Path], text: str, as_json: bool) -> None:
    """Print a report (as JSON with --json, else its table) and where it was written."""
    click.echo(json.dumps(report, indent=2, default=str) if as_json else text)
    click.echo(f"wrote {written[0]} and {written[1]}", err=True)


def _scale_sizes(given: tuple[int, ...] | None, full: bool) -> tuple[int, ...]:
    """--scale-subjects, or its default (larger with --registry-scale)."""
    if given is None:
        return (1_000, 10_000, 100_000) if full else (1_000, 10_000)
    return given


def _cases(value: str) -> str:
    """--cases, checked by the benchmark's own rule (:mod:`mesh_stream.bench.cases`)."""
    problem = cases_problem(value)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--cases")
    return value


def _refuse_ignored_options(ctx: click.Context, alone: str | None) -> None:
    """A usage error naming an option given with a benchmark that would ignore it (e.g.
    --processing-peer with --codec-only), rather than a run that silently drops it."""
    used = USED_BY[alone] | EVERY_RUN
    for param in ctx.command.params:
        name = param.name
        if name is None or name in used:
            continue
        source = ctx.get_parameter_source(name)
        if source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            continue
        option = param.opts[0]
        if alone is None:
            owner = OWNER[name]
            raise click.UsageError(
                f"{option} is read by {owner} only; add {owner} or drop {option}"
            )
        raise click.UsageError(
            f"{option} has no effect with {alone}, which runs its benchmark without it; "
            f"drop one of them"
        )


@contextlib.contextmanager
def _terminated_like_interrupted() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (a KeyboardInterrupt in the main thread), so every
    ``finally`` and context manager below runs: the broker and registry this run started
    are stopped and its temporary folder removed. Then ``Terminated.`` and exit 143. A
    second SIGTERM while stopping is ignored (SIGKILL still ends it). Installed here, at
    the entry point, never in the benchmark code."""
    received: list[int] = []
    try:
        with terminate_as_interrupt(once=True) as received:
            yield
    except KeyboardInterrupt:
        if not received:  # Ctrl-C: the command line's own handling
            raise
    if received:
        click.echo("Terminated.", err=True)
        raise click.exceptions.Exit(TERMINATED)


def _output_folder(value: str) -> Path:
    """``--output`` as a folder that can be made or written to, checked before anything
    runs: an empty one is refused (``Path("")`` would quietly be the current folder), and
    so is a file or device (``/dev/null``) or a place where no folder can be made."""
    if not value.strip():
        raise click.BadParameter(
            f"{value!r} is empty; give the folder for the report, e.g. bench-results",
            param_hint="--output",
        )
    path = Path(value)
    problem = _folder_problem(path)
    if problem is not None:
        raise click.BadParameter(
            f"{problem}; name a folder for the report (made if missing), e.g. bench-results",
            param_hint="--output",
        )
    return path


def _folder_problem(path: Path) -> str | None:
    """Why the report's files cannot be written into ``path`` (made if missing), or None."""
    place = path
    while not place.exists() and not place.is_symlink() and place != place.parent:
        place = place.parent
    what = repr(str(path)) if place == path else f"{str(path)!r} cannot be made: {str(place)!r}"
    if not place.exists():
        return f"{what} is a symbolic link to nothing"
    if not place.is_dir():
        kind = "a file" if place.is_file() else "a device or other special file"
        return f"{what} is {kind}, not a folder"
    if not os.access(place, os.W_OK | os.X_OK):
        return f"{what} is a folder this user cannot write to"
    return None
