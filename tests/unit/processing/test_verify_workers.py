"""`mesh verify`'s worker processes: ready when faust says so, and a crash named by its line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mesh_stream.verify.workers import Worker, WorkerFailedError


def worker(tmp_path: Path, body: str) -> Worker:
    (tmp_path / "fake_worker.py").write_text("import sys, time\n" + body, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return Worker("worker-1", "fake_worker", dict(os.environ), tmp_path, logs)


def test_a_worker_is_ready_when_it_logs_so_and_a_kill_stops_it(tmp_path: Path) -> None:
    started = worker(
        tmp_path,
        "assert sys.argv[1:] == ['worker', '-l', 'info']\n"
        "print('[2026-01-01] [1] [INFO] [^Worker]: Ready', flush=True)\n"
        "time.sleep(60)\n",
    )
    started.start()
    assert started.wait_ready(timeout=20) < 20
    assert started.running
    started.kill()
    assert not started.running
    started.check_alive()  # a worker verify killed is not a failure
    started.start()  # the log of each start is read on its own
    assert started.wait_ready(timeout=20) < 20
    started.kill()
    assert started.log_path.read_text().count("==== mesh verify: start") == 2


def test_a_worker_that_stops_by_itself_is_named_with_its_first_error_line(
    tmp_path: Path,
) -> None:
    crashing = worker(
        tmp_path,
        "print('[INFO] starting', flush=True)\n"
        # Not the engine's crash report, whose line fails a worker before its exit (and
        # so would race the exit here): that has its own test below.
        "print('[ERROR] pricing table analytics.x could not load: "
        "KeyError: region (field region)', flush=True)\n"
        "print('Traceback (most recent call last): ...', flush=True)\n"
        "sys.exit(1)\n",
    )
    crashing.start()
    with pytest.raises(WorkerFailedError) as failure:
        crashing.wait_ready(timeout=20)
    message = str(failure.value)
    assert message.startswith(
        "worker-1 (fake_worker) stopped by itself with exit status 1: [ERROR] pricing table "
        "analytics.x could not load: KeyError: region (field region); its log: "
    )


def test_a_worker_never_ready_is_an_error_with_its_log(tmp_path: Path) -> None:
    silent = worker(tmp_path, "print('warming up', flush=True)\ntime.sleep(60)\n")
    silent.start()
    try:
        with pytest.raises(WorkerFailedError, match=r"not ready after 1 s(.|\n)*warming up"):
            silent.wait_ready(timeout=1)
    finally:
        silent.kill()


def check_for(started: Worker, seconds: float) -> None:
    """Ask whether ``started`` is alive, as a drain does, for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started.check_alive()
        time.sleep(0.05)


def test_a_worker_that_logged_the_engines_crash_report_has_failed_while_still_stopping(
    tmp_path: Path,
) -> None:
    """faust takes seconds to stop after a crash: the report line is the failure already."""
    stopping = worker(
        tmp_path,
        "print('[2026-01-01 12:00:00,000] [7] [INFO] [^Worker]: Ready', flush=True)\n"
        "print('[2026-01-01 12:00:00,000] [7] [INFO] [^--StopOnSendError]: Starting...', "
        "flush=True)\n"
        "time.sleep(0.5)\n"
        "print('[2026-01-01 12:00:01,000] [7] [ERROR] processor analytics.x crashed on "
        "orders.order-placed.v1[2]@41: apply raised ValueError no region', flush=True)\n"
        "time.sleep(60)\n",
    )
    stopping.start()
    try:
        stopping.wait_ready(timeout=20)
        stopping.check_alive()  # nothing reported yet
        with pytest.raises(WorkerFailedError) as failure:
            check_for(stopping, seconds=20)
        assert stopping.running
        assert str(failure.value) == (
            "worker-1 (fake_worker) crashed: processor analytics.x crashed on "
            "orders.order-placed.v1[2]@41: apply raised ValueError no region; its log: "
            f"{stopping.log_path}"
        )
    finally:
        stopping.kill()
    stopping.check_alive()  # killed by verify: not a failure


def test_the_first_error_is_a_line_logged_as_an_error_not_an_info_line_naming_one(
    tmp_path: Path,
) -> None:
    crashing = worker(
        tmp_path,
        "print('[2026-01-01 12:00:00,000] [7] [INFO] [^--StopOnSendError]: Starting...', "
        "flush=True)\n"
        "print('[2026-01-01 12:00:01,000] [7] [ERROR] [^--RekeyStage]: Crashed "
        'reason=AttributeError("int has no encode")\', flush=True)\n'
        "print('AttributeError: int has no encode', flush=True)\n"
        "sys.exit(1)\n",
    )
    crashing.start()
    with pytest.raises(WorkerFailedError) as failure:
        crashing.wait_ready(timeout=20)
    assert str(failure.value).startswith(
        "worker-1 (fake_worker) stopped by itself with exit status 1: [ERROR] [^--RekeyStage]: "
        'Crashed reason=AttributeError("int has no encode"); its log: '
    )


def test_a_worker_dying_before_faust_logs_is_named_by_its_exception(tmp_path: Path) -> None:
    failing = worker(
        tmp_path,
        "print('Traceback (most recent call last):', flush=True)\n"
        "print('  File \"x.py\", line 1, in <module>', flush=True)\n"
        "print(\"ModuleNotFoundError: No module named 'pricing'\", flush=True)\n"
        "sys.exit(1)\n",
    )
    failing.start()
    with pytest.raises(WorkerFailedError) as failure:
        failing.wait_ready(timeout=20)
    assert "exit status 1: ModuleNotFoundError: No module named 'pricing'; its log" in str(
        failure.value
    )


def test_a_module_that_exits_at_once_without_a_word_is_asked_for_its_run_call(
    tmp_path: Path,
) -> None:
    """A processor module without `if __name__ == "__main__": run(PROCESSOR)` imports,
    does nothing and exits 0: the error says what a worker module must end with."""
    silent = worker(tmp_path, "PROCESSOR = None\n")
    silent.start()
    with pytest.raises(WorkerFailedError) as stopped:
        silent.wait_ready(timeout=20)
    assert "stopped by itself with exit status 0: no error line in its log; a worker is " in (
        str(stopped.value)
    )
    assert 'end with `if __name__ == "__main__": run(PROCESSOR)`?' in str(stopped.value)
