"""The registry client gets the registered version's ruleSet from any Confluent-compatible
registry: from the register answer when it carries one, else by reading the version it
names, else (a bare ``{"id": ...}``, what Confluent answers) by looking the schema up with
its contract; and it caches the answer per schema and contract."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mesh_stream.registry.client import RegistryClient

SUBJECT = "orders.placed.v1-value"
SCHEMA = '{"type":"record","name":"P","fields":[{"name":"n","type":"int"}]}'
RULES = {
    "domainRules": [
        {"name": "positive", "kind": "CONDITION", "mode": "WRITE", "type": "CEL",
         "expr": "message.n > 0"}
    ]
}  # fmt: skip
METADATA = {"properties": {"product": "orders.placed"}}
STORED = {"subject": SUBJECT, "version": 3, "id": 7, "schema": SCHEMA, "ruleSet": RULES,
          "metadata": METADATA}  # fmt: skip


def _client(answer: dict[str, Any], calls: list[tuple[str, str, Any]]) -> RegistryClient:
    def respond(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.path, body))
        if request.method == "POST" and request.url.path.endswith("/versions"):
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json=STORED)

    client = RegistryClient("http://registry.test")
    client._http = httpx.Client(
        base_url="http://registry.test", transport=httpx.MockTransport(respond)
    )
    return client


@pytest.mark.parametrize(
    ("answer", "then"),
    [
        (STORED, []),
        ({"id": 7, "version": 3}, [("GET", f"/subjects/{SUBJECT}/versions/3")]),
        ({"id": 7}, [("POST", f"/subjects/{SUBJECT}")]),
    ],
    ids=["full answer", "id and version", "id only (Confluent)"],
)
def test_the_registered_versions_rules_are_found_whatever_the_register_answer(
    answer: dict[str, Any], then: list[tuple[str, str]]
) -> None:
    calls: list[tuple[str, str, Any]] = []
    client = _client(answer, calls)
    version = client.register_version(SUBJECT, SCHEMA, metadata=METADATA, rule_set=RULES)
    assert (version.schema_id, version.version, version.rule_set, version.metadata) == (
        7,
        3,
        RULES,
        METADATA,
    )
    method, path, body = calls[0]
    assert (method, path) == ("POST", f"/subjects/{SUBJECT}/versions")
    assert json.loads(body.pop("schema")) == json.loads(SCHEMA)
    assert body == {"metadata": METADATA, "ruleSet": RULES}
    assert [(m, p) for m, p, _ in calls[1:]] == then
    if then and then[0][0] == "POST":
        assert {**calls[1][2], "schema": None} == {**body, "schema": None}  # with the contract
    assert client.register_schema(SUBJECT, SCHEMA, metadata=METADATA, rule_set=RULES) == 7
    assert len(calls) == 1 + len(then)  # cached per schema and contract
