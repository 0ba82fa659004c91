"""The registry process is killed and restarted: nothing is lost, ids keep growing; and a
second instance fences the first (single writer)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import KafkaAddress

pytestmark = pytest.mark.chaos

TOKENS = {"admin": "root-token", "orders": "orders-token"}
AUTH = ("orders", TOKENS["orders"])
MESH = str(Path(sys.executable).with_name("mesh"))


def _schema(n: int) -> dict[str, object]:
    """Version n adds optional field f<n>, so every version is BACKWARD compatible."""
    fields = [{"name": "id", "type": "string", "doc": "Order id."}] + [
        {"name": f"f{i}", "type": ["null", "long"], "default": None, "doc": f"Field {i}."}
        for i in range(2, n + 1)
    ]
    return {
        "type": "record",
        "name": "Order",
        "namespace": "orders",
        "doc": "An order item.",
        "fields": fields,
    }


@contextmanager
def serve(
    kafka: KafkaAddress, topic: str, writer_id: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_CREDENTIALS": ",".join(f"{p}:{t}" for p, t in TOKENS.items()),
    }
    env.pop("MESH_REGISTRY_CREDENTIALS_FILE", None)
    process = subprocess.Popen(
        [MESH, "registry", "serve", "--port", "0", "--topic", topic, "--writer-id", writer_id],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    url = None
    lines = []
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        found = re.search(r"listening on (http://\S+)", line)
        url = found.group(1) if found else None
        if not line and process.poll() is not None:
            break
    assert url is not None, "registry did not start:\n" + "".join(lines)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()


def _snapshot(url: str) -> dict[str, object]:
    subjects = httpx.get(f"{url}/subjects").json()
    versions = {
        s: [
            httpx.get(f"{url}/subjects/{s}/versions/{v}").json()
            for v in httpx.get(f"{url}/subjects/{s}/versions").json()
        ]
        for s in subjects
    }
    return {
        "subjects": subjects,
        "versions": versions,
        "global": httpx.get(f"{url}/config").json(),
        "subject_config": httpx.get(f"{url}/config/{subjects[0]}").json(),
        "products": httpx.get(f"{url}/products").json(),
    }


def test_kill_and_restart_keeps_everything(kafka: KafkaAddress) -> None:
    topic = f"_mesh_registry-restart-{uuid.uuid4().hex[:8]}"
    writer = f"writer-{uuid.uuid4().hex[:8]}"
    subjects = [f"orders.item-{n}.v1-value" for n in range(3)]
    with serve(kafka, topic, writer) as (url, process):
        ids = []
        for n, subject in enumerate(subjects):
            for version in range(1, n + 2):
                answer = httpx.post(
                    f"{url}/subjects/{subject}/versions",
                    json={"schema": json.dumps(_schema(version))},
                    auth=AUTH,
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["id"])
        assert (
            httpx.put(
                f"{url}/config/{subjects[0]}", json={"compatibility": "FULL"}, auth=AUTH
            ).status_code
            == 200
        )
        assert (
            httpx.put(
                f"{url}/config", json={"compatibility": "FORWARD"}, auth=("admin", TOKENS["admin"])
            ).status_code
            == 200
        )
        descriptor = {
            "name": "orders.item-0",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Items of every order placed, one record per item.",
            "owner": {"team": "order-items", "contact": "items@example.com"},
            "schema": "schemas/orders/item.avsc",
            "slos": {"freshness_seconds": 5, "availability": 99.9},
            "classification": "internal",
        }
        answer = httpx.put(f"{url}/products/orders.item-0", json=descriptor, auth=AUTH)
        assert answer.status_code == 200, answer.text
        before = _snapshot(url)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    with serve(kafka, topic, writer) as (url, _process):
        after = _snapshot(url)
        assert after == before
        # Same schema text keeps its id; a new schema gets an id above every old one.
        again = httpx.post(
            f"{url}/subjects/{subjects[2]}/versions",
            json={"schema": json.dumps(_schema(3))},
            auth=AUTH,
        )
        assert again.json()["id"] == ids[-1]
        fresh = httpx.post(
            f"{url}/subjects/{subjects[2]}/versions",
            json={"schema": json.dumps(_schema(4))},
            auth=AUTH,
        )
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["id"] == max(ids) + 1
        assert fresh.json()["version"] == 4


def test_second_instance_fences_the_first(kafka: KafkaAddress) -> None:
    topic = f"_mesh_registry-fence-{uuid.uuid4().hex[:8]}"
    writer = f"writer-{uuid.uuid4().hex[:8]}"
    subject = "orders.fenced.v1-value"
    with serve(kafka, topic, writer) as (first, _p1):
        one = httpx.post(
            f"{first}/subjects/{subject}/versions",
            json={"schema": json.dumps(_schema(1))},
            auth=AUTH,
        )
        assert one.status_code == 200, one.text
        with serve(kafka, topic, writer) as (second, _p2):
            stale = httpx.post(
                f"{first}/subjects/{subject}/versions",
                json={"schema": json.dumps(_schema(2))},
                auth=AUTH,
            )
            assert stale.status_code == 503, stale.text
            assert stale.json()["error_code"] == 50301
            assert "another instance took over" in stale.json()["message"]
            fresh = httpx.post(
                f"{second}/subjects/{subject}/versions",
                json={"schema": json.dumps(_schema(2))},
                auth=AUTH,
            )
            assert fresh.status_code == 200, fresh.text
            assert fresh.json() == {"id": one.json()["id"] + 1, "version": 2, "subject": subject}
            # The stale instance still serves reads, and sees the new writer's write.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                seen = httpx.get(f"{first}/subjects/{subject}/versions").json()
                if seen == [1, 2]:
                    break
                time.sleep(0.1)
            assert seen == [1, 2]
