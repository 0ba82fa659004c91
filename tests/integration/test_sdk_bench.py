"""`mesh bench` end to end on the test broker and registry (small, and no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.bench.sdk_bench import LABELS
from mesh_stream.cli.main import cli
from tests.conftest import KafkaAddress, RegistryAddress


def test_bench_runs_every_case_and_reports_ratios_rss_and_registry_calls(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    env = {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": registry.admin_token,
    }
    args = ["bench", "--records", "1000", "--warmup", "200", "--repeats", "1", "--sdk-only"]
    args += ["--codec-records", "50", "--codec-repeats", "1"]
    result = CliRunner().invoke(
        cli, [*args, "--json", "--output", str(tmp_path)], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == json.loads((tmp_path / "sdk-bench.json").read_text())
    assert report["broker"] == "configured"
    assert report["registry_service"] == "configured"
    assert list(report["cases"]) == list("abcdefghij")
    for case, found in report["cases"].items():
        assert found["label"] == LABELS[case]
        assert found["records"] == 1000
        assert found["runs"] == 1  # the median and range of one run are that run
        assert found["msgs_per_s"] == found["records"] / found["seconds"]
        assert found["msgs_per_s_min"] == found["msgs_per_s"] == found["msgs_per_s_max"]
        assert found["all_runs_msgs_per_s"] == [round(found["msgs_per_s"])]
        assert found["peak_rss_mb"] > 0
    assert report["registry_calls_per_record_after_warmup"] == {"d": 0.0, "e": 0.0, "i": 0.0}
    ratios = {row["ratio"]: row["value"] for row in report["ratios"]}
    cases = report["cases"]
    assert ratios["d/b"] == round(cases["d"]["msgs_per_s"] / cases["b"]["msgs_per_s"], 3)
    row = next(row for row in report["ratios"] if row["ratio"] == "d/b")
    assert row["min"] == row["max"] == pytest.approx(row["value"], abs=0.01)
    assert ratios["i/h"] == round(cases["i"]["msgs_per_s"] / cases["h"]["msgs_per_s"], 3)
    cost = report["rules_cost"]
    assert cost["ratio"] == "j/d"
    assert cost["cpu_ratio"] == round(
        cases["j"]["cpu_us_per_record"] / cases["d"]["cpu_us_per_record"], 3
    )
    assert cost["target_at_most"] == 1.25
    assert "registry" not in report
    codec = {row["case"]: row for row in report["codec"]}  # the checkout: every contract
    assert codec["orders.order-placed"]["records"] == 50
    assert codec["orders.order-placed"]["decode"]["ratio"] > 0
    assert (tmp_path / "sdk-bench.txt").read_text().startswith("mesh bench: 1,000 records")
