"""Ownership at the broker: the Kafka ACLs the descriptors call for.

Domain ownership is enforced twice (DESIGN.md): by the registry, and by the broker through
these ACLs, one principal ``User:<domain>`` per domain. :func:`plan_acls` derives them:

- **own topics**: ``User:<d>`` is the only writer of topics prefixed ``<d>.`` (WRITE,
  CREATE, DESCRIBE, DESCRIBE_CONFIGS; READ too, a domain reads what it owns, its DLQs
  included). On the cluster: IDEMPOTENT_WRITE (idempotent producers) and DESCRIBE_CONFIGS
  (topic specs read ``default.replication.factor``).
- **reading**: READ + DESCRIBE on the topic of every product of another domain it may
  read: every product not classified ``pii``; a ``pii`` product only for the domains its
  descriptor names in ``readers``. DESCRIBE_CONFIGS too: a processor compares an existing
  input topic with its spec (:func:`mesh_stream.kafka.topics.ensure_topics`).
- **dead letters**: a reader writes the records it cannot decode to ``<topic>.dlq`` (the
  SDK consumer, the processors' re-key stage): WRITE, DESCRIBE and DESCRIBE_CONFIGS on that
  literal topic. Only the owner creates a DLQ (`mesh products apply`, `mesh up`, its
  publisher) and reads it: a reader allowed to create it could choose its retention.
- **groups and transactions**: READ on consumer groups and WRITE + DESCRIBE on
  transactional ids prefixed ``<d>.`` or ``<d>-`` (the SDK's naming rule for a domain's own
  groups); READ on ``mesh-tail-`` groups (`mesh tail`'s throw-away groups); READ + DESCRIBE
  on the alerts topic and READ on ``mesh-products-status-`` groups (`mesh products status
  --watch`).
- **processors**: a domain owning a product built from inputs runs its processor as app id
  ``mesh-<product>`` (consumer groups ``mesh-<product>`` and ``mesh-<product>-rekey``,
  internal, changelog and faust assignor topics ``mesh-<product>-...``): ALL on topics,
  READ on groups, WRITE + DESCRIBE on transactional ids prefixed ``mesh-<d>.``.
- **registry**: its principal (``User:registry`` by default) gets the registry topic, the
  ``mesh-registry-`` groups and transactional ids, IDEMPOTENT_WRITE on the cluster, and
  READ + DESCRIBE on every product topic (the portal's masked samples) and on the health
  topic (product health).
- **monitor**: its principal (``User:monitor`` by default) reads every product topic and
  DLQ (READ + DESCRIBE: offsets, the newest record's timestamp), describes the consumer
  groups the SDK's and processors' naming rules allow (their committed offsets: lag), owns
  the health and alerts topics, reads with ``mesh-monitor-`` groups, and gets the cluster
  operations a domain gets. It writes no product.

The plan also *scopes* what ``mesh acl apply`` may delete: only ALLOW ACLs of the plan's
principals on the mesh's names (:meth:`AclPlan.manages`). Anything else on the cluster
(other principals, other names, DENY rules) is never touched, with one exception: a domain
gone from the mesh, named with ``--retire``. The cluster shows such a domain by two grants
only the mesh makes together, its principal's WRITE on topics prefixed with its own name and
READ on ``mesh-tail-`` groups (:func:`retired_domains`); apply then also manages that
principal and that domain's names (:meth:`AclPlan.retiring`), so every ACL the mesh granted
for it goes, the grants of others on its topics included. A domain the cluster shows and the
project lacks is otherwise left alone (:func:`plan_retirement`): with one repository per
domain, a project lacking a domain does not mean the mesh lost it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mesh_stream.descriptor import NAME_PART, Classification, DataProduct, load_descriptors
from mesh_stream.errors import ConfigurationError
from mesh_stream.kafka.acls import CLUSTER, Acl, Operation, Pattern, Permission, Resource
from mesh_stream.project import (
    MONITOR_USER,
    PLATFORM_NAME,
    REGISTRY_USER,
    domain_name_problem,
    load_project,
    overlapping_domain,
)
from mesh_stream.settings import KAFKA_MAX_NAME_LENGTH, MeshSettings

REGISTRY_PRINCIPAL = f"User:{REGISTRY_USER}"
MONITOR_PRINCIPAL = f"User:{MONITOR_USER}"
_DEFAULTS = MeshSettings.model_fields
REGISTRY_TOPIC: str = _DEFAULTS["registry_topic"].default
REGISTRY_WRITER_ID: str = _DEFAULTS["registry_writer_id"].default
REGISTRY_PREFIX = "mesh-registry-"
"""Prefix of the registry's consumer groups and writer transactional ids."""
MONITOR_PREFIX = "mesh-monitor-"
"""Prefix of the monitor's consumer groups (it reads; it never subscribes nor commits)."""
HEALTH_TOPIC: str = _DEFAULTS["health_topic"].default
ALERTS_TOPIC: str = _DEFAULTS["alerts_topic"].default
TAIL_GROUP_PREFIX = "mesh-tail-"
"""`mesh tail`'s throw-away consumer groups."""
STATUS_GROUP_PREFIX = "mesh-products-status-"
"""`mesh products status --watch`'s alert readers (they assign; they never commit)."""
PROCESSOR_PREFIX = f"{PLATFORM_NAME}-"
"""Processor app ids are ``mesh-<product>`` (see :mod:`mesh_stream.processing.app`)."""

