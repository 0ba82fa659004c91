"""RegistrySource: products the registry lacks come from the project, read once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh_stream.errors import ProductNotFoundError
from mesh_stream.exports.source import RegistrySource
from mesh_stream.project import MeshProject, load_project

ROOT = Path(__file__).resolve().parents[3]


class EmptyRegistry:
    """A registry that has registered nothing yet."""

    def get_product(self, name: str) -> dict[str, Any]:
        raise ProductNotFoundError(f"no {name}", status=404, error_code=40404)


def test_unregistered_products_read_the_projects_descriptors_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read per product, exporting 1,000 unregistered products took minutes (an export
    campaign: 100 products 290 s, each lookup parsing every descriptor again)."""
    project = load_project(ROOT)
    names = sorted(p.name for p in project.descriptors())
    reads = []
    read = MeshProject.descriptors

    def counted(self: MeshProject) -> Any:
        reads.append(self.root)
        return read(self)

    monkeypatch.setattr(MeshProject, "descriptors", counted)
    source = RegistrySource(EmptyRegistry(), project)  # type: ignore[arg-type]
    exported = [source.product(name) for name in names]
    assert [e.product.name for e in exported] == names
    assert all(e.schema_id is None for e in exported)
    assert len(reads) == 1


def test_exporting_a_product_from_its_local_files_says_what_lint_finds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A product the registry lacks is exported from its .avsc without the policy checks
    its registration would make (an export campaign): lint's errors for it are said."""
    from mesh_stream.cli.export.common import selected
    from mesh_stream.scaffold import scaffold

    scaffold("inventory", tmp_path)
    schema = tmp_path / "schemas/inventory/example-event.avsc"
    undocumented = schema.read_text().replace(', "doc": "How many units the event concerns."', "")
    schema.write_text(undocumented)
    source = RegistrySource(EmptyRegistry(), load_project(tmp_path))  # type: ignore[arg-type]
    [exported] = selected(source, ["inventory.example-event"], export_all=False)
    assert exported.schema_id is None
    warnings = capsys.readouterr().err.splitlines()
    assert warnings[0].startswith("warning: inventory.example-event: not registered")
    assert warnings[1].startswith(
        "warning: inventory.example-event: `mesh lint` finds 1 error(s) the registry would "
        "refuse it for, e.g. schemas/inventory/example-event.avsc"
    )
    assert "quantity" in warnings[1]
    assert len(warnings) == 2
