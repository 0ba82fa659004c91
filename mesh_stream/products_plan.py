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

The engine is split so its judgement is testable without a registry: the pure functions
(:func:`descriptor_changes`, :func:`schema_changes`, :func:`schema_fields`) and the gathering
(:func:`plan_project`) that asks the registry and the cluster, read-only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from mesh_stream.descriptor import DataProduct, descriptor_files, load_descriptor
from mesh_stream.errors import (
    ConfigurationError,
    DescriptorError,
    KafkaSecurityError,
    PlanRefusedError,
    ProductNotFoundError,
    SchemaError,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from mesh_stream.governance import avro_walk, locate
from mesh_stream.governance.acl_plan import REGISTRY_PRINCIPAL, plan_acls
from mesh_stream.governance.model import Severity
from mesh_stream.governance.repository import LintReport, lint_project
from mesh_stream.kafka import topics
from mesh_stream.kafka.acls import Acl, apply_acls, describe_acls, diff
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing import registration
from mesh_stream.project import MeshProject
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.avro import normalize, parse_schema

ADMIN_PRINCIPAL = "admin"
"""The registry's administrator, who may write every domain's products."""


class Status(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"  # could not be compared (e.g. the local schema does not parse)


class TopicStatus(StrEnum):
    MISSING = "missing"
    AS_SPECIFIED = "as specified"
    DRIFTED = "drifted"
    UNCHECKED = "unchecked"


class AclStatus(StrEnum):
    NO_AUTHORIZER = "no authorizer"
    IN_PLACE = "in place"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    UNCHECKED = "unchecked"


# -- the values a plan is made of ---------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Something the registry, the cluster or governance would refuse: nothing is applied."""

    policy: str
    message: str
    fix: str
    file: str | None = None
    line: int | None = None
    product: str | None = None

    @property
    def location(self) -> str:
        if self.file is None:
            return self.product or "(project)"
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.location}: [{self.policy}] {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class FieldChange:
    """One descriptor field whose registered value differs from the local one."""

    field: str
    registered: Any
    local: Any

    def describe(self) -> str:
        return f"{self.field}: {_short(self.registered)} -> {_short(self.local)}"


@dataclass(frozen=True)
class SchemaField:
    """One field of an Avro schema, as `mesh products show` lists it."""

    name: str
    type: str
    doc: str | None
    pii: bool


@dataclass(frozen=True)
class SchemaChange:
    """A field added, removed or retyped between the registered schema and the local one."""

    field: str
    change: str  # "added" | "removed" | "type changed"
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        if self.change == "added":
            return f"+ {self.field}: {self.after}"
        if self.change == "removed":
            return f"- {self.field}: {self.before}"
        return f"~ {self.field}: {self.before} -> {self.after}"


@dataclass
class ProductPlan:
    """What applying one product would do."""

    name: str
    topic: str
    subject: str
    descriptor_file: str
    descriptor: Status = Status.UNKNOWN
    descriptor_changes: list[FieldChange] = field(default_factory=list)
    schema_file: str = ""
    schema: Status = Status.UNKNOWN
    schema_changes: list[SchemaChange] = field(default_factory=list)
    registered_version: int | None = None
    compatibility_level: str | None = None
    level_change: tuple[str, str] | None = None  # (registered, descriptor)
    compatible: bool | None = None
    compatibility_messages: list[str] = field(default_factory=list)
    topic_status: TopicStatus = TopicStatus.UNCHECKED
    topic_spec: str | None = None
    topic_drift: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return (
            self.descriptor is Status.UNCHANGED
            and self.schema is Status.UNCHANGED
            and self.level_change is None
            and self.topic_status is not TopicStatus.MISSING
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refusals"] = [_refusal_dict(r) for r in self.refusals]
        data["unchanged"] = self.unchanged
        data["level_change"] = list(self.level_change) if self.level_change else None
        return data


@dataclass
class ProjectPlan:
    """The plan of a whole project: its products, the domain's ACLs, lint, refusals."""

    root: Path
    domains: tuple[str, ...]
    registry_url: str
    bootstrap_servers: str | None
    products: list[ProductPlan] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)  # not tied to one product
    warnings: list[str] = field(default_factory=list)
    lint_errors: int = 0
    lint_warnings: int = 0
    acl_status: AclStatus = AclStatus.UNCHECKED
    acls_missing: list[Acl] = field(default_factory=list)
    acl_note: str | None = None

    @property
    def all_refusals(self) -> list[Refusal]:
        return [*self.refusals, *(r for p in self.products for r in p.refusals)]

    @property
    def applicable(self) -> bool:
        return not self.all_refusals

    @property
    def unchanged(self) -> bool:
        return all(p.unchanged for p in self.products) and not self.acls_missing

    def counts(self) -> dict[str, int]:
        new = sum(p.descriptor is Status.NEW for p in self.products)
        unchanged = sum(p.unchanged for p in self.products)
        return {"new": new, "changed": len(self.products) - new - unchanged, "unchanged": unchanged}

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "domains": list(self.domains),
            "registry_url": self.registry_url,
            "bootstrap_servers": self.bootstrap_servers,
            "applicable": self.applicable,
            "unchanged": self.unchanged,
            "counts": self.counts(),
            "products": [p.to_dict() for p in self.products],
            "refusals": [_refusal_dict(r) for r in self.all_refusals],
            "warnings": [*self.warnings, *(w for p in self.products for w in p.warnings)],
            "lint": {"errors": self.lint_errors, "warnings": self.lint_warnings},
            "acls": {
                "status": self.acl_status.value,
                "missing": [a.to_dict() for a in self.acls_missing],
                "note": self.acl_note,
            },
        }


def _refusal_dict(refusal: Refusal) -> dict[str, Any]:
    return {**asdict(refusal), "location": refusal.location}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- pure judgement -------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: list(value) if isinstance(value, tuple) else value}


