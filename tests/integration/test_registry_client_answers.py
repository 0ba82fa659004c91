"""`mesh monitor --once` on the real broker against a registry answering JSON of another
shape, and a credential too long for a header against the real registry (Kafka store): one
line naming what is wrong, exit 1, no traceback (hostile-input campaign; the unit tests in
tests/unit/registry/test_client_answers.py cover every client call without a broker)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.cli.main import run
from tests.conftest import KafkaAddress, RegistryAddress
from tests.registry_stubs import answering
from tests.unit.registry.test_client_answers import HUGE, TAIL

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _sample(**changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "domains/orders/products/order-placed.yaml").read_text())
    assert isinstance(document, dict)
    return {**document, **changes}


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        ({"products": []}, "an object, not a list"),
        (
            [_sample(registry={"consumers": "billing"})],
            "a string at [0].registry.consumers, not a list",
        ),
    ],
    ids=["object", "consumers"],
)
def test_monitor_once_names_the_registry_s_wrong_answer(
    kafka: KafkaAddress, answer: Any, found: str
) -> None:
    session = uuid.uuid4().hex[:8]
    with answering({"/products": answer}) as url:
        done = subprocess.run(
            [sys.executable, "-m", "mesh_stream.cli.main", "monitor", "--once"],
            env={
                **os.environ,
                "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "MESH_REGISTRY_URL": url,
                "MESH_HEALTH_TOPIC": f"_mesh_health-{session}",
                "MESH_ALERTS_TOPIC": f"_mesh_alerts-{session}",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line == f"error: registry at {url} answered GET /products with {found}{TAIL}"


def test_a_token_too_long_for_a_header_is_named_by_the_real_registry_s_refusal(
    registry: RegistryAddress, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESH_REGISTRY_URL", registry.url)
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "admin")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", "Zq" * (HUGE // 2))
    monkeypatch.delenv("MESH_DEBUG", raising=False)
    assert run(["registry", "credentials", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith(
        f"error: GET {registry.url}/admin/credentials: the registry refused the request ("
    )
    assert "MESH_REGISTRY_TOKEN (or --token) is 200,000 bytes long" in line
    assert "unreachable" not in line
    assert "ZqZq" not in err
