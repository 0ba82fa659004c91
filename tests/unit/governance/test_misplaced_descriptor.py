"""A descriptor outside domains/<domain>/products/ is named, not silently skipped by lint."""

from __future__ import annotations

import shutil
from pathlib import Path

from mesh_stream.governance.repository import lint_repository

REPO = Path(__file__).resolve().parents[3]


def _repo(tmp_path: Path, descriptor_at: str) -> Path:
    root = tmp_path / "repo"
    (root / "schemas" / "orders").mkdir(parents=True)
    shutil.copy(REPO / "schemas/orders/order-placed.avsc", root / "schemas/orders")
    target = root / descriptor_at
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "domains/orders/products/order-placed.yaml", target)
    (root / "domains" / "orders" / "notes.yaml").write_text("owner: somebody\n")
    return root


def test_a_descriptor_beside_products_is_a_naming_error(tmp_path: Path) -> None:
    root = _repo(tmp_path, "domains/orders/order-placed.yaml")
    report = lint_repository(root)
    assert report.products == 0
    naming = [v for v in report.violations if v.policy == "naming"]
    assert [(v.file, v.line, v.message) for v in naming] == [
        (
            "domains/orders/order-placed.yaml",
            1,
            "looks like a product descriptor (orders.order-placed) but lies outside "
            "domains/<domain>/products/, so it is never linted or registered; move it to "
            "domains/orders/products/order-placed.yaml",
        )
    ]
    assert report.errors == 1


def test_the_same_descriptor_in_products_is_clean(tmp_path: Path) -> None:
    report = lint_repository(_repo(tmp_path, "domains/orders/products/order-placed.yaml"))
    assert (report.products, report.errors, report.warnings) == (1, 0, 0)
