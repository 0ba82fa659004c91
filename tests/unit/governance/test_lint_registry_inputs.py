"""`mesh lint` in a domain repository looks inputs from other domains' repositories up in the
registry (MESH_REGISTRY_URL); when the registry cannot be reached such an input is a warning
(unverified), not an error, so the scaffolded CI job passes for a processor product."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.cli.lint import NOT_VERIFIED
from mesh_stream.cli.main import cli
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.scaffold import scaffold
from tests.unit.governance.conftest import silent_registry
from tests.unit.registry.conftest import descriptor

TOTALS = """\
name: inventory.item-totals
domain: inventory
kind: aggregate
description: Total quantity per item, from the orders domain's stock events.
owner: {team: inventory-team, contact: inventory-team@example.com}
schema: schemas/inventory/item-totals.avsc
key_field: item_id
slos: {freshness_seconds: 60, availability: 99.5}
classification: internal
inputs: [orders.stock-event]
"""
TOTALS_SCHEMA = {
    "type": "record",
    "name": "ItemTotals",
    "namespace": "com.example.inventory",
    "doc": "Totals of one item.",
    "fields": [
        {"name": "item_id", "type": "string", "doc": "Id of the item; the Kafka key."},
        {"name": "total", "type": "long", "doc": "Sum of the quantities."},
    ],
}
STOCK_SCHEMA = {
    "type": "record",
    "name": "StockEvent",
    "doc": "A change of stock.",
    "fields": [{"name": "item_id", "type": "string", "doc": "Id of the item."}],
}


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    """A real registry (in-memory store) that holds the orders domain's orders.stock-event."""
    running = RegistryServer(create_app(InMemoryStore()))
    address = running.start()
    with RegistryClient(address) as client:
        client.register_schema("orders.stock-event.v1-value", json.dumps(STOCK_SCHEMA))
        client.put_product(
            descriptor("orders.stock-event", schema="schemas/orders/stock-event.avsc")
        )
    yield address
    running.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The inventory domain's repository with a product built on orders.stock-event, whose
    YAML lives in the orders domain's repository only."""
    root = scaffold("inventory", tmp_path / "inventory").root
    (root / "domains/inventory/products/item-totals.yaml").write_text(TOTALS)
    (root / "schemas/inventory/item-totals.avsc").write_text(json.dumps(TOTALS_SCHEMA))
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return root


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the probe is closed


def _lint(root: Path, url: str) -> tuple[int, dict[str, object], str]:
    result = CliRunner().invoke(cli, ["lint", str(root), "--json"], env={"MESH_REGISTRY_URL": url})
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_an_input_registered_by_another_domain_passes(project: Path, registry_url: str) -> None:
    status, report, _stderr = _lint(project, registry_url)
    assert status == 0, report
    assert report["violations"] == []


def test_an_input_the_registry_does_not_hold_is_an_error(project: Path, registry_url: str) -> None:
    totals = project / "domains/inventory/products/item-totals.yaml"
    totals.write_text(TOTALS.replace("orders.stock-event", "orders.no-such-event"))
    status, report, _stderr = _lint(project, registry_url)
    assert status == 1
    [violation] = report["violations"]  # type: ignore[misc]
    assert (violation["policy"], violation["severity"], violation["line"]) == (
        "inputs-exist",
        "error",
        10,
    )
    assert violation["message"] == "input 'orders.no-such-event' is not a product of the mesh"


def test_with_the_registry_unreachable_the_input_is_an_unverified_warning(
    project: Path,
) -> None:
    url = _closed_port_url()
    status, report, stderr = _lint(project, url)
    assert status == 0, report
    [violation] = report["violations"]  # type: ignore[misc]
    assert (violation["policy"], violation["severity"], violation["field"]) == (
        "inputs-exist",
        "warning",
        "inputs[0]",
    )
    assert violation["message"] == (
        f"input 'orders.stock-event' is not in this repository and could not be verified: the "
        f"registry at {url} is unreachable; start it (`mesh registry serve`) or set "
        f"MESH_REGISTRY_URL to the mesh's registry"
    )
    assert (
        f"{NOT_VERIFIED}: the registry at {url} is unreachable; "
        "start it (`mesh registry serve`) or set MESH_REGISTRY_URL to the mesh's registry"
    ) in stderr


def test_a_registry_that_never_answers_is_not_called_unreachable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It accepted the connection: "unreachable" sent the author to start a running registry."""
    from mesh_stream.cli import lint as lint_cli

    monkeypatch.setattr(lint_cli, "LOOKUP_TIMEOUT", 0.3)
    with silent_registry() as url:
        status, report, stderr = _lint(project, url)
    assert status == 0, report
    assert (
        f"{NOT_VERIFIED}: the registry at {url} accepted the "
        f"connection but did not answer GET /products/orders.stock-event within 0.3 s; it is "
        f"up but busy or stuck"
    ) in stderr
    assert "is unreachable" not in stderr


def test_a_local_input_needs_no_registry(project: Path) -> None:
    """Inputs the repository holds are never looked up: no warning without a registry."""
    totals = project / "domains/inventory/products/item-totals.yaml"
    totals.write_text(TOTALS.replace("orders.stock-event", "inventory.example-event"))
    status, report, stderr = _lint(project, _closed_port_url())
    assert status == 0, report
    assert report["violations"] == []
    assert "not verified" not in stderr
