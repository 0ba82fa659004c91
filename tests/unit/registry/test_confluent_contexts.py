"""Confluent schema contexts: qualified subjects and GET /contexts (ids stay one space)."""

from __future__ import annotations

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from fastapi.testclient import TestClient

from tests.unit.registry.conftest import ADMIN, ORDERS, schema

SUBJECT = "orders.a.v1-value"
STAGING = f":.staging:{SUBJECT}"


def register(client: TestClient, subject: str, text: str, auth: tuple[str, str] = ORDERS) -> dict:
    answer = client.post(f"/subjects/{subject}/versions", json={"schema": text}, auth=auth)
    assert answer.status_code == 200, answer.text
    found: dict = answer.json()
    return found


def test_the_default_context_prefix_names_the_plain_subject(client: TestClient) -> None:
    assert client.get("/contexts").json() == ["."]
    first = register(client, f":.:{SUBJECT}", schema())
    assert first["version"] == 1
    assert client.get("/subjects").json() == [SUBJECT]
    assert register(client, SUBJECT, schema()) == {**first, "subject": SUBJECT}
    assert client.get(f"/subjects/:.:{SUBJECT}/versions/1").json()["subject"] == SUBJECT
    assert client.get("/contexts").json() == ["."]


def test_another_context_holds_its_own_subjects(client: TestClient) -> None:
    plain = register(client, SUBJECT, schema())
    refused = client.post(f"/subjects/{STAGING}/versions", json={"schema": schema()}, auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    assert refused.json()["message"] == (  # the rule that applies, not the domain's naming
        f"principal 'orders' may not register schemas under subject '{STAGING}': subjects in "
        "a schema context other than the default (':.<context>:…') are admin's; a domain "
        "writes 'orders.…' in the default context"
    )
    staged = register(client, STAGING, schema("note"), auth=ADMIN)
    assert staged["version"] == 1
    assert staged["id"] != plain["id"]
    assert register(client, STAGING, schema(), auth=ADMIN)["id"] == plain["id"]  # ids: one space
    assert client.get("/contexts").json() == [".", ".staging"]
    assert client.get("/subjects").json() == [STAGING, SUBJECT]
    assert client.get("/subjects?subjectPrefix=:*:").json() == [STAGING, SUBJECT]
    assert client.get("/subjects?subjectPrefix=:.staging:").json() == [STAGING]
    assert client.get("/subjects?subjectPrefix=:.:").json() == [SUBJECT]
    assert client.get("/subjects?subjectPrefix=:.:orders.").json() == [SUBJECT]
    assert client.get(f"/subjects/{STAGING}/versions").json() == [1, 2]
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]
    assert [s["subject"] for s in client.get("/schemas?subjectPrefix=:.staging:").json()] == [
        STAGING,
        STAGING,
    ]
    assert client.put(f"/config/{STAGING}", json={"compatibility": "NONE"}, auth=ADMIN).json() == {
        "compatibility": "NONE"
    }
    assert client.get(f"/config/{SUBJECT}").status_code == 404
    assert client.put(f"/mode/{STAGING}", json={"mode": "READONLY"}, auth=ADMIN).status_code == 200
    assert register(client, SUBJECT, schema("note"))["version"] == 2
    assert client.delete(f"/subjects/{STAGING}", auth=ADMIN).json()["error_code"] == 42205


@pytest.mark.parametrize(
    "subject", [":staging:orders.a", ":.stag ing:orders.a", ":.staging:", ":.a/b:x", ":x"]
)
def test_a_malformed_qualified_subject_is_a_42215(client: TestClient, subject: str) -> None:
    answer = client.post(f"/subjects/{subject}/versions", json={"schema": schema()}, auth=ADMIN)
    assert answer.status_code in (404, 422), answer.text  # a '/' never reaches a subject route
    if answer.status_code == 422:
        assert answer.json()["error_code"] == 42215
    assert client.get("/contexts").json() == ["."]


def test_contexts_page(client: TestClient) -> None:
    for context in ("b", "a", "c"):
        register(client, f":.{context}:{SUBJECT}", schema(), auth=ADMIN)
    assert client.get("/contexts").json() == [".", ".a", ".b", ".c"]
    assert client.get("/contexts?offset=1&limit=2").json() == [".a", ".b"]
    assert client.get("/contexts?offset=-1").status_code == 422


def test_confluent_client_lists_contexts_and_uses_qualified_subjects(served: str) -> None:
    sr = SchemaRegistryClient({"url": served, "basic.auth.user.info": "admin:admin-secret"})
    sr.register_schema(STAGING, Schema(schema(), "AVRO"))
    sr.register_schema(f":.:{SUBJECT}", Schema(schema(), "AVRO"))
    assert sr.get_contexts() == [".", ".staging"]
    assert sr.get_contexts(offset=1) == [".staging"]
    assert sr.get_latest_version(STAGING).subject == STAGING
    assert sr.get_subjects(subject_prefix=":.staging:") == [STAGING]
