"""Processing benchmark: the revenue aggregation over story-like orders, mesh-stream and a peer.

The sample mesh's revenue processor (``domains/analytics/processors/revenue.py`` of the
project at ``project_root``, a mesh-stream checkout; the wheel does not ship it) runs in one
real faust worker on private copies of the products (domain ``bench<run id>``, 3 partitions),
so a running mesh is not disturbed. Its input is a story
(:mod:`mesh_stream.bench.story_input`): orders spread over many one-minute windows, regions
and partitions, with retried duplicates and late orders. Each run measures backlog drain
(events/s, worker and broker CPU per event), exactness of the final windows, and latency at a
steady rate (:mod:`mesh_stream.bench.processing_runs` says how).

With ``peer="quix"`` the same aggregation written with Quix Streams 3
(:mod:`mesh_stream.bench.quix_peer`, run in its own virtualenv under the data directory,
created on first use) runs over the same story on the same broker; runs alternate (mesh, quix,
mesh, quix, ...) and the report gives each figure's median and min-max over the runs.

``python -m mesh_stream.bench.processing_bench report [--records N] [--runs R] [--peer quix]``
run in the checkout prints the JSON report and a table; without ``report`` the module is the
mesh worker, started by the benchmark itself with the project root as its working directory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mesh_stream.bench.processing_runs import Worker, listening_pid, measure_run
from mesh_stream.bench.story_input import Story, WindowTotal, expected_windows, make_story
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.codec import FramedAvroDecoder, decimal_cents
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import ensure_internal_topic, ensure_topics, schema_text
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

#: The sample processor, imported by name from the project root (the worker's folder).
SAMPLE_PROCESSOR_MODULE = "domains.analytics.processors.revenue"
SAMPLE_PROCESSOR_FILE = Path("domains/analytics/processors/revenue.py")
#: Partitions of the bench's input (and output) product.
PARTITIONS = 3
WINDOW_MS = 60_000
GRACE_MS = 30_000
TARGET_EVENTS_PER_S = 10_000
TARGET_P99_MS = 500.0
#: What the Quix peer's virtualenv gets (its pins may conflict with ours, hence its own venv).
QUIX_REQUIREMENTS = ("quixstreams>=3,<4", "fastavro>=1.9")
#: Quix's own window grace, kept in stream time per key: long enough that it never drops what
#: the arrival-time rule (in the peer's filter) accepts. ``--quix-stream-grace-ms 30000``
#: shows what Quix's native lateness does to a backlog read from several partitions.
QUIX_STREAM_GRACE_MS = 7 * 24 * 3_600_000
#: The figures summarised per engine (median, min, max over the runs).
FIGURES = (
    "events_per_s",
    "worker_cpu_us_per_event",
    "broker_cpu_us_per_event",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_to_output_p50_ms",
    "live_worker_cpu_us_per_event",
    "live_broker_cpu_us_per_event",
)

Progress = Callable[[str], None]


def bench_products(run_id: str, root: Path) -> tuple[DataProduct, DataProduct]:
    """Private copies of orders.order-placed and analytics.revenue-by-region (3 partitions
    each), from the sample mesh at ``root``."""
    products = {p.name: p for p in load_descriptors(root / "domains")}
    domain = f"bench{run_id}"
    source = products["orders.order-placed"].model_copy(
        update={"name": f"{domain}.order-placed", "domain": domain, "partitions": PARTITIONS}
    )
    output = products["analytics.revenue-by-region"].model_copy(
        update={
            "name": f"{domain}.revenue-by-region",
            "domain": domain,
            "inputs": (source.name,),
            "partitions": PARTITIONS,
        }
    )
    return source, output


def bench_spec(settings: MeshSettings, run_id: str, root: Path) -> ProcessorSpec:
    """The revenue processor's spec over the private products of the sample mesh at ``root``;
    registers the output schema."""
    source, output = bench_products(run_id, root)
    ensure_topics(settings.resolved_bootstrap_servers(), [source, output])
    with RegistryClient.from_settings(settings) as registry:
        schema_id = registry.register_schema(output.value_subject, schema_text(output, root))
    return ProcessorSpec(output, (source,), schema_id, settings, schema_text(output, root))


def _worker_env(settings: MeshSettings, run_id: str, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "MESH_REGISTRY_URL": settings.registry_url,
        "MESH_DATA_DIR": str(data_dir),
        "MESH_BENCH_RUN_ID": run_id,
    }
    if settings.registry_principal and settings.registry_token is not None:
        env["MESH_REGISTRY_PRINCIPAL"] = settings.registry_principal
        env["MESH_REGISTRY_TOKEN"] = settings.registry_token.get_secret_value()
    return env


def mesh_worker(
    settings: MeshSettings, run_id: str, root: Path, registry: RegistryClient, scratch: Path
) -> Worker:
    """mesh-stream's revenue worker over run ``run_id``'s products (topics made here)."""
    spec = bench_spec(settings, run_id, root)
    decoder = FramedAvroDecoder(registry.get_schema)
    where = spec.output.topic

    def decode(value: bytes) -> tuple[str, int, int]:
        record = decoder.decode(value, where=where)
        return record["window_id"], record["order_count"], decimal_cents(record["gross_revenue"])

    return Worker(
        "mesh",
        [sys.executable, "-m", "mesh_stream.bench.processing_bench", "worker", "-l", "warn"],
        root,
        _worker_env(settings, run_id, scratch),
        spec.output.topic,
        spec.output.partitions,
        decode,
        stamps_at_send=True,
    )


def quix_python(data_dir: Path, progress: Progress) -> Path:
    """The Python of the Quix peer's virtualenv, ``<data dir>/quix-venv``, made on first use
    (``python -m venv`` and pip install of QUIX_REQUIREMENTS, pip's output as progress)."""
    venv = Path(data_dir) / "quix-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import quixstreams, fastavro; print(quixstreams.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False)
        if found.returncode == 0:
            return python
    progress(f"Quix peer: creating its virtualenv {venv} (once) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off", *QUIX_REQUIREMENTS]
    progress(f"Quix peer: {' '.join(command[1:])}")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as pip:
        assert pip.stdout is not None
        tail: list[str] = []
        for line in pip.stdout:
            progress(f"  pip: {line.rstrip()}")
            tail = [*tail[-20:], line]
    found = subprocess.run(check, capture_output=True, text=True, check=False)
    if pip.returncode != 0 or found.returncode != 0:
        raise ConfigurationError(
            f"could not install {', '.join(QUIX_REQUIREMENTS)} into {venv} (pip exit "
            f"{pip.returncode}): {''.join(tail[-3:]).strip() or found.stderr.strip()}; check "
            f"that PyPI is reachable, or delete {venv} and run the benchmark again"
        )
    progress(f"Quix peer: quixstreams {found.stdout.strip()} ready")
    return python


def quix_worker(
    settings: MeshSettings,
    run_id: str,
    root: Path,
    python: Path,
    scratch: Path,
    stream_grace_ms: int = QUIX_STREAM_GRACE_MS,
) -> Worker:
    """The Quix Streams peer over run ``run_id``'s input (its output topic made here)."""
    source, _ = bench_products(run_id, root)
    output_topic = f"bench{run_id}.quix-revenue"
    ensure_topics(settings.resolved_bootstrap_servers(), [source])
    ensure_internal_topic(settings.resolved_bootstrap_servers(), output_topic, PARTITIONS)
    config = {
        "bootstrap_servers": settings.resolved_bootstrap_servers(),
        "registry_url": settings.registry_url,
        "registry_principal": settings.registry_principal,
        "registry_token": (
            settings.registry_token.get_secret_value() if settings.registry_token else None
        ),
        "input_topic": source.topic,
        "output_topic": output_topic,
        "consumer_group": f"bench-quix-{run_id}",
        "state_dir": str(scratch / "quix-state"),
        "window_ms": WINDOW_MS,
        "grace_ms": GRACE_MS,
        "stream_grace_ms": stream_grace_ms,
    }

    def decode(value: bytes) -> tuple[str, int, int]:
        record = json.loads(value)
        return record["window_id"], record["order_count"], record["gross_cents"]

    script = resources.files("mesh_stream.bench").joinpath("quix_peer.py")
    return Worker(
        "quix",
        [str(python), str(script)],
        scratch,
        {**os.environ, "QUIX_PEER_CONFIG": json.dumps(config)},
        output_topic,
        PARTITIONS,
        decode,
    )


def reference_windows(story: Story, root: Path) -> dict[str, WindowTotal] | None:
    """The windows ``reference.recompute`` gives with the sample processor's own declaration
    (``PROCESSOR`` of its file under ``root``), None when it has none or cannot be loaded."""
    from importlib.util import module_from_spec, spec_from_file_location

    from mesh_stream.processing.reference import InputRecord, recompute

    found = spec_from_file_location("mesh_bench_sample_revenue", root / SAMPLE_PROCESSOR_FILE)
    if found is None or found.loader is None:
        return None
    module = module_from_spec(found)
    try:
        found.loader.exec_module(module)
    except Exception:  # an older sample or a broken checkout: the story's own rules remain
        return None
    processor = getattr(module, "PROCESSOR", None)
    if processor is None:
        return None
    product = processor.inputs[0].product
    outputs = recompute(
        processor, (InputRecord(product, item.record, item.arrival_ms) for item in story.records)
    )
    return {
        key: WindowTotal(record["order_count"], decimal_cents(record["gross_revenue"]))
        for key, record in outputs.items()
    }


def _settings(
    base: MeshSettings | None,
    bootstrap_servers: str,
    registry_url: str,
    principal: str | None,
    token: str | None,
    scratch: Path,
) -> MeshSettings:
    return (base or MeshSettings()).model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "registry_url": registry_url,
            "registry_principal": principal,
            "registry_token": SecretStr(token) if token is not None else None,
            "data_dir": scratch,
        }
    )