_DOMAIN = re.compile(rf"^{NAME_PART}\Z")

_OWN_TOPIC_OPS = (
    Operation.READ,
    Operation.WRITE,
    Operation.CREATE,
    Operation.DESCRIBE,
    Operation.DESCRIBE_CONFIGS,
)
_CLUSTER_OPS = (Operation.IDEMPOTENT_WRITE, Operation.DESCRIBE_CONFIGS)
_READ_OPS = (Operation.READ, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)
#: A reader's rights on another domain's dead-letter topic: it writes what it cannot decode
#: there, but never creates it (it would choose its retention): its owner does.
_DLQ_OPS = (Operation.WRITE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)
_TXN_OPS = (Operation.WRITE, Operation.DESCRIBE)
_PEEK_OPS = (Operation.READ, Operation.DESCRIBE)


def is_domain_name(value: str) -> bool:
    """Whether ``value`` has the shape of a domain name (``shipping``, ``order-fulfilment``)."""
    return _DOMAIN.match(value) is not None


def principal(domain: str) -> str:
    """The Kafka principal of a domain (its SCRAM user is the domain name)."""
    return f"User:{domain}"


#: The principal Kafka gives a client that did not authenticate (a PLAINTEXT listener).
KAFKA_ANONYMOUS = "ANONYMOUS"


def principal_problem(value: str) -> str | None:
    """Why ``value`` cannot be a service's principal, None when it can: ``User:<name>``, the
    only kind the mesh's SCRAM users have, and never the wildcard ``User:*``, which would give
    every user the service's grants."""
    name = value.removeprefix("User:")
    printable = name.isprintable() and len(name) <= KAFKA_MAX_NAME_LENGTH
    if name == value or not printable or not re.fullmatch(r"[^\s,*]+", name):
        return (
            f"{value[:60]!r} is not a Kafka principal like User:registry (User:<name>, printable, "
            f"no blank, ',' or '*', at most {KAFKA_MAX_NAME_LENGTH} characters)"
        )
    if name == KAFKA_ANONYMOUS:
        return (
            f"{value!r} is the principal Kafka gives every unauthenticated client: each "
            f"would get the service's grants; give the service a user of its own"
        )
    return None


@dataclass(frozen=True)
class AclPlan:
    """The ACLs the descriptors call for, sorted, and the scope ``apply`` may delete in."""

    acls: tuple[Acl, ...]
    principals: frozenset[str]
    prefixes: tuple[str, ...]
    literals: frozenset[str]
    warnings: tuple[str, ...] = ()
    #: Readers (``readers:``) that are no domain of the project: another repository's
    #: domains, whose own grants that project's apply manages.
    outside_readers: frozenset[str] = frozenset()
    #: The topic prefixes of the project's own domains (``<domain>.``).
    own_topics: tuple[str, ...] = ()

    def manages(self, acl: Acl) -> bool:
        """True for an ACL the mesh would itself grant: an ALLOW of one of the plan's
        principals on the cluster or on a name in the mesh's namespaces. Of a reader from
        outside the project, only its grants on the project's own topics: the rest (its
        cluster operations, its `mesh tail` groups) its own project grants."""
        if acl.permission is not Permission.ALLOW or acl.principal not in self.principals:
            return False
        if acl.principal in self.outside_readers:
            return acl.resource is Resource.TOPIC and acl.name.startswith(self.own_topics)
        if acl.resource is Resource.CLUSTER:
            return True
        return acl.name in self.literals or any(acl.name.startswith(p) for p in self.prefixes)

    def retiring(self, domains: Iterable[str], principals: Iterable[str] = ()) -> AclPlan:
        """This plan, managing also the principals and names of ``domains``, which it no
        longer has (:func:`retired_domains`), and the ``principals`` of replaced services:
        nothing is planned for them, so apply deletes every ACL the mesh granted for them
        (a replaced service's on the names this plan manages)."""
        retired = sorted(set(domains))
        services = set(principals)
        if not retired and not services:
            return self
        names = [name for d in retired for name in _namespace(d)]
        return dataclasses.replace(
            self,
            principals=self.principals | {principal(d) for d in retired} | services,
            prefixes=tuple(sorted({*self.prefixes, *names})),
            outside_readers=self.outside_readers - {principal(d) for d in retired},
            own_topics=tuple(sorted({*self.own_topics, *(f"{d}." for d in retired)})),
        )

    def by_principal(self) -> dict[str, list[Acl]]:
        grouped: dict[str, list[Acl]] = {}
        for acl in self.acls:
            grouped.setdefault(acl.principal, []).append(acl)
        return grouped


