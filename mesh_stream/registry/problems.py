"""The governance hook: validators the product catalog runs before it accepts a descriptor.

A validator is any callable ``(product, latest_schema, catalog) -> Sequence[DescriptorProblem]``.
The registry refuses a descriptor (HTTP 422, error_code 42211) when any problem has severity
``error``; warnings are returned with the accepted product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from mesh_stream.descriptor import DataProduct


@dataclass(frozen=True)
class DescriptorProblem:
    """One finding of a governance policy about a descriptor."""

    policy: str
    severity: Literal["error", "warning"]
    message: str
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CatalogView(Protocol):
    """Read-only view of the registry a validator may consult."""

    def product_names(self) -> list[str]:
        """Names of every registered product."""
        ...

    def get_product(self, name: str) -> DataProduct | None:
        """The registered descriptor, or None."""
        ...

    def latest_schema(self, subject: str) -> Mapping[str, Any] | None:
        """The parsed latest live schema of a subject, or None."""
        ...


DescriptorValidator = Callable[
    [DataProduct, Mapping[str, Any], CatalogView], Sequence[DescriptorProblem]
]