def descriptor_changes(
    registered: Mapping[str, Any], local: Mapping[str, Any]
) -> list[FieldChange]:
    """Each descriptor field (dotted path) whose value differs, in path order."""
    before, after = _flatten(registered), _flatten(local)
    return [
        FieldChange(path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def type_label(avro_type: Any) -> str:
    """A short readable form of an Avro type: ``string``, ``null|string``, ``long
    (timestamp-millis)``, ``array<OrderLine>``, ``enum SalesChannel``."""
    if isinstance(avro_type, list):
        return "|".join(type_label(member) for member in avro_type)
    if not isinstance(avro_type, Mapping):
        return str(avro_type)
    kind = avro_type.get("type")
    logical = avro_type.get("logicalType")
    if logical:
        return f"{type_label(kind)} ({logical})"
    if kind in ("record", "error"):
        return str(avro_type.get("name", "record"))
    if kind in ("enum", "fixed"):
        return f"{kind} {avro_type.get('name', '')}".strip()
    if kind == "array":
        return f"array<{type_label(avro_type.get('items'))}>"
    if kind == "map":
        return f"map<{type_label(avro_type.get('values'))}>"
    return type_label(kind)


def schema_fields(schema: Mapping[str, Any]) -> list[SchemaField]:
    """Every field of a record schema (nested ones as dotted paths), in document order."""
    return [
        SchemaField(
            spot.path,
            type_label(spot.field.get("type")),
            doc if isinstance(doc := spot.field.get("doc"), str) else None,
            spot.is_pii,
        )
        for spot in avro_walk.fields(schema)
    ]


def schema_changes(registered: Mapping[str, Any], local: Mapping[str, Any]) -> list[SchemaChange]:
    """Fields added, removed or retyped from the registered schema to the local one."""
    before = {f.name: f.type for f in schema_fields(registered)}
    after = {f.name: f.type for f in schema_fields(local)}
    changes = [
        SchemaChange(name, "removed", before=before[name]) for name in before if name not in after
    ]
    for name, kind in after.items():
        if name not in before:
            changes.append(SchemaChange(name, "added", after=kind))
        elif before[name] != kind:
            changes.append(SchemaChange(name, "type changed", before[name], kind))
    return sorted(changes, key=lambda c: c.field)


def field_line(schema_text: str, path: str) -> int | None:
    """The line of field ``path`` in the `.avsc` text (None when not found)."""
    try:
        document = json.loads(schema_text)
    except ValueError:
        return None
    spot = next((s for s in avro_walk.fields(document) if s.path == path), None)
    return None if spot is None else locate.line_of(locate.compose(schema_text), spot.loc)


def ownership_refusal(
    product: DataProduct, principal: str | None, descriptor_file: str, domain_line: int | None
) -> Refusal | None:
    """A refusal when ``principal`` may not write ``product`` (the registry would answer 403)."""
    if principal is None or principal in (ADMIN_PRINCIPAL, product.domain):
        return None
    return Refusal(
        policy="ownership",
        message=f"product {product.name} belongs to domain {product.domain}, but "
        f"MESH_REGISTRY_PRINCIPAL is {principal}: the registry answers 403 to writes of "
        f"another domain's products",
        fix=f"apply with {product.domain}'s credential (MESH_REGISTRY_PRINCIPAL={product.domain}"
        f" and its MESH_REGISTRY_TOKEN), or move the descriptor to {product.domain}'s project",
        file=descriptor_file,
        line=domain_line,
        product=product.name,
    )


def compatibility_refusal(
    plan: ProductPlan, messages: Sequence[str], schema_text: str, next_version: int
) -> Refusal:
    """The refusal of an incompatible schema change, at the first changed field's line."""
    first = plan.schema_changes[0] if plan.schema_changes else None
    line = field_line(schema_text, first.field) if first is not None else None
    changed = "; ".join(c.describe() for c in plan.schema_changes) or "the schema"
    return Refusal(
        policy="schema-compatibility",
        message=f"{plan.subject}: {changed} breaks {plan.compatibility_level} against the "
        f"registered version {plan.registered_version} ({'; '.join(messages)})",
        fix="give a new field a default, keep removed fields (or give them defaults), keep "
        f"field types; or make it a new major version (`version: {next_version}` in the "
        "descriptor: a new topic and subject)",
        file=plan.schema_file,
        line=line or 1,
        product=plan.name,
    )


# -- gathering (read-only) ------------------------------------------------------------------


@dataclass
class _Local:
    product: DataProduct
    descriptor_file: str
    descriptor_node: Any
    schema_file: str
    schema_text: str | None
    schema_json: dict[str, Any] | None


def _relative(project: MeshProject, path: Path) -> str:
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(project.root).as_posix()
    return str(path)


def _descriptor_paths(project: MeshProject) -> dict[str, Path]:
    """Product name -> its descriptor file (the files `MeshProject.descriptors` reads)."""
    found: dict[str, Path] = {}
    for path in descriptor_files(project.descriptors_dir):
        with contextlib.suppress(DescriptorError):
            found[load_descriptor(path).name] = path
    return found


def _load_local(project: MeshProject, products: Iterable[DataProduct]) -> list[_Local]:
    files = _descriptor_paths(project)
    loaded = []
    for product in products:
        path = files.get(product.name, project.descriptors_dir)
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        schema_path = project.schema_path(product)
        schema_text: str | None = None
        schema_json: dict[str, Any] | None = None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            schema_text = schema_path.read_text(encoding="utf-8")
        if schema_text is not None:
            with contextlib.suppress(ValueError, SchemaError, RecursionError):
                parse_schema(schema_text)
                decoded = json.loads(schema_text)
                schema_json = decoded if isinstance(decoded, dict) else None
        loaded.append(
            _Local(
                product,
                _relative(project, path),
                locate.compose(text),
                _relative(project, schema_path),
                schema_text,
                schema_json,
            )
        )
    return loaded


def _registered_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """The registry's descriptor in the form ``DataProduct.to_document`` gives locally."""
    known = {info.alias or name for name, info in DataProduct.model_fields.items()}
    kept = {k: v for k, v in document.items() if k in known}
    try:
        return DataProduct.model_validate(kept).to_document()
    except ValueError:
        return kept


def _plan_registry(plan: ProductPlan, local: _Local, registry: RegistryClient) -> None:
    product = local.product
    try:
        registered = registry.get_product(product.name)
    except ProductNotFoundError:
        plan.descriptor = Status.NEW
    else:
        plan.descriptor_changes = descriptor_changes(
            _registered_document(registered), product.to_document()
        )
        plan.descriptor = Status.CHANGED if plan.descriptor_changes else Status.UNCHANGED
    try:
        latest = registry.get_latest(plan.subject)
    except SubjectNotFoundError:
        plan.schema = Status.NEW if local.schema_json is not None else Status.UNKNOWN
        plan.compatibility_level = product.compatibility.value
        if local.schema_json is not None:
            plan.schema_changes = [
                SchemaChange(f.name, "added", after=f.type)
                for f in schema_fields(local.schema_json)
            ]
        return
    plan.registered_version = latest.version
    level = registry.get_compatibility(plan.subject)
    plan.compatibility_level = level
    if level != product.compatibility.value:
        plan.level_change = (level, product.compatibility.value)
    if local.schema_json is None or local.schema_text is None:
        return  # lint names what is wrong with the local schema
    if normalize(local.schema_text) == normalize(latest.schema):
        plan.schema = Status.UNCHANGED
        plan.compatible = True
        return
    older = _older_version(registry, plan.subject, local.schema_text)
    if older is not None:
        # Registering it again would only return its id: the latest version stays.
        plan.schema = Status.UNCHANGED
        plan.compatible = True
        plan.warnings.append(
            f"{local.schema_file} is version {older} of {plan.subject}, older than the latest "
            f"version {latest.version}: apply leaves the registry as it is; publishers of this "
            f"project write with version {older}"
        )
        return
    plan.schema = Status.CHANGED
    plan.schema_changes = schema_changes(json.loads(latest.schema), local.schema_json)
    against = None if level.endswith("_TRANSITIVE") else "latest"
    messages = registry.check_compatibility(plan.subject, local.schema_text, version=against)
    plan.compatible = not messages
    plan.compatibility_messages = list(messages)
    if messages:
        plan.refusals.append(
            compatibility_refusal(plan, messages, local.schema_text, product.version + 1)
        )


def _older_version(registry: RegistryClient, subject: str, schema_text: str) -> int | None:
    """The version ``schema_text`` already has under ``subject``, if any."""
    try:
        return registry.lookup(subject, schema_text).version
    except SchemaNotFoundError:
        return None


def _plan_topic(
    plan: ProductPlan,
    local: _Local,
    conn: KafkaConnection,
    admin: AdminClient,
    cluster: topics.ClusterInfo,
    existing: Collection[str],
) -> None:
    try:
        spec = topics.product_topic_spec(local.product, cluster)
    except ConfigurationError as exc:
        plan.refusals.append(
            Refusal(
                policy="topic-spec",
                message=str(exc),
                fix="lower `replication_factor` or leave it unset",
                file=local.descriptor_file,
                line=locate.line_of(local.descriptor_node, ("replication_factor",)),
                product=plan.name,
            )
        )
        return
    plan.topic_spec = f"{spec.partitions} partition(s), RF {spec.replication_factor}, " + ", ".join(
        f"{k}={v}" for k, v in sorted(spec.config.items())
    )
    # Asking for one topic by name may auto-create it on brokers that allow that, so only a
    # topic already in the full listing is described: a plan never writes.
    state = topics.describe_topic(admin, conn, spec.name) if spec.name in existing else None
    if state is None:
        plan.topic_status = TopicStatus.MISSING
        return
    drift = topics.differences(spec, state)
    plan.topic_status = TopicStatus.DRIFTED if drift else TopicStatus.AS_SPECIFIED
    plan.topic_drift = [d.describe() for d in drift]
    if drift:
        plan.warnings.append(
            f"topic {spec.name} differs from its descriptor: "
            + "; ".join(plan.topic_drift)
            + " (apply never alters an existing topic: change it with kafka-configs / "
            "kafka-reassign-partitions, or make the descriptor match)"
        )


def domain_acls(
    products: Sequence[DataProduct], domains: Sequence[str], registry_principal: str
) -> list[Acl]:
    """The ACLs a domain's own apply grants: the project's domains' grants and the readers
    of its products (the registry's own grants are the platform's, `mesh acl apply`)."""
    planned = plan_acls(products, domains=domains, registry_principal=registry_principal)
    return [acl for acl in planned.acls if acl.principal != registry_principal]


def _no_authorizer(exc: KafkaSecurityError) -> bool:
    cause = exc.__cause__
    error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.SECURITY_DISABLED


def has_authorizer(admin: AdminClient, timeout: float = 15.0) -> bool | None:
    """Whether the brokers run an authorizer (``authorizer.class.name`` set); None when
    their config cannot be read. (Kafka 4 answers DescribeAcls with an empty list rather
    than SECURITY_DISABLED when there is none, so the ACLs alone do not tell.)"""
    try:
        brokers = sorted(admin.list_topics(timeout=timeout).brokers)
        if not brokers:
            return None
        resource = ConfigResource(ResourceType.BROKER, str(brokers[0]))
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource]
        entry = entries.result(timeout).get("authorizer.class.name")
    except KafkaException:
        return None
    return None if entry is None else bool(entry.value)


def _plan_acls(
    plan: ProjectPlan, conn: KafkaConnection, admin: AdminClient, products: Sequence[DataProduct]
) -> None:
    wanted = domain_acls(products, plan.domains, REGISTRY_PRINCIPAL)
    if has_authorizer(admin) is False:
        plan.acl_status = AclStatus.NO_AUTHORIZER
        plan.acl_note = "the cluster has no authorizer: it keeps no ACLs, none to grant"
        return
    try:
        existing = describe_acls(conn)
    except KafkaSecurityError as exc:
        if _no_authorizer(exc):
            plan.acl_status = AclStatus.NO_AUTHORIZER
            plan.acl_note = "the cluster has no authorizer: it keeps no ACLs, none to grant"
        else:
            plan.acl_status = AclStatus.UNREADABLE
            plan.acl_note = (
                f"cannot read the cluster's ACLs ({exc}); apply leaves them alone: an "
                "administrator grants them with `mesh acl apply`"
            )
            plan.warnings.append(plan.acl_note)
        return
    plan.acls_missing = list(diff(wanted, existing, lambda _acl: False).create)
    plan.acl_status = AclStatus.MISSING if plan.acls_missing else AclStatus.IN_PLACE


def _lint_refusals(report: LintReport) -> tuple[list[Refusal], list[str]]:
    refusals, warnings = [], []
    for violation in report.violations:
        if violation.severity is Severity.ERROR:
            field_text = f"{violation.field}: " if violation.field else ""
            refusals.append(
                Refusal(
                    policy=violation.policy,
                    message=f"{field_text}{violation.message}",
                    fix=violation.fix,
                    file=violation.file,
                    line=violation.line,
                    product=violation.product,
                )
            )
        elif violation.severity is Severity.WARNING:
            warnings.append(f"{violation.location}: [{violation.policy}] {violation.message}")
    return refusals, warnings


class RegistryCatalog:
    """The registry's products as a governance catalog, so the lint of a plan finds inputs
    that live in other domains' repositories (read-only; each product asked once)."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self._documents: dict[str, dict[str, Any] | None] = {}

    def _document(self, name: str) -> dict[str, Any] | None:
        if name not in self._documents:
            try:
                self._documents[name] = self.registry.get_product(name)
            except ProductNotFoundError:
                self._documents[name] = None
        return self._documents[name]

    def known(self, name: str) -> bool:
        return self._document(name) is not None

    def product(self, name: str) -> DataProduct | None:
        document = self._document(name)
        if document is None:
            return None
        try:
            return DataProduct.model_validate(_registered_document(document))
        except ValueError:
            return None

    def schema(self, name: str) -> Mapping[str, Any] | None:
        product = self.product(name)
        if product is None:
            return None
        try:
            parsed = json.loads(self.registry.get_latest(product.value_subject).schema)
        except (SubjectNotFoundError, ValueError):
            return None
        return parsed if isinstance(parsed, dict) else None

    def downstream(self, name: str) -> list[str]:
        document = self._document(name) or {}
        return sorted(str(d) for d in document.get("registry", {}).get("downstream", []))


def plan_project(
    project: MeshProject,
    registry: RegistryClient,
    conn: KafkaConnection | None,
    *,
    principal: str | None,
) -> ProjectPlan:
    """The plan of ``project`` against ``registry`` and (when given) the cluster of ``conn``.

    Read-only: nothing is registered, created or granted.
    """
    plan = ProjectPlan(
        root=project.root,
        domains=project.domains,
        registry_url=registry.url,
        bootstrap_servers=conn.bootstrap_servers if conn is not None else None,
    )
    report = lint_project(project, outside=RegistryCatalog(registry))
    plan.lint_errors, plan.lint_warnings = report.errors, report.warnings
    lint_refusals, plan.warnings = _lint_refusals(report)
    try:
        products = project.descriptors()
    except DescriptorError as exc:
        products = []
        if not lint_refusals:
            plan.refusals += [
                Refusal("descriptor-valid", line, "fix the descriptor as the message says")
                for line in str(exc).splitlines()
            ]
    by_product: dict[str, list[Refusal]] = {}
    for refusal in lint_refusals:
        if refusal.product is not None and any(p.name == refusal.product for p in products):
            by_product.setdefault(refusal.product, []).append(refusal)
        else:
            plan.refusals.append(refusal)
    admin = make_admin(conn, {"log_level": 0}) if conn is not None else None
    cluster = topics.cluster_info(conn, admin=admin) if conn is not None else None
    existing = set(admin.list_topics(timeout=30).topics) if admin is not None else set()
    for local in _load_local(project, products):
        product = local.product
        item = ProductPlan(
            name=product.name,
            topic=product.topic,
            subject=product.value_subject,
            descriptor_file=local.descriptor_file,
            schema_file=local.schema_file,
            refusals=by_product.get(product.name, []),
        )
        owner = ownership_refusal(
            product,
            principal,
            local.descriptor_file,
            locate.line_of(local.descriptor_node, ("domain",)),
        )
        if owner is not None:
            item.refusals.insert(0, owner)
        _plan_registry(item, local, registry)
        if conn is not None and admin is not None and cluster is not None:
            _plan_topic(item, local, conn, admin, cluster, existing)
        plan.products.append(item)
    if conn is not None and admin is not None and products:
        _plan_acls(plan, conn, admin, products)
    return plan


# -- applying ---------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    """What an apply did, one line per change (empty: everything already matched)."""

    actions: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "actions": self.actions, "unchanged": self.unchanged}


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
    for product in products:
        item = items[product.name]
        if item.unchanged:
            result.unchanged.append(product.name)
            continue
        if item.schema is not Status.UNCHANGED:
            text = project.schema_path(product).read_text(encoding="utf-8")
            schema_id = registration.register_value_schema(registry, product, text)
            done(f"{product.name}: schema registered under {item.subject} (id {schema_id})")
        if item.level_change is not None:
            registry.set_compatibility(product.compatibility.value, item.subject)
            done(
                f"{product.name}: compatibility of {item.subject} set to "
                f"{product.compatibility.value} (was {item.level_change[0]})"
            )
        if item.descriptor is not Status.UNCHANGED:
            registration.register_descriptor(registry, product)
            verb = "registered" if item.descriptor is Status.NEW else "updated"
            done(f"{product.name}: descriptor {verb}")
    return result
