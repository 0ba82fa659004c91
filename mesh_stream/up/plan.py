"""What `mesh up` runs, in which order and as whom: decided before anything starts.

Kept apart from the orchestrator so the order (sources before what is built from them) and
the domain a runnable acts for can be read and tested without starting anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mesh_stream.descriptor import DataProduct, ProductKind
from mesh_stream.errors import ConfigurationError


def topological(products: Sequence[DataProduct]) -> list[DataProduct]:
    """Products ordered so each comes after its inputs (sources first); stable by name."""
    by_name = {p.name: p for p in products}
    ordered: list[DataProduct] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(product: DataProduct) -> None:
        if product.name in done:
            return
        if product.name in visiting:
            raise ConfigurationError(
                f"{product.name}: inputs form a cycle through {product.name}; lineage must "
                f"be a DAG (fix `inputs` in domains/{product.domain}/products/)"
            )
        visiting.add(product.name)
        for name in product.inputs:
            if name in by_name:
                visit(by_name[name])
        visiting.discard(product.name)
        done.add(product.name)
        ordered.append(product)

    for product in sorted(products, key=lambda p: (p.kind != ProductKind.SOURCE_ALIGNED, p.name)):
        visit(product)
    return ordered


def domain_of(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The domain a runnable belongs to: its MESH_REGISTRY_PRINCIPAL, or ``-m domains.<d>``."""
    if env.get("MESH_REGISTRY_PRINCIPAL"):
        return env["MESH_REGISTRY_PRINCIPAL"]
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1].startswith("domains."):
            return argv[index + 1].split(".")[1]
    return None
