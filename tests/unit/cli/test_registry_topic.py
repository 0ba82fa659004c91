"""`mesh registry serve --topic` refuses a topic that holds something else: the registry
logged every record there as skipped (with a traceback each), took the writer role and wrote
its own records into it (hostile-input campaign 3)."""

from __future__ import annotations

import logging
import os

import pytest

from mesh_stream.cli.main import run


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_REGISTRY_CREDENTIALS", "admin:SecretTok-aaaaaaaaaaaaaaaaaaaaaaaa")


@pytest.mark.parametrize(
    ("topic", "what"),
    [
        ("__consumer_offsets", "one of Kafka's own topics (names starting with `__`)"),
        ("_mesh_product_health", "the product monitor's health topic (MESH_HEALTH_TOPIC)"),
        ("_mesh_product_alerts", "the product monitor's alerts topic (MESH_ALERTS_TOPIC)"),
        ("orders.order-placed.v1", "named like a data product's topic (`<domain>.<product>.v<N>`)"),
        ("orders.order-placed.v1.dlq", "named like a data product's topic"),
    ],
)
def test_a_topic_holding_something_else_is_refused_before_anything_starts(
    topic: str, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["registry", "serve", "--port", "1", "--topic", topic])
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith(
        f"error: registry topic {topic!r} (--topic, MESH_REGISTRY_TOPIC) is {what}"
    ), err


def test_records_that_are_no_registry_records_are_told_in_one_line_each_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """117 records of another tool's topic made 117 tracebacks; now ten lines, then every
    1000th with the count."""
    from mesh_stream.registry.service.kafka_store import SKIPPED_SHOWN, KafkaStore

    class Foreign:  # a record of the product monitor's topic, as confluent-kafka gives it
        def key(self) -> bytes:
            return b"orders.order-placed"

        def value(self) -> bytes:
            return b'{"status": "healthy"}'

    store = KafkaStore("127.0.0.1:9", topic="t")
    store._apply = lambda _record: None  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="mesh_stream.registry.service.kafka_store"):
        for offset in range(2_000):
            store._apply_message(Foreign(), offset, replaying=True)  # type: ignore[arg-type]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == SKIPPED_SHOWN + 2  # offsets 0-9, then the 1000th and 2000th
    assert lines[0].startswith("t[0]@0: registry record skipped: ")
    assert lines[-1].endswith("(2000 skipped so far; only every 1000th is told from here)")
    assert not any(record.exc_info for record in caplog.records)  # no traceback at INFO