def _one_run(
    engine: str,
    settings: MeshSettings,
    story: Story,
    root: Path,
    scratch: Path,
    *,
    quix: Path | None,
    rate: float,
    latency_seconds: float,
    timeout: float,
    quix_stream_grace_ms: int = QUIX_STREAM_GRACE_MS,
) -> dict[str, Any]:
    """One run of ``engine`` ("mesh" or "quix") on fresh topics holding ``story``."""
    run_id = uuid.uuid4().hex[:8]
    folder = scratch / f"{engine}-{run_id}"
    folder.mkdir(parents=True)
    bootstrap = settings.resolved_bootstrap_servers()
    with RegistryClient.from_settings(settings) as registry:
        if engine == "mesh":
            worker = mesh_worker(settings, run_id, root, registry, folder)
        else:
            assert quix is not None
            worker = quix_worker(settings, run_id, root, quix, folder, quix_stream_grace_ms)
        source, _ = bench_products(run_id, root)
        publisher = ProductPublisher(
            source,
            bootstrap_servers=bootstrap,
            registry=registry,
            root=root,
            config={"linger.ms": 1},
        )
        try:
            return measure_run(
                worker,
                story=story,
                publisher=publisher,
                connection=KafkaConnection.create(bootstrap),
                broker_pid=listening_pid(bootstrap),
                log_path=folder / "worker.log",
                rate=rate,
                latency_seconds=latency_seconds,
                timeout=timeout,
            )
        finally:
            publisher.close()


