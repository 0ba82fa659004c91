"""Carrying out a plan: nothing when it holds refusals, else ACLs, topics, then the registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mesh_stream import registration
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import PlanRefusedError
from mesh_stream.kafka.acls import apply_acls
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.products_plan.model import ApplyResult, ProjectPlan, Status, TopicStatus
from mesh_stream.project import MeshProject
from mesh_stream.registry.client import RegistryClient


def _in_lineage_order(products: Sequence[DataProduct]) -> list[DataProduct]:
    """Products before the ones built from them (the registry wants inputs registered)."""
    ordered: list[DataProduct] = []
    remaining = list(products)
    while remaining:
        names = {p.name for p in remaining}
        ready = [p for p in remaining if not any(i in names for i in p.inputs)] or remaining
        ordered += ready
        remaining = [p for p in remaining if p not in ready]
    return ordered


def apply_plan(
    plan: ProjectPlan,
    project: MeshProject,
    registry: RegistryClient,
    conn: KafkaConnection,
    *,
    progress: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Make the registry and the cluster match ``plan`` (made by :func:`plan_project` just
    before); raises :class:`PlanRefusedError` without writing when it holds refusals."""
    if not plan.applicable:
        refusals = plan.all_refusals
        raise PlanRefusedError(
            f"nothing applied: {len(refusals)} refusal(s); the first: {refusals[0]}",
            refusals=refusals,
        )
    result = ApplyResult()

    def done(line: str) -> None:
        result.actions.append(line)
        if progress is not None:
            progress(line)

    # Grants first (additive, harmless alone, and what a domain user needs to create its
    # topics), then topics, then the registry: a failure part-way leaves no product
    # registered without its topic.
    if plan.acls_missing:
        changes = apply_acls(conn, plan.acls_missing, lambda _acl: False)
        for acl in changes.create:
            done(f"ACL created: {acl}")
    items = {item.name: item for item in plan.products}
    products = _in_lineage_order(project.descriptors())
    for product in products:
        item = items[product.name]
        if item.topic_status is TopicStatus.MISSING:
            registration.ensure_topics(conn, [product])
            done(f"{product.name}: topic {product.topic} created ({item.topic_spec})")
        if item.dlq_topic_missing is not None:
            registration.ensure_dlq_topics(conn, [product], every=True)
            done(f"{product.name}: dead-letter topic {item.dlq_topic_missing} created")
        if item.dlq_topic_drift:
            registration.ensure_dlq_topics(conn, [product], every=True, correct=True)
            done(
                f"{product.name}: dead-letter topic {product.dlq_topic} set as specified "
                f"({'; '.join(item.dlq_topic_drift)})"
            )
    for product in products:
        item = items[product.name]
        if item.unchanged:
            result.unchanged.append(product.name)
            continue
        if item.schema is not Status.UNCHANGED:
            text = registration.schema_text(product, project.root)
            schema_id = registration.register_value_schema(registry, product, text)
            done(f"{product.name}: schema registered under {item.subject} (id {schema_id})")
        if item.level_change is not None:
            registration.set_compatibility(registry, product)  # retried while it answers 429
            done(
                f"{product.name}: compatibility of {item.subject} set to "
                f"{product.compatibility_level.value} (was {item.level_change[0]})"
            )
        if item.descriptor is not Status.UNCHANGED:
            registration.register_descriptor(registry, product)
            verb = "registered" if item.descriptor is Status.NEW else "updated"
            done(f"{product.name}: descriptor {verb}")
    return result
