"""The governance hook: validators the product catalog runs before it accepts a descriptor.

A validator is any callable ``(product, latest_schema, catalog) -> Sequence[DescriptorProblem]``.
The registry refuses a descriptor (HTTP 422, error_code 42211) when any problem has severity
``error``; warnings are returned with the accepted product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

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

    def consumer_groups(self, product: str) -> list[str]:
        """The consumer groups registered on ``product``, as ``<group> (<owner>)``, sorted."""
        ...


DescriptorValidator = Callable[
    [DataProduct, Mapping[str, Any], CatalogView], Sequence[DescriptorProblem]
]


@runtime_checkable
class SchemaValidator(Protocol):
    """A validator that also judges every new schema version before it is stored.

    The registry hands it the subject, the product whose value subject that is (None when
    no descriptor points there yet), the parsed candidate schema and the catalog view; an
    error-level problem refuses the registration (HTTP 422, error_code 42218), whichever
    path sent it (Confluent register, the SDK, ``mesh products apply``). A validator passed
    to ``create_app(validators=...)`` that has this method gates schemas as well.
    """

    def check_schema(
        self,
        subject: str,
        product: DataProduct | None,
        schema: Mapping[str, Any],
        view: CatalogView,
    ) -> Sequence[DescriptorProblem]:
        """Problems of ``schema`` as the next version of ``subject``."""
        ...
