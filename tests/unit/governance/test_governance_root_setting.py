"""MESH_GOVERNANCE_ROOT that names no folder is refused, not silently replaced by defaults;
one that names a project gives the policies of its mesh.yaml's folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.registry_hook import governance_validators, project_governance
from mesh_stream.settings import MeshSettings


def test_a_missing_governance_root_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-repo"
    with pytest.raises(ConfigurationError) as raised:
        governance_validators(MeshSettings(governance_root=missing))
    assert str(raised.value) == (
        f"MESH_GOVERNANCE_ROOT={missing} is not a folder; point it at the project root "
        "(the folder of mesh.yaml), or unset it for the built-in policies"
    )


def test_an_existing_root_without_a_policy_file_uses_the_defaults(tmp_path: Path) -> None:
    assert len(governance_validators(MeshSettings(governance_root=tmp_path))) == 1


def test_the_project_root_is_the_default_governance_root(tmp_path: Path) -> None:
    (tmp_path / "mesh-policies.yaml").write_text("policies: [nonsense\n")
    with pytest.raises(ConfigurationError, match=r"mesh-policies\.yaml"):
        governance_validators(MeshSettings(project_root=tmp_path))  # its policies are read
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert governance_validators(MeshSettings(project_root=tmp_path, governance_root=elsewhere))


def _slos_policies(freshness_limit: int) -> str:
    return (
        "policies:\n  slos-declared:\n    severity: error\n    overridable: true\n"
        f"    params: {{min_availability: 99.0, max_freshness_seconds: {freshness_limit}}}\n"
    )


def test_a_projects_overrides_come_from_its_products_folder(tmp_path: Path) -> None:
    """mesh.yaml names the policy file and the products folder; the domain's override lies
    there, and a stray domains/ folder is not read."""
    (tmp_path / "mesh.yaml").write_text(
        "domains: [shop]\nproducts: src/products\npolicies: governance/policies.yaml\n"
    )
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance/policies.yaml").write_text(_slos_policies(3600))
    (tmp_path / "mesh-policies.yaml").write_text(_slos_policies(60))  # not the named file
    override = (
        "overrides:\n  slos-declared:\n    reason: nightly export\n"
        "    params: {max_freshness_seconds: 90000}\n"
    )
    (tmp_path / "src/products/shop").mkdir(parents=True)
    (tmp_path / "src/products/shop/policies.yaml").write_text(override)
    (tmp_path / "domains/shop").mkdir(parents=True)
    (tmp_path / "domains/shop/policies.yaml").write_text(override.replace("90000", "7200"))

    config = project_governance(tmp_path)
    assert str(config.source).endswith("governance/policies.yaml")
    shop = config.rules_for("shop")["slos-declared"].params
    assert shop.model_dump()["max_freshness_seconds"] == 90000
    assert config.global_rules["slos-declared"].params.model_dump()["max_freshness_seconds"] == 3600

    [validate] = governance_validators(MeshSettings(governance_root=tmp_path))
    product = DataProduct.model_validate(
        {
            "name": "shop.nightly-export",
            "domain": "shop",
            "kind": "source-aligned",
            "description": "Exported nightly.",
            "owner": {"team": "shop", "contact": "shop@example.com"},
            "schema": "schemas/shop/nightly-export.avsc",
            "key_field": "id",
            "slos": {"freshness_seconds": 86400, "availability": 99.5},
            "classification": "internal",
        }
    )
    schema = {
        "type": "record",
        "name": "Export",
        "doc": "An export.",
        "fields": [{"name": "id", "type": "string", "doc": "Id."}],
    }
    problems = validate(product, schema, _EmptyCatalog())
    assert [p.policy for p in problems if p.severity == "error"] == []
    (tmp_path / "src/products/shop/policies.yaml").unlink()
    [strict] = governance_validators(MeshSettings(governance_root=tmp_path))
    refused = [p.policy for p in strict(product, schema, _EmptyCatalog()) if p.severity == "error"]
    assert refused == ["slos-declared"]


class _EmptyCatalog:
    def get_product(self, _name: str) -> DataProduct | None:
        return None

    def latest_schema(self, _subject: str) -> None:
        return None

    def consumer_groups(self, _product: str) -> list[str]:
        return []

    def product_names(self) -> list[str]:
        return []
