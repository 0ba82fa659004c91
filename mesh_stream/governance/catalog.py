"""What policies may know about the rest of the mesh: other products and their schemas.

Lineage policies (inputs exist, no PII flowing downstream, compatibility with consumers)
need more than the product under review. :class:`Catalog` is that read-only view; `mesh
lint` builds a :class:`StaticCatalog` from the repository, the registry adapts its own
state to the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from mesh_stream.descriptor import DataProduct


class Catalog(Protocol):
    """Read-only view of the mesh's products."""

    def product(self, name: str) -> DataProduct | None:
        """The product named ``name``, or None when the mesh has no such product."""
        ...

    def schema(self, name: str) -> Mapping[str, Any] | None:
        """The parsed (latest) Avro schema of product ``name``, or None when unknown."""
        ...

    def downstream(self, name: str) -> list[str]:
        """Names of the products that list ``name`` among their inputs, sorted."""
        ...


class StaticCatalog:
    """A catalog over a fixed set of products and schemas (the repository, or a test)."""

    def __init__(
        self,
        products: Iterable[DataProduct],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._products = {product.name: product for product in products}
        self._schemas = dict(schemas or {})

    def product(self, name: str) -> DataProduct | None:
        return self._products.get(name)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        return self._schemas.get(name)

    def downstream(self, name: str) -> list[str]:
        return sorted(p.name for p in self._products.values() if name in p.inputs)
