"""What policies may know about the rest of the mesh: other products and their schemas.

Lineage policies (inputs exist, no PII flowing downstream, compatibility with consumers)
need more than the product under review. :class:`Catalog` is that read-only view; `mesh
lint` builds a :class:`StaticCatalog` from the repository, the registry adapts its own
state to the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from mesh_stream.descriptor import DataProduct


class Catalog(Protocol):
    """Read-only view of the mesh's products."""

    def known(self, name: str) -> bool | None:
        """Whether the mesh has a product ``name`` (even one whose descriptor does not load);
        None when this catalog cannot tell now (the registry behind it is unreachable)."""
        ...

    def product(self, name: str) -> DataProduct | None:
        """The product named ``name``, or None when unknown or not loadable."""
        ...

    def schema(self, name: str) -> Mapping[str, Any] | None:
        """The parsed (latest) Avro schema of product ``name``, or None when unknown."""
        ...

    def downstream(self, name: str) -> list[str]:
        """Names of the products that list ``name`` among their inputs, sorted."""
        ...

    def consumer_groups(self, name: str) -> list[str]:
        """The consumer groups registered on product ``name`` in the registry, each as
        ``<group> (<owner domain>)``, sorted; empty where no registry is consulted."""
        ...


@runtime_checkable
class Unverified(Protocol):
    """A catalog that can say why it cannot tell whether a product exists (``known`` answered
    None): what the registry behind it did and the fix."""

    def unverified(self) -> str | None:
        """The rest of "could not be verified: ..." (naming the registry), or None while
        this catalog can tell."""
        ...


def unverified(catalog: Catalog) -> str | None:
    """Why ``catalog`` cannot tell, when it says (see :class:`Unverified`); else None."""
    return catalog.unverified() if isinstance(catalog, Unverified) else None


class StaticCatalog:
    """A catalog over a fixed set of products and schemas (the repository, or a test).

    ``unloadable`` names products whose descriptor exists but does not load: they are
    reported once (``descriptor-valid``), not again as missing inputs of their consumers.
    """

    def __init__(
        self,
        products: Iterable[DataProduct],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        unloadable: Iterable[str] = (),
    ) -> None:
        self._products = {product.name: product for product in products}
        self._schemas = dict(schemas or {})
        self._unloadable = frozenset(unloadable)

    def known(self, name: str) -> bool:
        return name in self._products or name in self._unloadable

    def product(self, name: str) -> DataProduct | None:
        return self._products.get(name)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        return self._schemas.get(name)

    def downstream(self, name: str) -> list[str]:
        return sorted(p.name for p in self._products.values() if name in p.inputs)

    def consumer_groups(self, name: str) -> list[str]:
        del name  # groups register in the registry, never in a repository
        return []


class LayeredCatalog:
    """A repository's own products first, then the rest of the mesh (e.g. the registry):
    a domain's repository builds on products that live in other domains' repositories."""

    def __init__(self, local: Catalog, outside: Catalog) -> None:
        self.local = local
        self.outside = outside

    def known(self, name: str) -> bool | None:
        return True if self.local.known(name) else self.outside.known(name)

    def product(self, name: str) -> DataProduct | None:
        if self.local.known(name):
            return self.local.product(name)
        return self.outside.product(name)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        if self.local.known(name):
            return self.local.schema(name)
        return self.outside.schema(name)

    def downstream(self, name: str) -> list[str]:
        return sorted({*self.local.downstream(name), *self.outside.downstream(name)})

    def consumer_groups(self, name: str) -> list[str]:
        return self.outside.consumer_groups(name)

    def unverified(self) -> str | None:
        return unverified(self.outside)
