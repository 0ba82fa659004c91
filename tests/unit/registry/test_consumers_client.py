"""Registered consumers from the outside, over a served in-process registry: the client's
methods, `mesh products consumers`, and `mesh lint --against-registry` naming a group whose
field a local schema drops."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli
from mesh_stream.consumer import ProductConsumer, _reads_by_product
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    ConfigurationError,
    ConsumerNotFoundError,
    InvalidConsumerError,
    PermissionDeniedError,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import TOKENS

REPO = Path(__file__).resolve().parents[3]
PLACED = "orders.order-placed"
SUBJECT = f"{PLACED}.v1-value"
SCHEMA = REPO / "schemas" / "orders" / "order-placed.avsc"


def _sample_descriptor() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "domains/orders/products/order-placed.yaml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture
def url() -> Iterator[str]:
    """A served registry holding the sample orders.order-placed (BACKWARD)."""
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    address = running.start()
    with RegistryClient(address, principal="orders", token=TOKENS["orders"]) as orders:
        orders.register_schema(SUBJECT, SCHEMA.read_text())
        orders.put_product(_sample_descriptor())
    yield address
    running.stop()


def _as(url: str, domain: str) -> RegistryClient:
    return RegistryClient(url, principal=domain, token=TOKENS[domain])


def test_the_client_registers_lists_and_unregisters(url: str) -> None:
    with _as(url, "payments") as payments, _as(url, "orders") as orders:
        done = payments.register_consumer(
            PLACED, "payments.billing.v2", reads=["total_amount"], contact="billing@example.com"
        )
        assert (done["group"], done["owner"], done["reads"]) == (
            "payments.billing.v2",
            "payments",
            ["total_amount"],
        )
        assert [c["group"] for c in orders.consumers(PLACED)] == ["payments.billing.v2"]
        with pytest.raises(PermissionDeniedError, match=r"name your group `orders\.…`"):
            orders.register_consumer(PLACED, "payments.billing.v2")
        with pytest.raises(InvalidConsumerError, match=r"reads\[0\]: 'nope' is not a top-level"):
            payments.register_consumer(PLACED, "payments.billing.v2", reads=["nope"])
        with pytest.raises(InvalidConsumerError, match=r"group: '\.\.' cannot be registered"):
            payments.register_consumer(PLACED, "..")
        payments.unregister_consumer(PLACED, "payments.billing.v2")
        with pytest.raises(ConsumerNotFoundError, match="registered: none"):
            payments.unregister_consumer(PLACED, "payments.billing.v2")
        assert orders.consumers(PLACED) == []


def _mesh(url: str, *args: str, domain: str = "payments") -> Any:
    return CliRunner().invoke(
        cli,
        list(args),
        env={
            "MESH_REGISTRY_URL": url,
            "MESH_REGISTRY_PRINCIPAL": domain,
            "MESH_REGISTRY_TOKEN": TOKENS[domain],
        },
    )


def test_mesh_products_consumers_registers_lists_and_unregisters(url: str) -> None:
    added = _mesh(
        url,
        "products",
        "consumers",
        PLACED,
        "--register",
        "payments.billing",
        "--reads",
        "order_id, region",
    )
    assert added.exit_code == 0, added.output
    assert (
        "registered consumer group payments.billing on orders.order-placed (owner payments, reads "
        "order_id, region)"
    ) in added.stderr
    listed = _mesh(url, "products", "consumers", PLACED, "--json")
    [row] = json.loads(listed.stdout)
    assert (row["group"], row["owner"], row["reads"]) == (
        "payments.billing",
        "payments",
        ["order_id", "region"],
    )
    table = _mesh(url, "products", "consumers", PLACED)
    assert "payments.billing" in table.stdout
    assert "1 consumer group(s)" in table.stderr
    refused = _mesh(
        url, "products", "consumers", PLACED, "--register", "payments.billing", domain="orders"
    )
    assert refused.exit_code != 0
    assert "name your group `orders.…`" in str(refused.exception or refused.output)
    gone = _mesh(url, "products", "consumers", PLACED, "--unregister", "payments.billing", "--json")
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.stdout) == []
    misuse = _mesh(url, "products", "consumers", PLACED, "--reads", "order_id")
    assert misuse.exit_code == 2
    assert "--reads, --contact and --description go with --register GROUP" in misuse.output


def test_lint_against_the_registry_names_a_registered_group_whose_field_goes(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _as(url, "payments") as payments:
        payments.register_consumer(PLACED, "payments.billing", reads=["region"])
    products = tmp_path / "domains" / "orders" / "products"
    products.mkdir(parents=True)
    (products / "order-placed.yaml").write_text(yaml.safe_dump(_sample_descriptor()))
    (tmp_path / "schemas" / "orders").mkdir(parents=True)
    local = tmp_path / "schemas" / "orders" / "order-placed.avsc"
    shutil.copy(SCHEMA, local)
    (tmp_path / "mesh.yaml").write_text("domains: [orders]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    document = json.loads(local.read_text())
    document["fields"] = [f for f in document["fields"] if f["name"] != "region"]
    local.write_text(json.dumps(document, indent=2))

    result = _mesh(url, "lint", "--against-registry", "--json", domain="orders")

    assert result.exit_code == 1, result.output
    violations = json.loads(result.stdout)["violations"]
    lineage = [v for v in violations if "registered reads" in v["message"]]
    assert [v["message"] for v in lineage] == [
        f"{SUBJECT}: consumer group 'payments.billing' (owner payments) reads field region "
        f"(registered reads), which the new version removes"
    ]
    assert lineage[0]["policy"] == "compatibility-with-consumers"
    assert lineage[0]["why"].startswith(
        "consumer group 'payments.billing' (owner payments) registered"
    )
    assert lineage[0]["fix"].startswith("keep the field and its type")


def test_reads_are_given_per_product_or_as_a_list_for_one() -> None:
    assert _reads_by_product(None, ["a.b"]) == {}
    assert _reads_by_product(["x", "y"], ["a.b"]) == {"a.b": ["x", "y"]}
    assert _reads_by_product({"a.c": ["z"]}, ["a.b", "a.c"]) == {"a.c": ["z"]}
    with pytest.raises(ConfigurationError, match="give a mapping of product name to fields"):
        _reads_by_product(["x"], ["a.b", "a.c"])
    with pytest.raises(ConfigurationError, match=r"reads='x' is a string; give a list"):
        _reads_by_product("x", ["a.b"])
    with pytest.raises(ConfigurationError, match=r"reads names a\.z, which this consumer does not"):
        _reads_by_product({"a.z": []}, ["a.b"])


def _consumer(registry: RegistryClient, **options: Any) -> ProductConsumer:
    """A consumer of the sample orders.order-placed that never reaches Kafka (nothing is
    consumed: registration happens at construction)."""
    product = DataProduct.model_validate(_sample_descriptor())
    return ProductConsumer(
        [product],
        group_id="payments.billing",
        bootstrap_servers="127.0.0.1:9",
        registry=registry,
        from_beginning=True,
        **options,
    )


def test_the_sdk_consumer_registers_its_group_best_effort(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with _as(url, "payments") as payments:
        with _consumer(payments, reads=["order_id"], register=False) as silent:
            assert silent.registered == ()
        assert payments.consumers(PLACED) == []
        with _consumer(payments, register=True) as everywhere:
            assert everywhere.registered == (PLACED,)
        assert [(c["group"], c["reads"]) for c in payments.consumers(PLACED)] == [
            ("payments.billing", [])
        ]
        with _consumer(payments, reads=["order_id"]) as reading:
            assert reading.registered == (PLACED,)
        assert payments.consumers(PLACED)[0]["reads"] == ["order_id"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with (
        caplog.at_level(logging.WARNING, logger="mesh_stream.consumer"),
        RegistryClient(down) as unreachable,
        _consumer(unreachable, reads=["order_id"]) as consumer,
    ):
        assert consumer.registered == ()
    assert (
        f"consumer group payments.billing is not registered on product {PLACED} (registry at "
        f"{down} is unreachable"
    ) in caplog.text
    assert (
        f"`mesh products consumers {PLACED} --register payments.billing --reads order_id` once "
        f"the registry answers"
    ) in caplog.text
    caplog.clear()
    with (  # refused for what it asked: the same command is not suggested again (h34)
        caplog.at_level(logging.WARNING, logger="mesh_stream.consumer"),
        _as(url, "payments") as payments,
        _consumer(payments, reads=["no_such_field"]) as refused,
    ):
        assert refused.registered == ()
    assert "fix what the registry says (the group's name or `reads`)" in caplog.text
    assert "--reads no_such_field" not in caplog.text
