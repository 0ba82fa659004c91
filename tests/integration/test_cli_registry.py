"""`mesh registry serve` as a user runs it: the URL to export, SIGTERM, a taken port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from click.testing import CliRunner
from pydantic import SecretStr

from mesh_stream.cli.main import cli
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress


def _schema(field: str) -> dict[str, object]:
    return {
        "type": "record",
        "name": "Probe",
        "doc": "A probe record.",
        "fields": [{"name": field, "type": "string", "doc": "A field.", "default": ""}],
    }


def test_serve_on_a_taken_port_leaves_the_running_registry_writable(kafka: KafkaAddress) -> None:
    session = uuid.uuid4().hex[:8]
    topic, writer = f"_mesh_registry-cli-{session}", f"mesh-registry-cli-{session}"
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr("admin:admin-secret"),
        registry_credentials_file=None,
        registry_topic=topic,
        registry_writer_id=writer,
    )
    app, store = build_registry(settings, validators=())
    running = RegistryServer(app)
    try:
        url = running.start()
        second = CliRunner().invoke(
            cli,
            [
                "registry", "serve", "--port", str(running.port), "--open-writes",
                "--bootstrap-servers", kafka.bootstrap_servers,
                "--topic", topic, "--writer-id", writer,
            ],
        )  # fmt: skip
        assert second.exit_code != 0
        with RegistryClient(url, principal="admin", token="admin-secret") as admin:
            first_id = admin.register_schema("orders.probe-value", _schema("a"))
            second_id = admin.register_schema("orders.probe-value", _schema("b"))
        assert second_id == first_id + 1
        assert f"cannot listen on 127.0.0.1:{running.port}" in str(second.exception)
        assert "mesh registry serve --port" in str(second.exception)
    finally:
        running.stop()
        store.close()


def test_serve_prints_the_url_to_export_and_stops_cleanly_on_sigterm(
    kafka: KafkaAddress,
) -> None:
    session = uuid.uuid4().hex[:8]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MESH_")},
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": "http://127.0.0.1:8081",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mesh")), "registry", "serve", "--port", "0",
            "--open-writes", "--topic", f"_mesh_registry-serve-{session}",
            "--writer-id", f"mesh-registry-serve-{session}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("export" in x for x in lines):
            lines.append(process.stderr.readline())
        listening = next(x for x in lines if x.startswith("registry listening on "))
        url = listening.split()[3]
        assert f"export MESH_REGISTRY_URL={url}\n" in lines
        with RegistryClient(url) as client:
            assert client.subjects() == []
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 0
    assert rest.splitlines()[-1] == "registry stopped"
