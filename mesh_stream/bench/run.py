"""`mesh bench`: run every benchmark against one broker, then report ratios, JSON and a table.

The SDK cases (a)-(j) run one after another, each in a fresh Python process (so each has its
own peak RSS), all cases once per round and the rounds repeated, so every case sees the same
machine; each figure is the MEDIAN of its runs, with their min and max (never the best run,
which flatters whichever case happened to dodge the noise). The codec benchmark
(``mesh_stream.bench.codec_bench``, no Kafka) times our encoder and decoder against fastavro on
the benchmark record and the sample mesh's contracts. The registry benchmark
(``mesh_stream.bench.registry_bench``) and the processing benchmark
(``mesh_stream.bench.processing_bench``) run too when those modules are present, and so
does the product monitor's cost (``mesh_stream.bench.monitor_bench``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mesh_stream.bench.cases import WRITE_CASES, cases_problem, read_source
from mesh_stream.bench.codec_bench import RECORDS as CODEC_RECORDS
from mesh_stream.bench.codec_bench import REPEATS as CODEC_REPEATS
from mesh_stream.bench.codec_bench import CodecCase
from mesh_stream.bench.environment import BenchEnvironment, bench_environment
from mesh_stream.bench.sdk_bench import (
    LABELS,
    Config,
    bench_product,
    schema,
)
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import locate_project
from mesh_stream.registration import ensure_product_topic
from mesh_stream.settings import MeshSettings

#: (name, numerator, denominator, target): the ratios issue 4 asks for.
RATIOS = (
    ("d/b", "d", "b", 0.85),
    ("d/c", "d", "c", 1.5),
    ("e/c", "e", "c", 1.0),
    ("i/g", "i", "g", 0.85),
    ("i/h", "i", "h", 1.5),
    ("d/a", "d", "a", None),
)


#: The CPU cost of quality rules: CPU per record of (j), 3 CEL rules, over (d), none.
RULES_COST = ("j/d", "j", "d", 1.25)


def _rules_cost(cases: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """CPU per record with rules over CPU per record without (lower is better): the ratio
    of the two cases' median CPU per record, with the min and max of the ratios of runs made
    in the same round (side by side, so disturbed alike)."""
    name, top, bottom, most = RULES_COST
    if top not in cases or bottom not in cases:
        return None
    upper, lower = cases[top]["cpu_us_per_record"], cases[bottom]["cpu_us_per_record"]
    ratio = upper / lower
    paired = _paired(cases[top], cases[bottom], "all_runs_cpu_us_per_record")
    return {
        "ratio": name,
        "cpu_ratio": round(ratio, 3),
        "cpu_ratio_min": round(min(paired, default=ratio), 3),
        "cpu_ratio_max": round(max(paired, default=ratio), 3),
        "added_cpu_us_per_record": round(upper - lower, 2),
        "target_at_most": most,
        "met": ratio <= most,
    }


def _paired(top: dict[str, Any], bottom: dict[str, Any], key: str) -> list[float]:
    """``top / bottom`` for the runs of each round (empty for reports without runs)."""
    pairs = zip(top.get(key, []), bottom.get(key, []), strict=False)
    return [up / down for up, down in pairs if up and down]


def median_of_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One case's figure from its interleaved runs: the median of each measure, with the
    min and max of msgs/s and CPU per record and every run's value kept."""
    result = dict(runs[0])
    for key in ("seconds", "msgs_per_s", "cpu_us_per_record", "peak_rss_mb"):
        result[key] = statistics.median(run[key] for run in runs)
    for key in ("msgs_per_s", "cpu_us_per_record"):
        values = [run[key] for run in runs]
        result[f"{key}_min"], result[f"{key}_max"] = min(values), max(values)
    calls = [run["registry_calls"] for run in runs]
    result["registry_calls"] = None if None in calls else max(calls)
    result["runs"] = len(runs)
    result["all_runs_msgs_per_s"] = [round(run["msgs_per_s"]) for run in runs]
    result["all_runs_cpu_us_per_record"] = [round(run["cpu_us_per_record"], 3) for run in runs]
    return result


def _run_case(case: str, config: Config) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "mesh_stream.bench.sdk_bench", case, json.dumps(asdict(config))],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


#: The sample mesh's processor the processing benchmark runs, relative to the project root.
SAMPLE_PROCESSOR = Path("domains/analytics/processors/revenue.py")
SAMPLE_MESH_MISSING = (
    f"needs the sample mesh ({SAMPLE_PROCESSOR} in the project); run mesh bench in a "
    "mesh-stream checkout or point MESH_PROJECT_ROOT at one"
)


