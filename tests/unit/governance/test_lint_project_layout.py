"""`mesh lint` and the ACL plan follow mesh.yaml's folders, not a fixed domains/ + schemas/;
so does the built-in `naming` policy (descriptors in `<products>/<domain>/products/`,
schemas under `<schemas>/<domain>/`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream import lint_repository
from mesh_stream.cli.main import cli
from mesh_stream.errors import DescriptorError

REPO = Path(__file__).resolve().parents[3]
MESH_YAML = """\
domains: [orders]
products: src/products
schemas: contracts
policies: governance/policies.yaml
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample orders.order-placed in a repository laid out its own way."""
    descriptor = yaml.safe_load(
        (REPO / "domains" / "orders" / "products" / "order-placed.yaml").read_text()
    )
    descriptor["schema"] = "contracts/orders/order-placed.avsc"
    products = tmp_path / "src" / "products" / "orders" / "products"
    products.mkdir(parents=True)
    (products / "order-placed.yaml").write_text(yaml.safe_dump(descriptor))
    (tmp_path / "contracts" / "orders").mkdir(parents=True)
    shutil.copy(
        REPO / "schemas" / "orders" / "order-placed.avsc",
        tmp_path / "contracts" / "orders" / "order-placed.avsc",
    )
    # The sample mesh's policies, `naming` at error as everywhere.
    policies = yaml.safe_load((REPO / "mesh-policies.yaml").read_text())
    assert policies["policies"]["naming"]["severity"] == "error"
    (tmp_path / "governance").mkdir()
    (tmp_path / "governance" / "policies.yaml").write_text(yaml.safe_dump(policies))
    (tmp_path / "mesh.yaml").write_text(MESH_YAML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return tmp_path


def test_lint_reads_the_folders_and_policy_file_mesh_yaml_names(project: Path) -> None:
    result = CliRunner().invoke(cli, ["lint", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["products"] == 1
    assert report["violations"] == []
    assert report["policies"] == str(project / "governance" / "policies.yaml")


def test_naming_expects_the_folders_mesh_yaml_names(project: Path) -> None:
    """A schema in the default schemas/ folder is misplaced in a project whose mesh.yaml
    names contracts/; a descriptor's file is checked against src/products/."""
    descriptor_file = project / "src/products/orders/products/order-placed.yaml"
    descriptor = yaml.safe_load(descriptor_file.read_text())
    (project / "schemas" / "orders").mkdir(parents=True)
    (project / "contracts/orders/order-placed.avsc").rename(
        project / "schemas/orders/order-placed.avsc"
    )
    descriptor["schema"] = "schemas/orders/order-placed.avsc"
    descriptor_file.write_text(yaml.safe_dump(descriptor))
    descriptor_file.rename(descriptor_file.with_name("placed.yaml"))

    result = CliRunner().invoke(cli, ["lint", "--json"])
    assert result.exit_code == 1
    violations = json.loads(result.stdout)["violations"]
    found = [(v["policy"], v["field"], v["message"]) for v in violations]
    assert found == [
        (
            "naming",
            "name",
            "product 'orders.order-placed' is described in "
            "src/products/orders/products/placed.yaml, but its descriptor must be "
            "src/products/orders/products/order-placed.yaml",
        ),
        (
            "naming",
            "schema",
            "schema 'schemas/orders/order-placed.avsc' must be an `.avsc` file under "
            "contracts/orders/ (the contracts of domain 'orders')",
        ),
    ]


def test_an_orphan_schema_is_found_in_the_projects_schemas_folder(project: Path) -> None:
    (project / "contracts" / "orders" / "stray.avsc").write_text(
        '{"type": "record", "name": "Stray", "doc": "x", "fields": []}'
    )
    result = CliRunner().invoke(cli, ["lint", "--json"])
    messages = [v["message"] for v in json.loads(result.stdout)["violations"]]
    assert messages == [
        "no product descriptor under src/products/ has `schema: contracts/orders/stray.avsc`"
    ]


def test_the_acl_plan_reads_the_projects_descriptors(project: Path) -> None:
    result = CliRunner().invoke(cli, ["acl", "plan", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    writes = {(a["principal"], a["name"]) for a in document["acls"] if a["operation"] == "WRITE"}
    assert ("User:orders", "orders.") in writes  # the domain of the descriptor under src/products
    # The descriptor under src/products is what the plan read: listed for another domain,
    # it is refused, naming where it lies.
    (project / "mesh.yaml").write_text(MESH_YAML.replace("[orders]", "[payments]"))
    refused = CliRunner().invoke(cli, ["acl", "plan", "--json"])
    assert isinstance(refused.exception, DescriptorError)
    assert str(refused.exception).startswith(
        f"{project}/src/products/orders: product orders.order-placed: domain 'orders' is not "
        "one of this project's domains ['payments']"
    )


def test_the_public_lint_repository_follows_mesh_yaml_given_a_folder_as_text(
    project: Path,
) -> None:
    """`mesh_stream.lint_repository("path")` assumed domains/ and schemas/ and raised a
    TypeError for a str (h41); a folder with mesh.yaml is linted as its project."""
    report = lint_repository(str(project))
    assert report.products == 1
    assert not report.violations
    (project / "mesh.yaml").write_text(MESH_YAML.replace("[orders]", "[payments]"))
    [violation] = lint_repository(str(project)).violations
    assert "orders" in violation.message
    assert "payments" in violation.message
