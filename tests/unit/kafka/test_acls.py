"""ACL values: confluent-kafka bindings both ways, and the diff that apply runs."""

from __future__ import annotations

from confluent_kafka.admin._acl import AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from mesh_stream.kafka.acls import (
    CLUSTER,
    Acl,
    AclChanges,
    Operation,
    Pattern,
    Permission,
    Resource,
    diff,
)

WRITE = Acl("User:orders", Resource.TOPIC, Pattern.PREFIXED, "orders.", Operation.WRITE)
READ = Acl("User:payments", Resource.TOPIC, Pattern.LITERAL, "orders.x.v1", Operation.READ)
IDEMPOTENT = Acl(
    "User:orders", Resource.CLUSTER, Pattern.LITERAL, CLUSTER, Operation.IDEMPOTENT_WRITE
)


def test_a_binding_round_trips_through_confluent_kafka() -> None:
    for acl in (WRITE, READ, IDEMPOTENT):
        binding = acl.to_binding()
        assert Acl.from_binding(binding) == acl
    binding = WRITE.to_binding()
    assert binding.restype == ResourceType.TOPIC
    assert binding.resource_pattern_type == ResourcePatternType.PREFIXED
    assert (binding.principal, binding.host) == ("User:orders", "*")
    assert binding.operation == AclOperation.WRITE
    assert binding.permission_type == AclPermissionType.ALLOW
    assert IDEMPOTENT.to_binding().restype == ResourceType.BROKER  # Kafka's CLUSTER type


def test_the_delete_filter_names_the_binding_exactly() -> None:
    selector = READ.to_filter()
    assert (selector.restype, selector.name, selector.principal) == (
        ResourceType.TOPIC,
        "orders.x.v1",
        "User:payments",
    )
    assert selector.resource_pattern_type == ResourcePatternType.LITERAL
    assert selector.operation == AclOperation.READ


def test_text_and_dict_forms() -> None:
    assert str(WRITE) == "User:orders ALLOW WRITE on TOPIC PREFIXED 'orders.'"
    assert WRITE.to_dict() == {
        "principal": "User:orders",
        "resource_type": "TOPIC",
        "pattern_type": "PREFIXED",
        "name": "orders.",
        "operation": "WRITE",
        "permission": "ALLOW",
        "host": "*",
    }


def test_diff_creates_the_missing_and_deletes_only_managed_leftovers() -> None:
    stale = Acl("User:orders", Resource.TOPIC, Pattern.LITERAL, "orders.old.v1", Operation.READ)
    foreign = Acl("User:bob", Resource.TOPIC, Pattern.LITERAL, "orders.old.v1", Operation.READ)
    deny = Acl(
        "User:orders",
        Resource.TOPIC,
        Pattern.LITERAL,
        "orders.x.v1",
        Operation.READ,
        Permission.DENY,
    )
    changes = diff(
        [WRITE, READ, IDEMPOTENT],
        [READ, stale, foreign, deny],
        managed=lambda acl: acl.principal != "User:bob" and acl.permission is Permission.ALLOW,
    )
    assert changes == AclChanges(create=tuple(sorted([WRITE, IDEMPOTENT])), delete=(stale,))
    assert not changes.empty
    assert diff([READ], [READ], managed=lambda _acl: True).empty
