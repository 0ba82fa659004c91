"""The benchmark report: ratios against their targets, the table, the files, optional parts."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mesh_stream.bench import codec_bench
from mesh_stream.bench.run import (
    RATIOS,
    SAMPLE_MESH_MISSING,
    _optional_bench,
    _ratios,
    _rules_cost,
    median_of_runs,
    render_table,
    sample_mesh_root,
    write_report,
)
from mesh_stream.bench.sdk_bench import LABELS, make_record, schema
from mesh_stream.cli import bench as bench_cli
from mesh_stream.cli.main import cli
from mesh_stream.schema.codec import RecordEncoder
from mesh_stream.settings import MeshSettings


def case(name: str, msgs_per_s: float, cpu_us: float) -> dict[str, Any]:
    return {
        "case": name,
        "label": LABELS[name],
        "records": 1000,
        "seconds": 1000 / msgs_per_s,
        "msgs_per_s": msgs_per_s,
        "cpu_us_per_record": cpu_us,
        "peak_rss_mb": 100.0,
        "registry_calls": 0 if name in "dei" else None,
    }


SPEEDS = {"a": 300.0, "b": 100.0, "c": 50.0, "d": 90.0, "e": 55.0, "f": 900.0, "g": 120.0,
          "h": 40.0, "i": 100.0}  # fmt: skip
CPU = {name: 1_000_000 / speed for name, speed in SPEEDS.items()}


def report() -> dict[str, Any]:
    cases = {name: case(name, speed, CPU[name]) for name, speed in SPEEDS.items()}
    return {
        "records": 1000,
        "warmup": 100,
        "repeats": 3,
        "record_bytes": 196.0,
        "schema_fields": 12,
        "broker": "local",
        "registry_service": "in-process",
        "cases": cases,
        "ratios": _ratios(cases),
        "registry": {"status": "not available", "reason": "test"},
    }


def test_every_ratio_is_recomputed_from_the_cases_and_judged_by_its_target() -> None:
    rows = {row["ratio"]: row for row in report()["ratios"]}
    assert list(rows) == [name for name, *_ in RATIOS]
    for name, top, bottom, target in RATIOS:
        value = SPEEDS[top] / SPEEDS[bottom]
        assert rows[name]["value"] == round(value, 3)
        assert rows[name]["by_cpu"] == round(CPU[bottom] / CPU[top], 3)
        assert rows[name]["met"] == (None if target is None else value >= target)


def test_table_shows_each_case_and_verdict() -> None:
    text = render_table(report())
    for name, speed in SPEEDS.items():
        assert f"({name})  {LABELS[name]}" in text
        assert f"{speed:,.0f}" in text
    lines = text.splitlines()
    for name, top, bottom, target in RATIOS:
        value = SPEEDS[top] / SPEEDS[bottom]
        wanted = "-" if target is None else f">={target}"
        verdict = "-" if target is None else ("met" if value >= target else "MISSED")
        shown = f"{value:.2f} ({value:.2f}-{value:.2f})"  # one run: min = max = median
        assert f"{name:<6} {shown:>18} {value:>7.2f} {wanted:>7}  {verdict}" in lines
    assert "registry benchmark: not available (test)" in text


def runs_of(name: str, speeds: list[float], cpus: list[float]) -> list[dict[str, Any]]:
    return [case(name, speed, cpu) for speed, cpu in zip(speeds, cpus, strict=True)]


def test_each_case_is_the_median_of_its_runs_with_min_and_max() -> None:
    found = median_of_runs(runs_of("d", [90.0, 300.0, 100.0], [12.0, 9.0, 30.0]))
    assert (found["msgs_per_s"], found["msgs_per_s_min"], found["msgs_per_s_max"]) == (
        100.0,
        90.0,
        300.0,
    )
    assert (found["cpu_us_per_record"], found["cpu_us_per_record_min"]) == (12.0, 9.0)
    assert found["cpu_us_per_record_max"] == 30.0
    assert found["seconds"] == 10.0  # 1000 records at the median 100 msgs/s
    assert found["all_runs_msgs_per_s"] == [90, 300, 100]
    assert found["runs"] == 3
    # the best run (300 msgs/s, 9 us) would have flattered the case: it is not the figure
    even = median_of_runs(runs_of("d", [80.0, 100.0], [10.0, 14.0]))
    assert (even["msgs_per_s"], even["cpu_us_per_record"]) == (90.0, 12.0)


def test_a_ratio_is_of_medians_with_the_range_of_runs_made_in_the_same_round() -> None:
    cases = {
        "d": median_of_runs(runs_of("d", [90.0, 120.0, 100.0], [10.0, 10.0, 10.0])),
        "b": median_of_runs(runs_of("b", [100.0, 100.0, 200.0], [20.0, 20.0, 20.0])),
    }
    (row,) = _ratios(cases)
    assert row["ratio"] == "d/b"
    assert row["value"] == 1.0  # median 100 over median 100
    assert (row["min"], row["max"]) == (0.5, 1.2)  # rounds: 0.9, 1.2, 0.5
    assert row["by_cpu"] == 2.0
    assert row["met"] is True


def test_report_is_written_as_json_and_text(tmp_path: Path) -> None:
    json_path, text_path = write_report(report(), tmp_path / "out")
    assert json.loads(json_path.read_text())["cases"]["d"]["msgs_per_s"] == SPEEDS["d"]
    assert text_path.read_text() == render_table(report()) + "\n"


def test_missing_or_incomplete_optional_benchmarks_are_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = _optional_bench("mesh_stream.bench.no_such_bench", ("run",), {})
    assert missing == {
        "status": "not available",
        "reason": "mesh_stream.bench.no_such_bench cannot be imported: "
        "No module named 'mesh_stream.bench.no_such_bench'",
    }
    module = types.ModuleType("mesh_stream.bench.fake_bench")

    def run(bootstrap_servers: str, records: int) -> dict[str, Any]:
        return {"servers": bootstrap_servers, "records": records}

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mesh_stream.bench.fake_bench", module)
    given = {"bootstrap_servers": "k:1", "records": 5, "registry_url": "http://r"}
    assert _optional_bench("mesh_stream.bench.fake_bench", ("run",), given) == {
        "status": "ok",
        "result": {"servers": "k:1", "records": 5},
    }
    assert _optional_bench("mesh_stream.bench.fake_bench", ("run",), {"records": 5}) == {
        "status": "not available",
        "reason": "needs arguments ['bootstrap_servers']",
    }


def test_benchmark_records_are_realistic() -> None:
    encoder = RecordEncoder(schema(), 1)
    sizes = [len(encoder.encode(make_record(i))) for i in range(1000)]
    assert 8 <= len(schema()["fields"]) <= 12
    assert 180 <= sum(sizes) / len(sizes) <= 220


def test_unknown_case_letters_are_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(cli, ["bench", "--cases", "abz"])
    assert result.exit_code == 2
    assert "unknown case(s) ['z']; use letters a-j" in result.output


@pytest.mark.parametrize(
    "flags", [["--codec-only", "--monitor-only"], ["--portal", "--instructions", "--sdk-only"]]
)
def test_benchmarks_that_each_run_alone_are_not_combined(flags: list[str]) -> None:
    """The first one used to win and the others were ignored, silently."""
    result = CliRunner().invoke(cli, ["bench", *flags])
    assert result.exit_code == 2
    assert f"{' and '.join(flags)} each run one benchmark alone; pick one" in result.output


def test_the_processing_bench_finds_the_sample_mesh_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It runs the sample mesh's revenue processor: found in a checkout (the repository root
    is that project), absent from another team's project or from no project at all."""
    checkout = Path(__file__).resolve().parents[3]
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(checkout / "domains")
    assert sample_mesh_root(MeshSettings()) == checkout
    other = tmp_path / "inventory"
    other.mkdir()
    (other / "mesh.yaml").write_text("domains: [inventory]\n")
    assert sample_mesh_root(MeshSettings(project_root=other)) is None
    monkeypatch.chdir(tmp_path)
    assert sample_mesh_root(MeshSettings()) is None
    assert "not available" in render_table(
        {**report(), "processing": {"status": "not available", "reason": SAMPLE_MESH_MISSING}}
    )


