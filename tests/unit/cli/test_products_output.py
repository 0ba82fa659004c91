"""`mesh products list|lineage` text output: readable when piped, never silently empty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import descriptor, schema

LONG = "Orders as customers place them,\n  on every channel; " + "more words " * 20


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    running = RegistryServer(create_app(InMemoryStore()))
    address = running.start()
    with RegistryClient(address) as client:
        client.register_schema("orders.order-placed.v1-value", schema())
        client.put_product(descriptor(description=LONG))
    yield address
    running.stop()


def test_list_piped_prints_one_whole_line_per_product(url: str) -> None:
    result = CliRunner().invoke(cli, ["products", "list"], env={"MESH_REGISTRY_URL": url})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "\t".join(
            [
                "orders.order-placed",
                "no data",  # never measured by the product monitor
                "source-aligned",
                descriptor()["classification"],
                "orders.order-placed.v1",
                "version 1 (id 1)",  # the schema version, not the topic's major
                " ".join(LONG.split()),
            ]
        )
    ]
    assert result.stderr == "1 product(s)\n"


def test_lineage_of_a_lone_product_says_there_is_none(url: str) -> None:
    result = CliRunner().invoke(
        cli, ["products", "lineage", "orders.order-placed"], env={"MESH_REGISTRY_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "orders.order-placed",
        "├── upstream (built from)",
        "│   └── (none: a source product)",
        "└── downstream (feeds)",
        "    └── (none yet)",
    ]


@pytest.mark.parametrize("command", ["show", "lineage"])
@pytest.mark.parametrize("name", ["", "a/b", "../etc", "Orders.Placed", "orders"])
def test_a_name_that_cannot_be_a_product_is_refused_before_asking(
    url: str, command: str, name: str
) -> None:
    result = CliRunner().invoke(cli, ["products", command, name], env={"MESH_REGISTRY_URL": url})
    assert result.exit_code == 2
    assert (
        f"Invalid value for 'NAME': {name!r} is not a product name `<domain>.<product>`"
        in result.stderr
    )


@pytest.mark.parametrize("command", ["show", "lineage"])
def test_a_name_too_long_for_a_topic_is_refused_before_asking(url: str, command: str) -> None:
    """h50: a 302-character name went to the registry (exit 1, its 404) where a short bad
    name is a usage error."""
    name = "orders." + "a" * 295
    result = CliRunner().invoke(cli, ["products", command, name], env={"MESH_REGISTRY_URL": url})
    assert result.exit_code == 2
    assert "Invalid value for 'NAME': product name 'orders.aaaa" in result.stderr
    assert "has 302 characters; a product name has at most 240" in result.stderr


def test_an_unknown_kind_or_classification_is_a_usage_error(url: str) -> None:
    result = CliRunner().invoke(
        cli, ["products", "list", "--classification", "secret"], env={"MESH_REGISTRY_URL": url}
    )
    assert result.exit_code == 2
    assert "'secret' is not one of 'public', 'internal', 'confidential', 'pii'" in result.stderr
