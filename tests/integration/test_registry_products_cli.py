"""`mesh products list|show|lineage` against the running registry."""

from __future__ import annotations

import json
import uuid
from typing import Any

from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.registry.client import RegistryClient
from tests.conftest import RegistryAddress


def _schema(name: str) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "cli",
        "doc": f"The {name} record.",
        "fields": [{"name": "parcel_id", "type": "string", "doc": "Tracking number."}],
    }


def _descriptor(name: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": f"Events of {name} for the CLI test.",
        "owner": {"team": "logistics", "contact": "logistics@example.com"},
        "schema": f"schemas/{name.split('.', maxsplit=1)[0]}/x.avsc",
        "slos": {"freshness_seconds": 30, "availability": 99.0},
        "classification": "internal",
        "tags": ["cli-test"],
    }
    document.update(changes)
    return document


def test_products_cli_lists_shows_and_follows_lineage(registry: RegistryAddress) -> None:
    suffix = uuid.uuid4().hex[:6]
    source = f"shipping.parcel-{suffix}"
    derived = f"analytics.parcel-stats-{suffix}"
    with RegistryClient(registry.url, principal="admin", token=registry.admin_token) as admin:
        admin.register_schema(f"{source}.v1-value", _schema("Parcel"))
        admin.register_schema(f"{derived}.v1-value", _schema("ParcelStats"))
        admin.put_product(_descriptor(source, tags=["cli-test", suffix]))
        admin.put_product(
            _descriptor(derived, kind="aggregate", inputs=[source], tags=["cli-test", suffix])
        )
    runner = CliRunner()
    env = {"MESH_REGISTRY_URL": registry.url}

    listed = runner.invoke(cli, ["products", "list", "--tag", suffix, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [p["name"] for p in json.loads(listed.stdout)] == [derived, source]

    kind = runner.invoke(
        cli, ["products", "list", "--tag", suffix, "--kind", "aggregate", "--json"], env=env
    )
    assert [p["name"] for p in json.loads(kind.stdout)] == [derived]
    query = runner.invoke(cli, ["products", "list", "-q", "tracking", "--tag", suffix], env=env)
    assert query.exit_code == 0
    assert source in query.stdout
    assert derived in query.stdout

    shown = runner.invoke(cli, ["products", "show", source, "--json"], env=env)
    document = json.loads(shown.stdout)
    assert document["registry"]["topic"] == f"{source}.v1"
    assert document["registry"]["downstream"] == [derived]

    lineage = runner.invoke(cli, ["products", "lineage", derived, "--json"], env=env)
    assert json.loads(lineage.stdout)["upstream"] == [source]
    tree = runner.invoke(cli, ["products", "lineage", source], env=env)
    assert tree.exit_code == 0
    assert derived in tree.stdout

    missing = runner.invoke(cli, ["products", "show", f"shipping.none-{suffix}"], env=env)
    assert missing.exit_code != 0
    assert isinstance(missing.exception, Exception)
    assert f"Product 'shipping.none-{suffix}' not found" in str(missing.exception)
