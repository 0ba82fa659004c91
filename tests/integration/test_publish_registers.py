"""Publishing a product of the local project makes it discoverable: open_publisher registers
its descriptor (after its schema and topic) when the registry's catalog lacks it, and a
governance refusal names the policy and the descriptor file. Real broker, real registry."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from mesh_stream.errors import (
    ConfigurationError,
    ProductNotFoundError,
    ProductRejectedError,
    SubjectNotFoundError,
)
from mesh_stream.producer import open_publisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "StockChange",
    "namespace": "com.example.orders",
    "doc": "A change of stock for one item.",
    "fields": [
        {"name": "item_id", "type": "string", "doc": "Id of the item; the Kafka key."},
        {"name": "quantity", "type": "int", "doc": "Units added (negative: removed)."},
    ],
}


def _project(root: Path, short: str, schema: dict[str, Any]) -> str:
    """A one-product project of the orders domain; the product's name."""
    name = f"orders.{short}"
    descriptor = {
        "name": name,
        "domain": "orders",
        "kind": "source-aligned",
        "description": "Stock changes, published from a service of the orders domain.",
        "owner": {"team": "checkout", "contact": "checkout@example.com"},
        "schema": f"schemas/orders/{short}.avsc",
        "key_field": "item_id",
        "partitions": 1,
        "slos": {"freshness_seconds": 60, "availability": 99.5},
        "classification": "internal",
    }
    (root / "domains/orders/products").mkdir(parents=True)
    (root / f"domains/orders/products/{short}.yaml").write_text(yaml.safe_dump(descriptor))
    (root / "schemas/orders").mkdir(parents=True)
    (root / f"schemas/orders/{short}.avsc").write_text(json.dumps(schema))
    (root / "mesh.yaml").write_text("domains: [orders]\n")
    return name


def _settings(kafka: KafkaAddress, registry: RegistryAddress, root: Path) -> MeshSettings:
    return MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_url=registry.url,
        registry_principal="orders",
        registry_token=SecretStr(registry.tokens["orders"]),
        project_root=root,
    )


