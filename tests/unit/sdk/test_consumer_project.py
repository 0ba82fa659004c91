"""ProductConsumer resolves product names like open_publisher: the project (root, else
MESH_PROJECT_ROOT through the settings, else the nearest mesh.yaml upwards) with the folders
its mesh.yaml names, else the registry; never a fixed ``./domains``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import ProductNotFoundError, ProjectNotFoundError
from mesh_stream.settings import MeshSettings

NAME = "inventory.stock-level"
DESCRIPTOR: dict[str, Any] = {
    "name": NAME,
    "domain": "inventory",
    "kind": "source-aligned",
    "description": "Stock per item.",
    "owner": {"team": "inventory-team", "contact": "inventory@example.com"},
    "schema": "contracts/inventory/stock-level.avsc",
    "key_field": "item_id",
    "partitions": 2,
    "slos": {"freshness_seconds": 60, "availability": 99.0},
    "classification": "internal",
}


class Catalog:
    """The registry's product catalog: knows ``NAME`` with 7 partitions (unlike the local
    descriptor's 2), so a test can tell which one was used."""

    url = "http://registry.test"

    def __init__(self, known: bool = True) -> None:
        self.known = known
        self.asked: list[str] = []

    def get_schema(self, schema_id: int) -> str:
        raise AssertionError(f"schema {schema_id} asked: these tests decode nothing")

    def get_schema_subjects(self, schema_id: int) -> list[str]:
        raise AssertionError(f"subjects of {schema_id} asked: these tests decode nothing")

    def get_product(self, name: str) -> dict[str, Any]:
        self.asked.append(name)
        if not self.known or name != NAME:
            raise ProductNotFoundError(f"no {name}", status=404, error_code=40404)
        return {**DESCRIPTOR, "partitions": 7, "registry": {"topic": f"{NAME}.v1"}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project keeping descriptors in src/products (not domains/)."""
    root = tmp_path / "inventory"
    folder = root / "src" / "products" / "inventory" / "products"
    folder.mkdir(parents=True)
    (folder / "stock-level.yaml").write_text(yaml.safe_dump(DESCRIPTOR))
    (root / "mesh.yaml").write_text("domains: [inventory]\nproducts: src/products\n")
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return root


def _partitions(registry: Catalog, **options: Any) -> int:
    consumer = ProductConsumer(
        [NAME],
        group_id="inventory.unit",
        bootstrap_servers="127.0.0.1:9",  # never contacted
        registry=registry,  # type: ignore[arg-type]
        from_beginning=True,  # no metadata request for new topics
        config={"log_level": 0},
        **options,
    )
    try:
        [product] = consumer.products
        return product.partitions
    finally:
        consumer.close()


def test_the_nearest_mesh_yaml_upwards_is_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "services").mkdir()
    monkeypatch.chdir(project / "services")
    registry = Catalog()
    assert _partitions(registry) == 2  # the local descriptor, from mesh.yaml's products folder
    assert registry.asked == []


def test_an_explicit_root_and_the_settings_name_the_project(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no mesh.yaml here or above
    assert _partitions(Catalog(), root=project) == 2
    assert _partitions(Catalog(), settings=MeshSettings(project_root=project)) == 2


def test_outside_any_project_the_registry_describes_the_product(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    registry = Catalog()
    assert _partitions(registry) == 7
    assert _partitions(registry, settings=MeshSettings()) == 7
    assert registry.asked == [NAME, NAME]


def test_a_product_the_project_lacks_comes_from_the_registry(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "src/products/inventory/products/stock-level.yaml").unlink()
    monkeypatch.chdir(project)
    assert _partitions(Catalog()) == 7
    with pytest.raises(ProductNotFoundError, match=r"src/products/inventory/products"):
        _partitions(Catalog(known=False))


def test_a_root_without_mesh_yaml_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError, match=r"holds no mesh\.yaml"):
        _partitions(Catalog(), root=tmp_path)