@dataclass
class _Builder:
    acls: set[Acl] = field(default_factory=set)

    def grant(
        self,
        who: str,
        resource: Resource,
        pattern: Pattern,
        name: str,
        operations: Iterable[Operation],
    ) -> None:
        for operation in operations:
            self.acls.add(Acl(who, resource, pattern, name, operation))


def _at_major(product: DataProduct, major: int) -> DataProduct:
    """``product`` as of an earlier ``major`` (its topic names)."""
    return product.model_copy(update={"version": major})


def plan_acls(
    products: Sequence[DataProduct],
    *,
    domains: Iterable[str] = (),
    registry_principal: str = REGISTRY_PRINCIPAL,
    registry_topic: str = REGISTRY_TOPIC,
    registry_writer_id: str = REGISTRY_WRITER_ID,
    monitor_principal: str = MONITOR_PRINCIPAL,
    health_topic: str = HEALTH_TOPIC,
    alerts_topic: str = ALERTS_TOPIC,
) -> AclPlan:
    """The ACLs for ``products``; ``domains`` adds domains that own no product yet (they
    still read). Deterministic: the same descriptors give the same sorted plan.

    A plan that would hand one party another's grants is refused
    (:class:`~mesh_stream.errors.ConfigurationError`): a domain named as the platform keeps
    names (:func:`mesh_stream.project.domain_name_problem`), a service principal that is
    ``User:*``, a domain's or the other service's, and a service topic that is another's or
    lies among a domain's names.
    """
    all_domains = sorted({*domains, *(p.domain for p in products)})
    _refuse_shared_grants(
        all_domains,
        products,
        {"--registry-principal": registry_principal, "--monitor-principal": monitor_principal},
        {
            "MESH_REGISTRY_TOPIC": registry_topic,
            "MESH_HEALTH_TOPIC": health_topic,
            "MESH_ALERTS_TOPIC": alerts_topic,
        },
    )
    by_name = {p.name: p for p in products}
    build = _Builder()
    warnings: list[str] = []
    prefixes: list[str] = [TAIL_GROUP_PREFIX, STATUS_GROUP_PREFIX, REGISTRY_PREFIX, MONITOR_PREFIX]
    processing = {p.domain for p in products if p.inputs}  # domains that run processors
    principals = {registry_principal, monitor_principal}

    for domain in all_domains:
        who = principal(domain)
        principals.add(who)
        prefixes += _namespace(domain)
        build.grant(who, Resource.TOPIC, Pattern.PREFIXED, f"{domain}.", _OWN_TOPIC_OPS)
        build.grant(who, Resource.CLUSTER, Pattern.LITERAL, CLUSTER, _CLUSTER_OPS)
        for prefix in (f"{domain}.", f"{domain}-"):
            build.grant(who, Resource.GROUP, Pattern.PREFIXED, prefix, [Operation.READ])
            build.grant(who, Resource.TRANSACTIONAL_ID, Pattern.PREFIXED, prefix, _TXN_OPS)
        build.grant(who, Resource.GROUP, Pattern.PREFIXED, TAIL_GROUP_PREFIX, [Operation.READ])
        # a domain team watches its products' alerts (`mesh products status --watch`)
        build.grant(who, Resource.TOPIC, Pattern.LITERAL, alerts_topic, _PEEK_OPS)
        build.grant(who, Resource.GROUP, Pattern.PREFIXED, STATUS_GROUP_PREFIX, [Operation.READ])
        if domain in processing:
            mine = f"{PROCESSOR_PREFIX}{domain}."
            build.grant(who, Resource.TOPIC, Pattern.PREFIXED, mine, [Operation.ALL])
            build.grant(who, Resource.GROUP, Pattern.PREFIXED, mine, [Operation.READ])
            build.grant(who, Resource.TRANSACTIONAL_ID, Pattern.PREFIXED, mine, _TXN_OPS)

    outside: set[str] = set()
    for product in sorted(products, key=lambda p: p.name):
        for reader in _readers(product, all_domains):
            if reader == product.domain:
                continue  # its own prefix covers it
            who = principal(reader)
            principals.add(who)
            if reader not in all_domains:
                outside.add(who)
            # every major up to the current one: readers drain an earlier major as they move,
            # and a processor may be held at one (`Input(..., major=1)`; h46: apply took the
            # grant on the earlier major away from it)
            for major in range(1, product.version + 1):
                held = product if major == product.version else _at_major(product, major)
                build.grant(who, Resource.TOPIC, Pattern.LITERAL, held.topic, _READ_OPS)
                build.grant(who, Resource.TOPIC, Pattern.LITERAL, held.dlq_topic, _DLQ_OPS)
        warnings += _unknown_readers(product, all_domains)
        for name in product.inputs:
            source = by_name.get(name)
            if source is not None and product.domain not in _readers(source, all_domains):
                warnings.append(
                    f"{product.name} is built from {name}, which is classified pii and does "
                    f"not name {product.domain} in its readers: the broker will refuse its "
                    f"processor; add `readers: [{product.domain}]` to the descriptor of {name} "
                    f"(if the owners of {name} agree)"
                )

    reg = registry_principal
    build.grant(reg, Resource.TOPIC, Pattern.LITERAL, registry_topic, _OWN_TOPIC_OPS)
    build.grant(reg, Resource.GROUP, Pattern.PREFIXED, REGISTRY_PREFIX, [Operation.READ])
    build.grant(reg, Resource.TRANSACTIONAL_ID, Pattern.PREFIXED, REGISTRY_PREFIX, _TXN_OPS)
    if not registry_writer_id.startswith(REGISTRY_PREFIX):  # a writer id of one's own
        build.grant(reg, Resource.TRANSACTIONAL_ID, Pattern.LITERAL, registry_writer_id, _TXN_OPS)
    build.grant(reg, Resource.CLUSTER, Pattern.LITERAL, CLUSTER, _CLUSTER_OPS)
    build.grant(reg, Resource.TOPIC, Pattern.LITERAL, health_topic, _PEEK_OPS)
    mon = monitor_principal
    for topic in (health_topic, alerts_topic):
        # ALTER_CONFIGS: the monitor corrects its topics when a broker auto-created them
        build.grant(
            mon, Resource.TOPIC, Pattern.LITERAL, topic, (*_OWN_TOPIC_OPS, Operation.ALTER_CONFIGS)
        )
    build.grant(mon, Resource.GROUP, Pattern.PREFIXED, MONITOR_PREFIX, [Operation.READ])
    build.grant(mon, Resource.CLUSTER, Pattern.LITERAL, CLUSTER, _CLUSTER_OPS)
    for domain in all_domains:
        groups = [f"{domain}.", f"{domain}-"]
        if domain in processing:
            groups.append(f"{PROCESSOR_PREFIX}{domain}.")
        for prefix in groups:
            build.grant(mon, Resource.GROUP, Pattern.PREFIXED, prefix, [Operation.DESCRIBE])
    for product in products:
        build.grant(reg, Resource.TOPIC, Pattern.LITERAL, product.topic, _PEEK_OPS)
        for topic in (product.topic, product.dlq_topic):
            build.grant(mon, Resource.TOPIC, Pattern.LITERAL, topic, _PEEK_OPS)
    return AclPlan(
        acls=tuple(sorted(build.acls)),
        principals=frozenset(principals),
        prefixes=tuple(sorted(set(prefixes))),
        literals=frozenset({registry_topic, health_topic, alerts_topic}),
        warnings=tuple(warnings),
        outside_readers=frozenset(outside),
        own_topics=tuple(f"{domain}." for domain in all_domains),
    )


