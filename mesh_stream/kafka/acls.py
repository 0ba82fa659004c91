"""Kafka ACLs as plain values, and applying a set of them to a cluster.

An :class:`Acl` is one ALLOW/DENY binding (principal, resource type, pattern type, name,
operation) that sorts, compares and prints without confluent-kafka. :func:`diff` says what
to create and what to delete so that a cluster holds exactly a planned set, touching only
the bindings a ``managed`` predicate claims (ACLs of other principals or resources are never
deleted). :func:`apply_acls` does it through the admin client of
:func:`~mesh_stream.kafka.clients.make_admin`; a second run changes nothing.

What the plan *is* (which domain may do what) is decided above this layer, from the
descriptors: :mod:`mesh_stream.governance.acl_plan`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from mesh_stream.errors import KafkaAuthorizationError, KafkaSecurityError, MeshError
from mesh_stream.kafka.clients import make_admin, probe
from mesh_stream.kafka.connection import SETTING, KafkaConnection, explain_kafka_error

#: librdkafka's own log lines (e.g. a purged background queue at close) would come before the
#: CLI's one-line error on stderr; every failure reaches the caller as an exception anyway.
QUIET = {"log_level": 0}

CLUSTER = "kafka-cluster"
"""The name Kafka gives the one CLUSTER resource."""

_TIMEOUT = 30.0


class Resource(enum.StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    CLUSTER = "CLUSTER"


# confluent-kafka names Kafka's CLUSTER resource type (code 4) BROKER.
_TO_CONFLUENT = {"CLUSTER": "BROKER"}
_FROM_CONFLUENT = {v: k for k, v in _TO_CONFLUENT.items()}


def _resource_type(resource: Resource) -> ResourceType:
    return ResourceType[_TO_CONFLUENT.get(resource.value, resource.value)]


class Pattern(enum.StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(enum.StrEnum):
    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"


class Permission(enum.StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


@dataclass(frozen=True, order=True)
class Acl:
    """One ACL binding. Field order is the sort order: by principal, then resource."""

    principal: str
    resource: Resource
    pattern: Pattern
    name: str
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def __str__(self) -> str:
        return (
            f"{self.principal} {self.permission.value} {self.operation.value} on "
            f"{self.resource.value} {self.pattern.value} {self.name!r}"
            + (f" from {self.host}" if self.host != "*" else "")
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource_type": self.resource.value,
            "pattern_type": self.pattern.value,
            "name": self.name,
            "operation": self.operation.value,
            "permission": self.permission.value,
            "host": self.host,
        }

    def _pattern(self) -> tuple[Any, ...]:
        """The seven values confluent-kafka's binding and filter both take, in their order."""
        return (
            _resource_type(self.resource),
            self.name,
            ResourcePatternType[self.pattern.value],
            self.principal,
            self.host,
            AclOperation[self.operation.value],
            AclPermissionType[self.permission.value],
        )

    def to_binding(self) -> AclBinding:
        return AclBinding(*self._pattern())

    def to_filter(self) -> AclBindingFilter:
        """A delete filter that matches this binding exactly (and nothing else)."""
        return AclBindingFilter(*self._pattern())

    @classmethod
    def from_binding(cls, binding: AclBinding) -> Acl | None:
        """Our value for a binding read from the cluster; None for kinds we never manage
        (e.g. a DELEGATION_TOKEN resource or a MATCH pattern)."""
        try:
            return cls(
                principal=binding.principal,
                resource=Resource(
                    _FROM_CONFLUENT.get(_name(binding.restype), _name(binding.restype))
                ),
                pattern=Pattern(_name(binding.resource_pattern_type)),
                name=binding.name,
                operation=Operation(_name(binding.operation)),
                permission=Permission(_name(binding.permission_type)),
                host=binding.host,
            )
        except ValueError:
            return None


def _name(value: object) -> str:
    """The enum member name of a binding field (confluent-kafka types them loosely)."""
    return value.name if isinstance(value, enum.Enum) else str(value)


@dataclass(frozen=True)
class AclChanges:
    """What an apply creates and deletes (both sorted); empty when the cluster is in sync."""

    create: tuple[Acl, ...] = ()
    delete: tuple[Acl, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": [acl.to_dict() for acl in self.create],
            "deleted": [acl.to_dict() for acl in self.delete],
        }


def diff(
    planned: Iterable[Acl], existing: Iterable[Acl], managed: Callable[[Acl], bool]
) -> AclChanges:
    """What to create (planned, missing) and delete (existing, managed, no longer planned).

    An existing ACL that ``managed`` does not claim stays whatever it says: the mesh only
    removes what it would itself have granted.
    """
    want = set(planned)
    have = set(existing)
    return AclChanges(
        create=tuple(sorted(want - have)),
        delete=tuple(sorted(acl for acl in have - want if managed(acl))),
    )


