"""The product monitor benchmark at 2 and 6 products, two rounds, on the real broker: the
report has its shape, every product was measured in every round, and the counts are real
(the monitor's process spent CPU, listed the registry once a round, sent Kafka requests);
no timed assertions. And `mesh bench --monitor-products` refuses a bad list in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.bench.monitor_bench import per_minute, render_monitor, run_monitor_bench
from tests.conftest import KafkaAddress

MESH = str(Path(sys.executable).with_name("mesh"))
SPREAD = {"median", "min", "max"}
ROW_KEYS = {
    "products",
    "statuses",
    "wall_s",
    "cpu_s",
    "registry_requests",
    "kafka_requests",
    "kafka_fetch_requests",
    "idle_cpu_s_per_s",
    "idle_kafka_requests_per_s",
    "cpu_s_per_minute",
    "registry_requests_per_minute",
    "kafka_requests_per_minute",
}


def test_monitor_bench_measures_every_product_with_real_counts(kafka: KafkaAddress) -> None:
    lines: list[str] = []
    report = run_monitor_bench(
        kafka.bootstrap_servers,
        products=(2, 6),
        rounds=2,
        idle_seconds=1.0,
        progress=lines.append,
    )
    assert set(report) == {"interval_s", "rounds", "idle_seconds", "cpus", "load_average", "sizes"}
    assert (report["interval_s"], report["rounds"]) == (60.0, 2)
    assert [size["products"] for size in report["sizes"]] == [2, 6]
    for size in report["sizes"]:
        count = size["products"]
        assert size["products_measured"] == count
        assert size["first_round"]["products"] == count
        assert len(size["rounds"]) == 2
        for key in ("wall_s", "cpu_s", "kafka_requests", "cpu_s_per_minute"):
            assert set(size[key]) == SPREAD
            assert size[key]["min"] <= size[key]["median"] <= size[key]["max"]
        for row in size["rounds"]:
            assert set(row) == ROW_KEYS
            assert row["products"] == count
            # every product has records, a fresh newest record and a group one record behind
            assert row["statuses"] == ["ok"]
            assert row["wall_s"] > 0
            assert row["cpu_s"] > 0
            assert row["registry_requests"] == 1  # one listing of the products a round
            assert row["kafka_requests"] >= 5  # metadata, three offset lists, the writes
            assert row["idle_kafka_requests_per_s"] > 0  # the health reader keeps fetching
            assert row["cpu_s_per_minute"] == pytest.approx(
                per_minute(row["cpu_s"], row["idle_cpu_s_per_s"], row["wall_s"]), abs=0.01
            )
    small, large = report["sizes"]

    def work(size: dict[str, Any]) -> list[int]:
        """Requests of each round besides the health reader's Fetches, whose number follows
        the clock (a slow round on a loaded machine waits through more of them)."""
        return [row["kafka_requests"] - row["kafka_fetch_requests"] for row in size["rounds"]]

    # more products, more consumer groups to ask about: more Kafka requests a round
    assert min(work(large)) > max(work(small)), (work(small), work(large))
    assert any(line.startswith("monitor bench: 6 products set up in ") for line in lines)

    table = render_monitor(report).splitlines()
    assert table[0].startswith("product monitor cost: median (min-max) of 2 rounds")
    assert "load average" in table[0]
    assert [line.split()[0] for line in table[2:]] == ["2", "6"]


def test_per_minute_adds_the_idle_time_until_the_next_round() -> None:
    assert per_minute(2.0, 0.5, 10.0) == pytest.approx(2.0 + 0.5 * 50.0)
    # a round longer than the interval: no idle time, fewer rounds a minute
    assert per_minute(30.0, 0.5, 120.0) == pytest.approx(15.0)


def test_bench_refuses_a_bad_monitor_products_list_in_one_line() -> None:
    refused = subprocess.run(
        [MESH, "bench", "--monitor-only", "--monitor-products", "12,none"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "'12,none' is not a list of positive product counts; e.g. 12,1000" in refused.stderr
    assert "Traceback" not in refused.stderr
