"""`mesh bench` refuses bad options while parsing them, before any broker or registry starts:
counts above their bound, a --cases choice its read cases cannot run with, an --output that
cannot be a folder, and options the chosen benchmark would ignore. SIGTERM unwinds like
Ctrl-C and ends in exit 143 (the broker run: tests/integration/test_bench_signals.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import click
import pytest

import mesh_stream.bench.run as bench_run
from mesh_stream.bench import environment
from mesh_stream.bench.run import run_benchmarks
from mesh_stream.cli import bench as bench_cli
from mesh_stream.cli.main import run
from mesh_stream.settings import MeshSettings


class ReachedWork(BaseException):
    """A benchmark was about to start: the options were not refused first."""


def _reached(*_args: object, **_kwargs: object) -> None:
    raise ReachedWork


@pytest.fixture(autouse=True)
def nothing_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    for name in ("run_benchmarks", "run_codec_only", "run_monitor_only", "run_portal_only"):
        monkeypatch.setattr(bench_run, name, _reached)
    monkeypatch.setattr(bench_run, "bench_environment", _reached)
    monkeypatch.setattr(environment, "local_cluster", _reached)


def _mesh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of `mesh bench ARGS` run in-process, as `main()` runs it."""
    status = run(["bench", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--monitor-only", "--monitor-products", "99999999999"],
            "Error: Invalid value for '--monitor-products': '99999999999': 99,999,999,999 "
            "products is more than this benchmark takes (at most 10,000); e.g. 12,1000",
        ),
        (
            ["--registry-scale", "--scale-subjects", "1000,2000000"],
            "Error: Invalid value for '--scale-subjects': '1000,2000000': 2,000,000 subjects is "
            "more than this benchmark takes (at most 1,000,000); e.g. 1000,10000",
        ),
        (
            ["--portal", "--portal-products", "10001"],
            "Error: Invalid value for '--portal-products': '10001': 10,001 products is more "
            "than this benchmark takes (at most 10,000); e.g. 1000",
        ),
        (
            ["--monitor-only", "--monitor-products", ",".join(["1"] * 11)],
            "Error: Invalid value for '--monitor-products': '1,1,1,1,1,1,1,1,1,1,1' lists 11 "
            "counts, each a benchmark run of its own; give at most 10",
        ),
        (
            ["--records", "10000001"],
            "Error: Invalid value for '--records': 10000001 is not in the range 1000<=x<=10000000.",
        ),
        (
            ["--warmup", "1000001"],
            "Error: Invalid value for '--warmup': 1000001 is not in the range 100<=x<=1000000.",
        ),
        (
            ["--codec-records", "1000001"],
            "Error: Invalid value for '--codec-records': 1000001 is not in the range "
            "0<=x<=1000000.",
        ),
        (
            ["--instructions", "--instruction-records", "1000001"],
            "Error: Invalid value for '--instruction-records': 1000001 is not in the range "
            "1000<=x<=1000000.",
        ),
    ],
)
def test_counts_above_their_bound_are_refused_while_parsing(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _mesh(args, capsys) == (2, message)


def test_the_bounds_are_shown_in_help() -> None:
    text = click.Context(bench_cli.bench).get_help()
    for shown in (
        "1000<=x<=10000000",
        "100<=x<=1000000",
        "0<=x<=1000000",
        "1000<=x<=1000000",
        "Product counts of the product monitor benchmark, each 1 to 10,000",
        "Subject counts of the registry scale benchmark, each 1 to 1,000,000",
        "Product counts of the portal benchmark, each 1 to 10,000",
    ):
        assert shown in " ".join(text.split()), shown


@pytest.mark.parametrize(
    ("cases", "problem"),
    [
        (
            "fgh",
            "read case(s) fgh need a write case (d) in the same run to fill the topic they "
            "read; add it, e.g. dfgh",
        ),
        (
            "fd",
            "read case f comes before d, the write case that fills the topic it reads; put d "
            "first, e.g. df",
        ),
        ("dd", "'dd' names case(s) ['d'] more than once; name each case once"),
        ("", "'' is empty; use letters a-j, e.g. abcdefghij"),
        ("abz", "unknown case(s) ['z']; use letters a-j"),
    ],
)
def test_cases_its_read_cases_cannot_run_with_are_a_usage_error(
    cases: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--cases", cases, "--codec-records", "0", "--sdk-only", "--records", "1000"]
    assert _mesh(args, capsys) == (2, f"Error: Invalid value for --cases: {problem}")
    # the runner keeps the same rule (one home: mesh_stream.bench.cases) for other callers
    with pytest.raises(ValueError, match=f"^cases {cases!r}: ") as refused:
        run_benchmarks(MeshSettings(), cases=cases, codec_records=0)  # the unpatched one
    assert str(refused.value).endswith(problem)


def test_read_cases_after_their_write_case_are_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ReachedWork):
        run(["bench", "--sdk-only", "--cases", "jdfgh", "--codec-records", "0"])


def test_an_output_that_cannot_be_a_folder_is_refused_before_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "report.txt"
    a_file.write_text("kept\n")
    hint = "name a folder for the report (made if missing), e.g. bench-results"
    refused = {
        "/dev/null": f"'/dev/null' is a device or other special file, not a folder; {hint}",
        str(a_file): f"{str(a_file)!r} is a file, not a folder; {hint}",
        f"{a_file}/deeper/out": f"'{a_file}/deeper/out' cannot be made: {str(a_file)!r} is a "
        f"file, not a folder; {hint}",
    }
    for output, problem in refused.items():
        assert _mesh(["--codec-only", "--output", output], capsys) == (
            2,
            f"Error: Invalid value for --output: {problem}",
        )
    assert a_file.read_text() == "kept\n"
    with pytest.raises(ReachedWork):  # a missing folder is fine: made before the run
        run(["bench", "--codec-only", "--output", str(tmp_path / "new" / "results")])
    assert (tmp_path / "new" / "results").is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--processing-peer", "quix", "--codec-only"],
            "Error: --processing-peer has no effect with --codec-only, which runs its "
            "benchmark without it; drop one of them",
        ),
        (
            ["--monitor-only", "--records", "5000"],
            "Error: --records has no effect with --monitor-only, which runs its benchmark "
            "without it; drop one of them",
        ),
        (
            ["--sdk-only", "--monitor-products", "12"],
            "Error: --monitor-products has no effect with --sdk-only, which runs its benchmark "
            "without it; drop one of them",
        ),
        (
            ["--portal-products", "50"],
            "Error: --portal-products is read by --portal only; add --portal or drop "
            "--portal-products",
        ),
        (
            ["--codec-only", "--codec-records", "0"],
            "Error: --codec-records 0 skips the codec benchmark, which --codec-only runs "
            "alone; give a count above 0 or drop --codec-records",
        ),
    ],
)
def test_options_the_chosen_benchmark_ignores_are_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _mesh(args, capsys) == (2, message)


