"""`mesh verify` on real workers: a correct processor passes through kills and a rebalance,
and the harness finds the bug when the engine's dedup or replay guard is switched off.

Each run starts its own throwaway Kafka (the project's launcher, Kafka's real jars) and
registry, as the command always does, so these tests do not use the session broker. The
processors are ``tests/integration/workers/verify_*.py``: a correct revenue processor and two
mutants that declare the same ``PROCESSOR`` but run it without dedup, or with the engine's
``apply_once`` replaced by one that always applies.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mesh_stream.cli.main import run

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
WORKERS = "tests.integration.workers"


def verify(capsys: pytest.CaptureFixture[str], module: str, *args: str) -> tuple[int, str]:
    status = run(["verify", f"{WORKERS}.{module}", "--project", str(REPO), "--seed", "11", *args])
    out, err = capsys.readouterr()
    return status, out + err


def counts(report: str) -> list[tuple[int, int]]:
    """(expected, got) of every ``order_count`` line of the report."""
    found = re.findall(r"^    order_count: expected (\d+), got (\d+)$", report, re.MULTILINE)
    return [(int(expected), int(got)) for expected, got in found]


def test_a_correct_processor_passes_through_kills_and_a_rebalance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, report = verify(
        capsys, "verify_revenue", "--records", "200", "--kills", "2", "--workers", "2"
    )
    assert status == 0, report
    assert "kill 1: worker-2 joined during the batch (rebalance); SIGKILL worker-1" in report
    assert re.search(r"^kill 2: SIGKILL worker-[12] during its batch$", report, re.MULTILINE)
    assert re.search(
        r"^\d+ keys expected, \d+ in the output: every key's final record equals the "
        r"recomputation$",
        report,
        re.MULTILINE,
    ), report
    assert "PASSED (seed 11)" in report


def test_the_engine_without_its_replay_guard_fails_with_the_keys_counted_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, report = verify(
        capsys, "verify_revenue_without_replay_guard", "--records", "200", "--kills", "1"
    )
    assert status == 1, report
    wrong = counts(report)
    assert wrong, report
    assert all(got > expected for expected, got in wrong), report  # replays applied again
    assert re.search(r"^\d+ keys expected, \d+ in the output: [1-9]\d* differ", report, re.M)
    assert "FAILED: outputs differ from the recomputation (seed 11)" in report
    assert "worker logs and Kafka data kept in" in report


def test_the_engine_without_dedup_fails_with_the_duplicated_orders_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, report = verify(
        capsys, "verify_revenue_without_dedup", "--records", "200", "--kills", "0"
    )
    assert status == 1, report
    wrong = counts(report)
    assert wrong, report
    assert all(got > expected for expected, got in wrong), report  # copies counted
    assert "FAILED: outputs differ from the recomputation (seed 11)" in report
