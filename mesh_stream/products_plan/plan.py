"""Gathering a plan, read-only: the project's files, the registry's products, schemas and
compatibility verdicts, the cluster's topics and ACLs, and the project's lint.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from mesh_stream.contracts import compile_contract
from mesh_stream.descriptor import DataProduct, descriptor_files, load_descriptor
from mesh_stream.errors import (
    ConfigurationError,
    DescriptorError,
    KafkaSecurityError,
    MeshError,
    ProductNotFoundError,
    RegistryUnavailableError,
    SchemaError,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from mesh_stream.files import read_regular_text
from mesh_stream.governance import locate
from mesh_stream.governance.acl_plan import MONITOR_PRINCIPAL, REGISTRY_PRINCIPAL, plan_acls
from mesh_stream.governance.model import Severity
from mesh_stream.governance.registered import consumer_verdict, level_problems
from mesh_stream.governance.repository import LintReport, lint_project
from mesh_stream.kafka import topics
from mesh_stream.kafka.acls import Acl, describe_acls, diff, has_authorizer
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.products_plan.judge import (
    accepted_but_silent,
    compatibility_refusal,
    consumer_refusal,
    descriptor_changes,
    ownership_refusal,
    schema_changes,
    schema_fields,
)
from mesh_stream.products_plan.model import (
    AclStatus,
    ProductPlan,
    ProjectPlan,
    Refusal,
    SchemaChange,
    Status,
    TopicStatus,
)
from mesh_stream.project import MeshProject
from mesh_stream.registry.client import RegisteredSchema, RegistryClient
from mesh_stream.schema.avro import normalize, parse_schema


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
        text = ""  # the file loaded just before; its text only places lines
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = read_regular_text(path)
        schema_text: str | None = None
        schema_json: dict[str, Any] | None = None
        try:
            schema_path = project.schema_path(product)
        except SchemaError:  # outside the project: named as written, never read (lint says why)
            schema_path = project.root / product.schema_file
        else:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                schema_text = read_regular_text(schema_path)
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
    registered: dict[str, Any] | None = None
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
        plan.compatibility_level = product.compatibility_level.value
        if local.schema_json is not None:
            plan.schema_changes = [
                SchemaChange(f.name, "added", after=f.type)
                for f in schema_fields(local.schema_json)
            ]
            if registered is not None:
                plan.warnings += _dropped_by_new_major(registry, product, registered, local)
            if local.schema_text is not None:
                _ask_registry_to_read(plan, registry, local.schema_text)
        return
    plan.registered_version = latest.version
    level = registry.get_compatibility(plan.subject)
    plan.compatibility_level = level
    if level != product.compatibility_level.value:
        plan.level_change = (level, product.compatibility_level.value)
    if local.schema_json is None or local.schema_text is None:
        return  # lint names what is wrong with the local schema
    if normalize(local.schema_text) == normalize(latest.schema):
        plan.contract_changes = _contract_changes(product, local.schema_json, latest)
        held = (
            _older_contract(registry, plan.subject, local, product, latest.version)
            if plan.contract_changes
            else None
        )
        if held is not None:
            # Registering returns that version (Confluent's semantics): the latest keeps its
            # contract, and apply would "register" on every run, changing nothing.
            plan.warnings.append(
                f"the registry holds this schema with the descriptor's contract as version "
                f"{held} of {plan.subject}, older than the latest version {latest.version} "
                f"({'; '.join(plan.contract_changes)}): registering returns version {held}, so "
                f"apply leaves the latest as it is and publishers enforce its contract; to go "
                f"back to version {held}'s, soft-delete the later version(s) (DELETE "
                f"/subjects/{plan.subject}/versions/<n>)"
            )
            plan.contract_changes = []
        plan.schema = Status.CHANGED if plan.contract_changes else Status.UNCHANGED
        plan.compatible = True
        return
    older = _older_version(registry, plan.subject, local.schema_text)
    if older is not None:
        # Registering it again would only return its id: the latest version stays.
        plan.schema = Status.UNCHANGED
        plan.local_version = older
        plan.compatible = True
        plan.warnings.append(
            f"{local.schema_file} is version {older} of {plan.subject}, older than the latest "
            f"version {latest.version}: apply leaves the registry as it is; publishers of this "
            f"project write with version {older}"
        )
        return
    plan.schema = Status.CHANGED
    plan.schema_changes = schema_changes(json.loads(latest.schema), local.schema_json)
    plan.warnings += accepted_but_silent(plan.subject, plan.schema_changes, local.schema_json)
    against = None if level.endswith("_TRANSITIVE") else "latest"
    messages = registry.check_compatibility(plan.subject, local.schema_text, version=against)
    verdict = consumer_verdict(registry, product, local.schema_text)
    # The registry's answer holds consumer protection too: when the readers' refusal below
    # says it, the level's refusal says only what the subject's own level refuses (nothing,
    # when it passes), so no reason is refused twice.
    readers_refuse = bool(messages) and verdict is not None and verdict.refused
    own = (
        [str(p) for p in level_problems(registry, product, local.schema_text, level)]
        if readers_refuse
        else list(messages)
    )
    said_by_readers = readers_refuse and not own
    plan.compatible = not messages
    plan.level_compatible = not messages or said_by_readers
    plan.compatibility_messages = own
    if own:
        plan.refusals.append(
            compatibility_refusal(plan, own, local.schema_text, product.version + 1, latest.schema)
        )
    if verdict is not None:
        plan.consumers = list(verdict.consumers)
        plan.consumer_level = verdict.level.value
        plan.protects_consumers = not verdict.refused
        if verdict.refused:
            plan.compatible = False
            plan.compatibility_messages += verdict.lines()
            plan.refusals.append(consumer_refusal(plan, verdict, local.schema_text))


def _ask_registry_to_read(plan: ProductPlan, registry: RegistryClient, text: str) -> None:
    """A refusal when the registry would refuse ``text`` as a new subject's first version
    for what it is (its size over the registry's limit, what it cannot parse): ``mesh lint``
    judges it against the SDK's limits, and the registry may be configured tighter (h44:
    plan said applicable, apply created the topics, then the registry refused)."""
    try:
        registry.check_compatibility(plan.subject, text, version="latest")
    except (SubjectNotFoundError, RegistryUnavailableError):
        return  # an older registry (40401 for a new subject), or none: apply will say
    except MeshError as exc:
        said = str(getattr(exc, "message", exc))
        if getattr(exc, "status", None) != 422 or not said.startswith("Invalid schema"):
            # not about the schema itself (a config's default ruleSet, say, which the
            # descriptor's rules replace at apply): registering says so, if it matters
            return
        plan.refusals.append(
            Refusal(
                policy="schema-valid",
                message=f"{plan.subject}: the registry at {registry.url} refuses the schema: "
                f"{getattr(exc, 'message', exc)}",
                fix="make the schema fit the registry's limits (or have them raised), then "
                "plan again",
                file=plan.schema_file,
                line=1,
                product=plan.name,
            )
        )


def _dropped_by_new_major(
    registry: RegistryClient, product: DataProduct, registered: Mapping[str, Any], local: _Local
) -> list[str]:
    """Warnings for a new major version whose schema lacks fields the current major's
    readers use: a registered group's ``reads``, a downstream product's ``field_lineage``.
    The registry protects readers within a major only (a new major is a new subject and
    topic), so their processors would refuse to start once they move (a campaign: plan
    said "applicable" and nothing else)."""
    before = registered.get("version")
    if not isinstance(before, int) or before >= product.version or local.schema_json is None:
        return []
    kept = {field.name for field in schema_fields(local.schema_json)}
    readers: dict[str, list[str]] = {}
    facts = registered.get("registry") or {}
    for entry in facts.get("consumers") or []:
        if isinstance(entry, dict):
            for name in entry.get("reads") or []:
                if name not in kept:
                    readers.setdefault(str(name), []).append(f"consumer group {entry.get('group')}")
    for other in facts.get("downstream") or []:
        with contextlib.suppress(MeshError):
            lineage = registry.get_product(str(other)).get("field_lineage") or {}
            for sources in lineage.values():
                for source in sources:
                    name, _, field = str(source).partition(":")
                    if name == product.name and field and field not in kept:
                        readers.setdefault(field, []).append(f"product {other}'s field_lineage")
    return [
        f"major version {product.version} of {product.name} drops field {field!r}, which "
        f"{', '.join(sorted(set(who)))} read(s) on version {before}: they keep reading "
        f"version {before}'s topic, and must stop reading {field!r} before they move to "
        f"version {product.version} (a processor refuses to start on a field its input lacks)"
        for field, who in sorted(readers.items())
    ]


def _registry_policies(
    plan: ProductPlan, local: _Local, catalog: RegistryCatalog, project_products: set[str]
) -> None:
    """Refusals for what the registry's own policies (its ``MESH_GOVERNANCE_ROOT``, which a
    domain's ``policies.yaml`` does not reach) would refuse in the descriptor: asked before
    apply writes anything, so a descriptor the registry refuses leaves no topic or schema
    behind (a new team's campaign: apply made both, then the registry refused).

    Not asked when the local checks refuse the product already (their refusal says it
    first), nor when an input is a product of this project the registry does not hold yet
    (apply registers it first; until then the registry cannot judge the lineage): a
    warning says so, and the registry judges the descriptor when apply registers it."""
    if plan.refusals or local.schema_text is None:
        return
    registry = catalog.registry
    pending = [
        name
        for name in local.product.inputs
        if name in project_products and not catalog.known(name)
    ]
    if pending:
        plan.warnings.append(
            f"{local.descriptor_file}: the registry's own policies are checked when apply "
            f"registers it, after its input(s) {', '.join(pending)} of this project"
        )
        return
    try:
        problems = registry.check_product(local.product, local.schema_text)
    except RegistryUnavailableError:
        raise
    except MeshError as exc:  # an older registry without the check, or one that refuses
        if getattr(exc, "status", None) in (404, 405):
            plan.warnings.append(
                f"{local.descriptor_file}: the registry at {registry.url} cannot check a "
                f"descriptor before it is written (an older registry); its policies are "
                f"applied when apply registers it"
            )
            return
        plan.refusals.append(
            Refusal(
                "registry-check",
                str(exc),
                "fix the descriptor as the message says",
                file=local.descriptor_file,
                product=local.product.name,
            )
        )
        return
    known = {refusal.policy for refusal in plan.refusals}
    for problem in problems:
        policy, message = str(problem.get("policy")), str(problem.get("message"))
        field = problem.get("field")
        if problem.get("severity") != "error":
            plan.warnings.append(f"{local.descriptor_file}: [{policy}] (registry) {message}")
            continue
        if policy in known:  # the local lint said it already
            continue
        where = _field_path(str(field)) if field else ()
        plan.refusals.append(
            Refusal(
                policy,
                f"{field}: {message}" if field else message,
                "the registry applies the platform's policies, not the domain's "
                "policies.yaml: change the descriptor to fit them, or ask the platform team",
                file=local.descriptor_file,
                line=locate.line_of(local.descriptor_node, where),
                product=local.product.name,
            )
        )


def _field_path(field: str) -> tuple[str | int, ...]:
    """A policy's field (``inputs[0]``, ``retention.ms``) as a path into the YAML."""
    path: list[str | int] = []
    for part in field.split("."):
        name, _, rest = part.partition("[")
        if name:
            path.append(name)
        for index in rest.replace("]", "").split("[") if rest else []:
            if index.isdigit():
                path.append(int(index))
    return tuple(path)


def _contract_changes(
    product: DataProduct, schema: Mapping[str, Any], latest: RegisteredSchema
) -> list[str]:
    """What the descriptor's compiled contract changes against the latest version's: its
    quality rules (``ruleSet``) and its field tags and properties (``metadata``)."""
    contract = compile_contract(product, schema)
    changes = []
    if (latest.rule_set or {}) != contract.rule_set:
        before = [r.get("name") for r in (latest.rule_set or {}).get("domainRules", [])]
        after = [r["name"] for r in contract.rule_set.get("domainRules", [])]
        changes.append(f"quality rules: {before or 'none'} -> {after or 'none'}")
    registered = latest.metadata or {}
    for part in ("tags", "properties"):
        if registered.get(part, {}) != contract.metadata.get(part, {}):
            changes.append(f"metadata {part} (field tags and product properties)")
    return changes


def _older_contract(
    registry: RegistryClient, subject: str, local: _Local, product: DataProduct, latest: int
) -> int | None:
    """The version before ``latest`` that holds the local schema with the descriptor's
    contract (ruleSet and metadata), if any: registering them returns it."""
    assert local.schema_json is not None
    assert local.schema_text is not None
    contract = compile_contract(product, local.schema_json)
    try:
        found = registry.lookup(
            subject, local.schema_text, metadata=contract.metadata, rule_set=contract.rule_set
        )
    except SchemaNotFoundError:
        return None
    return found.version if found.version < latest else None


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
    # Every product's dead-letter topic is its owner's to create: its readers write there
    # but may not create it (they would choose its retention, h42).
    if local.product.dlq_topic not in existing:
        plan.dlq_topic_missing = local.product.dlq_topic
    else:  # one a reader created before may keep dead letters a second (h42)
        dlq_spec = topics.dlq_topic_spec(local.product, cluster)
        dlq_state = topics.describe_topic(admin, conn, dlq_spec.name)
        if dlq_state is not None:
            plan.dlq_topic_drift = [
                d.describe()
                for d in topics.differences(dlq_spec, dlq_state)
                if d.setting in topics.COMPARED_CONFIGS
            ]
    # Asking for one topic by name may auto-create it on brokers that allow that, so only a
    # topic already in the full listing is described: a plan never writes.
    state = topics.describe_topic(admin, conn, spec.name) if spec.name in existing else None
    if state is None:
        plan.topic_status = TopicStatus.MISSING
        user = conn.sasl_username
        if user is not None and user != local.product.domain:
            plan.topic_unseen_by = conn.principal  # may exist, hidden from this principal
        return
    drift = topics.differences(spec, state)
    fragile = topics.one_broker_stops_writes(state)
    if fragile is not None:
        plan.warnings.append(f"topic {spec.name}: {fragile}")
    plan.topic_status = TopicStatus.DRIFTED if drift else TopicStatus.AS_SPECIFIED
    plan.topic_drift = [d.describe() for d in drift]
    promised = [d for d in drift if d.setting in topics.PROMISED_SETTINGS]
    for difference in promised:
        plan.refusals.append(_contradiction(plan, local, spec.name, difference))
    operational = [d.describe() for d in drift if d not in promised]
    if operational:
        plan.warnings.append(
            f"topic {spec.name} differs from its descriptor: "
            + "; ".join(operational)
            + " (apply never alters an existing topic: change it with kafka-configs / "
            "kafka-reassign-partitions, or make the descriptor match)"
        )


#: The descriptor field that says each setting of topics.PROMISED_SETTINGS (what a
#: descriptor promises its consumers about its topic).
_PROMISED: dict[str, tuple[str, ...]] = {
    "partitions": ("partitions",),
    "cleanup.policy": ("retention", "cleanup_policy"),
    "retention.ms": ("retention", "ms"),
}


def _contradiction(
    plan: ProductPlan, local: _Local, topic: str, difference: topics.TopicDifference
) -> Refusal:
    """A refusal for a descriptor that says of its existing topic what the topic is not."""
    field = ".".join(_PROMISED[difference.setting])
    if difference.setting == "partitions" and int(difference.expected) < int(difference.actual):
        fix = f"set `partitions: {difference.actual}` (Kafka cannot take partitions away)"
    else:
        tool = "kafka-topics --alter --partitions" if field == "partitions" else "kafka-configs"
        fix = (
            f"set `{field}` to the topic's {difference.actual}, or have the topic altered "
            f"first ({tool}; apply never alters an existing topic)"
        )
    return Refusal(
        policy="topic-contradiction",
        message=(
            f"topic {topic} exists with {difference.setting} {difference.actual}, but the "
            f"descriptor says {difference.expected}: the catalog would describe a topic that "
            f"is not there"
        ),
        fix=fix,
        file=local.descriptor_file,
        line=locate.line_of(local.descriptor_node, _PROMISED[difference.setting]),
        product=plan.name,
    )


def domain_acls(
    products: Sequence[DataProduct], domains: Sequence[str], registry_principal: str
) -> list[Acl]:
    """The ACLs a domain's own apply grants: the project's domains' grants and the readers
    of its products (the registry's and the monitor's grants are the platform's, `mesh acl
    apply`)."""
    planned = plan_acls(products, domains=domains, registry_principal=registry_principal)
    services = {registry_principal, MONITOR_PRINCIPAL}
    return [acl for acl in planned.acls if acl.principal not in services]


def _no_authorizer(exc: KafkaSecurityError) -> bool:
    cause = exc.__cause__
    error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.SECURITY_DISABLED


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
    """The registry's products as a governance catalog, so a lint (`mesh lint`, and the
    lint of a plan) finds inputs that live in other domains' repositories (read-only; each
    product asked once).

    An unreachable registry is remembered in :attr:`unreachable` and asked no more: its
    products are then unknown, neither present nor missing (``known`` answers None).
    """

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self.unreachable: RegistryUnavailableError | None = None
        self._documents: dict[str, dict[str, Any] | None] = {}

    def _document(self, name: str) -> dict[str, Any] | None:
        if name not in self._documents and self.unreachable is None:
            try:
                self._documents[name] = self.registry.get_product(name)
            except ProductNotFoundError:
                self._documents[name] = None
            except RegistryUnavailableError as exc:
                self.unreachable = exc
        return self._documents.get(name)

    def known(self, name: str) -> bool | None:
        document = self._document(name)
        if document is None and name not in self._documents:
            return None
        return document is not None

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
        except RegistryUnavailableError as exc:
            self.unreachable = exc
            return None
        return parsed if isinstance(parsed, dict) else None

    def downstream(self, name: str) -> list[str]:
        document = self._document(name) or {}
        return sorted(str(d) for d in document.get("registry", {}).get("downstream", []))

    def consumer_groups(self, name: str) -> list[str]:
        document = self._document(name) or {}
        groups = document.get("registry", {}).get("consumers") or []
        return sorted(
            f"{entry.get('group')} ({entry.get('owner')})"
            for entry in groups
            if isinstance(entry, dict)
        )


def _nothing_to_apply(project: MeshProject) -> str:
    """The warning of a plan whose project holds no descriptor at all. A warning, not a
    refusal: apply would write nothing, as `mesh lint` passes such a project (a domain may
    have retired its last product); but a plan that says only "applicable" would hide a
    descriptor left out (misplaced, hidden, ``products`` naming the wrong folder)."""
    folder = project.descriptors_dir
    return (
        f"no descriptors under {folder}: nothing to apply; a descriptor is "
        f"{folder}/<domain>/products/<product>.yaml (names starting with `.` are skipped), "
        f"`products` in {project.config_file} names the folder"
    )


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
    catalog = RegistryCatalog(registry)  # the lint's and the registry check's, asked once
    report = lint_project(project, outside=catalog)
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
    else:
        if not products:
            plan.warnings.append(_nothing_to_apply(project))
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
        if Status.NEW in (item.descriptor, item.schema) or Status.CHANGED in (
            item.descriptor,
            item.schema,
        ):
            _registry_policies(item, local, catalog, {p.name for p in products})
        if conn is not None and admin is not None and cluster is not None:
            _plan_topic(item, local, conn, admin, cluster, existing)
        plan.products.append(item)
    if conn is not None and admin is not None and products:
        _plan_acls(plan, conn, admin, products)
    return plan
