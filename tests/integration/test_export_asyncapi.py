"""`mesh export asyncapi` and ``GET /products/{name}/asyncapi`` against a real registry (Kafka
store on the session broker, its own registry topic) holding the sample mesh: one valid
document per domain (the official JSON Schema and @asyncapi/parser), every field doc and PII
mark of the .avsc kept through the registry, the endpoint's Kafka server, an unknown product
as one error line, and a product not registered yet exported from its .avsc with a warning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mesh_stream.cli.main import run
from mesh_stream.project import load_project
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress
from tests.integration.sample_registry import sample_registry as registry_of_the_sample_mesh
from tests.unit.exports.test_asyncapi import asyncapi_problems, errors_of, field_marks

ROOT = Path(__file__).resolve().parents[2]
#: left unregistered: nothing is built from it, so the rest of the mesh registers without it
UNREGISTERED = "shipping.shipment-delivered"
ADMIN_TOKEN = "admin-secret"


@pytest.fixture(scope="module")
def sample_registry(kafka: KafkaAddress) -> Iterator[str]:
    """A registry on the session broker under its own topic, the sample mesh registered in
    it but :data:`UNREGISTERED`; yields its URL."""
    with registry_of_the_sample_mesh(
        kafka.bootstrap_servers, "export", leave_out={UNREGISTERED}
    ) as url:
        yield url


def mesh(
    args: list[str],
    url: str,
    kafka: KafkaAddress,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    monkeypatch.setenv("MESH_REGISTRY_URL", url)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("MESH_PROJECT_ROOT", str(ROOT))
    capsys.readouterr()
    code = run(["export", "asyncapi", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_asyncapi_of_the_sample_mesh(
    sample_registry: str,
    kafka: KafkaAddress,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # every registered product, one document per domain
    code, _, err = mesh(
        ["--all", "--output", str(tmp_path / "all")], sample_registry, kafka, monkeypatch, capsys
    )
    assert code == 0, err
    assert "warning" not in err
    files = sorted(p.name for p in (tmp_path / "all").iterdir())
    domains = ["analytics", "customers", "orders", "payments", "shipping"]
    assert files == [f"asyncapi-{d}.yaml" for d in domains]
    paths = [tmp_path / "all" / name for name in files]
    assert errors_of(asyncapi_problems(paths)) == {}
    project = load_project(ROOT)
    seen = set()
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["servers"]["kafka"]["host"] == kafka.bootstrap_servers
        assert document["servers"]["kafka"]["protocol"] == "kafka"
        for name, message in document["components"]["messages"].items():
            seen.add(name)
            descriptor = project.descriptor(name)
            assert descriptor is not None
            avsc = json.loads((ROOT / descriptor.schema_file).read_text(encoding="utf-8"))
            kept = set(map(repr, field_marks(message["payload"]["schema"])))
            assert set(map(repr, field_marks(avsc))) <= kept, name  # through the registry
            assert isinstance(message["x-mesh-schema-id"], int)
    assert len(seen) == 11
    assert UNREGISTERED not in seen

    # the registry's own endpoint: the same product, the Kafka cluster it runs on
    with RegistryClient(sample_registry) as client:
        latest = client.get_latest("customers.customer-profile.v1-value")
    answer = httpx.get(f"{sample_registry}/products/customers.customer-profile/asyncapi")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    assert document["servers"]["kafka"]["host"] == kafka.bootstrap_servers
    message = document["components"]["messages"]["customers.customer-profile"]
    assert message["x-mesh-schema-id"] == latest.schema_id
    assert message["bindings"]["kafka"]["schemaLookupStrategy"] == "TopicIdStrategy"
    emails = [f for f in message["payload"]["schema"]["fields"] if f["name"] == "email"]
    assert emails[0]["pii"] is True

    # an unknown product: one error line naming it
    code, out, err = mesh(["orders.no-such-product"], sample_registry, kafka, monkeypatch, capsys)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert "orders.no-such-product" in err

    # a product not registered yet: exported from the project's .avsc, with a warning
    code, _, err = mesh(
        [UNREGISTERED, "--per-product", "--output", str(tmp_path / "one")],
        sample_registry,
        kafka,
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert f"warning: {UNREGISTERED}: not registered in the registry; exported from" in err
    path = tmp_path / "one" / f"asyncapi-{UNREGISTERED}.yaml"
    local = yaml.safe_load(path.read_text(encoding="utf-8"))
    message = local["components"]["messages"][UNREGISTERED]
    assert message["x-mesh-schema-id"] is None
    assert local["info"]["version"] == "1.0.0"
    assert errors_of(asyncapi_problems([path], parse=False)) == {}
