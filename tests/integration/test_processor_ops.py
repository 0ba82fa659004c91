"""A real revenue worker with MESH_PROCESSOR_METRICS_PORT and MESH_LOG_FORMAT=json: its
/metrics counts the orders in, the poison pills dead-lettered and the windows out; it is
ready once it reads; its log lines are JSON objects once faust has set up logging."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from mesh_stream.broker.cluster import free_port
from tests.conftest import KafkaAddress
from tests.integration.test_rekey_stage import BenchRun, _order, publish, run, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

__all__ = ["run"]  # the fixture: private copies of the revenue products

ORDERS = 30
POISON = 3


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _json_lines(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def test_a_worker_serves_its_counts_health_and_json_logs(
    kafka: KafkaAddress, run: BenchRun, tmp_path: Path
) -> None:
    spec, env = run.spec, run.env
    source, name = spec.inputs[0], spec.output.name
    placed = int(time.time() * 1000)
    publish(run, [_order(n, placed) for n in range(ORDERS)], placed)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for n in range(POISON):
        producer.produce(source.topic, value=f"not avro {n}".encode(), partition=0)
    assert producer.flush(30) == 0
    del producer  # no client left retrying once the session's broker stops
    port = free_port()
    log = tmp_path / "worker.log"
    worker = start_worker(
        {**env, "MESH_PROCESSOR_METRICS_PORT": str(port), "MESH_LOG_FORMAT": "json"}, log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        records_in = (
            "mesh_processor_records_in_total",
            (("processor", name), ("topic", source.topic)),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                samples = _samples(httpx.get(f"{url}/metrics", timeout=5).text)
            except httpx.TransportError:
                samples = {}
            if samples.get(records_in) == ORDERS and samples.get(
                ("mesh_processor_records_out_total", (("processor", name),)), 0
            ):
                break
            time.sleep(0.5)
        assert samples.get(records_in) == ORDERS, log.read_text(errors="replace")[-3000:]
        dead = ("mesh_processor_dead_letters_total", (("processor", name), ("topic", source.topic)))
        assert samples[dead] == POISON
        assert samples[("mesh_processor_records_out_total", (("processor", name),))] >= 1
        assert (
            samples[("mesh_processor_update_duration_seconds_count", (("processor", name),))] >= 1
        )
        lag = (("partition", "0"), ("processor", name), ("topic", source.topic))
        assert samples[("mesh_processor_input_lag_records", lag)] == 0  # all of it read
        assert samples[("mesh_processor_input_lag_seconds", lag)] == 0
        ready = httpx.get(f"{url}/health/ready")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        assert httpx.get(f"{url}/health/live").json() == {"status": "alive"}
    finally:
        worker.terminate()
        worker.wait(60)
    lines = _json_lines(log)
    # a record set aside is a warning: the worker goes on as designed (h45)
    dead_lettered = [r for r in lines if "sent to" in r["message"] and r["level"] == "WARNING"]
    assert len(dead_lettered) == POISON, log.read_text(errors="replace")[-3000:]
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in lines)
