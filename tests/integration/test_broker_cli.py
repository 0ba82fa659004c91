"""`mesh broker start|status|stop` from a fresh shell, one node and three."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

MESH = [sys.executable, "-m", "mesh_stream.cli.main"]


def mesh(
    data_dir: Path, *args: str, timeout: float = 180, **settings: str
) -> subprocess.CompletedProcess[str]:
    """The CLI in a shell without the suite's MESH_* settings (``settings`` added, e.g.
    ``MESH_BROKER_JVM_OPTIONS``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(settings)
    env["MESH_DATA_DIR"] = str(data_dir)
    if "MESH_CACHE_DIR" in os.environ:
        env["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]
    return subprocess.run(
        [*MESH, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_start_status_second_start_stop(tmp_path: Path) -> None:
    options = "-XX:TieredStopAtLevel=1 '-Dmesh.test.note=two words'"
    started = mesh(tmp_path, "broker", "start", "--port", "0", MESH_BROKER_JVM_OPTIONS=options)
    assert started.returncode == 0, started.stderr
    assert "Kafka is up at 127.0.0.1:" in started.stderr
    bootstrap = started.stdout.split("bootstrap servers: ")[1].split()[0]
    assert "log " + str(tmp_path / "broker" / "node-1" / "server.log") in started.stdout
    try:
        status = mesh(tmp_path, "broker", "status", "--json")
        assert status.returncode == 0
        report = json.loads(status.stdout)
        assert report["running"] is True
        assert report["bootstrap_servers"] == bootstrap
        pid = report["nodes"][0]["pid"]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"kafka.Kafka" in command
        assert b"-XX:TieredStopAtLevel=1" in command  # MESH_BROKER_JVM_OPTIONS, as words
        assert b"-Dmesh.test.note=two words" in command

        again = mesh(tmp_path, "broker", "start", "--port", "0")
        assert again.returncode == 1
        assert "a broker already runs" in again.stderr
        assert bootstrap in again.stderr

        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        metadata = admin.list_topics(timeout=10)
        del admin
        assert len(metadata.brokers) == 1
    finally:
        stopped = mesh(tmp_path, "broker", "stop")
    assert stopped.returncode == 0
    assert f"stopped Kafka (pid {pid})" in stopped.stdout
    assert not Path(f"/proc/{pid}").exists() or "kafka.Kafka" not in Path(
        f"/proc/{pid}/cmdline"
    ).read_text(errors="replace")
    after = mesh(tmp_path, "broker", "status")
    assert after.returncode == 3
    assert after.stdout.startswith("not running")


def test_three_node_cluster_takes_replication_factor_three(tmp_path: Path) -> None:
    started = mesh(tmp_path, "broker", "start", "--brokers", "3", "--port", "0")
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.split("bootstrap servers: ")[1].split()[0]
    try:
        assert len(bootstrap.split(",")) == 3
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        admin.create_topics([NewTopic("rf3", num_partitions=3)])["rf3"].result(60)
        deadline = time.monotonic() + 60
        while True:  # followers join the ISR shortly after creation
            partitions = admin.list_topics("rf3", timeout=10).topics["rf3"].partitions
            in_sync = len(partitions) == 3 and all(
                sorted(p.isrs) == [1, 2, 3] for p in partitions.values()
            )
            if in_sync or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(partitions) == 3
        for partition in partitions.values():
            assert sorted(partition.replicas) == [1, 2, 3]
            assert sorted(partition.isrs) == [1, 2, 3]
        del admin
        # one node killed, as an SRE drill does: `mesh broker start` brings it back (h33: it
        # refused until the whole cluster was stopped)
        state = json.loads((tmp_path / "broker" / "cluster.json").read_text())
        victim = state["nodes"][1]
        os.kill(victim["pid"], 9)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{victim['pid']}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        partly = mesh(tmp_path, "broker", "status")
        assert partly.stdout.startswith("partly running (2 of 3 nodes)"), partly.stdout
        again = mesh(tmp_path, "broker", "start", "--brokers", "3")
        assert again.returncode == 0, again.stderr
        assert f"Restarting node {victim['node_id']} of the cluster" in again.stderr + again.stdout
        whole = mesh(tmp_path, "broker", "status")
        assert whole.returncode == 0, whole.stdout
        assert whole.stdout.startswith("running"), whole.stdout
    finally:
        stopped = mesh(tmp_path, "broker", "stop")
    assert stopped.returncode == 0, stopped.stderr


def test_a_relative_data_dir_starts_and_the_second_start_names_it(tmp_path: Path) -> None:
    """`--data-dir b` from the folder holding it: Kafka runs in each node's folder, and was
    handed `b/broker/node-1/server.properties`, which it then could not find (hostile-input
    campaign 2). The refusal of a second start names the folder `mesh broker stop` needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    if "MESH_CACHE_DIR" in os.environ:
        env["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]

    def relative(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MESH, "broker", *args, "--data-dir", "b"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    started = relative("start", "--port", "0")
    assert started.returncode == 0, started.stderr
    try:
        assert "log " + str(tmp_path / "b" / "broker" / "node-1" / "server.log") in started.stdout
        again = relative("start", "--port", "0")
        assert again.returncode == 1
        assert f"stop it first with `mesh broker stop --data-dir {tmp_path / 'b'}`" in again.stderr
    finally:
        stopped = relative("stop")
    assert stopped.returncode == 0, stopped.stderr
