"""The engine as a registry validator, and the registry's default governance settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesh_stream.descriptor import DataProduct, load_descriptor
from mesh_stream.governance import GovernanceConfig, registry_validator
from mesh_stream.governance.config import load_governance
from mesh_stream.governance.registry_hook import RegistryCatalog, governance_validators
from mesh_stream.registry.problems import DescriptorProblem
from mesh_stream.settings import MeshSettings
from tests.unit.governance.conftest import FIXTURES, build_tree


class DictCatalogView:
    """The registry's CatalogView over plain dicts (what the registry's state holds)."""

    def __init__(self, products: list[DataProduct], schemas: dict[str, Mapping[str, Any]]):
        self.products = {p.name: p for p in products}
        self.schemas = schemas
        self.groups: dict[str, list[str]] = {}

    def product_names(self) -> list[str]:
        return sorted(self.products)

    def get_product(self, name: str) -> DataProduct | None:
        return self.products.get(name)

    def latest_schema(self, subject: str) -> Mapping[str, Any] | None:
        return self.schemas.get(subject)

    def consumer_groups(self, product: str) -> list[str]:
        return list(self.groups.get(product, ()))


def _view(root: Path) -> DictCatalogView:
    products = [load_descriptor(p) for p in sorted(root.glob("domains/*/products/*.yaml"))]
    schemas = {p.value_subject: _json(root / p.schema_file) for p in products}
    return DictCatalogView(products, schemas)


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_registry_catalog_adapts_the_view() -> None:
    view = _view(FIXTURES / "good")
    catalog = RegistryCatalog(view)
    assert catalog.known("people.customer")
    assert not catalog.known("people.nobody")
    assert catalog.schema("people.customer") == view.schemas["people.customer.v1-value"]
    assert catalog.downstream("people.customer") == ["insights.customer-summary"]
    assert catalog.downstream("insights.customer-summary") == []


def test_validator_accepts_a_good_product_and_reports_problems_of_a_bad_one(
    tmp_path: Path,
) -> None:
    view = _view(FIXTURES / "good")
    validate = registry_validator()
    summary = view.products["insights.customer-summary"]
    assert validate(summary, view.schemas[summary.value_subject], view) == []

    root = build_tree("pii-lineage", tmp_path)
    bad_view = _view(root)
    bad = bad_view.products["insights.customer-summary"]
    problems = validate(bad, bad_view.schemas[bad.value_subject], bad_view)
    lint_fix = GovernanceConfig().global_rules["pii-lineage"].policy.fix
    assert problems == [
        DescriptorProblem(
            policy="pii-lineage",
            severity="error",
            message="output field 'contact' is computed from 'people.customer:email', which is "
            "PII (email), but 'insights.customer-summary' is classified 'internal' "
            f"(fix: {lint_fix})",
            field="field_lineage.contact[0]",
        )
    ]


def test_validator_applies_the_domain_overrides(tmp_path: Path) -> None:
    root = build_tree("override-legal", tmp_path)
    view = _view(root)
    summary = view.products["insights.customer-summary"]
    schema = view.schemas[summary.value_subject]
    assert registry_validator(load_governance(root))(summary, schema, view) == []
    strict = registry_validator(GovernanceConfig())(summary, schema, view)
    assert [(p.policy, p.severity, p.field) for p in strict] == [
        ("slos-declared", "error", "slos.freshness_seconds")
    ]


def test_warning_severity_reaches_the_registry_as_warning(tmp_path: Path) -> None:
    root = build_tree("partition-bounds", tmp_path)
    (root / "mesh-policies.yaml").write_text(
        "policies:\n  partition-bounds:\n    severity: warning\n"
    )
    view = _view(root)
    product = view.products["shop.order-placed"]
    problems = registry_validator(load_governance(root))(
        product, view.schemas[product.value_subject], view
    )
    assert [(p.policy, p.severity) for p in problems] == [("partition-bounds", "warning")]


def test_default_registry_governance_settings(tmp_path: Path) -> None:
    assert len(governance_validators(MeshSettings())) == 1
    assert governance_validators(MeshSettings(registry_governance=False)) == ()
    root = build_tree("override-legal", tmp_path)
    (validate,) = governance_validators(MeshSettings(governance_root=root))
    view = _view(root)
    summary = view.products["insights.customer-summary"]
    assert validate(summary, view.schemas[summary.value_subject], view) == []


def test_sample_products_pass_the_registry_as_it_stores_schemas() -> None:
    """The registry hands validators its parsed schema (avro's ``to_json``), not the file;
    the sample mesh must pass its default policy set that way too."""
    import avro.schema

    repo = FIXTURES.parents[3]
    view = _view(repo)
    view.schemas = {
        subject: avro.schema.parse(json.dumps(schema)).to_json()
        for subject, schema in view.schemas.items()
    }
    (validate,) = governance_validators(MeshSettings(governance_root=None))
    problems = {
        name: validate(product, view.schemas[product.value_subject], view)
        for name, product in view.products.items()
    }
    reasoned = problems.pop("customers.engagement-event")  # BACKWARD, with a reason
    assert [(p.policy, p.severity) for p in reasoned] == [
        ("compatibility-with-consumers", "warning")
    ]
    assert problems == {name: [] for name in problems}
    assert len(problems) + 1 == len(list((repo / "domains").glob("*/products/*.yaml")))


def test_the_registry_takes_any_schemas_folder_with_the_domain_in_it() -> None:
    """Descriptors reach the registry from many repositories, each with the schemas folder
    its mesh.yaml names: the registry's `naming` asks only for a `<domain>/` folder."""
    view = _view(FIXTURES / "good")
    product = view.products["people.customer"]
    schema = view.schemas[product.value_subject]
    validate = registry_validator()

    def naming(schema_file: str) -> list[str]:
        moved = product.model_copy(update={"schema_file": schema_file})
        return [p.message for p in validate(moved, schema, view) if p.policy == "naming"]

    assert naming("contracts/people/customer.avsc") == []
    assert naming("schemas/people/customer.avsc") == []
    assert naming("contracts/customer.avsc") == [
        "schema 'contracts/customer.avsc' must be an `.avsc` file in a people/ folder (the "
        "contracts of domain 'people') (fix: Rename the file or change `name`/`schema` so they "
        "agree with the convention shown.)"
    ]
