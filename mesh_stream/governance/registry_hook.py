"""Plug the policy engine into the registry's descriptor validators.

The registry calls each validator with the descriptor, the parsed latest schema of its
value subject and a read-only :class:`~mesh_stream.registry.problems.CatalogView`; it
refuses the descriptor (HTTP 422) when an error-level problem comes back. File-based checks
(descriptor file name) do not apply there; everything else is the same as `mesh lint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.config import GovernanceConfig, load_governance
from mesh_stream.governance.engine import check_product
from mesh_stream.governance.model import Severity
from mesh_stream.governance.policies import Review
from mesh_stream.governance.repository import project_policies
from mesh_stream.project import load_project
from mesh_stream.registry.problems import CatalogView, DescriptorProblem, DescriptorValidator
from mesh_stream.settings import MeshSettings


class RegistryCatalog:
    """The registry's catalog view seen through the governance :class:`Catalog` protocol."""

    def __init__(self, view: CatalogView) -> None:
        self._view = view

    def known(self, name: str) -> bool:
        return self._view.get_product(name) is not None

    def product(self, name: str) -> DataProduct | None:
        return self._view.get_product(name)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        product = self._view.get_product(name)
        return None if product is None else self._view.latest_schema(product.value_subject)

    def downstream(self, name: str) -> list[str]:
        return sorted(
            other
            for other in self._view.product_names()
            if other != name
            and (product := self._view.get_product(other)) is not None
            and name in product.inputs
        )


def registry_validator(config: GovernanceConfig | None = None) -> DescriptorValidator:
    """A registry validator enforcing ``config`` (default: the built-in policy set), with
    the overrides of the descriptor's domain applied."""
    governance = config if config is not None else GovernanceConfig()

    def validate(
        product: DataProduct, schema: Mapping[str, Any], view: CatalogView
    ) -> list[DescriptorProblem]:
        review = Review(product, schema, RegistryCatalog(view))
        return [
            DescriptorProblem(
                policy=v.policy,
                severity="error" if v.severity is Severity.ERROR else "warning",
                message=f"{v.message} (fix: {v.fix})",
                field=v.field,
            )
            for v in check_product(review, governance.rules_for(product.domain))
        ]

    return validate


def governance_validators(settings: MeshSettings) -> tuple[DescriptorValidator, ...]:
    """The validators a registry built from ``settings`` runs: the policies of
    ``settings.governance_root``, else of the project ``settings.project_root`` names
    (built-in defaults when both are unset), or none when ``settings.registry_governance``
    is off."""
    if not settings.registry_governance:
        return ()
    root = settings.governance_root
    if root is None and settings.project_root is not None:
        root = settings.project_root
    if root is not None and not root.is_dir():
        raise ConfigurationError(
            f"MESH_GOVERNANCE_ROOT={root} is not a folder; point it at the project root "
            f"(the folder of mesh.yaml), or unset it for the built-in policies"
        )
    return (registry_validator(project_governance(root) if root is not None else None),)


def project_governance(root: Path) -> GovernanceConfig:
    """The policies of the project at ``root``: the policy file its ``mesh.yaml`` names and
    the domains' overrides in its ``products`` folder (``mesh-policies.yaml`` and
    ``domains/`` when the folder has no ``mesh.yaml``)."""
    project = load_project(root, defaults_without_file=True)
    return load_governance(
        project.root, project_policies(project), domains_dir=project.descriptors_dir
    )
