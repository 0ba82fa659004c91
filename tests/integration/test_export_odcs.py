"""`mesh export odcs` against a real registry holding the sample mesh (its own registry topic
on the session broker): 12 contracts that datacontract-cli lints clean, built from the
registered schemas (version, schema id, a field only the second version has, PII marks), and
an unknown product is a one-line error naming it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli, run
from mesh_stream.registry.client import RegistryClient
from tests.browser.portal import DIFF_FIELD, DIFF_PRODUCT
from tests.conftest import KafkaAddress
from tests.integration.sample_registry import sample_registry as registry_of_the_sample_mesh

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "datacontract" / "bin"
CHECK = ROOT / "tools" / "datacontract" / "check_odcs.py"


@pytest.fixture(scope="module")
def sample_registry(kafka: KafkaAddress) -> Iterator[str]:
    """A registry on its own topic with the 12 sample products registered."""
    with registry_of_the_sample_mesh(kafka.bootstrap_servers, "odcs") as url:
        yield url


def test_export_odcs_all_writes_contracts_datacontract_lints(
    sample_registry: str, kafka: KafkaAddress, tmp_path: Path
) -> None:
    if not (TOOLS / "datacontract").exists():
        pytest.fail(f"{TOOLS / 'datacontract'} is missing: run `make odcs-tools`")
    env = {"MESH_REGISTRY_URL": sample_registry, "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "odcs", "--all", "--output", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.odcs.yaml"))
    assert len(files) == 12
    assert "warning" not in result.stderr  # every product is registered

    # what `datacontract lint` runs, for all 12 in one process; then the CLI itself on one
    linted = subprocess.run(
        [str(TOOLS / "python"), str(CHECK), "lint", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout.count("ok ") == 12
    placed = tmp_path / f"{DIFF_PRODUCT}.odcs.yaml"
    cli_lint = subprocess.run(
        [str(TOOLS / "datacontract"), "lint", str(placed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli_lint.returncode == 0, cli_lint.stdout + cli_lint.stderr
    assert "valid against ODCS v3.2.0" in cli_lint.stdout

    contract = yaml.safe_load(placed.read_text(encoding="utf-8"))
    with RegistryClient(sample_registry) as client:
        latest = client.get_latest(f"{DIFF_PRODUCT}.v1-value")
    assert latest.version == 2
    assert (contract["version"], contract["status"]) == ("2.0.0", "active")
    facts = {item["property"]: item["value"] for item in contract["customProperties"]}
    assert facts["schemaId"] == latest.schema_id
    assert facts["compatibility"] is not None
    fields = {p["name"]: p for p in contract["schema"][0]["properties"]}
    assert fields[DIFF_FIELD]["required"] is False  # only the registered version 2 has it
    assert contract["servers"][0]["host"] == kafka.bootstrap_servers

    profile = yaml.safe_load(
        (tmp_path / "customers.customer-profile.odcs.yaml").read_text(encoding="utf-8")
    )
    pii = sorted(
        p["name"] for p in profile["schema"][0]["properties"] if "pii" in p.get("tags", [])
    )
    assert pii == ["email", "full_name", "phone"]

    # without --output: every contract on standard output, one YAML document each
    both = runner.invoke(
        cli, ["export", "odcs", DIFF_PRODUCT, "customers.customer-profile"], env=env
    )
    assert both.exit_code == 0, both.output
    assert list(yaml.safe_load_all(both.stdout)) == [contract, profile]

    # the registry's endpoint answers the same contract
    answer = httpx.get(f"{sample_registry}/products/{DIFF_PRODUCT}/odcs", timeout=10)
    assert answer.status_code == 200, answer.text
    served = (
        answer.json() if "json" in answer.headers["content-type"] else yaml.safe_load(answer.text)
    )
    assert served == contract


def test_export_odcs_unknown_product_is_one_line_naming_it(
    sample_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MESH_REGISTRY_URL", sample_registry)
    monkeypatch.delenv("MESH_DEBUG", raising=False)
    status = run(["export", "odcs", "orders.no-such-thing", "--output", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "orders.no-such-thing" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_export_odcs_of_a_product_not_registered_is_a_draft_from_its_avsc(
    sample_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A product of the local project the registry does not know: exported from its .avsc,
    version 0.0.0, status draft, with warnings on stderr; the contract is still valid."""
    project = tmp_path / "project"
    (project / "domains" / "orders" / "products").mkdir(parents=True)
    (project / "schemas" / "orders").mkdir(parents=True)
    (project / "mesh.yaml").write_text("name: drafts\ndomains: [orders]\n", encoding="utf-8")
    descriptor = yaml.safe_load(
        (ROOT / "domains" / "orders" / "products" / "order-placed.yaml").read_text("utf-8")
    )
    descriptor.update(name="orders.order-drafted", schema="schemas/orders/order-drafted.avsc")
    (project / "domains" / "orders" / "products" / "order-drafted.yaml").write_text(
        yaml.safe_dump(descriptor), encoding="utf-8"
    )
    (project / "schemas" / "orders" / "order-drafted.avsc").write_text(
        (ROOT / "schemas" / "orders" / "order-placed.avsc").read_text("utf-8"), encoding="utf-8"
    )
    monkeypatch.setenv("MESH_PROJECT_ROOT", str(project))
    output = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["export", "odcs", "orders.order-drafted", "--output", str(output)],
        env={"MESH_REGISTRY_URL": sample_registry},
    )
    assert result.exit_code == 0, result.output
    assert "warning: orders.order-drafted: not registered in the registry" in result.stderr
    assert "contract version 0.0.0" in result.stderr
    contract = yaml.safe_load((output / "orders.order-drafted.odcs.yaml").read_text("utf-8"))
    assert (contract["version"], contract["status"]) == ("0.0.0", "draft")
    assert contract["schema"][0]["physicalName"] == "orders.order-drafted.v1"
    checked = subprocess.run(
        [
            str(TOOLS / "python"),
            str(CHECK),
            "schema",
            str(output / "orders.order-drafted.odcs.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