def _terminated_inside(unwound: list[str]) -> None:
    """SIGTERM to this process while the benchmark's body runs."""
    with bench_cli._terminated_like_interrupted():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler ends this at once
            unwound.append("not interrupted")
        finally:
            unwound.append("finally ran")  # where the broker and temp folder are removed


def test_sigterm_unwinds_like_ctrl_c_then_exits_143(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    unwound: list[str] = []
    with pytest.raises(click.exceptions.Exit) as ended:
        _terminated_inside(unwound)
    assert ended.value.exit_code == 143
    assert unwound == ["finally ran"]
    assert capsys.readouterr().err == "Terminated.\n"
    assert signal.getsignal(signal.SIGTERM) is before


def _interrupt_reported_as(error: Exception) -> None:
    """SIGTERM landing inside C code that reports the interrupt as an error of its own, as
    confluent-kafka does while converting a client's settings (a TypeError)."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        raise error from None


def test_an_interrupt_that_c_code_reports_as_its_own_error_still_exits_143(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = TypeError("expected configuration property value as type unicode string")
    with pytest.raises(click.exceptions.Exit) as ended, bench_cli._terminated_like_interrupted():
        _interrupt_reported_as(refused)
    assert ended.value.exit_code == 143
    assert capsys.readouterr().err == "Terminated.\n"


def test_an_error_without_a_signal_is_left_as_it_is() -> None:
    with pytest.raises(TypeError, match="unicode string"), bench_cli._terminated_like_interrupted():
        raise TypeError("expected configuration property value as type unicode string")
