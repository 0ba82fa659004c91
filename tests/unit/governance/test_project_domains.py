"""`mesh lint` holds a project to its mesh.yaml's domains, as `mesh products plan` does."""

from __future__ import annotations

from pathlib import Path

from mesh_stream.governance.repository import lint_project
from mesh_stream.project import load_project
from mesh_stream.scaffold import scaffold


def test_a_product_of_a_domain_the_project_does_not_list_is_a_lint_error(tmp_path: Path) -> None:
    root = tmp_path / "shop-repo"
    scaffold("shop", root)
    assert lint_project(load_project(root)).errors == 0  # the template lints clean
    config = root / "mesh.yaml"
    config.write_text(config.read_text().replace("domains: [shop]", "domains: [other]"))
    report = lint_project(load_project(root))
    found = [v for v in report.violations if v.policy == "domain-in-project"]
    assert [(v.file, v.line, v.product) for v in found] == [
        ("domains/shop/products/example-event.yaml", 4, "shop.example-event")
    ]
    assert found[0].message == (
        f"domain 'shop' is not one of this project's domains ['other']; add it to `domains` "
        f"in {config}"
    )
    assert report.errors == 1
