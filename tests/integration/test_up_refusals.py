"""`mesh up` on a real broker stops at once, with the reason, when the registry's port is not
usable: Kafka's own port given as MESH_REGISTRY_URL, or a port something already holds (the
registry child asks Kafka before it binds, so this needs a broker)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KafkaAddress

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def mesh_up_register_only(
    kafka: KafkaAddress, registry_url: str, data_dir: Path
) -> tuple[int, str]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry_url,
    }
    argv = [sys.executable, "-m", "mesh_stream.cli.main", "up", "--register-only"]
    argv += ["--project", str(ROOT), "--data-dir", str(data_dir)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90, check=False)
    return done.returncode, done.stdout + done.stderr


def test_kafkas_port_as_the_registry_url_is_named_not_retried(
    kafka: KafkaAddress, tmp_path: Path
) -> None:
    port = int(kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    status, said = mesh_up_register_only(kafka, url, tmp_path)
    assert status == 1, said
    assert (
        f"error: something that is not a mesh registry listens at {url} (no HTTP answer to GET "
        f"/subjects: "
    ) in said
    assert said.rstrip().endswith("; stop it, or point MESH_REGISTRY_URL elsewhere")
    assert "registry: starting" not in said
    assert "restart #" not in said


def test_a_registry_that_cannot_take_its_port_stops_mesh_up_with_the_reason(
    kafka: KafkaAddress, tmp_path: Path
) -> None:
    taken = socket.socket()  # bound without listening: the probe is refused, the bind fails
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        status, said = mesh_up_register_only(kafka, url, tmp_path)
    finally:
        taken.close()
    assert status == 1, said
    assert f"registry: starting at {url}" in said
    assert "while starting; not restarted" in said
    assert "restart #" not in said
    assert (
        f"error: the registry `mesh up` started at {url} exited with status 1 before it "
        f"answered: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ) in said
    assert f"(log: {tmp_path / 'logs' / 'registry.log'})" in said