def sample_mesh_root(settings: MeshSettings) -> Path | None:
    """The project holding the sample mesh (the repository root of a mesh-stream checkout),
    found like any project (MESH_PROJECT_ROOT, else the nearest mesh.yaml upwards); None when
    there is none or it is another team's project. The wheel does not ship the sample mesh."""
    project = locate_project(None, settings)
    if project is None or not (project.root / SAMPLE_PROCESSOR).is_file():
        return None
    return project.root


def _ratios(cases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ratio of medians, judged by its target, with the min and max of the ratios of
    the runs made in the same round."""
    rows = []
    for name, top, bottom, target in RATIOS:
        if top not in cases or bottom not in cases:
            continue
        value = cases[top]["msgs_per_s"] / cases[bottom]["msgs_per_s"]
        by_cpu = cases[bottom]["cpu_us_per_record"] / cases[top]["cpu_us_per_record"]
        paired = _paired(cases[top], cases[bottom], "all_runs_msgs_per_s")
        rows.append(
            {
                "ratio": name,
                "value": round(value, 3),
                "min": round(min(paired, default=value), 3),
                "max": round(max(paired, default=value), 3),
                "by_cpu": round(by_cpu, 3),
                "target": target,
                "met": None if target is None else value >= target,
            }
        )
    return rows


def _optional_bench(
    module_name: str, function_names: tuple[str, ...], arguments: dict[str, Any]
) -> dict[str, Any]:
    """Run another helper's benchmark if its module exists; pass the arguments it takes."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # e.g. faust without the processing extra
        return {"status": "not available", "reason": f"{module_name} cannot be imported: {exc}"}
    function: Callable[..., Any] | None = next(
        (getattr(module, name) for name in function_names if hasattr(module, name)), None
    )
    if function is None:
        return {"status": "not available", "reason": f"{module_name} has no {function_names[0]}"}
    accepted = inspect.signature(function).parameters
    given = {key: value for key, value in arguments.items() if key in accepted}
    missing = [
        name
        for name, parameter in accepted.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind is not inspect.Parameter.VAR_KEYWORD
        and name not in given
    ]
    if missing:
        return {"status": "not available", "reason": f"needs arguments {missing}"}
    try:
        return {"status": "ok", "result": function(**given)}
    except Exception as exc:  # report, do not lose the SDK numbers
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def run_benchmarks(
    settings: MeshSettings,
    *,
    records: int = 100_000,
    warmup: int = 5_000,
    cases: str = "abcdefghij",
    progress: Callable[[str], None] = print,
    registry_seconds: float = 5.0,
    repeats: int = 3,
    others: bool = True,
    scale_sizes: Sequence[int] = (1_000, 10_000),
    monitor_products: Sequence[int] = (12, 1_000),
    sample_root: Path | None = None,
    codec_root: Path | None = None,
    codec_records: int = CODEC_RECORDS,
    codec_repeats: int = CODEC_REPEATS,
    processing_peer: str | None = None,
) -> dict[str, Any]:
    """Run the benchmarks and return the whole report as JSON-able data.

    ``others=False`` skips the registry and processing benchmarks (the SDK and codec cases
    only); ``scale_sizes`` are the subject counts of the registry scale benchmark;
    ``monitor_products`` the product counts of the monitor benchmark (empty: skipped);
    ``sample_root`` is the sample mesh project whose revenue processor the processing
    benchmark runs (see :func:`sample_mesh_root`); without it that benchmark is skipped.
    ``codec_root`` is the project whose contracts the codec benchmark also measures (the
    benchmark record alone without it); ``codec_records=0`` skips the codec benchmark.
    ``processing_peer`` (``"quix"``) runs the processing benchmark side by side with that
    peer, ``repeats`` interleaved runs each, instead of one mesh-stream run.
    """
    problem = cases_problem(cases)
    if problem is not None:  # before the codec benchmark and the broker, not after them
        raise ValueError(f"cases {cases!r}: {problem}")
    codec = run_codec(codec_root, codec_records, codec_repeats, progress) if codec_records else None
    with bench_environment(settings, progress) as environment:
        report = _run_sdk(environment, records, warmup, cases, progress, repeats)
        if codec is not None:
            report["codec"] = codec
        if not others:
            return report
        progress("registry benchmark ...")
        report["registry"] = _optional_bench(
            "mesh_stream.bench.registry_bench",
            ("run_registry_bench",),
            {
                "registry_url": environment.registry_url,
                "seconds": registry_seconds,
                "concurrency": 16,
                "principal": environment.principal,
                "token": environment.token,
            },
        )
        progress("registry scale benchmark ...")
        report["registry_scale"] = _optional_bench(
            "mesh_stream.bench.registry_scale",
            ("run_registry_scale",),
            {
                "bootstrap_servers": environment.bootstrap_servers,
                "sizes": tuple(scale_sizes),
                "progress": progress,
            },
        )
        if monitor_products:
            progress("product monitor benchmark ...")
            report["monitor"] = _optional_bench(
                "mesh_stream.bench.monitor_bench",
                ("run_monitor_bench",),
                {
                    "bootstrap_servers": environment.bootstrap_servers,
                    "products": tuple(monitor_products),
                    "rounds": max(3, repeats),
                    "progress": progress,
                },
            )
        progress("processing benchmark ...")
        if sample_root is None:
            report["processing"] = {"status": "not available", "reason": SAMPLE_MESH_MISSING}
            return report
        report["processing"] = _optional_bench(
            "mesh_stream.bench.processing_bench",
            ("run_side_by_side",) if processing_peer else ("run_processing_bench", "run"),
            {
                "peer": processing_peer,
                "runs": repeats,
                "progress": progress,
                "project_root": sample_root,
                "bootstrap_servers": environment.bootstrap_servers,
                "registry_url": environment.registry_url,
                "principal": environment.admin_principal,
                "token": environment.admin_token,
                "records": records,
                "settings": settings.model_copy(
                    update={
                        "bootstrap_servers": environment.bootstrap_servers,
                        "registry_url": environment.registry_url,
                    }
                ),
            },
        )
    return report


def run_codec(
    root: Path | None,
    records: int = CODEC_RECORDS,
    repeats: int = CODEC_REPEATS,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The codec benchmark on the benchmark record and ``root``'s contracts (if given)."""
    from mesh_stream.bench.codec_bench import run_codec_bench, sample_mesh_schemas
    from mesh_stream.bench.sdk_bench import make_record

    cases: list[CodecCase] = [("bench record (order_event)", schema(), make_record)]
    if root is not None:
        cases += sample_mesh_schemas(root)
    return run_codec_bench(cases, records=records, repeats=repeats, progress=progress)


def case_config(
    environment: BenchEnvironment,
    records: int,
    warmup: int,
    *,
    product: str,
    read_product: str = "",
) -> Config:
    """What one SDK case's process gets: where the broker and registry are, and its sizes."""
    return Config(
        bootstrap_servers=environment.bootstrap_servers,
        registry_url=environment.registry_url,
        principal=environment.principal,
        token=environment.token,
        records=records,
        warmup=warmup,
        product=product,
        read_product=read_product,
    )


def _run_sdk(
    environment: BenchEnvironment,
    records: int,
    warmup: int,
    cases: str,
    progress: Callable[[str], None],
    repeats: int,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    connection = KafkaConnection.create(environment.bootstrap_servers)

    def product_name(case: str) -> str:
        return f"bench.run-{run_id}-{case}"

    source = read_source(cases)
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for attempt in range(1, repeats + 1):
        for case in cases:
            config = case_config(
                environment,
                records,
                warmup,
                product=f"{product_name(case)}-{attempt}" if case in WRITE_CASES else "",
                read_product=f"{product_name(source)}-1",
            )
            if case in WRITE_CASES:
                ensure_product_topic(bench_product(config.product), connection)
            progress(f"[{attempt}/{repeats}] ({case}) {LABELS[case]} ...")
            runs[case].append(_run_case(case, config))
            progress(f"[{attempt}/{repeats}] ({case}) {runs[case][-1]['msgs_per_s']:,.0f} msgs/s")
    results = {case: median_of_runs(found) for case, found in runs.items()}
    record_bytes = _record_size()
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "broker": environment.broker_origin,
        "registry_service": environment.registry_origin,
        "records": records,
        "warmup": warmup,
        "repeats": repeats,
        "record_bytes": record_bytes,
        "schema_fields": len(schema()["fields"]),
        "cases": results,
        "ratios": _ratios(results),
        "rules_cost": _rules_cost(results),
        "registry_calls_per_record_after_warmup": {
            case: results[case]["registry_calls"] / results[case]["records"]
            for case in ("d", "e", "i")
            if case in results and results[case]["registry_calls"] is not None
        },
    }


def _record_size() -> float:
    """Mean framed size of the benchmark's records (header + Avro body)."""
    from mesh_stream.bench.sdk_bench import make_record
    from mesh_stream.schema.codec import RecordEncoder

    encoder = RecordEncoder(schema(), 1)
    sizes = [len(encoder.encode(make_record(i))) for i in range(1000)]
    return round(sum(sizes) / len(sizes), 1)


def _spread(result: dict[str, Any], key: str, form: str) -> str:
    """``median (min-max)`` of one measure of a case (just the figure for older reports)."""
    low, high = result.get(f"{key}_min"), result.get(f"{key}_max")
    figure = format(result[key], form)
    if low is None or high is None:
        return figure
    return f"{figure} ({format(low, form)}-{format(high, form)})"


def render_table(report: dict[str, Any]) -> str:
    """The report as plain text tables (what `mesh bench` prints without --json)."""
    lines = [
        f"mesh bench: {report['records']:,} records of ~{report['record_bytes']:.0f} bytes "
        f"({report['schema_fields']} fields), acks=all + idempotence, after "
        f"{report['warmup']:,} warm-up records; median (min-max) of {report['repeats']} "
        f"interleaved runs; broker {report['broker']}, registry {report['registry_service']}",
        "",
        f"{'case':<4} {'what':<58} {'msgs/s':>27} {'CPU us/rec':>21} {'peak RSS':>9} "
        f"{'registry calls':>15}",
    ]
    for case, result in report["cases"].items():
        calls = "-" if result["registry_calls"] is None else str(result["registry_calls"])
        lines.append(
            f"({case})  {result['label']:<58} {_spread(result, 'msgs_per_s', ',.0f'):>27} "
            f"{_spread(result, 'cpu_us_per_record', '.2f'):>21} "
            f"{result['peak_rss_mb']:>7.0f}MB {calls:>15}"
        )
    lines += [
        "",
        f"{'ratio':<6} {'msgs/s (min-max)':>18} {'by CPU':>7} {'target':>7}  verdict (median)",
    ]
    for row in report["ratios"]:
        target = "-" if row["target"] is None else f">={row['target']}"
        verdict = "-" if row["met"] is None else ("met" if row["met"] else "MISSED")
        value = f"{row['value']:.2f} ({row.get('min', row['value']):.2f}-"
        value += f"{row.get('max', row['value']):.2f})"
        lines.append(f"{row['ratio']:<6} {value:>18} {row['by_cpu']:>7.2f} {target:>7}  {verdict}")
    cost = report.get("rules_cost")
    if cost:
        verdict = "met" if cost["met"] else "MISSED"
        low, high = (
            cost.get("cpu_ratio_min", cost["cpu_ratio"]),
            cost.get("cpu_ratio_max", cost["cpu_ratio"]),
        )
        lines.append(
            f"rules: CPU per record with 3 CEL rules / without ({cost['ratio']}, medians; "
            f"runs of a round {low:.2f}-{high:.2f}) {cost['cpu_ratio']:.2f} "
            f"(+{cost['added_cpu_us_per_record']:.2f} us), target "
            f"<={cost['target_at_most']}  {verdict}"
        )
    if report.get("codec"):
        lines += ["", render_codec_report(report)]
    for key in ("registry", "registry_scale", "monitor", "processing"):
        part = report.get(key)
        if part is None:
            continue
        if part.get("status") == "ok" and key == "registry_scale":
            from mesh_stream.bench.registry_scale import render_scale

            lines += ["", "registry scale benchmark:", render_scale(part["result"])]
        elif part.get("status") == "ok" and key == "monitor":
            from mesh_stream.bench.monitor_bench import render_monitor

            lines += ["", render_monitor(part["result"])]
        elif part.get("status") == "ok" and key == "processing" and "engines" in part["result"]:
            from mesh_stream.bench.processing_bench import render_side_by_side

            lines += ["", "processing benchmark:", render_side_by_side(part["result"])]
        elif part.get("status") == "ok":
            lines += ["", f"{key} benchmark:", json.dumps(part["result"], indent=2, default=str)]
        else:
            lines += ["", f"{key} benchmark: {part.get('status')} ({part.get('reason')})"]
    return "\n".join(lines)


def write_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``sdk-bench.json`` and ``sdk-bench.txt`` into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "sdk-bench.json"
    text_path = output / "sdk-bench.txt"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    text_path.write_text(render_table(report) + "\n")
    return json_path, text_path


def run_registry_scale_only(
    settings: MeshSettings, sizes: Sequence[int], progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """`mesh bench --registry-scale`: only the registry scale benchmark, on one broker."""
    from mesh_stream.bench.registry_scale import run_registry_scale

    with bench_environment(settings, progress) as environment:
        result = run_registry_scale(
            environment.bootstrap_servers, sizes=tuple(sizes), progress=progress
        )
    return _single_report(environment.broker_origin, "registry_scale", result)


def _single_report(broker: Any, key: str, result: Any) -> dict[str, Any]:
    """The report of one benchmark run alone (``--registry-scale``, ``--monitor-only``)."""
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "broker": broker,
        key: result,
    }


def _write_single(report: dict[str, Any], output: Path, name: str, text: str) -> tuple[Path, Path]:
    """Write ``<name>.json`` (the report) and ``<name>.txt`` (``text``) into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / f"{name}.json"
    text_path = output / f"{name}.txt"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    text_path.write_text(text + "\n")
    return json_path, text_path


def write_scale_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``registry-scale.json`` and ``registry-scale.txt`` into ``output``."""
    from mesh_stream.bench.registry_scale import render_scale

    return _write_single(report, output, "registry-scale", render_scale(report["registry_scale"]))


def run_codec_only(
    root: Path | None,
    records: int = CODEC_RECORDS,
    repeats: int = CODEC_REPEATS,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`mesh bench --codec-only`: the codec benchmark alone (no broker, no registry)."""
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "codec": run_codec(root, records, repeats, progress),
    }


def render_codec_report(report: dict[str, Any]) -> str:
    """The codec benchmark's table with the line that says how it was measured."""
    from mesh_stream.bench.codec_bench import render_codec

    first = report["codec"][0]
    return "\n".join(
        [
            f"codec (no Kafka): CPU us per record, median (min-max) of {first['repeats']} "
            f"interleaved runs of {first['records']:,} records; x = fastavro / mesh-stream",
            render_codec(report["codec"]),
        ]
    )


def write_codec_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``codec-bench.json`` and ``codec-bench.txt`` into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "codec-bench.json"
    text_path = output / "codec-bench.txt"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    text_path.write_text(render_codec_report(report) + "\n")
    return json_path, text_path


def run_monitor_only(
    settings: MeshSettings,
    products: Sequence[int],
    rounds: int = 3,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`mesh bench --monitor-only`: only the product monitor's cost, on one broker."""
    from mesh_stream.bench.monitor_bench import run_monitor_bench

    with bench_environment(settings, progress) as environment:
        result = run_monitor_bench(
            environment.bootstrap_servers,
            products=tuple(products),
            rounds=rounds,
            progress=progress,
        )
    return _single_report(environment.broker_origin, "monitor", result)


def write_monitor_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``monitor-bench.json`` and ``monitor-bench.txt`` into ``output``."""
    from mesh_stream.bench.monitor_bench import render_monitor

    return _write_single(report, output, "monitor-bench", render_monitor(report["monitor"]))


def run_portal_only(
    products: Sequence[int], loads: int, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """`mesh bench --portal`: the portal's page speed alone (in-memory registry, no Kafka)."""
    from mesh_stream.bench.portal_bench import run_portal_bench

    result = run_portal_bench(products, loads=loads, progress=progress)
    return _single_report("none (in-memory registry store)", "portal", result)


def write_portal_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``portal-bench.json`` and ``portal-bench.txt`` into ``output``."""
    from mesh_stream.bench.portal_bench import render_portal

    return _write_single(report, output, "portal-bench", render_portal(report["portal"]))


def run_instructions_only(
    settings: MeshSettings,
    records: int,
    warmup: int,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """`mesh bench --instructions`: cases (d) and (j) counted under valgrind, on one broker."""
    from mesh_stream.bench.instructions import count_rules_cost

    with bench_environment(settings, progress) as environment:
        connection = KafkaConnection.create(environment.bootstrap_servers)

        def make_product(name: str) -> str:
            ensure_product_topic(bench_product(name), connection)
            return name

        config = case_config(
            environment, records, warmup, product=f"bench.count-{uuid.uuid4().hex[:6]}"
        )
        result = count_rules_cost(config, make_product, progress)
    return _single_report(environment.broker_origin, "instructions", result)


def write_instructions_report(report: dict[str, Any], output: Path) -> tuple[Path, Path]:
    """Write ``rules-instructions.json`` and ``rules-instructions.txt`` into ``output``."""
    from mesh_stream.bench.instructions import render_instructions

    text = render_instructions(report["instructions"])
    return _write_single(report, output, "rules-instructions", text)