def _namespace(domain: str) -> list[str]:
    """The name prefixes of a domain's topics, groups and transactional ids."""
    return [f"{domain}.", f"{domain}-", f"{PROCESSOR_PREFIX}{domain}."]


def retired_domains(plan: AclPlan, existing: Iterable[Acl]) -> list[str]:
    """Domains the cluster still grants as only the mesh grants a domain, but ``plan`` does
    not have (removed from the project): ``User:<d>`` may WRITE topics prefixed ``<d>.`` and
    READ ``mesh-tail-`` groups."""
    writes, tails = set(), set()
    for acl in existing:
        if acl.permission is not Permission.ALLOW or acl.principal in plan.principals:
            continue
        domain = acl.principal.removeprefix("User:")
        if not _DOMAIN.match(domain) or acl.pattern is not Pattern.PREFIXED:
            continue
        grant = (acl.resource, acl.operation, acl.name)
        if grant == (Resource.TOPIC, Operation.WRITE, f"{domain}."):
            writes.add(domain)
        elif grant == (Resource.GROUP, Operation.READ, TAIL_GROUP_PREFIX):
            tails.add(domain)
    return sorted(writes & tails)


@dataclass(frozen=True)
class Retirement:
    """What ``mesh acl apply`` does about domains the cluster shows and the project lacks.

    A project may hold only some of the mesh's domains (one repository per domain), so a
    domain missing from it is not proof that the domain is gone: only the domains named
    with ``--retire`` lose their ACLs."""

    retire: tuple[str, ...]
    """Asked for and found on the cluster: every ACL the mesh granted for them goes."""
    left_alone: tuple[str, ...]
    """Found on the cluster, not in the project, not asked for: untouched."""
    nothing_left: tuple[str, ...]
    """Asked for, but the cluster shows no mesh grant of theirs (already retired)."""


