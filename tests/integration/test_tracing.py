"""A trace runs from a publisher through a real processor worker to the output record.

Orders are published with tracing on (a tracer provider set in this process), each inside
its own span; a revenue worker (a subprocess: this module run with ``-m``, a tracer provider
of its own writing its spans to a file) aggregates them. Each output record's
``traceparent`` names the trace of the order it reflects, and the worker's spans chain the
order's publish span -> the aggregate span -> the output's publish span.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from pydantic import SecretStr

from mesh_stream.processing.codec import FramedAvroDecoder
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.workers.failing_revenue import failing_spec

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
REGIONS = ("eu-west", "us-east", "ap-south")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A tracer provider for this test only (put back unset afterwards)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


def order(region: str, placed: int) -> dict[str, Any]:
    price = Decimal("12.50")
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "customer_id": "cust-00001",
        "region": region,
        "channel": "WEB",
        "currency": "EUR",
        "total_amount": price,
        "items": [{"sku": "sku-0001", "quantity": 1, "unit_price": price}],
        "placed_at": placed,
    }


def outputs(
    bootstrap: str, registry: RegistryClient, topic: str, want: int
) -> dict[str, tuple[dict[str, Any], dict[str, bytes]]]:
    """Latest output record and headers per region, read until ``want`` regions (or 90 s)."""
    decoder = FramedAvroDecoder(registry.get_schema)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    latest: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {}
    deadline = time.monotonic() + 90
    try:
        while len(latest) < want and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is None:
                    record = decoder.decode(message.value())
                    latest[record["region"]] = (record, dict(message.headers() or []))
    finally:
        consumer.close()
    return latest


def hex_id(value: int, digits: int) -> str:
    return f"0x{value:0{digits}x}"


def test_an_output_record_carries_the_trace_of_the_order_it_reflects(
    kafka: KafkaAddress, registry: RegistryAddress, spans: InMemorySpanExporter, tmp_path: Path
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
    source, output = spec.inputs[0], spec.output
    tracer = trace.get_tracer("test")
    placed = int(time.time() * 1000)
    traces: dict[str, int] = {}
    with (
        RegistryClient.from_settings(settings) as client,
        ProductPublisher(
            source, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO
        ) as publisher,
    ):
        for region in REGIONS:
            with tracer.start_as_current_span(f"checkout {region}") as checkout:
                publisher.publish(order(region, placed), timestamp_ms=placed)
            traces[region] = checkout.get_span_context().trace_id
        publisher.flush()
    published = {
        span.context.trace_id: span
        for span in spans.get_finished_spans()
        if span.name == f"{source.topic} publish" and span.context is not None
    }
    assert set(published) == set(traces.values())

    worker_spans = tmp_path / "worker-spans.jsonl"
    env = {
        **os.environ,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": registry.admin_token,
        "MESH_DATA_DIR": str(tmp_path),
        "MESH_BENCH_RUN_ID": run_id,
        "MESH_TEST_SPANS": str(worker_spans),
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_tracing", "worker", "-l", "info"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with RegistryClient.from_settings(settings) as client:
            found = outputs(kafka.bootstrap_servers, client, output.topic, len(REGIONS))
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
    text = log.read_text(errors="replace")
    assert set(found) == set(REGIONS), text[-3000:]

    written = [json.loads(line) for line in worker_spans.read_text().splitlines() if line]
    by_id = {span["context"]["span_id"]: span for span in written}
    for region, (record, headers) in found.items():
        assert record["order_count"] == 1
        _version, trace_id, span_id, _flags = headers["traceparent"].decode().split("-")
        assert int(trace_id, 16) == traces[region]  # the order's trace, end to end
        output_publish = by_id[f"0x{span_id}"]  # the output's PRODUCER span, in the worker
        assert output_publish["name"] == f"{output.topic} publish"
        aggregate = by_id[output_publish["parent_id"]]
        assert aggregate["name"] == f"{output.name} aggregate"
        order_publish = published[traces[region]]
        assert order_publish.context is not None
        assert aggregate["parent_id"] == hex_id(order_publish.context.span_id, 16)


def traced_worker() -> None:
    """The revenue worker of ``failing_revenue`` (failing nowhere) with a tracer provider
    that writes each span as a JSON line to ``MESH_TEST_SPANS``: what an application's own
    entry point (or ``opentelemetry-instrument``) does before the worker starts."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from tests.integration.workers import failing_revenue

    out = Path(os.environ["MESH_TEST_SPANS"]).open("a")  # noqa: SIM115 - open while it runs
    provider = TracerProvider()
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    failing_revenue.main()


if __name__ == "__main__":
    traced_worker()
