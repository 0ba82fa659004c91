"""`mesh export datahub` and `mesh export openlineage` over the sample mesh in a real registry.

The sample products are registered into a registry of its own; the DataHub file of all twelve
goes through DataHub's own CLI (`datahub check metadata-file`, from `make datahub-tools`),
which parses every proposal with DataHub's aspect models; the OpenLineage file has one
static-lineage event per derived product.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli, run
from mesh_stream.project import load_project
from mesh_stream.up.plan import topological
from tests.browser.portal import TOKENS
from tests.conftest import KafkaAddress, RegistryAddress
from tests.integration.sample_registry import sample_registry as registry_of_the_sample_mesh

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
DATAHUB = REPO / ".tools" / "datahub" / "bin" / "datahub"


@pytest.fixture(scope="module")
def registry(kafka: KafkaAddress) -> Iterator[RegistryAddress]:
    """A registry of its own holding the sample mesh (the session registry is shared with
    tests that register sample product names their own way)."""
    with registry_of_the_sample_mesh(kafka.bootstrap_servers, "datahub") as url:
        yield RegistryAddress(url, TOKENS["admin"], dict(TOKENS))


@pytest.fixture(scope="module")
def sample_names(registry: RegistryAddress) -> list[str]:
    del registry  # every sample product is registered in it
    return [p.name for p in topological(load_project(REPO).descriptors())]


def _env(registry: RegistryAddress, kafka: KafkaAddress) -> dict[str, str]:
    return {
        "MESH_REGISTRY_URL": registry.url,
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_PROJECT_ROOT": str(REPO),
    }


def test_datahub_file_of_the_sample_mesh_passes_datahubs_check(
    registry: RegistryAddress, kafka: KafkaAddress, sample_names: list[str], tmp_path: Path
) -> None:
    if not DATAHUB.exists():
        pytest.fail(f"{DATAHUB} is missing: run `make datahub-tools`")
    result = CliRunner().invoke(
        cli,
        ["export", "datahub", *sample_names, "--output", str(tmp_path)],
        env=_env(registry, kafka),
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "datahub-mcps.json"
    mcps: list[dict[str, Any]] = json.loads(path.read_text())
    datasets = {m["entityUrn"] for m in mcps if m["entityType"] == "dataset"}
    assert len(datasets) == len(sample_names) == 12
    # registered: the registry's schema version and id are in the properties
    (props,) = [
        m["aspect"]["json"]
        for m in mcps
        if m["aspectName"] == "datasetProperties" and "orders.order-placed.v1" in m["entityUrn"]
    ]
    assert int(props["customProperties"]["schema.id"]) > 0
    checked = subprocess.run(
        [str(DATAHUB), "check", "metadata-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert f"{len(mcps)} MCEs found - all valid" in checked.stdout + checked.stderr


def test_openlineage_file_is_the_sample_meshs_static_lineage(
    registry: RegistryAddress, kafka: KafkaAddress, sample_names: list[str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        ["export", "openlineage", "analytics.customer-360", "--output", str(tmp_path)],
        env=_env(registry, kafka),
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "openlineage.jsonl").read_text().splitlines()
    (event,) = [json.loads(line) for line in lines]
    namespace = f"kafka://{kafka.bootstrap_servers.split(',', maxsplit=1)[0]}"
    assert event["job"]["name"] == "analytics.customer-360"
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (namespace, "customers.customer-profile.v1"),
        (namespace, "customers.engagement-event.v1"),
        (namespace, "orders.order-placed.v1"),
    ]
    # the inputs were looked up too: their registered schemas describe them
    assert all(d["facets"]["schema"]["fields"] for d in event["inputs"])
    assert "columnLineage" in event["outputs"][0]["facets"]


def test_an_unknown_product_is_one_line_naming_it(
    registry: RegistryAddress,
    kafka: KafkaAddress,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in _env(registry, kafka).items():
        monkeypatch.setenv(name, value)
    for command in ("datahub", "openlineage"):
        assert run(["export", command, "nowhere.no-such-product"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("error: ")
        assert "nowhere.no-such-product" in lines[0]


def test_lineage_of_source_products_only_is_an_error_and_writes_nothing(
    registry: RegistryAddress,
    kafka: KafkaAddress,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A source product has no inputs: the export wrote an empty openlineage.jsonl (over any
    file already there) and exited 0 with a warning."""
    for name, value in _env(registry, kafka).items():
        monkeypatch.setenv(name, value)
    earlier = tmp_path / "openlineage.jsonl"
    earlier.write_text("{}\n")
    args = ["export", "openlineage", "orders.order-placed", "--output", str(tmp_path)]
    assert run(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "error: no lineage to export: none of orders.order-placed is built from other "
        "products (no inputs); name an aggregate product, or see `mesh products lineage`; "
        "nothing written"
    ]
    assert earlier.read_text() == "{}\n"


def test_gms_url_sends_the_proposals_with_the_token_never_printed(
    registry: RegistryAddress,
    kafka: KafkaAddress,
    sample_names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    received: list[tuple[str, str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers["Authorization"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    gms = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=gms.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    for name, value in _env(registry, kafka).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MESH_DATAHUB_TOKEN", "dh-token-42")
    try:
        url = f"http://127.0.0.1:{gms.server_address[1]}"
        assert run(["export", "datahub", "orders.order-placed", "--gms-url", url]) == 0
    finally:
        gms.shutdown()
        gms.server_close()
    captured = capsys.readouterr()
    assert "dh-token-42" not in captured.out + captured.err
    assert f"sent {len(received)} proposals to {url}" in captured.err
    assert {(path, auth) for path, auth, _ in received} == {
        ("/aspects?action=ingestProposal", "Bearer dh-token-42")
    }
    urns = {body["proposal"]["entityUrn"] for _, _, body in received}
    assert urns == {
        "urn:li:domain:orders",
        "urn:li:dataset:(urn:li:dataPlatform:kafka,orders.order-placed.v1,PROD)",
        "urn:li:dataProduct:orders.order-placed",
    }