def run_processing_bench(
    bootstrap_servers: str,
    registry_url: str,
    *,
    project_root: Path,
    principal: str | None = "admin",
    token: str | None = None,
    records: int = 50_000,
    rate: float = 1_000.0,
    latency_seconds: float = 15.0,
    timeout: float = 300.0,
    settings: MeshSettings | None = None,
) -> dict[str, Any]:
    """One run of the revenue processor over a story of ``records`` orders: drain events/s,
    CPU per event, exactness, and p50/p99 latency at ``rate`` (what `mesh bench` shows)."""
    story = make_story(records, end_ms=int(time.time() * 1000), partitions=PARTITIONS)
    with tempfile.TemporaryDirectory(prefix="mesh-bench-processing-") as scratch:
        run_settings = _settings(
            settings, bootstrap_servers, registry_url, principal, token, Path(scratch)
        )
        result = _one_run(
            "mesh",
            run_settings,
            story,
            project_root,
            Path(scratch),
            quix=None,
            rate=rate,
            latency_seconds=latency_seconds,
            timeout=timeout,
        )
    reference = reference_windows(story, project_root)
    return {
        "processor": "analytics.revenue-by-region (one faust worker)",
        "processing_guarantee": "at_least_once + idempotent keyed outputs",
        "input": story.summary(),
        "expected_by": "story rules" if reference is None else "story rules and recompute",
        "reference_agrees": None if reference is None else reference == expected_windows(story),
        **result,
        "targets": {"events_per_s": TARGET_EVENTS_PER_S, "latency_p99_ms": TARGET_P99_MS},
        "met": {
            "events_per_s": (result["events_per_s"] or 0) >= TARGET_EVENTS_PER_S,
            "latency_p99_ms": result["latency_p99_ms"] is not None
            and result["latency_p99_ms"] < TARGET_P99_MS,
        },
    }


