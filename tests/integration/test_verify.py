"""`mesh verify` on real workers: a correct processor passes through kills and a rebalance,
the harness finds the bug when the engine's dedup or replay guard is switched off, and a
worker that crashes or stalls on the last slice is reported as such, never as drained.

Each run starts its own throwaway Kafka (the project's launcher, Kafka's real jars) and
registry, as the command always does; the session broker and registry play the live mesh
that ``--from-live`` reads (only reads) its input from. The
processors are ``tests/integration/workers/verify_*.py``: a correct revenue processor and two
mutants that declare the same ``PROCESSOR`` but run it without dedup, or with the engine's
``apply_once`` replaced by one that always applies. The crashing and stalling mutants are
written by their tests into the folder the command runs from.
"""

from __future__ import annotations

import random
import re
import textwrap
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from mesh_stream.cli.main import run
from mesh_stream.producer import open_publisher
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
WORKERS = "tests.integration.workers"


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """Where a run keeps its sandbox and worker logs (a failing run keeps them)."""
    return tmp_path / "verify"


def verify(
    capsys: pytest.CaptureFixture[str], work_dir: Path, module: str, *args: str
) -> tuple[int, str]:
    status = run(
        [
            "verify",
            f"{WORKERS}.{module}"
            if (REPO / "tests/integration/workers" / f"{module}.py").exists()
            else module,
            "--project",
            str(REPO),
            "--seed",
            "11",
            "--work-dir",
            str(work_dir),
            *args,
        ]
    )
    out, err = capsys.readouterr()
    return status, out + err


def counts(report: str) -> list[tuple[int, int]]:
    """(expected, got) of every ``order_count`` line of the report."""
    found = re.findall(r"^    order_count: expected (\d+), got (\d+)$", report, re.MULTILINE)
    return [(int(expected), int(got)) for expected, got in found]


def assert_every_key_equal(report: str) -> None:
    assert re.search(
        r"^\d+ keys expected, \d+ in the output: every key's final record equals the "
        r"recomputation$",
        report,
        re.MULTILINE,
    ), report
    assert "PASSED (seed 11)" in report


def test_a_correct_processor_passes_through_kills_and_a_rebalance(
    capsys: pytest.CaptureFixture[str], work_dir: Path
) -> None:
    status, report = verify(
        capsys, work_dir, "verify_revenue", "--records", "200", "--kills", "2", "--workers", "2"
    )
    assert status == 0, report
    assert "kill 1: worker-2 joined during the batch (rebalance); SIGKILL worker-1" in report
    assert re.search(r"^kill 2: SIGKILL worker-[12] during its batch$", report, re.MULTILINE)
    # each kill says how much the restart reads again
    replays = re.findall(r"^  (\d+) internal records not committed at the kill", report, re.M)
    assert len(replays) == 2, report
    assert_every_key_equal(report)


@pytest.mark.parametrize(
    "module",
    ["domains.analytics.processors.customer_360", "domains.analytics.processors.fulfilment_sla"],
)
def test_the_sample_joins_pass_through_kills_and_a_rebalance(
    capsys: pytest.CaptureFixture[str], work_dir: Path, module: str
) -> None:
    """The sample mesh's other processors (joins of two inputs each, no window) pass the test
    every team is offered: two workers, kills during a batch and a rebalance (h45: only the
    revenue processor was verified)."""
    status, report = verify(
        capsys, work_dir, module, "--records", "300", "--kills", "2", "--workers", "2"
    )
    assert status == 0, report
    assert "kill 1: worker-2 joined during the batch (rebalance); SIGKILL worker-1" in report
    assert_every_key_equal(report)


def test_a_session_processor_passes_through_kills_and_a_rebalance(
    capsys: pytest.CaptureFixture[str], work_dir: Path
) -> None:
    """Sessions merge as late orders bridge them: each merged session's old key is deleted
    with a tombstone (a key left behind is reported as unexpected), and the merged states
    equal one fold of each session's orders, through kills during a batch and a rebalance."""
    status, report = verify(
        capsys,
        work_dir,
        "verify_revenue_sessions",
        "--records",
        "300",
        "--kills",
        "2",
        "--workers",
        "2",
    )
    assert status == 0, report
    assert "kill 1: worker-2 joined during the batch (rebalance); SIGKILL worker-1" in report
    assert_every_key_equal(report)