def refuse_planned_retirees(plan: AclPlan, asked: Iterable[str]) -> None:
    """Raise :class:`~mesh_stream.errors.ConfigurationError` when a domain ``asked`` to retire
    is one whose user the plan still grants: retiring it would undo the plan."""
    planned = sorted({d for d in asked if principal(d) in plan.principals})
    if planned:
        raise ConfigurationError(
            ", ".join(repr(d) for d in planned)
            + ": this project still grants "
            + ("it" if len(planned) == 1 else "them")
            + " (a domain of the project, or a reader its descriptors name); remove it from "
            "the project before retiring it"
        )


def refuse_planned_principals(plan: AclPlan, asked: Iterable[str]) -> None:
    """Raise :class:`~mesh_stream.errors.ConfigurationError` when a principal ``asked`` to
    retire is malformed or one the plan still grants (a service's or a domain's)."""
    problems = [problem for value in asked if (problem := principal_problem(value))]
    planned = sorted({p for p in asked if p in plan.principals})
    problems += [
        f"{value} is still granted by this plan (a domain's user, a reader its descriptors "
        f"name, or --registry-principal / --monitor-principal)"
        for value in planned
    ]
    if problems:
        raise ConfigurationError("; ".join(problems))


def plan_retirement(plan: AclPlan, existing: Iterable[Acl], asked: Iterable[str]) -> Retirement:
    """Split the domains ``asked`` to retire (and those the cluster shows, see
    :func:`retired_domains`) into what apply deletes, leaves alone, or finds already gone.

    A domain asked for whose user the plan still grants is refused
    (:class:`~mesh_stream.errors.ConfigurationError`): it is in the project, or a ``readers``
    entry of one of its descriptors, so retiring it would undo the plan."""
    wanted = sorted(set(asked))
    refuse_planned_retirees(plan, wanted)
    existing = list(existing)
    found = retired_domains(plan, existing)
    held = [d for d in wanted if _holds_any(d, existing)]
    return Retirement(
        retire=tuple(held),  # partly retired ones too (a grant removed by hand)
        left_alone=tuple(d for d in found if d not in wanted),
        nothing_left=tuple(d for d in wanted if d not in held),
    )


def _holds_any(domain: str, existing: Iterable[Acl]) -> bool:
    """Whether the cluster still holds an ALLOW ACL of ``domain``'s user or on its names."""
    who, names = principal(domain), tuple(_namespace(domain))
    return any(
        acl.permission is Permission.ALLOW and (acl.principal == who or acl.name.startswith(names))
        for acl in existing
    )