def summarize(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median and min-max of one figure over the runs (runs without it left out)."""
    found = [value for value in values if value is not None]
    if not found:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(found), "min": min(found), "max": max(found)}


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run_side_by_side(
    bootstrap_servers: str,
    registry_url: str,
    *,
    project_root: Path,
    principal: str | None = "admin",
    token: str | None = None,
    records: int = 20_000,
    runs: int = 2,
    peer: str | None = "quix",
    rate: float = 1_000.0,
    latency_seconds: float = 15.0,
    timeout: float = 300.0,
    settings: MeshSettings | None = None,
    progress: Progress = print,
    quix_stream_grace_ms: int = QUIX_STREAM_GRACE_MS,
) -> dict[str, Any]:
    """``runs`` runs of each engine over the same story, interleaved (mesh, peer, mesh, ...);
    per engine every run's figures, and each figure's median with min-max."""
    engines = ["mesh"] if peer is None else ["mesh", peer]
    if peer not in (None, "quix"):
        raise ConfigurationError(f"unknown peer {peer!r}; the benchmark knows --peer quix")
    story = make_story(records, end_ms=int(time.time() * 1000), partitions=PARTITIONS)
    base = settings or MeshSettings()
    quix = quix_python(base.data_dir, progress) if peer == "quix" else None
    load_before = _load()
    results: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    with tempfile.TemporaryDirectory(prefix="mesh-bench-processing-") as scratch:
        run_settings = _settings(
            base, bootstrap_servers, registry_url, principal, token, Path(scratch)
        )
        for attempt in range(1, runs + 1):
            for engine in engines:
                progress(f"[{attempt}/{runs}] {engine}: {records:,} records ...")
                result = _one_run(
                    engine,
                    run_settings,
                    story,
                    project_root,
                    Path(scratch),
                    quix=quix,
                    rate=rate,
                    latency_seconds=latency_seconds,
                    timeout=timeout,
                    quix_stream_grace_ms=quix_stream_grace_ms,
                )
                results[engine].append(result)
                untimed = result.get("drain_untimed")
                progress(
                    f"[{attempt}/{runs}] {engine}: {result['events_per_s']} events/s, "
                    f"{result['worker_cpu_us_per_event']} us CPU/event, exact "
                    f"{result['exact']}, p50/p99 {result['latency_p50_ms']}/"
                    f"{result['latency_p99_ms']} ms"
                    + (f" (drain not timed: {untimed})" if untimed else "")
                )
    reference = reference_windows(story, project_root)
    engines_report = {
        engine: {
            "exact": all(run["exact"] and run["exact_after_live"] for run in found),
            **{name: summarize([run[name] for run in found]) for name in FIGURES},
            "runs": found,
        }
        for engine, found in results.items()
    }
    return {
        "benchmark": "revenue by region: 1-minute tumbling windows by placed_at, 30 s grace "
        "(arrival time), sum of cents and order count, dedup by event_id",
        "input": story.summary(),
        "reference_agrees": None if reference is None else reference == expected_windows(story),
        "runs": runs,
        "quix_stream_grace_ms": quix_stream_grace_ms if peer == "quix" else None,
        "rate_per_s": rate,
        "latency_seconds": latency_seconds,
        "load_average_before": load_before,
        "load_average_after": _load(),
        "cpus": os.cpu_count(),
        "engines": engines_report,
        "targets": issue_targets(engines_report),
    }


#: Issue 15's performance targets for mesh-stream: (figure, "min"/"max", bound); a bound of
#: None is the peer's median of the same figure.
TARGETS: tuple[tuple[str, str, float | None], ...] = (
    ("events_per_s", "min", 40_000.0),
    ("latency_p50_ms", "max", 12.0),
    ("latency_p99_ms", "max", 25.0),
    ("live_worker_cpu_us_per_event", "max", None),
)


def issue_targets(engines: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with mesh-stream's median and whether it is met (None: not measured)."""
    rows = []
    mesh = engines["mesh"]
    peer = next((found for name, found in engines.items() if name != "mesh"), None)
    for name, kind, fixed in TARGETS:
        bound = fixed if fixed is not None else (None if peer is None else peer[name]["median"])
        value = mesh[name]["median"]
        met = None
        if value is not None and bound is not None:
            met = value >= bound if kind == "min" else value <= bound
        rows.append({"figure": name, kind: bound, "mesh_median": value, "met": met})
    return rows


def render_side_by_side(report: dict[str, Any]) -> str:
    """The report as a short table: each figure's median (min-max) per engine."""
    story = report["input"]
    lines = [
        f"{story['records']:,} records ({story['duplicates']} duplicates, {story['late']} late, "
        f"partitions {story['partitions']}, {story['event_time_windows']} windows x "
        f"{story['regions']} regions), {report['runs']} interleaved runs per engine, load "
        f"{report['load_average_before']} -> {report['load_average_after']}",
        "",
        f"{'figure':<32}" + "".join(f"{engine:>26}" for engine in report["engines"]),
    ]
    for name in FIGURES:
        cells = []
        for summary in report["engines"].values():
            found = summary[name]
            cells.append(
                "-"
                if found["median"] is None
                else f"{found['median']:,.1f} ({found['min']:,.1f}-{found['max']:,.1f})"
            )
        lines.append(f"{name:<32}" + "".join(f"{cell:>26}" for cell in cells))
    lines.append(
        f"{'exact (every run, both phases)':<32}"
        + "".join(f"{summary['exact']!s:>26}" for summary in report["engines"].values())
    )
    for engine, summary in report["engines"].items():
        untimed = [
            run["drain_untimed"] for run in summary.get("runs", ()) if run.get("drain_untimed")
        ]
        if untimed:
            lines.append(
                f"{engine}: the drain of {len(untimed)} run(s) is left out of its figures, "
                f"{untimed[0]}"
            )
    lines.append("")
    for row in report.get("targets", []):
        kind = "min" if "min" in row else "max"
        verdict = {True: "met", False: "MISSED", None: "-"}[row["met"]]
        sign = ">=" if kind == "min" else "<="
        lines.append(
            f"target {row['figure']} {sign} {row[kind]}: mesh median {row['mesh_median']}  "
            f"{verdict}"
        )
    return "\n".join(lines)


def _worker_main() -> None:
    """Worker side: the revenue processor over this run's private products."""
    from importlib import import_module

    # Started with the project root as working directory, which ``python -m`` puts on sys.path.
    from mesh_stream.processing.engine import retarget, run

    run_id = os.environ.get("MESH_BENCH_RUN_ID")
    if not run_id:  # started by hand rather than by the benchmark
        sys.exit(
            "processing benchmark: this is the benchmark's worker, started by it with "
            "MESH_BENCH_RUN_ID set; run `python -m mesh_stream.bench.processing_bench report "
            "--help` for the benchmark itself"
        )
    processor = import_module(SAMPLE_PROCESSOR_MODULE).PROCESSOR
    spec = bench_spec(MeshSettings(), run_id, Path.cwd())
    run(retarget(processor, spec), spec=spec)


def _report_main(argv: list[str]) -> None:
    """``python -m mesh_stream.bench.processing_bench report``: this benchmark alone."""
    import argparse

    from mesh_stream.bench.environment import bench_environment
    from mesh_stream.bench.run import SAMPLE_MESH_MISSING, sample_mesh_root

    parser = argparse.ArgumentParser(
        prog="python -m mesh_stream.bench.processing_bench report",
        description="Run only the processing benchmark against MESH_BOOTSTRAP_SERVERS / "
        "MESH_REGISTRY_URL, or a throw-away local broker and registry when they are unset.",
    )
    parser.add_argument("--records", type=int, default=20_000, help="story records to drain")
    parser.add_argument("--runs", type=int, default=2, help="runs per engine, interleaved")
    parser.add_argument(
        "--peer", choices=("quix",), default=None, help="also run Quix Streams 3 (own venv)"
    )
    parser.add_argument("--rate", type=float, default=1_000.0, help="events/s of latency phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of latency phase")
    parser.add_argument(
        "--quix-stream-grace-ms",
        type=int,
        default=QUIX_STREAM_GRACE_MS,
        help="Quix's own window grace (stream time); 30000 shows its native lateness",
    )
    parser.add_argument("--json-only", action="store_true", help="print the JSON report only")
    options = parser.parse_args(argv)
    settings = MeshSettings()
    root = sample_mesh_root(settings)
    if root is None:
        parser.exit(2, f"processing benchmark: {SAMPLE_MESH_MISSING}\n")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with bench_environment(settings, progress=progress) as env:
            report = run_side_by_side(
                env.bootstrap_servers,
                env.registry_url,
                project_root=root,
                principal=env.admin_principal,
                token=env.admin_token,
                records=options.records,
                runs=options.runs,
                peer=options.peer,
                rate=options.rate,
                latency_seconds=options.seconds,
                settings=settings,
                progress=progress,
                quix_stream_grace_ms=options.quix_stream_grace_ms,
            )
    except (MeshError, RuntimeError) as exc:  # the registry or Kafka away, a bad setting
        parser.exit(1, f"processing benchmark: {exc}\n")
    print(json.dumps(report, indent=2, default=str))
    if not options.json_only:
        print(render_side_by_side(report), file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:2] == ["report"]:
        _report_main(sys.argv[2:])
    else:
        _worker_main()
