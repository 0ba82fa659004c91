"""The processing benchmark's report: medians with min-max over runs (never best-of), the
table, the /proc readings it takes CPU and the broker's pid from, and the Quix peer's decoding
of Confluent-framed orders (cents from the undecoded decimal)."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import fastavro

from mesh_stream.bench.processing_bench import (
    FIGURES,
    issue_targets,
    render_side_by_side,
    summarize,
)
from mesh_stream.bench.processing_runs import listening_pid, percentile, process_cpu_seconds
from mesh_stream.bench.quix_peer import decode_order, strip_logical_types
from mesh_stream.bench.story_input import make_story

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "orders" / "order-placed.avsc"


def test_summarize_gives_median_and_min_max_of_all_runs() -> None:
    assert summarize([30.0, 10.0, 20.0]) == {"median": 20.0, "min": 10.0, "max": 30.0}
    assert summarize([4.0, 1.0]) == {"median": 2.5, "min": 1.0, "max": 4.0}
    assert summarize([7.0, None, 9.0]) == {"median": 8.0, "min": 7.0, "max": 9.0}
    assert summarize([None]) == {"median": None, "min": None, "max": None}


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([5.0], 0.99) == 5.0


def _report() -> dict[str, object]:
    story = make_story(100, end_ms=1_796_000_000_000)
    runs = {
        "mesh": [dict.fromkeys(FIGURES, 10.0), dict.fromkeys(FIGURES, 30.0)],
        "quix": [dict.fromkeys(FIGURES, 5.0), dict.fromkeys(FIGURES, 7.0)],
    }
    engines = {
        engine: {
            "exact": engine == "mesh",
            **{name: summarize([run[name] for run in found]) for name in FIGURES},
        }
        for engine, found in runs.items()
    }
    return {
        "input": story.summary(),
        "runs": 2,
        "load_average_before": [1.0, 1.0, 1.0],
        "load_average_after": [2.0, 1.0, 1.0],
        "engines": engines,
        "targets": issue_targets(engines),
    }


def test_the_table_shows_each_figure_as_median_and_range_per_engine() -> None:
    table = render_side_by_side(_report())
    assert "100 records (3 duplicates, 1 late" in table
    assert "2 interleaved runs per engine" in table
    header = next(line for line in table.splitlines() if line.startswith("figure"))
    assert header.split() == ["figure", "mesh", "quix"]
    row = next(line for line in table.splitlines() if line.startswith("events_per_s "))
    assert "20.0 (10.0-30.0)" in row
    assert "6.0 (5.0-7.0)" in row
    exact = next(line for line in table.splitlines() if line.startswith("exact"))
    assert exact.split()[-2:] == ["True", "False"]
    assert "target events_per_s >= 40000.0: mesh median 20.0  MISSED" in table
    assert "target live_worker_cpu_us_per_event <= 6.0: mesh median 20.0  MISSED" in table


def test_a_drain_too_late_to_time_is_left_out_of_the_medians_and_said() -> None:
    """A run whose first output came once most of the backlog was counted has no drain rate
    (a rate over the few orders left read as hundreds of thousands a second)."""
    untimed = (
        "the first output already counted 97% of the backlog's orders: too little was left "
        "to time the drain"
    )
    runs = [
        {**dict.fromkeys(FIGURES, 10.0), "drain_untimed": None},
        {
            **dict.fromkeys(FIGURES, 30.0),
            "events_per_s": None,
            "worker_cpu_us_per_event": None,
            "drain_untimed": untimed,
        },
    ]
    report = _report()
    engines = cast(dict[str, dict[str, Any]], report["engines"])
    engines["mesh"] = {
        "exact": True,
        **{name: summarize([run[name] for run in runs]) for name in FIGURES},
        "runs": runs,
    }
    table = render_side_by_side(report)
    row = next(line for line in table.splitlines() if line.startswith("events_per_s "))
    assert "10.0 (10.0-10.0)" in row
    assert f"mesh: the drain of 1 run(s) is left out of its figures, {untimed}" in table


def test_issue_targets_judge_mesh_medians_and_compare_cpu_with_the_peer() -> None:
    def engine(**medians: float) -> dict[str, object]:
        return {name: {"median": medians.get(name)} for name in FIGURES}

    rows = issue_targets(
        {
            "mesh": engine(
                events_per_s=41_000.0,
                latency_p50_ms=13.0,
                latency_p99_ms=25.0,
                live_worker_cpu_us_per_event=90.0,
            ),
            "quix": engine(live_worker_cpu_us_per_event=80.0),
        }
    )
    verdicts = {row["figure"]: row["met"] for row in rows}
    assert verdicts == {
        "events_per_s": True,  # >= 40,000
        "latency_p50_ms": False,  # <= 12
        "latency_p99_ms": True,  # <= 25, the bound itself is met
        "live_worker_cpu_us_per_event": False,  # above the peer's 80
    }
    alone = issue_targets({"mesh": engine(events_per_s=1.0)})
    assert {row["figure"]: row["met"] for row in alone}["live_worker_cpu_us_per_event"] is None


def test_process_cpu_seconds_grows_while_the_process_works() -> None:
    before = process_cpu_seconds(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = process_cpu_seconds(os.getpid())
    assert after is not None
    assert after >= before + 0.1
    assert process_cpu_seconds(None) is None


def test_listening_pid_finds_the_process_behind_a_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listening_pid(f"127.0.0.1:{port},other:9092") == os.getpid()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert listening_pid(f"127.0.0.1:{free}") is None


def test_the_quix_peer_reads_cents_and_millis_from_a_framed_order() -> None:
    document = json.loads(SCHEMA.read_text())
    order = make_story(10, end_ms=1_796_000_000_000).records[0].record
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(document), order)
    framed = b"\x00" + struct.pack(">I", 7) + body.getvalue()
    fields = decode_order(framed, fastavro.parse_schema(strip_logical_types(document)))
    assert fields == {
        "event_id": order["event_id"],
        "region": order["region"],
        "cents": int(order["total_amount"] * 100),
        "placed_at": order["placed_at"],
    }
    assert isinstance(order["total_amount"], Decimal)
    assert "logicalType" not in json.dumps(strip_logical_types(document))


def test_the_worker_started_by_hand_says_what_it_is_instead_of_a_traceback() -> None:
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "MESH_BENCH_RUN_ID"}
    done = subprocess.run(
        [sys.executable, "-m", "mesh_stream.bench.processing_bench", "--help"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the benchmark's worker" in done.stderr
    assert "processing_bench report --help" in done.stderr
