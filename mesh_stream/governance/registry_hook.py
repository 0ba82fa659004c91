"""Plug the policy engine into the registry: one gate for descriptors and schema versions.

The registry calls the gate with a descriptor, the parsed latest schema of its value
subject and a read-only :class:`~mesh_stream.registry.problems.CatalogView`, and refuses the
descriptor (HTTP 422, 42211) when an error-level problem comes back. File-based checks
(descriptor file name) do not apply there; everything else is the same as `mesh lint`.

The same gate judges every schema version before the registry stores it (HTTP 422, 42218),
whichever client registers it: the schema-level policies (:data:`SCHEMA_POLICIES`) run with
the descriptor of the product whose value subject it is, against the new schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mesh_stream.descriptor import TOPIC_NAME, DataProduct
from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.config import GovernanceConfig, RuleSetting, load_governance
from mesh_stream.governance.engine import check_product
from mesh_stream.governance.model import Finding, Severity, Violation
from mesh_stream.governance.policies import Review, undocumented, unmarked_pii
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

    def consumer_groups(self, name: str) -> list[str]:
        return self._view.consumer_groups(name)


SCHEMA_POLICIES = frozenset(
    {
        "documentation",
        "naming",
        "pii-classification",
        "pii-lineage",
        "field-lineage-resolves",
        "key-field",
    }
)
"""The policies a new schema version of a product's subject must pass: those reading the
schema (docs, PII marks against the classification, PII and field lineage, the key field)
and naming. The rest judge only the descriptor, which did not change."""


class GovernanceGate:
    """A registry validator enforcing one policy set on descriptors (a call) and on every
    schema version (:meth:`check_schema`), with the overrides of each domain applied."""

    def __init__(self, config: GovernanceConfig | None = None) -> None:
        self.config = config if config is not None else GovernanceConfig()

    def __call__(
        self, product: DataProduct, schema: Mapping[str, Any], view: CatalogView
    ) -> list[DescriptorProblem]:
        review = Review(product, schema, RegistryCatalog(view))
        return _problems(check_product(review, self.config.rules_for(product.domain)))

    def check_schema(
        self,
        subject: str,
        product: DataProduct | None,
        schema: Mapping[str, Any],
        view: CatalogView,
    ) -> list[DescriptorProblem]:
        """Problems of ``schema`` as the next version of ``subject``.

        With a product: :data:`SCHEMA_POLICIES` with its descriptor. Without one yet (apply
        and the SDK register the schema before the descriptor), only ``documentation``
        runs, and only on subjects shaped like a product's value subject
        (``<domain>.<product>.v<major>-value``): PII marks, lineage and the key field mean
        nothing without the descriptor's classification, inputs and key, and
        ``PUT /products`` checks them once it arrives; the subject's domain prefix is
        already enforced by authorization (a domain writes only ``<domain>.`` subjects).
        Other subjects (keys, plain Confluent use) are no product's contract.
        """
        if product is not None:
            rules = {
                name: rule
                for name, rule in self.config.rules_for(product.domain).items()
                if name in SCHEMA_POLICIES
            }
            review = Review(product, schema, RegistryCatalog(view))
            found = check_product(review, rules)
            previous = review.catalog.schema(product.name)
            marks = rules.get("pii-classification")
            dropped: list[Violation] = []
            if (
                previous is not None
                and subject == product.value_subject
                and marks is not None
                and marks.severity is not Severity.OFF
            ):
                found_marks = unmarked_pii(previous, schema)
                dropped = _violations("pii-classification", marks, found_marks, subject)
            downstream = self._downstream_pii(product, schema, view)
            return _problems([*found, *dropped, *downstream])
        topic = subject.removesuffix("-value")
        match = TOPIC_NAME.match(topic) if topic != subject else None
        if match is None:
            return []
        domain = match["name"].partition(".")[0]
        rule = self.config.rules_for(domain).get("documentation")
        if rule is None or rule.severity is Severity.OFF:
            return []
        return _problems(_violations("documentation", rule, undocumented(schema), subject))

    def _downstream_pii(
        self, product: DataProduct, schema: Mapping[str, Any], view: CatalogView
    ) -> list[Violation]:
        """``pii-lineage`` of each product reading ``product``, re-judged as if ``schema``
        were already its latest version: a field that becomes PII upstream must not flow
        into a downstream product classified below `pii` (the downstream descriptor did not
        change, so only this side can catch it)."""
        catalog = _WithCandidate(RegistryCatalog(view), product.name, schema)
        found: list[Violation] = []
        for name in catalog.downstream(product.name):
            consumer = catalog.product(name)
            rule = self.config.rules_for(name.partition(".")[0]).get("pii-lineage")
            if consumer is None or rule is None or rule.severity is Severity.OFF:
                continue
            review = Review(consumer, catalog.schema(name), catalog)
            for violation in check_product(review, {"pii-lineage": rule}):
                found.append(
                    replace(
                        violation,
                        message=f"downstream product {name!r} would receive PII: "
                        f"{violation.message}",
                    )
                )
        return found


class _WithCandidate:
    """A catalog in which product ``name``'s latest schema is already ``schema``."""

    def __init__(self, inner: RegistryCatalog, name: str, schema: Mapping[str, Any]) -> None:
        self._inner = inner
        self._name = name
        self._schema = schema

    def known(self, name: str) -> bool:
        return self._inner.known(name)

    def product(self, name: str) -> DataProduct | None:
        return self._inner.product(name)

    def schema(self, name: str) -> Mapping[str, Any] | None:
        return self._schema if name == self._name else self._inner.schema(name)

    def downstream(self, name: str) -> list[str]:
        return self._inner.downstream(name)

    def consumer_groups(self, name: str) -> list[str]:
        return self._inner.consumer_groups(name)


def _violations(
    name: str, rule: RuleSetting, findings: Iterable[Finding], subject: str
) -> list[Violation]:
    return [
        Violation(
            policy=name,
            severity=rule.severity,
            message=f.message,
            why=rule.policy.why,
            fix=rule.policy.fix,
            product=subject,
            field=f.field,
        )
        for f in findings
    ]


def _problems(violations: Iterable[Violation]) -> list[DescriptorProblem]:
    return [
        DescriptorProblem(
            policy=v.policy,
            severity="error" if v.severity is Severity.ERROR else "warning",
            message=f"{v.message} (fix: {v.fix})",
            field=v.field,
        )
        for v in violations
    ]


def registry_validator(config: GovernanceConfig | None = None) -> GovernanceGate:
    """A registry validator enforcing ``config`` (default: the built-in policy set), with
    the overrides of the descriptor's domain applied."""
    return GovernanceGate(config)


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
