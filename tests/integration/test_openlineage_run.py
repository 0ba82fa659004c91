"""A processor worker tells OpenLineage its run: START, RUNNING, then COMPLETE or FAIL.

The revenue worker over private copies of its products (the one ``test_rekey_stage.py``
runs) is started with ``MESH_OPENLINEAGE_URL`` pointed at a tiny HTTP server in this test,
which records what the openlineage-python client POSTs. A worker whose route raises must
send START then FAIL with the error; a healthy one START, RUNNING, and COMPLETE on a clean
stop; every event of one run has its run id and the worker's input and output datasets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from pydantic import SecretStr

from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.workers.failing_revenue import failing_spec

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
WORKER_MODULE = "tests.integration.workers.failing_revenue"


class Recorder(ThreadingHTTPServer):
    """Keeps every JSON body POSTed to it, with its path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: list[tuple[str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def states(self, run_id: str | None = None) -> list[str]:
        return [
            event["eventType"]
            for _, event in self.events
            if run_id is None or event["run"]["runId"] == run_id
        ]

    def wait_for(self, state: str, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, event in self.events:
                if event.get("eventType") == state:
                    return event
            time.sleep(0.2)
        pytest.fail(f"no {state} event within {timeout} s; got {self.states()}")


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.events.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _order(region: str, placed_at: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "customer_id": "cust-00001",
        "region": region,
        "channel": "WEB",
        "currency": "EUR",
        "total_amount": Decimal("12.50"),
        "items": [{"sku": "sku-1", "quantity": 1, "unit_price": Decimal("12.50")}],
        "placed_at": placed_at,
    }


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, "worker", "-l", "info"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _check_datasets(event: dict[str, Any], source: str, output: str, bootstrap: str) -> None:
    namespace = f"kafka://{bootstrap.split(',', maxsplit=1)[0].strip()}"
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [(namespace, source)]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(namespace, output)]
    fields = {f["name"] for f in event["outputs"][0]["facets"]["schema"]["fields"]}
    assert {"region", "gross_revenue"} <= fields
    assert "order_id" in {f["name"] for f in event["inputs"][0]["facets"]["schema"]["fields"]}


def test_worker_runs_are_reported_start_running_complete_and_fail(
    kafka: KafkaAddress, registry: RegistryAddress, recorder: Recorder, tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="admin",
        registry_token=SecretStr(registry.admin_token),
        data_dir=tmp_path,
    )
    spec = failing_spec(settings, run_id)
    source, output = spec.inputs[0].topic, spec.output.topic
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": registry.admin_token,
        "MESH_DATA_DIR": str(tmp_path),
        "MESH_BENCH_RUN_ID": run_id,
        "MESH_OPENLINEAGE_URL": recorder.url,
        "MESH_OPENLINEAGE_RUNNING_MINUTES": "0.01",  # a RUNNING event every 0.6 s
    }
    placed = int(time.time() * 1000)
    bad = _order("eu-west", placed)
    with (
        RegistryClient.from_settings(settings) as client,
        ProductPublisher(
            spec.inputs[0],
            bootstrap_servers=kafka.bootstrap_servers,
            registry=client,
            root=REPO,
        ) as publisher,
    ):
        publisher.publish(bad, timestamp_ms=placed)
        publisher.flush()
    log = tmp_path / "worker.log"

    # 1. a worker whose route raises on the order: START, then FAIL with the error
    failing = _start({**env, "MESH_TEST_FAIL_ORDER": bad["order_id"]}, log)
    try:
        assert failing.wait(120) != 0
    finally:
        if failing.poll() is None:
            failing.kill()
    text = log.read_text(errors="replace")[-3000:]
    first_run = recorder.wait_for("START")["run"]["runId"]
    assert recorder.states(first_run)[0] == "START", text
    assert recorder.states(first_run)[-1] == "FAIL", text
    fail = recorder.wait_for("FAIL")
    assert (
        f"route cannot handle order {bad['order_id']}"
        in (fail["run"]["facets"]["errorMessage"]["message"])
    )
    _check_datasets(fail, source, output, kafka.bootstrap_servers)
    assert {path for path, _ in recorder.events} == {"/api/v1/lineage"}

    # 2. a healthy worker: START, RUNNING while it runs, COMPLETE on a clean stop
    recorder.events.clear()
    topic = f"_lineage-{run_id}"
    healthy = _start({**env, "MESH_OPENLINEAGE_TOPIC": topic}, log)
    try:
        start = recorder.wait_for("START")
        recorder.wait_for("RUNNING")
        healthy.terminate()
        assert healthy.wait(60) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if healthy.poll() is None:
            healthy.kill()
    second_run = start["run"]["runId"]
    assert second_run != first_run
    states = recorder.states(second_run)
    assert states[0] == "START"
    assert states[-1] == "COMPLETE"
    assert set(states[1:-1]) == {"RUNNING"}
    assert recorder.states() == states  # one run, nothing else
    for _, event in recorder.events:
        assert event["job"] == {**event["job"], "namespace": "mesh-stream"}
        assert event["job"]["name"] == spec.output.name
        _check_datasets(event, source, output, kafka.bootstrap_servers)

    # 3. the same run, on the Kafka topic too, keyed by the job
    on_topic = _read_topic(kafka.bootstrap_servers, topic, len(states))
    assert [(key, event["eventType"]) for key, event in on_topic] == [
        (spec.output.name.encode(), state) for state in states
    ]
    assert {event["run"]["runId"] for _, event in on_topic} == {second_run}


def _read_topic(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lineage-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            found.append((message.key(), json.loads(message.value())))
    finally:
        consumer.close()
    return found
