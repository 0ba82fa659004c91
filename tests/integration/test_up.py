"""`mesh up` end to end against an already running broker and registry (the session's): it
uses them instead of starting its own, every simulator and processor runs as a supervised
child, records flow on the product topics, and when it stops (here by --duration) no process
it started is left behind. (`test_up_local.py` covers the broker and registry it starts.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from itertools import takewhile
from pathlib import Path

from confluent_kafka import TopicPartition

from domains.runnables import runnables
from domains.story import Story
from mesh_stream.descriptor import load_descriptors
from mesh_stream.supervisor import process_running
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.test_up_local import processes_with

ROOT = Path(__file__).resolve().parents[2]
RATE = 30.0
SEED = 7
DURATION = 35
STARTUP_MS = 12_000  # story time that may pass before the simulators publish


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Sum of the end offsets of each topic (0 for a topic that does not exist)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"up-test-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(timeout=30)
        totals = {}
        for topic in topics:
            partitions = metadata.topics.get(topic)
            total = 0
            for partition in partitions.partitions if partitions else ():
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                total += high
            totals[topic] = total
        return totals
    finally:
        consumer.close()


def test_mesh_up_runs_every_product_and_leaves_no_process(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    data_dir = tmp_path / f"mesh-up-{uuid.uuid4().hex[:8]}"
    products = load_descriptors(ROOT / "domains")
    topics = [p.topic for p in products]
    before = end_offsets(kafka.bootstrap_servers, topics)
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_DATA_DIR": str(data_dir),
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": registry.admin_token,
    }
    command = [
        sys.executable, "-m", "mesh_stream.cli.main", "up", "--no-view",
        "--duration", str(DURATION), "--rate", str(RATE), "--seed", str(SEED), "--root", str(ROOT),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DURATION + 120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # The running broker and registry were used, not replaced.
    assert f"Kafka: using the cluster at MESH_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}" in (
        output
    )
    assert f"registry: using the one that answers at {registry.url}" in output
    assert "stopping: Kafka" not in output

    # Every runnable ran as a supervised child with its own log.
    expected = runnables(RATE, seed=SEED)
    logs = data_dir / "logs"
    for runnable in expected:
        assert (logs / f"{runnable.name}.log").exists(), output
    assert not (logs / "registry.log").exists()
    supervisor_log = (logs / "supervisor.log").read_text()
    started = {
        name: int(pid)
        for name, pid in re.findall(r" (\S+): started \w+ \(pid (\d+)\)", supervisor_log)
    }
    assert sorted(started) == sorted([*(r.name for r in expected), "monitor"])
    # The supervised product monitor measured every registered product at least once.
    assert re.search(r"measured \d+ products in", (logs / "monitor.log").read_text()), output
    assert f"registry: {len(products)} of {len(products)} schemas and descriptors registered" in (
        output
    )

    # Records flowed while it ran: on every source product the seeded story schedules inside
    # the run (recomputed from the story itself; deliveries, for one, only start after about a
    # minute of story time) and on every product the processors derive.
    scheduled = {
        event.product
        for event in takewhile(
            lambda e: e.emit_at_ms < (DURATION - 5) * 1000,
            Story(seed=SEED, epoch_ms=0, rate=RATE).events(),
        )
        if event.emit_at_ms >= STARTUP_MS
    }
    expected_topics = [
        p.topic for p in products if p.name in scheduled or p.kind.value != "source-aligned"
    ]
    after = end_offsets(kafka.bootstrap_servers, topics)
    grew = {topic: after[topic] - before[topic] for topic in topics}
    assert [t for t in expected_topics if grew[t] <= 0] == [], grew

    # The stop went processors, simulators, the monitor, registry; nothing is left running.
    stops = re.findall(r" (\S+): stopping \(SIGTERM\)", supervisor_log)
    assert sorted(stops) == sorted(started)
    kinds = {r.name: r.kind for r in expected} | {"monitor": "monitor"}
    order = ["processor", "simulator", "monitor"]
    assert [kinds[n] for n in stops] == sorted((kinds[n] for n in stops), key=order.index)
    restarted = [
        int(p) for p in re.findall(r"restarted \(restart #\d+, pid (\d+)\)", supervisor_log)
    ]
    assert not [pid for pid in [*started.values(), *restarted] if process_running(pid)]
    assert processes_with(f"MESH_DATA_DIR={data_dir}") == []
    assert "mesh up: everything stopped" in output
