"""`mesh products show` lists the registered schema's fields: name, type, pii, doc."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import descriptor

SCHEMA = {
    "type": "record",
    "name": "Profile",
    "doc": "A customer.",
    "fields": [
        {"name": "customer_id", "type": "string", "doc": "Id of the customer."},
        {"name": "email", "type": "string", "doc": "Where to write to.", "pii": True},
        {
            "name": "address",
            "doc": "Postal address.",
            "type": {
                "type": "record",
                "name": "Address",
                "doc": "An address.",
                "fields": [{"name": "city", "type": "string", "doc": "City.", "pii": True}],
            },
        },
    ],
}


NOTES = {
    "type": "record",
    "name": "Note",
    "fields": [{"name": "amount", "type": "long", "doc": "amount [cents], closing [/b]"}],
}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    running = RegistryServer(create_app(InMemoryStore()))
    address = running.start()
    with RegistryClient(address) as client:
        client.register_schema("customers.profile.v1-value", json.dumps(SCHEMA))
        client.put_product(
            descriptor(
                "customers.profile",
                schema="schemas/customers/profile.avsc",
                classification="pii",
                key_field="customer_id",
            )
        )
        client.register_schema("customers.notes.v1-value", json.dumps(NOTES))
        client.put_product(
            descriptor(
                "customers.notes",
                schema="schemas/customers/notes.avsc",
                description="Notes [/x] in [brackets]",
            )
        )
    yield address
    running.stop()


def test_show_json_lists_every_field_nested_ones_by_path(url: str) -> None:
    result = CliRunner().invoke(
        cli, ["products", "show", "customers.profile", "--json"], env={"MESH_REGISTRY_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fields"] == [
        {"name": "customer_id", "type": "string", "doc": "Id of the customer.", "pii": False},
        {"name": "email", "type": "string", "doc": "Where to write to.", "pii": True},
        {"name": "address", "type": "Address", "doc": "Postal address.", "pii": False},
        {"name": "address.city", "type": "string", "doc": "City.", "pii": True},
    ]


def test_show_prints_a_fields_table(url: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["products", "show", "customers.profile"],
        env={"MESH_REGISTRY_URL": url, "COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "schema fields (version 1)" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "Where to write to." in line]
    assert len(rows) == 1
    assert [cell.strip() for cell in rows[0].strip("│ ").split("│")] == [
        "email", "string", "pii", "Where to write to."
    ]  # fmt: skip


def test_show_prints_descriptions_and_docs_with_brackets_as_written(url: str) -> None:
    """rich took `[cents]` for markup and dropped it; `[/x]` raised MarkupError (exit 70)."""
    result = CliRunner().invoke(
        cli,
        ["products", "show", "customers.notes"],
        env={"MESH_REGISTRY_URL": url, "COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "Notes [/x] in [brackets]" in result.stdout
    assert "amount [cents], closing [/b]" in result.stdout
