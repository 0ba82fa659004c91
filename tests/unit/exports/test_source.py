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