def test_the_rules_cost_divides_median_cpu_with_the_range_of_each_round() -> None:
    with_rules = median_of_runs(runs_of("j", [1.0, 1.0, 1.0], [13.0, 11.0, 20.0]))
    without = median_of_runs(runs_of("d", [1.0, 1.0, 1.0], [10.0, 8.0, 10.0]))

    cost = _rules_cost({"j": with_rules, "d": without})

    assert cost is not None
    assert (cost["cpu_ratio"], cost["added_cpu_us_per_record"]) == (1.3, 3.0)  # 13 / 10
    assert (cost["cpu_ratio_min"], cost["cpu_ratio_max"]) == (1.3, 2.0)  # 1.3, 1.375, 2.0
    assert cost["met"] is False
    assert _rules_cost({"d": without}) is None  # (j) not run: nothing to report
    plain = _rules_cost({"j": case("j", 1, 12.5), "d": case("d", 1, 10.0)})
    assert plain is not None
    assert (plain["cpu_ratio"], plain["met"]) == (1.25, True)  # older reports: their CPU
    assert "runs of a round 1.30-2.00) 1.30 (+3.00 us)" in render_table(
        {**report(), "rules_cost": cost}
    )


ORDER_PLACED = json.loads(
    (Path(__file__).resolve().parents[3] / "schemas/orders/order-placed.avsc").read_text()
)


