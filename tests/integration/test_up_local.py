"""`mesh up` with its own local broker: a first run creates the broker and the product topics,
a second run reuses them and restarts a child that was killed, Ctrl-C (SIGINT) stops
everything in order with no process and no broker left running, and --fresh starts over."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mesh_stream.broker import local_cluster
from mesh_stream.descriptor import load_descriptors
from mesh_stream.settings import MeshSettings
from mesh_stream.supervisor import process_running

pytestmark = pytest.mark.chaos  # kills a child with SIGKILL and Ctrl-Cs the mesh

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment contains ``marker`` (a unique data dir)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes() and process_running(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def mesh_up(*args: str) -> list[str]:
    return [sys.executable, "-m", "mesh_stream.cli.main", "up", "--project", str(ROOT), *args]


def test_second_run_reuses_the_data_ctrl_c_leaves_nothing_and_fresh_starts_over(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / f"mesh-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "MESH_BOOTSTRAP_SERVERS"}
    env |= {
        "MESH_DATA_DIR": str(data_dir),
        "MESH_BROKER_PORT": "0",
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",
    }
    products = load_descriptors(ROOT / "domains")
    cluster = local_cluster(MeshSettings(data_dir=data_dir))

    first = subprocess.run(
        mesh_up("--register-only"), env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert (
        f"topics: {len(products)} product topics and their dead-letter topics ready "
        f"({2 * len(products)} created now)"
    ) in output
    assert f"registry: {len(products)} of {len(products)} schemas and descriptors" in output
    assert "stopped Kafka" in output
    assert not cluster.status().running
    assert processes_with(f"MESH_DATA_DIR={data_dir}") == []

    # Started from outside the project: --project alone says which one, and the children
    # run from the project root as they would in any domain team's repository.
    second = subprocess.Popen(
        mesh_up("--no-view"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    children_started = threading.Event()

    def read() -> None:
        assert second.stdout is not None
        for line in second.stdout:
            lines.append(line)
            if re.search(r"started \d+ simulators", line):
                children_started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert children_started.wait(240), "".join(lines)
        assert cluster.status().running
        # A child that dies is reported and started again.
        supervisor_log = data_dir / "logs" / "supervisor.log"
        victim, pid = re.findall(
            r" (\S+-simulator): started simulator \(pid (\d+)\)", supervisor_log.read_text()
        )[0]
        assert os.readlink(f"/proc/{pid}/cwd") == str(ROOT)
        assert f"MESH_PROJECT_ROOT={ROOT}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
        os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while f"{victim}: restarted (restart #1" not in supervisor_log.read_text():
            assert time.monotonic() < deadline, supervisor_log.read_text()
            time.sleep(0.2)
        assert f"{victim}: killed by SIGKILL after" in supervisor_log.read_text()
        assert not process_running(int(pid))
        second.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert second.wait(120) == 0, "".join(lines)
    finally:
        if second.poll() is None:
            second.kill()
    reader.join(10)
    output = "".join(lines)
    # The same broker data: every topic and registration was already there.
    assert (
        f"topics: {len(products)} product topics and their dead-letter topics ready (0 created now)"
    ) in output
    assert f"registry: {len(products)} of {len(products)} schemas and descriptors" in output
    stopping = [line for line in output.splitlines() if line.startswith("stopping: ")]
    assert stopping == [  # each kind that runs, in the order they stop
        "stopping: processors, simulators, monitor, registry ...",
        "stopping: Kafka ...",
    ]
    assert "mesh up: everything stopped" in output
    assert re.search(r"(?m)^ ?kafka +│ broker +│ running +│ \d+ ", output), output  # last frame
    assert not cluster.status().running
    assert processes_with(f"MESH_DATA_DIR={data_dir}") == []

    # --fresh: the broker's topics, the processors' state and the old logs are gone.
    old_logs = {path.name for path in (data_dir / "logs").iterdir()}
    assert len(old_logs) > 2  # registry, supervisor and one per simulator and processor
    fresh = subprocess.run(
        mesh_up("--register-only", "--fresh"), env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=240, check=False,
    )  # fmt: skip
    output = fresh.stdout + fresh.stderr
    assert fresh.returncode == 0, output
    assert f"--fresh: erased {data_dir / 'logs'}" in output
    assert f"({2 * len(products)} created now)" in output  # each topic and its DLQ
    assert {path.name for path in (data_dir / "logs").iterdir()} == {
        "registry.log",
        "supervisor.log",
    }
    assert not cluster.status().running