def test_publishing_a_new_local_product_registers_its_descriptor(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    name = _project(tmp_path, f"stock-{uuid.uuid4().hex[:8]}", SCHEMA)
    settings = _settings(kafka, registry, tmp_path)
    with RegistryClient.from_settings(settings) as client:
        with pytest.raises(ProductNotFoundError):
            client.get_product(name)

        with open_publisher(name, settings=settings, registry=client) as publisher:
            publisher.publish({"item_id": "item-1", "quantity": 3})
        registered = client.get_product(name)
        assert registered["owner"] == {"team": "checkout", "contact": "checkout@example.com"}
        assert registered["registry"]["topic"] == f"{name}.v1"

        # Known now: a second publisher leaves the catalog's entry as it is.
        with open_publisher(name, settings=settings, registry=client) as publisher:
            publisher.publish({"item_id": "item-2", "quantity": -1})
        assert client.get_product(name) == registered


def test_a_governance_refusal_names_the_policy_and_the_file_and_writes_nothing(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    short = f"undocumented-{uuid.uuid4().hex[:8]}"
    undocumented = {**SCHEMA, "fields": [SCHEMA["fields"][0], {"name": "quantity", "type": "int"}]}
    name = _project(tmp_path, short, undocumented)
    settings = _settings(kafka, registry, tmp_path)
    # the registry judges the descriptor with its schema before the schema is registered
    with pytest.raises(ProductRejectedError) as refused:
        open_publisher(name, settings=settings)
    assert str(refused.value) == (
        f"domains/orders/products/{short}.yaml: the registry refused the descriptor of {name}: "
        "[documentation] StockChange.quantity: field StockChange.quantity has no doc (fix: Add "
        'a non-empty `"doc"` to the record or field in the `.avsc` shown.); fix the descriptor '
        "or its schema as shown (`mesh lint` checks the same policies) and publish again "
        "(HTTP 422, error_code 42211)"
    )
    assert refused.value.error_code == 42211
    _nothing_written(kafka, registry, tmp_path, name)


def test_mesh_publish_of_a_local_product_registers_its_descriptor_too(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    """`mesh publish` registered the schema and made the topic but left the catalog without
    the product, so other domains could not find it (a new team's campaign)."""
    from click.testing import CliRunner

    from mesh_stream.cli.main import cli

    name = _project(tmp_path, f"cli-{uuid.uuid4().hex[:8]}", SCHEMA)
    env = {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "orders",
        "MESH_REGISTRY_TOKEN": registry.tokens["orders"],
    }
    done = CliRunner().invoke(
        cli, ["publish", name, "--register-only", "--project", str(tmp_path)], env=env
    )
    assert done.exit_code == 0, done.output
    assert f"registered the descriptor of {name} in the catalog" in done.stderr
    with RegistryClient.from_settings(_settings(kafka, registry, tmp_path)) as client:
        registered = client.get_product(name)
    assert registered["owner"] == {"team": "checkout", "contact": "checkout@example.com"}
    assert registered["registry"]["topic"] == f"{name}.v1"


def test_mesh_publish_of_a_descriptor_the_registry_refuses_publishes_nothing(
    kafka: KafkaAddress,
    registry: RegistryAddress,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The registry's naming policy wants the schema in an orders/ folder; `mesh publish`
    says which file and policy, and no record reaches the topic."""
    from mesh_stream.cli.main import run

    short = f"misplaced-{uuid.uuid4().hex[:8]}"
    name = _project(tmp_path, short, SCHEMA)
    descriptor_file = tmp_path / f"domains/orders/products/{short}.yaml"
    descriptor = yaml.safe_load(descriptor_file.read_text())
    (tmp_path / "schemas/shared").mkdir()
    (tmp_path / f"schemas/orders/{short}.avsc").rename(tmp_path / f"schemas/shared/{short}.avsc")
    descriptor["schema"] = f"schemas/shared/{short}.avsc"
    descriptor_file.write_text(yaml.safe_dump(descriptor))
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"item_id": "item-1", "quantity": 1}) + "\n")
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("MESH_REGISTRY_URL", registry.url)
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "orders")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", registry.tokens["orders"])
    status = run(["publish", name, "-f", str(records), "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith(
        f"error: domains/orders/products/{short}.yaml: the registry refused the descriptor of "
        f"{name}: [naming] schema: "
    ), err
    _nothing_written(kafka, registry, tmp_path, name)


def test_a_descriptor_over_the_partition_bounds_writes_no_topic_it_could_not_shrink(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    """The registry judges the descriptor before the publisher makes the schema or the topic:
    a topic made with 60 partitions, then refused, could never be brought down to 6."""
    short = f"wide-{uuid.uuid4().hex[:8]}"
    name = _project(tmp_path, short, SCHEMA)
    descriptor_file = tmp_path / f"domains/orders/products/{short}.yaml"
    descriptor = yaml.safe_load(descriptor_file.read_text())
    descriptor_file.write_text(yaml.safe_dump({**descriptor, "partitions": 60}))
    settings = _settings(kafka, registry, tmp_path)
    with pytest.raises(ProductRejectedError) as refused:
        open_publisher(name, settings=settings)
    assert str(refused.value).startswith(
        f"domains/orders/products/{short}.yaml: the registry refused the descriptor of {name}: "
        "[partition-bounds] partitions: partitions 60 is outside"
    ), str(refused.value)
    _nothing_written(kafka, registry, tmp_path, name)


def test_a_replication_factor_the_cluster_cannot_have_is_refused_before_registering(
    kafka: KafkaAddress, registry: RegistryAddress, tmp_path: Path
) -> None:
    short = f"replicated-{uuid.uuid4().hex[:8]}"
    name = _project(tmp_path, short, SCHEMA)
    path = tmp_path / f"domains/orders/products/{short}.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "replication_factor": 3}))
    with pytest.raises(ConfigurationError) as refused:
        open_publisher(name, settings=_settings(kafka, registry, tmp_path))
    assert f"topic {name}.v1: replication_factor 3 needs at least 3 brokers" in str(refused.value)
    _nothing_written(kafka, registry, tmp_path, name)  # no schema registered for it either


def _nothing_written(kafka: KafkaAddress, registry: RegistryAddress, root: Path, name: str) -> None:
    """No descriptor, no schema and no topic of product ``name``."""
    client = RegistryClient.from_settings(_settings(kafka, registry, root))
    with client:
        with pytest.raises(ProductNotFoundError):
            client.get_product(name)
        with pytest.raises(SubjectNotFoundError):
            client.get_latest(f"{name}.v1-value")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert f"{name}.v1" not in topics
    assert f"{name}.v1.dlq" not in topics