def refuse_domain_principals(existing: Iterable[Acl], asked: Iterable[str]) -> None:
    """Raise :class:`~mesh_stream.errors.ConfigurationError` when a principal ``asked`` to
    retire as a replaced service is a domain's user on the cluster (it may WRITE topics
    prefixed with its own name): that is another repository's domain, retired only with
    ``--retire`` once it is gone from the mesh."""
    existing = list(existing)
    domains = sorted(
        {
            value
            for value in asked
            for acl in existing
            if acl.principal == value
            and acl.permission is Permission.ALLOW
            and (acl.resource, acl.pattern, acl.operation)
            == (Resource.TOPIC, Pattern.PREFIXED, Operation.WRITE)
            and acl.name == f"{value.removeprefix('User:')}."
        }
    )
    if domains:
        raise ConfigurationError(
            ", ".join(domains)
            + " is a domain's user on the cluster (it writes the topics named after it), not a "
            "replaced service; once the domain is gone from the mesh, retire it with --retire "
            + " --retire ".join(d.removeprefix("User:") for d in domains)
        )


def _refuse_shared_grants(
    domains: Sequence[str],
    products: Sequence[DataProduct],
    services: dict[str, str],
    topics: dict[str, str],
) -> None:
    """Raise when a grant of the plan would also be someone else's (see :func:`plan_acls`);
    ``services`` and ``topics`` map the setting that names each to its value."""
    problems = [problem for domain in domains if (problem := domain_name_problem(domain))]
    problems += [
        f"{product.name}: readers: {problem} (User:{reader} would be granted READ on "
        f"{product.topic} and WRITE on {product.dlq_topic})"
        for product in products
        for reader in product.readers
        if (problem := domain_name_problem(reader))
    ]
    problems += [
        f"{problem}, granted to User:{domain} by prefix; rename one of the domains"
        for domain in domains
        for other in domains
        if len(other) > len(domain) and (problem := overlapping_domain(domain, [other]))
    ]
    problems += [problem for value in services.values() if (problem := principal_problem(value))]
    users = {principal(domain): domain for domain in domains}
    problems += [
        f"{setting} {value} is also the Kafka user of domain {users[value]!r}: the domain "
        f"would get the service's grants; give the service its own user"
        for setting, value in services.items()
        if value in users
    ]
    if len(set(services.values())) < len(services):
        problems.append(
            f"{' and '.join(services)} name one user ({next(iter(services.values()))}): each "
            f"would get the other's grants; give each service its own user"
        )
    named: dict[str, str] = {}
    for setting, topic in topics.items():
        if topic in named:
            problems.append(f"{setting} and {named[topic]} name the same topic {topic!r}")
        named.setdefault(topic, setting)
        owner = next(
            (d for d in domains if topic.startswith((f"{d}.", f"{PROCESSOR_PREFIX}{d}."))), None
        )
        if owner is not None:
            problems.append(
                f"{setting} {topic!r} lies among the topics of domain {owner!r}, which its user "
                f"may write; pick a name of the platform's own (e.g. _mesh_...)"
            )
    if problems:
        raise ConfigurationError("ACL plan refused: " + "; ".join(problems))


def _readers(product: DataProduct, domains: Sequence[str]) -> list[str]:
    """The domains that may read ``product``: all for non-pii, else owner + ``readers``."""
    if product.classification is not Classification.PII:
        return list(domains)
    return sorted({product.domain, *product.readers})


def _unknown_readers(product: DataProduct, domains: Sequence[str]) -> list[str]:
    return [
        f"{product.name}: readers names {reader!r}, which is no domain of this project "
        f"(domains: {', '.join(domains)}); User:{reader} is granted READ anyway"
        for reader in product.readers
        if reader not in domains
    ]


def project_domains(folder: Path) -> list[str]:
    """The domain folders under ``folder``, a project's products folder (named like
    domains)."""
    if not folder.is_dir():
        return []
    return sorted(e.name for e in folder.iterdir() if e.is_dir() and _DOMAIN.match(e.name))


def plan_project(
    root: Path,
    *,
    registry_principal: str = REGISTRY_PRINCIPAL,
    registry_topic: str = REGISTRY_TOPIC,
) -> AclPlan:
    """The plan for the project at ``root``: its ``<products>/<d>/products/*.yaml``
    descriptors and its domain folders (``products`` as its mesh.yaml says, ``domains``
    without one). Descriptor errors raise :class:`~mesh_stream.errors.DescriptorError` (all
    of them, with file:line)."""
    folder = load_project(root, defaults_without_file=True).descriptors_dir
    return plan_acls(
        load_descriptors(folder, missing_ok=True),
        domains=project_domains(folder),
        registry_principal=registry_principal,
        registry_topic=registry_topic,
    )
