"""Product health on the real broker: records on a health topic of several partitions reach
the registry's routes and `mesh products status`, a garbage record is skipped, and
`--watch`'s alert reader sees an alert published after it started."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from pydantic import SecretStr

from mesh_stream.cli.main import cli
from mesh_stream.cli.product_health import KafkaAlerts
from mesh_stream.health import Alert, Figure, FigureName, ProductHealth, Status, health_key
from mesh_stream.kafka.clients import make_admin, make_producer, new_topic
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress
from tests.unit.registry.conftest import descriptor, schema

ADMIN = ("admin", "admin-secret")


def _health(product: str, status: Status, minutes_ago: float, value: float) -> ProductHealth:
    at = int(time.time() * 1000 - minutes_ago * 60_000)
    return ProductHealth(
        product=product,
        measured_at_ms=at,
        status=status,
        reason=f"freshness_seconds {value:g} against its SLO 5",
        since_ms=at,
        figures=(
            Figure(
                name=FigureName.FRESHNESS_SECONDS,
                value=value,
                slo=5.0,
                status=status,
                reason="newest record age",
            ),
        ),
        monitor="integration-test",
    )


def _eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _feeds() -> int:
    return sum(t.name == "registry-health-feed" and t.is_alive() for t in threading.enumerate())


def test_health_records_on_kafka_are_served_and_shown(kafka: KafkaAddress) -> None:
    session = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr("admin:admin-secret"),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-health-{session}",
        registry_writer_id=f"mesh-registry-health-{session}",
        health_topic=f"_mesh_product_health-test-{session}",
        alerts_topic=f"_mesh_product_alerts-test-{session}",
    )
    conn = KafkaConnection.from_settings(settings)
    admin = make_admin(conn)  # held: the futures fail if the client is collected
    created = admin.create_topics(
        [
            new_topic(settings.health_topic, partitions=3, config={"cleanup.policy": "compact"}),
            new_topic(settings.alerts_topic, partitions=1),
        ]
    )
    for future in created.values():
        future.result(timeout=30)
    product = f"orders.health-{session}"
    older = _health(product, Status.OK, 2, 1.0)
    newer = _health(product, Status.BREACHED, 1, 9.0)
    producer = make_producer(conn)
    producer.produce(settings.health_topic, key=b"garbage", value=b"\x00 not json")
    for record in (newer, older):  # the newer first: "latest" is by measurement, not arrival
        key = health_key(product, record.measured_at_ms)
        producer.produce(settings.health_topic, key=key, value=record.model_dump_json())
    assert producer.flush(10) == 0

    feeds_before = _feeds()
    app, store = build_registry(settings, validators=())
    running = RegistryServer(app)
    try:
        url = running.start()
        with RegistryClient(url, principal="admin", token="admin-secret") as client:
            client.register_schema(f"{product}.v1-value", schema())
            client.put_product(descriptor(product))
            latest = _eventually(
                lambda: (
                    (found := client.product_health(product)).status is Status.BREACHED and found
                )
            )
            assert latest == newer
            history = _eventually(lambda: len(client.product_health_history(product)) == 2)
            assert history
            assert client.product_health_history(product) == [older, newer]
        unknown = httpx.get(f"{url}/products/orders.nope-{session}/health", auth=ADMIN)
        assert (unknown.status_code, unknown.json()["error_code"]) == (404, 40404)

        shown = CliRunner().invoke(
            cli,
            ["products", "status", "--json"],
            env={
                "MESH_REGISTRY_URL": url,
                "MESH_REGISTRY_PRINCIPAL": "admin",
                "MESH_REGISTRY_TOKEN": "admin-secret",
            },
        )
        assert shown.exit_code == 0, shown.output
        assert ProductHealth.model_validate(json.loads(shown.stdout)[product]) == newer

        alerts = KafkaAlerts(conn, settings.alerts_topic)
        try:
            assert alerts.poll(0.5) == []  # assigned at the end: nothing published before
            alert = Alert(
                kind="breach",
                product=product,
                figure=FigureName.FRESHNESS_SECONDS,
                slo=5.0,
                value=9.0,
                status=Status.BREACHED,
                since_ms=newer.since_ms,
                reason="newest record age",
            )
            producer.produce(settings.alerts_topic, key=product, value=alert.model_dump_json())
            assert producer.flush(10) == 0
            seen: list[Alert | str] = []
            _eventually(lambda: seen.extend(alerts.poll(0.5)) or seen, timeout=20)
            assert seen == [alert]
        finally:
            alerts.close()
    finally:
        running.stop()
        store.close()
    assert _feeds() == feeds_before  # the feed stopped with the store


def test_the_alert_reader_says_once_why_it_cannot_read_the_alerts_topic(
    kafka: KafkaAddress,
) -> None:
    """`--watch` with no broker, or before any monitor made the alerts topic, says so once
    (not every poll), then reads the topic once it is there."""
    from mesh_stream.broker.cluster import free_port

    nowhere = KafkaAlerts(
        KafkaConnection(bootstrap_servers=f"127.0.0.1:{free_port()}"), "_mesh_product_alerts"
    )
    try:
        (said,) = nowhere.poll(0.1)
        assert isinstance(said, str)
        assert said.startswith("alerts topic _mesh_product_alerts cannot be read: ")
        assert said.endswith("; new alerts show once Kafka answers")
        assert nowhere.poll(0.1) == []  # said once
    finally:
        nowhere.close()

    topic = f"_mesh_product_alerts-missing-{uuid.uuid4().hex[:8]}"
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap_servers)
    alerts = KafkaAlerts(conn, topic)
    try:
        assert alerts.poll(0.1) == [
            f"alerts topic {topic} does not exist yet (no `mesh monitor` has published to it); "
            "new alerts show once it does"
        ]
        assert alerts.poll(0.1) == []
        admin = make_admin(conn)
        for future in admin.create_topics([new_topic(topic, partitions=1)]).values():
            future.result(timeout=30)
        _eventually(lambda: alerts.poll(0.2) == [] and alerts._assigned, timeout=20)
        assert alerts._assigned
        alert = Alert(
            kind="breach",
            product="orders.order-placed",
            figure=FigureName.FRESHNESS_SECONDS,
            slo=5.0,
            value=9.0,
            status=Status.BREACHED,
            since_ms=int(time.time() * 1000),
            reason="newest record age",
        )
        producer = make_producer(conn)
        producer.produce(topic, key=b"orders.order-placed", value=alert.model_dump_json())
        assert producer.flush(10) == 0
        seen: list[Alert | str] = []
        _eventually(lambda: seen.extend(alerts.poll(0.5)) or seen, timeout=20)
        assert seen == [alert]
    finally:
        alerts.close()


def test_sigterm_ends_the_watch_with_its_output_written(
    kafka: KafkaAddress, registry: Any, tmp_path: Any
) -> None:
    """`products status --watch > file` ended by SIGTERM left the file empty: the table and
    the alert lines died in the buffer with the process (a campaign). SIGTERM now ends the
    watch as Ctrl-C does."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "status.txt"
    env = {
        **os.environ,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_ALERTS_TOPIC": f"_mesh_product_alerts-{uuid.uuid4().hex[:8]}",
    }
    mesh = str(Path(sys.executable).with_name("mesh"))
    with out.open("w") as stdout:
        watching = subprocess.Popen(
            [mesh, "products", "status", "--watch", "--interval", "1"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            time.sleep(2.5)  # past start-up: the table is drawn, alerts are being read
            watching.send_signal(signal.SIGTERM)
            _, stderr = watching.communicate(timeout=30)
        finally:
            if watching.poll() is None:
                watching.kill()
    assert watching.returncode == 130, stderr  # as Ctrl-C, and as `mesh tail` (a campaign)
    assert "stopped watching" in stderr
    written = out.read_text()
    assert "product" in written.lower(), written