def _everything() -> AclBindingFilter:
    anything: Any = None  # a filter's None matches any name, principal, host
    return AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        anything,
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _error(exc: KafkaException, conn: KafkaConnection, operation: str) -> MeshError:
    """Our error for a failed ACL request: no authorizer, not allowed, or the broker's text."""
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError) and error.code() == KafkaError.SECURITY_DISABLED:
        return _no_authorizer(conn)
    if isinstance(error, KafkaError) and error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        return _not_an_acl_admin(conn, operation)
    return explain_kafka_error(exc, conn, operation=operation)


def _no_authorizer(conn: KafkaConnection) -> KafkaSecurityError:
    return KafkaSecurityError(
        f"the cluster at {conn.bootstrap_servers} has no authorizer, so it keeps no ACLs "
        f"(SECURITY_DISABLED): start it with `mesh broker start --security sasl` (or set "
        f"authorizer.class.name on your brokers) and rerun"
    )


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


def _not_an_acl_admin(conn: KafkaConnection, operation: str) -> KafkaAuthorizationError:
    return KafkaAuthorizationError(
        f"{conn.principal} may not {operation} the ACLs of the cluster at "
        f"{conn.bootstrap_servers}: that takes a principal allowed to {operation} the cluster, "
        f"such as the cluster's admin (set {SETTING['sasl_username']} and "
        f"{SETTING['sasl_password']} to its credentials)"
    )


def _may_describe_acls(admin: Any, timeout: float) -> bool:
    """Whether the cluster lets this connection's principal DESCRIBE it (and so see every
    ACL): Kafka answers a principal that may not with no ACLs rather than an error."""
    described = admin.describe_cluster(
        include_authorized_operations=True, request_timeout=timeout
    ).result()
    allowed = described.authorized_operations or []
    return AclOperation.DESCRIBE in allowed or AclOperation.ALTER in allowed


def describe_acls(
    conn: KafkaConnection, *, timeout: float = _TIMEOUT, connect_timeout: float = 10.0
) -> list[Acl]:
    """Every ACL the cluster holds (that we can represent), sorted.

    First waits up to ``connect_timeout`` s for the cluster to answer, so an unreachable
    cluster and refused credentials or TLS fail with their own clear error."""
    probe(conn, timeout=connect_timeout)
    admin = make_admin(conn, QUIET)
    try:
        bindings = admin.describe_acls(_everything(), request_timeout=timeout).result()
        if not bindings and has_authorizer(admin, timeout) is False:
            raise _no_authorizer(conn)  # Kafka 4 answers an empty list, not SECURITY_DISABLED
        if not bindings and not _may_describe_acls(admin, timeout):
            raise _not_an_acl_admin(conn, "DESCRIBE")
    except KafkaException as exc:
        raise _error(exc, conn, "DESCRIBE") from exc
    return sorted(acl for binding in bindings if (acl := Acl.from_binding(binding)) is not None)


def apply_acls(
    conn: KafkaConnection,
    planned: Sequence[Acl],
    managed: Callable[[Acl], bool],
    *,
    dry_run: bool = False,
    timeout: float = _TIMEOUT,
    connect_timeout: float = 10.0,
    existing: Sequence[Acl] | None = None,
) -> AclChanges:
    """Make the cluster hold ``planned``: create what is missing, delete managed ACLs that
    are no longer planned. ``dry_run`` only computes the changes. Idempotent.

    ``existing`` is what :func:`describe_acls` just returned, if the caller asked already."""
    if existing is None:
        existing = describe_acls(conn, timeout=timeout, connect_timeout=connect_timeout)
    changes = diff(planned, existing, managed)
    if dry_run or changes.empty:
        return changes
    admin = make_admin(conn, QUIET)
    if changes.create:
        futures = admin.create_acls(
            [acl.to_binding() for acl in changes.create], request_timeout=timeout
        )
        for future in futures.values():
            try:
                future.result()
            except KafkaException as exc:
                raise _error(exc, conn, "ALTER") from exc
    if changes.delete:
        deleted = admin.delete_acls(
            [acl.to_filter() for acl in changes.delete], request_timeout=timeout
        )
        for future in deleted.values():
            try:
                future.result()
            except KafkaException as exc:
                raise _error(exc, conn, "ALTER") from exc
    _await_in_force(conn, planned, managed, timeout)
    return changes


def _await_in_force(
    conn: KafkaConnection, planned: Sequence[Acl], managed: Callable[[Acl], bool], timeout: float
) -> None:
    """Wait until the broker we talk to reports the planned ACLs (KRaft brokers apply ACL
    changes from the metadata log a moment after the controller accepted them), so that
    a client started right after apply already meets them."""
    deadline = time.monotonic() + timeout
    while not diff(planned, describe_acls(conn, timeout=timeout), managed).empty:
        if time.monotonic() > deadline:
            raise MeshError(
                f"the ACL changes were accepted but {conn.bootstrap_servers} does not report "
                f"them after {timeout:g} s; run `mesh acl apply` again"
            )
        time.sleep(0.2)
