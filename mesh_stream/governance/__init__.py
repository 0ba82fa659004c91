"""Federated computational governance: the mesh's global rules as code.

- :mod:`.policies` — the built-in policies, one documented check each;
- :mod:`.config` — ``mesh-policies.yaml`` (global set) and ``domains/<d>/policies.yaml``
  (a domain's overrides of what the global set marks overridable);
- :mod:`.engine` — runs the rules of a product's domain over that product;
- :mod:`.repository` — `mesh lint`: every descriptor and schema of a repository;
- :mod:`.registry_hook` — the same engine as a registry validator (HTTP 422 on errors).
"""

from __future__ import annotations

from mesh_stream.governance.catalog import Catalog, StaticCatalog
from mesh_stream.governance.config import (
    GovernanceConfig,
    RuleSetting,
    load_governance,
    parse_domain_overrides,
    parse_global_policies,
)
from mesh_stream.governance.engine import check_product
from mesh_stream.governance.model import Finding, Severity, Violation
from mesh_stream.governance.policies import BUILTIN_POLICIES, Policy, Review
from mesh_stream.governance.registry_hook import registry_validator
from mesh_stream.governance.repository import LintReport, lint_repository

__all__ = [
    "BUILTIN_POLICIES",
    "Catalog",
    "Finding",
    "GovernanceConfig",
    "LintReport",
    "Policy",
    "Review",
    "RuleSetting",
    "Severity",
    "StaticCatalog",
    "Violation",
    "check_product",
    "lint_repository",
    "load_governance",
    "parse_domain_overrides",
    "parse_global_policies",
    "registry_validator",
]
