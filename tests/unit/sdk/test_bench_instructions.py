"""`mesh bench --instructions`: callgrind's per-thread totals, the per-record difference, the
verdict, and a clear error without valgrind (the installed valgrind, from `make valgrind`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mesh_stream.bench.instructions import (
    TARGET,
    find_valgrind,
    per_record,
    render_instructions,
    thread_totals,
)
from mesh_stream.cli.main import run
from mesh_stream.errors import ConfigurationError

# A main thread that does little and a second thread that does a lot: the files must come
# back main thread first, and the second must count more.
TWO_THREADS = """
import threading
def busy():
    total = 0
    for i in range(20_000):
        total += i
threading.Thread(target=busy).start()
"""


def test_callgrind_totals_come_per_thread_main_thread_first(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            find_valgrind(),
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={tmp_path}/callgrind.out",
            sys.executable,
            "-S",
            "-c",
            TWO_THREADS,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    counts = thread_totals(tmp_path)
    assert len(counts) == 2
    assert counts[1] > counts[0] / 10  # the busy loop is counted in the second thread
    collected = int(done.stderr.split("Collected : ")[1].split()[0])
    assert sum(counts) == collected  # nothing lost between the threads' files


def test_no_output_files_is_an_error_not_zero(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="callgrind wrote no output"):
        thread_totals(tmp_path)


def test_per_record_is_the_difference_of_the_two_runs() -> None:
    # start-up and warm-up (1,000,000 / 800,000) cancel out; 20,000 extra records.
    short = (1_000_000 + 10_000 * 90, 800_000 + 10_000 * 85)
    long = (1_000_000 + 30_000 * 90, 800_000 + 30_000 * 85)
    assert per_record(short, long, 20_000) == (90.0, 85.0)


def test_the_report_says_whether_the_rules_stay_within_the_target() -> None:
    result = {
        "records": [10_000, 30_000],
        "warmup": 5_000,
        "cases": {
            "d": {
                "label": "without",
                "instructions_per_record": 80_000,
                "main_thread_instructions_per_record": 75_000,
            },
            "j": {
                "label": "with",
                "instructions_per_record": 104_000,
                "main_thread_instructions_per_record": 99_000,
            },
        },
        "instructions_ratio": 1.3,
        "main_thread_instructions_ratio": 1.32,
        "added_instructions_per_record": 24_000,
        "target_at_most": TARGET,
        "met": False,
    }
    text = render_instructions(result)
    assert "(d) without" in text
    assert "80,000" in text
    assert "99,000" in text
    assert "(j/d) 1.30 (+24,000; main thread 1.32), target <=1.25  MISSED" in text


def test_without_valgrind_the_command_says_so_before_starting_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no valgrind
    with pytest.raises(ConfigurationError, match="needs valgrind"):
        find_valgrind()
    status = run(["bench", "--instructions", "--output", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.startswith("error: mesh bench --instructions needs valgrind on PATH")
    assert "Traceback" not in out + err
    assert "Starting Kafka" not in out + err
