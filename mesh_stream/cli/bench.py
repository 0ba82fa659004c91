"""`mesh bench`: the SDK against raw confluent-kafka on one broker, as ratios.

The code lives in :mod:`mesh_stream.bench` (see ``mesh_stream/bench/run.py``); it ships in
the wheel, so an installed ``mesh bench`` works outside a checkout (the processing benchmark
alone needs the sample mesh, a mesh-stream checkout, and is skipped without it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mesh_stream.cli.extras import require_extras
from mesh_stream.settings import MeshSettings

#: The codec benchmark's defaults (mesh_stream.bench.codec_bench, which needs fastavro only).
CODEC_RECORDS = 2_000
CODEC_REPEATS = 11


@click.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON on stdout.")
@click.option(
    "--records",
    type=click.IntRange(min=1000),
    default=100_000,
    show_default=True,
    help="Records per case in the timed part (after the warm-up).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=100),
    default=5_000,
    show_default=True,
    help="Records per case before the clock starts (connections, schema, group join).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=10),
    default=3,
    show_default=True,
    help="Interleaved runs of every case; each figure is their median (min-max shown).",
)
@click.option(
    "--cases",
    default="abcdefghij",
    show_default=True,
    help="Which cases to run: a-e and j write, f-i read (reads need d); j is d with 3 CEL "
    "rules (the cost of rules, j/d); see mesh_stream.bench.sdk_bench.",
)
@click.option(
    "--codec-records",
    type=click.IntRange(min=0),
    default=CODEC_RECORDS,
    show_default=True,
    help="Records per schema in the codec benchmark (encode/decode vs fastavro, no Kafka); "
    "0 skips it.",
)
@click.option(
    "--codec-repeats",
    type=click.IntRange(min=1, max=100),
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
    default=None,
    metavar="N,N,...",
    help="Subject counts of the registry scale benchmark [default: 1000,10000; with "
    "--registry-scale 1000,10000,100000].",
)
@click.option(
    "--monitor-only",
    is_flag=True,
    help="Run only the product monitor benchmark: CPU, registry and Kafka requests a minute "
    "of one monitor at --monitor-products products (default 12,1000).",
)
@click.option(
    "--monitor-products",
    default="12,1000",
    show_default=True,
    metavar="N,N,...",
    help="Product counts of the product monitor benchmark; each is set up on a registry of "
    "its own (descriptor, topic, DLQ topic, records, a consumer group per product).",
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
    default="1000",
    show_default=True,
    metavar="N,N,...",
    help="Product counts of the portal benchmark; each on an in-memory registry of its own.",
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
    type=click.IntRange(min=1000),
    default=10_000,
    show_default=True,
    help="Timed records of the shorter --instructions run (valgrind runs ~50x slower).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    callback=lambda _ctx, _param, value: _output_folder(value),
    default="bench-results",
    show_default=True,
    help="Folder for sdk-bench.json and sdk-bench.txt.",
)
@click.pass_obj
def bench(
    settings: MeshSettings,
    as_json: bool,
    records: int,
    warmup: int,
    repeats: int,
    cases: str,
    codec_records: int,
    codec_repeats: int,
    codec_only: bool,
    sdk_only: bool,
    processing_peer: str | None,
    registry_scale: bool,
    scale_subjects: str | None,
    monitor_only: bool,
    monitor_products: str,
    portal: bool,
    portal_products: str,
    instructions: bool,
    instruction_records: int,
    output: Path,
) -> None:
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
    """
    require_extras("bench")
    from mesh_stream.bench.run import (
        render_table,
        run_benchmarks,
        sample_mesh_root,
        write_report,
    )

    alone = {
        "--codec-only": codec_only,
        "--registry-scale": registry_scale,
        "--portal": portal,
        "--instructions": instructions,
        "--monitor-only": monitor_only,
        "--sdk-only": sdk_only,
    }
    chosen = [flag for flag, given in alone.items() if given]
    if len(chosen) > 1:  # each runs one benchmark alone: the first used to win, silently
        raise click.UsageError(f"{' and '.join(chosen)} each run one benchmark alone; pick one")
    unknown = sorted(set(cases) - set("abcdefghij"))
    if unknown or not cases:
        raise click.BadParameter(
            f"unknown case(s) {unknown}; use letters a-j", param_hint="--cases"
        )

    sizes = _scale_sizes(scale_subjects, registry_scale)
    product_counts = _counts(monitor_products, "--monitor-products", "product counts; e.g. 12,1000")

    def progress(message: str) -> None:
        click.echo(message, err=True)

    if codec_only:
        from mesh_stream.bench.run import (
            render_codec_report,
            run_codec_only,
            write_codec_report,
        )

        codec = run_codec_only(
            sample_mesh_root(settings), codec_records or CODEC_RECORDS, codec_repeats, progress
        )
        _emit(codec, write_codec_report(codec, output), render_codec_report(codec), as_json)
        return

    if registry_scale:
        from mesh_stream.bench.registry_scale import render_scale
        from mesh_stream.bench.run import run_registry_scale_only, write_scale_report

        scale = run_registry_scale_only(settings, sizes, progress)
        _emit(
            scale, write_scale_report(scale, output), render_scale(scale["registry_scale"]), as_json
        )
        return

    if portal:
        from mesh_stream.bench.portal_bench import LOADS, render_portal
        from mesh_stream.bench.run import run_portal_only, write_portal_report

        counts = _counts(portal_products, "--portal-products", "product counts; e.g. 1000")
        speed = run_portal_only(counts, LOADS, progress)
        _emit(speed, write_portal_report(speed, output), render_portal(speed["portal"]), as_json)
        return

    if instructions:
        from mesh_stream.bench.instructions import find_valgrind, render_instructions
        from mesh_stream.bench.run import run_instructions_only, write_instructions_report

        find_valgrind()  # before a broker is started for nothing
        counted = run_instructions_only(settings, instruction_records, warmup, progress)
        _emit(
            counted,
            write_instructions_report(counted, output),
            render_instructions(counted["instructions"]),
            as_json,
        )
        return

    if monitor_only:
        from mesh_stream.bench.monitor_bench import render_monitor
        from mesh_stream.bench.run import run_monitor_only, write_monitor_report

        cost = run_monitor_only(settings, product_counts, max(3, repeats), progress)
        _emit(cost, write_monitor_report(cost, output), render_monitor(cost["monitor"]), as_json)
        return

    sample_root = sample_mesh_root(settings)
    report = run_benchmarks(
        settings,
        records=records,
        warmup=warmup,
        cases=cases,
        repeats=repeats,
        progress=progress,
        others=not sdk_only,
        scale_sizes=sizes,
        monitor_products=product_counts,
        sample_root=None if sdk_only else sample_root,
        codec_root=sample_root,
        codec_records=codec_records,
        codec_repeats=codec_repeats,
        processing_peer=processing_peer,
    )
    _emit(report, write_report(report, output), render_table(report), as_json)


def _emit(report: dict[str, Any], written: tuple[Path, Path], text: str, as_json: bool) -> None:
    """Print a report (as JSON with --json, else its table) and where it was written."""
    click.echo(json.dumps(report, indent=2, default=str) if as_json else text)
    click.echo(f"wrote {written[0]} and {written[1]}", err=True)


def _scale_sizes(text: str | None, full: bool) -> tuple[int, ...]:
    if text is None:
        return (1_000, 10_000, 100_000) if full else (1_000, 10_000)
    return _counts(text, "--scale-subjects", "subject counts; e.g. 1000,10000")


def _counts(text: str, option: str, what: str) -> tuple[int, ...]:
    """A comma-separated list of positive counts, or the option's one-line error."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size < 1 for size in sizes):
        raise click.BadParameter(
            f"{text!r} is not a list of positive {what}",
            param_hint=option,
        )
    return sizes


def _output_folder(value: str) -> Path:
    """``--output`` as a path; an empty one is refused (``Path("")`` would quietly be the
    current folder)."""
    if not value.strip():
        raise click.BadParameter(
            f"{value!r} is empty; give the folder for the report, e.g. bench-results",
            param_hint="--output",
        )
    return Path(value)