def test_a_session_merge_that_loses_the_other_session_fails_naming_the_keys(
    capsys: pytest.CaptureFixture[str],
    work_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``merge`` that keeps only its own session's counts: the keys of merged sessions
    count fewer orders than the recomputation, which folds each session with apply alone."""
    monkeypatch.chdir(tmp_path)  # where verify imports the module and starts the workers
    (tmp_path / "session_merge_mutant.py").write_text(
        textwrap.dedent(
            """
            import dataclasses

            from mesh_stream.processing import run
            from tests.integration.workers.verify_revenue_sessions import PROCESSOR


            def merge_windows(into, other):
                into["updated_at"] = max(into["updated_at"], other["updated_at"])


            if __name__ == "__main__":
                run(dataclasses.replace(PROCESSOR, merge=merge_windows))
            """
        ),
        encoding="utf-8",
    )
    status, report = verify(
        capsys, work_dir, "session_merge_mutant", "--records", "300", "--kills", "0"
    )
    assert status == 1, report
    wrong = counts(report)
    assert wrong, report
    assert all(got < expected for expected, got in wrong), report
    assert "FAILED: outputs differ from the recomputation (seed 11)" in report


def test_a_processor_without_dedup_passes_through_kills(
    capsys: pytest.CaptureFixture[str], work_dir: Path
) -> None:
    """No dedup field: the events the re-key stage forwards again after a kill (its input
    offsets were not committed) are recognised by their input offsets, not counted twice."""
    status, report = verify(
        capsys,
        work_dir,
        "verify_revenue_without_dedup_declared",
        "--records",
        "200",
        "--kills",
        "2",
    )
    assert status == 0, report
    assert "PASSED (seed 11)" in report


def test_the_engine_without_its_replay_guard_fails_with_the_keys_counted_twice(
    capsys: pytest.CaptureFixture[str], work_dir: Path
) -> None:
    status, report = verify(
        capsys, work_dir, "verify_revenue_without_replay_guard", "--records", "200", "--kills", "2"
    )
    assert status == 1, report
    wrong = counts(report)
    assert wrong, report
    assert all(got > expected for expected, got in wrong), report  # replays applied again
    replays = re.findall(r"^  (\d+) internal records not committed at the kill", report, re.M)
    assert any(int(pending) > 0 for pending in replays), report  # what was applied twice
    assert re.search(r"^\d+ keys expected, \d+ in the output: [1-9]\d* differ", report, re.M)
    assert "FAILED: outputs differ from the recomputation (seed 11)" in report
    assert "hint: the recomputation runs in this process, the workers in others;" in report
    assert f"worker logs and Kafka data kept in {work_dir}" in report
    assert (work_dir / "logs" / "worker-1.log").exists()


def publish_live_orders(kafka: KafkaAddress, registry: RegistryAddress) -> int:
    """Orders on the session broker (the "live mesh"), a quarter of them sent twice; their
    timestamps are the newest of the topic. Returns how many records were published."""
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="admin",
        registry_token=SecretStr(registry.admin_token),
    )
    rng = random.Random(11)
    now = int(time.time() * 1000) + 60_000
    sent = 0
    with open_publisher("orders.order-placed", settings=settings, root=REPO) as publisher:
        for n in range(120):
            placed_at = now + rng.randrange(240_000)
            price = Decimal(rng.randint(100, 9_999)) / 100
            order = {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "order_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "customer_id": f"cust-{n % 7}",
                "region": ("eu-west", "us-east", "ap-south")[n % 3],
                "channel": "WEB",
                "currency": "EUR",
                "total_amount": price,
                "items": [{"sku": "sku-1", "quantity": 1, "unit_price": price}],
                "placed_at": placed_at,
            }
            publisher.publish(order, timestamp_ms=placed_at + 500)
            sent += 1
            if n % 4 == 0:  # a retrying order service
                publisher.publish(order, timestamp_ms=placed_at + 800)
                sent += 1
    return sent


def test_the_engine_without_dedup_fails_on_live_input_with_the_copies_counted(
    capsys: pytest.CaptureFixture[str],
    work_dir: Path,
    kafka: KafkaAddress,
    registry: RegistryAddress,
) -> None:
    published = publish_live_orders(kafka, registry)
    status, report = verify(
        capsys,
        work_dir,
        "verify_revenue_without_dedup",
        "--from-live",
        str(published),
        "--kills",
        "0",
        "--bootstrap-servers",
        kafka.bootstrap_servers,
        "--registry-url",
        registry.url,
    )
    assert status == 1, report
    assert f"input orders.order-placed: {published} live records" in report
    wrong = counts(report)
    assert wrong, report
    assert all(got > expected for expected, got in wrong), report  # copies counted
    assert "FAILED: outputs differ from the recomputation (seed 11)" in report


def mutant(folder: Path, name: str, apply: str, before_run: str = "pass") -> str:
    """A module in ``folder`` declaring the correct revenue ``PROCESSOR`` (what verify
    recomputes with) whose worker runs it with the ``apply`` defined by ``apply``'s code,
    after running ``before_run``."""
    (folder / f"{name}.py").write_text(
        "import atexit\n"
        "import dataclasses\n"
        "import time\n\n"
        "from mesh_stream.processing import run\n"
        "from tests.integration.workers.verify_revenue import PROCESSOR\n\n"
        f"{textwrap.dedent(apply)}\n"
        "if __name__ == '__main__':\n"
        f"    {before_run}\n"
        "    run(dataclasses.replace(PROCESSOR, apply=apply))\n",
        encoding="utf-8",
    )
    return name


def test_a_worker_crashing_on_the_last_slice_fails_the_run_with_its_crash_line(
    capsys: pytest.CaptureFixture[str],
    work_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no kill the only slice is the last: the worker crashes on its first batch and
    commits nothing, which must not read as "every consumer group caught up". Its process
    takes seconds to stop after the crash (as faust's can): the crash line is the failure
    already, not the exit."""
    monkeypatch.chdir(tmp_path)  # where verify imports the module and starts the workers
    module = mutant(
        tmp_path,
        "verify_crashing_revenue",
        """
        def apply(window, event):
            raise ValueError(f"the mutant refuses {event.fields['region']}")
        """,
        before_run="atexit.register(time.sleep, 10)  # slow to stop",
    )
    status, report = verify(capsys, work_dir, module, "--records", "20", "--kills", "0")
    assert status == 1, report
    assert re.search(
        r"^FAILED: worker-1 \(verify_crashing_revenue\) crashed: processor "
        r"analytics\.revenue-by-region crashed on orders\.order-placed\.v1\[\d\]@\d+: "
        r".*ValueError.* the mutant refuses region-\S+ \(raised at \S+\.py:\d+\); its log: ",
        report,
        re.MULTILINE,
    ), report
    assert "drained" not in report
    assert "missing" not in report  # the crash is the news, not the keys it never wrote
    assert f"worker logs and Kafka data kept in {work_dir}" in report


def test_a_worker_that_commits_nothing_is_never_called_caught_up(
    capsys: pytest.CaptureFixture[str],
    work_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    module = mutant(
        tmp_path,
        "verify_stalling_revenue",
        """
        def apply(window, event):
            time.sleep(3600)  # stuck: no output, no commit, no crash
        """,
    )
    status, report = verify(
        capsys, work_dir, module, "--records", "20", "--kills", "0", "--timeout", "10"
    )
    assert status == 1, report
    assert "drained" not in report
    assert re.search(
        r"^FAILED: the workers did not finish within --timeout 10 s \(still lagging: .*"
        r"mesh-analytics\.revenue-by-region\S* \S+\[\d\] \(nothing committed\)",
        report,
        re.MULTILINE,
    ), report
