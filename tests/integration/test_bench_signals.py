"""SIGTERM to `mesh bench` on its own throw-away Kafka stops what it started, as Ctrl-C does:
the broker's JVM and every child are gone, its temp folder is removed, and it exits 143."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

MESH = str(Path(sys.executable).with_name("mesh"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _started_by(root: int, folder: Path) -> set[int]:
    """``root``'s descendants and every process working in ``folder`` (the Kafka JVM, which
    runs in a session of its own from ``<TMPDIR>/mesh-bench-*/broker/node-1``)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
            if str(folder) in os.readlink(entry / "cwd"):
                found.add(int(entry.name))
        except OSError:
            continue
    wanted = {root}
    while True:
        more = {pid for pid, parent in parents.items() if parent in wanted} - wanted
        if not more:
            break
        wanted |= more
    return (found | wanted) - {root}


def test_sigterm_stops_the_broker_it_started_and_removes_its_temp_folder(
    tmp_path: Path,
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MESH_") or k == "MESH_CACHE_DIR"
    }
    env.update(TMPDIR=str(temp), MESH_DATA_DIR=str(tmp_path / "data"))
    bench = subprocess.Popen(
        [MESH, "bench", "--monitor-only", "--monitor-products", "2", "--output", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert bench.stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in bench.stderr], daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        said: list[str] = []
        while not any("in-process registry at" in line for line in said):  # broker up
            assert bench.poll() is None, "".join(said)
            assert time.monotonic() < deadline, "".join(said)
            try:
                said.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        [folder] = temp.glob("mesh-bench-*")
        started = _started_by(bench.pid, folder)
        assert any(_alive(pid) for pid in started), "no broker process found"
        bench.send_signal(signal.SIGTERM)
        status = bench.wait(timeout=90)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    time.sleep(0.5)
    said += [lines.get() for _ in range(lines.qsize())]
    survivors = [pid for pid in started if _alive(pid)]
    for pid in survivors:  # left by a failing run: not for the next test to meet
        os.kill(pid, signal.SIGKILL)
    assert status == 143, "".join(said)
    assert said[-1] == "Terminated.\n"
    assert survivors == []
    assert not folder.exists()
    assert list(temp.iterdir()) == []