def test_the_codec_bench_times_both_codecs_on_the_same_records() -> None:
    (row,) = codec_bench.run_codec_bench([("orders", ORDER_PLACED, None)], records=40, repeats=3)
    assert (row["case"], row["records"], row["repeats"]) == ("orders", 40, 3)
    assert row["schema"] == "io.meshstream.orders.OrderPlaced"
    assert 100 < row["record_bytes"] < 250
    for way in ("encode", "decode"):
        mesh, other = row[way]["mesh_us"], row[way]["fastavro_us"]
        assert 0 < mesh["min"] <= mesh["median"] <= mesh["max"]
        assert 0 < other["min"] <= other["median"] <= other["max"]
        assert row[way]["ratio"] == round(other["median"] / mesh["median"], 2)
    text = codec_bench.render_codec([row])
    assert text.splitlines()[1].startswith("orders ")


def test_a_codec_that_writes_other_bytes_than_fastavro_gets_no_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encode = RecordEncoder.encode
    monkeypatch.setattr(RecordEncoder, "encode", lambda self, r: encode(self, r) + b"\x00")
    with pytest.raises(AssertionError, match="OrderPlaced: our encoder's bytes differ"):
        codec_bench.measure_schema(ORDER_PLACED, records=5, repeats=1)


def test_sample_records_fit_their_schema_and_vary() -> None:
    records = codec_bench.sample_records(ORDER_PLACED, 30)
    encoder = RecordEncoder(ORDER_PLACED, 1)
    assert len({encoder.encode(record) for record in records}) == 30
    assert {len(record["items"]) for record in records} == {1, 2, 3, 4}


def test_mesh_bench_codec_only_measures_every_sample_contract_without_kafka(
    tmp_path: Path,
) -> None:
    assert (bench_cli.CODEC_RECORDS, bench_cli.CODEC_REPEATS) == (
        codec_bench.RECORDS,
        codec_bench.REPEATS,
    )
    checkout = Path(__file__).resolve().parents[3]
    args = ["bench", "--codec-only", "--codec-records", "20", "--codec-repeats", "1", "--json"]
    result = CliRunner().invoke(
        cli,
        [*args, "--output", str(tmp_path)],
        env={"MESH_PROJECT_ROOT": str(checkout)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    codec = json.loads(result.stdout)["codec"]
    contracts = sorted(f"{p.parent.name}.{p.stem}" for p in checkout.glob("schemas/*/*.avsc"))
    assert [row["case"] for row in codec] == ["bench record (order_event)", *contracts]
    assert "orders.order-placed" in (tmp_path / "codec-bench.txt").read_text()


def test_a_processing_peer_is_asked_for_and_its_side_by_side_table_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mesh bench --processing-peer quix` asks for the side-by-side processing run, and
    the report's text shows that run as the side-by-side table rather than as JSON."""
    from mesh_stream.bench import run as bench_run
    from mesh_stream.bench.processing_bench import (
        FIGURES,
        issue_targets,
        render_side_by_side,
        summarize,
    )
    from mesh_stream.bench.story_input import make_story

    engines = {
        engine: {"exact": True, **{name: summarize([value, value + 2]) for name in FIGURES}}
        for engine, value in (("mesh", 10.0), ("quix", 5.0))
    }
    side_by_side = {
        "input": make_story(100, end_ms=1_796_000_000_000).summary(),
        "runs": 2,
        "load_average_before": [1.0, 1.0, 1.0],
        "load_average_after": [2.0, 1.0, 1.0],
        "engines": engines,
        "targets": issue_targets(engines),
    }
    rendered = render_table({**report(), "processing": {"status": "ok", "result": side_by_side}})
    assert f"processing benchmark:\n{render_side_by_side(side_by_side)}" in rendered

    asked: dict[str, Any] = {}

    def fake_run(_settings: MeshSettings, **options: Any) -> dict[str, Any]:
        asked.update(options)
        return report()

    monkeypatch.setattr(bench_run, "run_benchmarks", fake_run)
    out = tmp_path / "results"
    arguments = ["bench", "--processing-peer", "quix", "--output", str(out)]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert asked["processing_peer"] == "quix"
    refused = CliRunner().invoke(cli, ["bench", "--processing-peer", "flink"])
    assert refused.exit_code == 2
    assert "'flink' is not 'quix'" in refused.output
