"""Every call of confluent-kafka's SchemaRegistryClient that talks to a registry, against ours.

The Confluent Cloud association calls (``*_association*``) are the only ones left out: a
self-managed Confluent registry has no such API either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    ServerConfig,
)

from tests.unit.registry.conftest import schema

S = "orders.census.v1-value"
LEFT_OUT = {"get_associations_by_resource_name", "create_association", "delete_associations"}
LOCAL = {"config", "clear_caches", "clear_latest_caches", "close", "new_client"}


def test_every_registry_call_of_the_confluent_client_works(served: str) -> None:
    sr = SchemaRegistryClient({"url": served, "basic.auth.user.info": "admin:admin-secret"})
    fresh = SchemaRegistryClient({"url": served})  # nothing cached: every read is a request
    first, second = Schema(schema(), "AVRO"), Schema(schema("note"), "AVRO")
    calls: list[tuple[str, Callable[[], Any], Any]] = [
        ("register_schema", lambda: sr.register_schema(S, first), 1),
        (
            "register_schema_full_response",
            lambda: sr.register_schema_full_response(S, second).version,
            2,
        ),
        (
            "get_schema",
            lambda: json.loads(fresh.get_schema(1, subject_name=S).schema_str or ""),
            json.loads(schema()),
        ),
        (
            "get_schema_by_guid",
            lambda: fresh.get_schema_by_guid(sr.get_version(S, 1).guid).schema_type,
            "AVRO",
        ),
        ("get_schema_types", sr.get_schema_types, ["AVRO"]),
        ("get_subjects_by_schema_id", lambda: sr.get_subjects_by_schema_id(1, S, True, 0, 5), [S]),
        ("get_schema_versions", lambda: [v.version for v in sr.get_schema_versions(1, S)], [1]),
        ("lookup_schema", lambda: fresh.lookup_schema(S, first, deleted=True).version, 1),
        ("get_subjects", lambda: sr.get_subjects("orders.", False, False, 0, 10), [S]),
        ("get_latest_version", lambda: sr.get_latest_version(S).version, 2),
        ("get_latest_with_metadata", lambda: sr.get_latest_with_metadata(S, {}).version, 2),
        ("get_version", lambda: sr.get_version(S, 1, deleted=True).schema_id, 1),
        ("get_referenced_by", lambda: sr.get_referenced_by(S, 1, 0, 5), []),
        ("get_versions", lambda: sr.get_versions(S, False, False, 0, 5), [1, 2]),
        ("set_compatibility", lambda: sr.set_compatibility(S, "FULL"), {"compatibility": "FULL"}),
        ("get_compatibility", lambda: sr.get_compatibility(S), "FULL"),
        ("test_compatibility", lambda: sr.test_compatibility(S, first, version=1), True),
        (
            "test_compatibility_all_versions",
            lambda: sr.test_compatibility_all_versions(S, first),
            True,
        ),
        (
            "set_config",
            lambda: sr.set_config(S, ServerConfig(compatibility=ConfigCompatibilityLevel.NONE)),
            {"compatibility": "NONE"},
        ),
        ("get_config", lambda: sr.get_config(S).compatibility_level, ConfigCompatibilityLevel.NONE),
        (
            "delete_config",
            lambda: sr.delete_config(S).compatibility_level,
            ConfigCompatibilityLevel.NONE,
        ),
        ("update_mode", lambda: sr.update_mode(S, "READONLY"), "READONLY"),
        ("get_mode", lambda: sr.get_mode(S), "READONLY"),
        ("delete_mode", lambda: sr.delete_mode(S), "READONLY"),
        ("update_global_mode", lambda: sr.update_global_mode("READWRITE"), "READWRITE"),
        ("get_global_mode", sr.get_global_mode, "READWRITE"),
        ("get_contexts", sr.get_contexts, ["."]),
        ("delete_version", lambda: sr.delete_version(S, 1), 1),
        ("delete_subject", lambda: sr.delete_subject(S), [2]),
    ]
    for name, call, expected in calls:
        assert call() == expected, name
    assert sr.delete_subject(S, permanent=True) == [1, 2]
    public = {n for n in dir(SchemaRegistryClient) if not n.startswith("_")}
    assert public - LEFT_OUT - LOCAL == {name for name, _call, _expected in calls}
