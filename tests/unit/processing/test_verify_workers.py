"""`mesh verify`'s worker processes: ready when faust says so, and a crash named by its line."""

from __future__ import annotations

import os
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
        "print('[ERROR] processor analytics.x crashed on orders.order-placed.v1[2]@41: "
        "KeyError: region (field region)', flush=True)\n"
        "print('Traceback (most recent call last): ...', flush=True)\n"
        "sys.exit(1)\n",
    )
    crashing.start()
    with pytest.raises(WorkerFailedError) as failure:
        crashing.wait_ready(timeout=20)
    message = str(failure.value)
    assert message.startswith(
        "worker-1 (fake_worker) stopped by itself with exit status 1: [ERROR] processor "
        "analytics.x crashed on orders.order-placed.v1[2]@41: KeyError: region (field region); "
        "its log: "
    )


def test_a_worker_never_ready_is_an_error_with_its_log(tmp_path: Path) -> None:
    silent = worker(tmp_path, "print('warming up', flush=True)\ntime.sleep(60)\n")
    silent.start()
    try:
        with pytest.raises(WorkerFailedError, match=r"not ready after 1 s(.|\n)*warming up"):
            silent.wait_ready(timeout=1)
    finally:
        silent.kill()
