"""`mesh products plan|apply`: what a project's products would change in the registry and on
Kafka, and making it so.

A plan compares every local descriptor and `.avsc` of a project with what the registry holds
and the cluster has: a product is new, changed (each descriptor field that differs) or
unchanged; its schema is new, changed (fields added, removed, retyped) or unchanged, with the
registry's own compatibility verdict against the registered versions; its topic is missing,
as specified, or drifted (partitions, replication, retention, cleanup); and the domain's
ACLs are in place or missing where the cluster has an authorizer. Local lint and ownership
(the credential's principal owns the product's domain) are checked too.

Anything that would be refused is a :class:`Refusal` naming the policy, the file:line and
the fix. :func:`apply_plan` writes only a plan without refusals, so a refused apply leaves
the registry and the cluster as they were; an unchanged plan writes nothing at all, which
makes apply idempotent.

Like :mod:`mesh_stream.governance`, a model, an engine and one place that renders:

- :mod:`.model` — the values (statuses, refusals, changes, product and project plans);
- :mod:`.judge` — the judgement, free of I/O (diffs, type labels, refusals), so it is
  testable without a registry;
- :mod:`.plan` — :func:`plan_project` gathers a plan from the project, the registry and
  the cluster, read-only;
- :mod:`.apply` — :func:`apply_plan` carries one out;
- `mesh products plan|apply` (:mod:`mesh_stream.cli.products`) renders them.
"""

from __future__ import annotations

from mesh_stream.governance.registered import field_line
from mesh_stream.kafka.acls import has_authorizer
from mesh_stream.products_plan.apply import apply_plan
from mesh_stream.products_plan.judge import (
    ADMIN_PRINCIPAL,
    compatibility_refusal,
    descriptor_changes,
    ownership_refusal,
    schema_changes,
    schema_fields,
    type_label,
)
from mesh_stream.products_plan.model import (
    AclStatus,
    ApplyResult,
    FieldChange,
    ProductPlan,
    ProjectPlan,
    Refusal,
    SchemaChange,
    SchemaField,
    Status,
    TopicStatus,
)
from mesh_stream.products_plan.plan import (
    RegistryCatalog,
    domain_acls,
    plan_project,
)

__all__ = [
    "ADMIN_PRINCIPAL",
    "AclStatus",
    "ApplyResult",
    "FieldChange",
    "ProductPlan",
    "ProjectPlan",
    "Refusal",
    "RegistryCatalog",
    "SchemaChange",
    "SchemaField",
    "Status",
    "TopicStatus",
    "apply_plan",
    "compatibility_refusal",
    "descriptor_changes",
    "domain_acls",
    "field_line",
    "has_authorizer",
    "ownership_refusal",
    "plan_project",
    "schema_changes",
    "schema_fields",
    "type_label",
]
