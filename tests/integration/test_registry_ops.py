"""Operations conventions of a real `mesh registry serve` on the test broker: JSON log lines
with MESH_LOG_FORMAT=json (an access line per request), /metrics with the Kafka store's
replay and write timings, /health/live."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KafkaAddress

pytestmark = pytest.mark.integration

LIBRDKAFKA_LINE = re.compile(r"%\d\|\d+\.\d+\|")
MESH = str(Path(sys.executable).with_name("mesh"))
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Placed",
        "doc": "An order was placed.",
        "fields": [{"name": "id", "type": "string", "doc": "Order id."}],
    }
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_serve_with_json_logs_prints_one_json_object_per_line_and_serves_metrics(
    kafka: KafkaAddress,
) -> None:
    session = uuid.uuid4().hex[:8]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MESH_")},
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_LOG_FORMAT": "json",
        "MESH_REGISTRY_CREDENTIALS": "admin:ops-secret",
    }
    process = subprocess.Popen(
        [
            MESH, "registry", "serve", "--port", "0", "--topic", f"_mesh_registry-ops-{session}",
            "--writer-id", f"mesh-registry-ops-{session}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    listening = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "registry listening on" in line:
                listening.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert listening.wait(60), "".join(lines[-30:])
        started = json.loads(next(x for x in lines if "registry listening on" in x))
        url = started["message"].split()[3]
        admin = ("admin", "ops-secret")
        subject = f"orders.ops-{session}.v1-value"
        stored = httpx.post(
            f"{url}/subjects/{subject}/versions", json={"schema": SCHEMA}, auth=admin
        )
        assert stored.status_code == 200, stored.text
        assert (
            httpx.get(f"{url}/subjects/{subject}/versions/1?secret=q", auth=admin).status_code
            == 200
        )
        assert httpx.get(f"{url}/health/live").json() == {"status": "alive"}
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200
        samples = _samples(metrics.text)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        reader.join(10)
    assert process.returncode == 0, "".join(lines[-30:])

    # every line is one JSON object (the replay progress and start-up lines too)
    # (librdkafka writes its own lines, `%4|...`, to stderr itself: not Python logging)
    ours = [line for line in lines if line.strip() and not LIBRDKAFKA_LINE.match(line)]
    not_json = [line for line in ours if not _json_object(line)]
    assert not not_json, not_json
    records: list[dict[str, Any]] = [json.loads(line) for line in ours]
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("registry: replayed ") for m in messages), messages
    assert messages[-1] == "registry stopped"
    access = [r for r in records if r["logger"] == "mesh_stream.registry.access"]
    seen = {(r["method"], r["path"], r["route"], r["status"]) for r in access}
    assert (
        "POST",
        f"/subjects/{subject}/versions",
        "/subjects/{subject:path}/versions",
        200,
    ) in seen
    assert (
        "GET",
        f"/subjects/{subject}/versions/1",
        "/subjects/{subject:path}/versions/{version}",
        200,
    ) in seen
    assert ("GET", "/health/live", "/health/live", 200) in seen
    assert all(r["client"] == "127.0.0.1" and r["duration_ms"] >= 0 for r in access)
    everything = "".join(lines)
    assert "ops-secret" not in everything
    assert "secret=q" not in everything

    # the Kafka store's timings and the role, as Prometheus reads them
    assert samples[("mesh_registry_replayed", ())] == 1
    assert samples[("mesh_registry_replay_duration_seconds", ())] >= 0
    assert samples[("mesh_registry_role", (("role", "writer"),))] == 1
    for stage in ("append", "commit"):
        assert (
            samples[("mesh_registry_store_write_duration_seconds_count", (("stage", stage),))] == 1
        )
    assert samples[("mesh_registry_state_entries", (("kind", "subjects"),))] == 1
    route = "/subjects/{subject:path}/versions"
    key = (("method", "POST"), ("route", route), ("status", "200"))
    assert samples[("mesh_registry_requests_total", key)] == 1
