"""Confluent's list filters and pagination, /schemas, guids, /metadata, DELETE /config, bodies."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Metadata,
    MetadataProperties,
    Schema,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastapi.testclient import TestClient

from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, schema

A = "orders.a.v1-value"
B = "orders.b.v1-value"
GONE = "orders.gone.v1-value"
OTHER = "payments.c.v1-value"
PAYMENTS = ("payments", TOKENS["payments"])


def register(client: TestClient, subject: str, text: str, **extra: Any) -> dict[str, Any]:
    auth = PAYMENTS if subject.startswith("payments.") else ORDERS
    answer = client.post(f"/subjects/{subject}/versions", json={"schema": text, **extra}, auth=auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    """A: versions 1 and 2 (1 soft-deleted); B: 1; GONE: soft-deleted; OTHER: 1."""
    register(client, A, schema())
    register(client, A, schema("note"))
    register(client, B, schema(name="B"))
    register(client, GONE, schema(name="Gone"))
    register(client, OTHER, schema(name="C"))
    assert client.delete(f"/subjects/{A}/versions/1", auth=ORDERS).status_code == 200
    assert client.delete(f"/subjects/{GONE}", auth=ORDERS).status_code == 200
    return client


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [A, B, OTHER]),
        ("?deleted=true", [A, B, GONE, OTHER]),
        ("?deletedOnly=true", [GONE]),
        ("?deleted_only=true", [GONE]),
        ("?deleted=true&deletedOnly=true", [GONE]),
        ("?subjectPrefix=orders.", [A, B]),
        ("?subjectPrefix=orders.&deleted=true", [A, B, GONE]),
        ("?subjectPrefix=nothing", []),
        ("?offset=1", [B, OTHER]),
        ("?offset=1&limit=1", [B]),
        ("?limit=0", []),
        ("?limit=-1", [A, B, OTHER]),
        ("?offset=99", []),
        ("?offset=2147483647&limit=2147483647", []),
    ],
)
def test_subjects_filters_and_pages(filled: TestClient, query: str, expected: list[str]) -> None:
    answer = filled.get(f"/subjects{query}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [2]),
        ("?deleted=true", [1, 2]),
        ("?deletedOnly=true", [1]),
        ("?deleted=true&offset=1", [2]),
        ("?deleted=true&limit=1", [1]),
    ],
)
def test_versions_filters_and_pages(filled: TestClient, query: str, expected: list[int]) -> None:
    assert filled.get(f"/subjects/{A}/versions{query}").json() == expected


def test_a_soft_deleted_subject_lists_its_versions_only_when_asked(filled: TestClient) -> None:
    assert filled.get(f"/subjects/{GONE}/versions").json()["error_code"] == 40401
    assert filled.get(f"/subjects/{GONE}/versions?deletedOnly=true").json() == [1]
    assert filled.get(f"/subjects/{B}/versions?deletedOnly=true").json() == []


@pytest.mark.parametrize(
    "query",
    [
        "?offset=-1",
        "?offset=abc",
        "?limit=1.5",
        "?offset=99999999999999999999999",
        "?limit=-99999999999999999999999",
        "?deleted=maybe",
        "?deletedOnly=2",
    ],
)
@pytest.mark.parametrize(
    "path", ["/subjects", f"/subjects/{A}/versions", "/schemas", "/schemas/ids/1/versions"]
)
def test_hostile_paging_is_a_422_never_a_500(filled: TestClient, path: str, query: str) -> None:
    if "deletedOnly" in query and path.startswith("/schemas"):
        return  # /schemas has no deletedOnly: an unknown parameter is ignored, as Confluent does
    answer = filled.get(path + query)
    assert answer.status_code == 422, answer.text
    assert "error_code" in answer.json()


def test_get_schemas_lists_subject_versions_with_their_schemas(filled: TestClient) -> None:
    everything = filled.get("/schemas").json()
    assert [(s["subject"], s["version"]) for s in everything] == [(A, 2), (B, 1), (OTHER, 1)]
    first = everything[0]
    assert first == filled.get(f"/subjects/{A}/versions/2").json()
    assert set(first) == {"subject", "version", "id", "guid", "schema"}
    with_deleted = filled.get("/schemas?deleted=true").json()
    assert [(s["subject"], s["version"]) for s in with_deleted] == [
        (A, 1),
        (A, 2),
        (B, 1),
        (GONE, 1),
        (OTHER, 1),
    ]
    latest = filled.get("/schemas?deleted=true&latestOnly=true&subjectPrefix=orders.").json()
    assert [(s["subject"], s["version"]) for s in latest] == [(A, 2), (B, 1), (GONE, 1)]
    paged = filled.get("/schemas?deleted=true&offset=1&limit=2").json()
    assert [(s["subject"], s["version"]) for s in paged] == [(A, 2), (B, 1)]


def test_schemas_by_id_filter_and_page(filled: TestClient) -> None:
    copy = "orders.copy.v1-value"
    shared = register(filled, copy, schema())  # A's v1 schema, now also the copy's
    assert filled.get(f"/schemas/ids/{shared['id']}/subjects").json() == [A, copy]
    assert filled.get(f"/schemas/ids/{shared['id']}/subjects?subject={copy}").json() == [copy]
    assert filled.get(f"/schemas/ids/{shared['id']}/subjects?offset=1").json() == [copy]
    versions = filled.get(f"/schemas/ids/{shared['id']}/versions?limit=1").json()
    assert versions == [{"subject": A, "version": 1}]


def test_a_guid_names_one_schema_and_reads_it(filled: TestClient) -> None:
    version = filled.get(f"/subjects/{B}/versions/1").json()
    by_id = filled.get(f"/schemas/ids/{version['id']}").json()
    assert by_id["guid"] == version["guid"]
    by_guid = filled.get(f"/schemas/guids/{version['guid']}")
    assert by_guid.status_code == 200
    assert by_guid.json() == by_id
    assert filled.get(f"/schemas/guids/{version['guid'].upper()}").json() == by_id
    guids = {s["guid"] for s in filled.get("/schemas?deleted=true").json()}
    assert len(guids) == 5  # one per schema
    for unknown in ("00000000-0000-0000-0000-000000000000", "not-a-guid", "x" * 5000):
        missing = filled.get(f"/schemas/guids/{unknown}")
        assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)


def test_latest_with_metadata_matches_properties(client: TestClient) -> None:
    first = {"properties": {"owner": "checkout", "release": "1"}}
    register(client, A, schema(), metadata=first)
    register(client, A, schema("note"), metadata={"properties": {"owner": "checkout"}})

    def get(query: str) -> Any:
        return client.get(f"/subjects/{A}/metadata{query}")

    assert get("?key=owner&value=checkout").json()["version"] == 2
    assert get("").json()["version"] == 2
    assert get("?key=release&value=1").json()["version"] == 1
    assert get("?key=owner&value=checkout&key=release&value=1").json()["version"] == 1
    wrong = get("?key=owner&value=someone")
    assert (wrong.status_code, wrong.json()["error_code"]) == (404, 40402)
    unpaired = get("?key=owner")
    assert (unpaired.status_code, unpaired.json()["error_code"]) == (400, 40001)
    missing = client.get("/subjects/orders.none.v1-value/metadata?key=a&value=b")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40401)
    assert client.delete(f"/subjects/{A}/versions/1", auth=ORDERS).status_code == 200
    assert get("?key=release&value=1").json()["error_code"] == 40402
    assert get("?key=release&value=1&deleted=true").json()["version"] == 1


def test_delete_config_resets_the_global_level_for_admin_only(client: TestClient) -> None:
    assert client.put("/config", json={"compatibility": "FULL"}, auth=ADMIN).status_code == 200
    refused = client.delete("/config", auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    assert client.delete("/config").status_code == 401
    answer = client.delete("/config", auth=ADMIN)
    assert answer.json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert (
        client.put(f"/config/{A}", json={"compatibility": "NONE"}, auth=ORDERS).status_code == 200
    )
    assert client.delete(f"/config/{A}", auth=ORDERS).json() == {"compatibilityLevel": "NONE"}
    gone = client.delete(f"/config/{A}", auth=ORDERS)
    assert (gone.status_code, gone.json()["error_code"]) == (404, 40408)


def test_referenced_by_answers_for_existing_versions_only(filled: TestClient) -> None:
    assert filled.get(f"/subjects/{B}/versions/1/referencedby").json() == []
    assert filled.get(f"/subjects/{B}/versions/latest/referencedby").json() == []
    missing = filled.get(f"/subjects/{B}/versions/7/referencedby")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40402)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
        "application/json; charset=utf-8",
        None,  # no content type: HTTP's octets, which Confluent reads as JSON too
    ],
)
def test_bodies_are_json_whatever_confluent_content_type_says(
    client: TestClient, content_type: str | None
) -> None:
    body = json.dumps({"schema": schema()}).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    answer = client.post(f"/subjects/{A}/versions", content=body, headers=headers, auth=ORDERS)
    assert answer.status_code == 200, answer.text
    looked = client.post(f"/subjects/{A}", content=body, headers=headers)
    assert looked.json()["version"] == 1
    bad = client.post(f"/subjects/{A}", content=b'{"schema": ', headers=headers)
    assert (bad.status_code, bad.json()["error_code"]) == (400, 40001)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_of_another_media_type_is_a_415_naming_it(
    client: TestClient, content_type: str
) -> None:
    """Valid JSON sent as text or a form got 422 "Input should be a valid dictionary"."""
    body = json.dumps({"schema": schema()}).encode()
    for path in (f"/subjects/{A}/versions", "/products"):
        answer = client.post(
            path, content=body, headers={"content-type": content_type}, auth=ORDERS
        )
        assert answer.status_code == 415, answer.text
        assert answer.json() == {
            "error_code": 415,
            "message": f"the body is sent as {content_type!r}; send JSON, with Content-Type "
            "application/vnd.schemaregistry.v1+json or application/json",
        }


def test_confluent_client_lists_pages_and_reads_by_guid_and_metadata(served: str) -> None:
    sr = SchemaRegistryClient({"url": served, "basic.auth.user.info": "orders:orders-secret"})
    owner = Metadata(None, MetadataProperties({"owner": "checkout"}), None)
    first = sr.register_schema_full_response(A, Schema(schema(), "AVRO", [], owner))
    sr.register_schema(A, Schema(schema("note"), "AVRO"))
    sr.register_schema(B, Schema(schema(name="B"), "AVRO"))
    assert sr.get_subjects(subject_prefix="orders.", offset=1, limit=1) == [B]
    assert sr.get_versions(A, offset=1) == [2]
    sr.delete_version(A, 1)
    assert sr.get_versions(A, deleted_only=True) == [1]
    assert sr.get_subjects(deleted_only=True) == []
    assert first.guid is not None
    by_guid = SchemaRegistryClient({"url": served}).get_schema_by_guid(first.guid)
    assert json.loads(by_guid.schema_str or "") == json.loads(schema())
    latest = sr.get_latest_with_metadata(A, {"owner": "checkout"})
    assert latest.version == 2  # inherited the owner from version 1
    assert sr.get_latest_with_metadata(A, {"owner": "checkout"}, deleted=True).version == 2
    with pytest.raises(SchemaRegistryError) as missing:
        sr.get_latest_with_metadata(A, {"owner": "nobody"})
    assert missing.value.error_code == 40402
    assert sr.get_referenced_by(B, 1) == []
    admin = SchemaRegistryClient({"url": served, "basic.auth.user.info": "admin:admin-secret"})
    admin.set_compatibility(level="FULL")
    assert admin.delete_config().compatibility_level is not None
    assert admin.get_compatibility() == "BACKWARD"


def test_latest_of_a_soft_deleted_subject_is_served_with_deleted_only(filled: TestClient) -> None:
    for path in ("", "/schema"):
        hidden = filled.get(f"/subjects/{GONE}/versions/latest{path}")
        assert (hidden.status_code, hidden.json()["error_code"]) == (404, 40401)
    latest = filled.get(f"/subjects/{GONE}/versions/latest?deleted=true")
    assert (latest.status_code, latest.json()["version"]) == (200, 1)
    assert filled.get(f"/subjects/{GONE}/versions/latest/schema?deleted=true").status_code == 200
    # A soft-deleted version still decodes records, so what references it still counts.
    assert filled.get(f"/subjects/{GONE}/versions/latest/referencedby").json() == []


def test_records_framed_with_a_guid_header_decode_through_the_guid_route(served: str) -> None:
    from confluent_kafka.schema_registry import header_schema_id_serializer
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    sr = SchemaRegistryClient({"url": served, "basic.auth.user.info": "orders:orders-secret"})
    serializer = AvroSerializer(
        sr,
        schema(),
        conf={"auto.register.schemas": True, "schema.id.serializer": header_schema_id_serializer},
    )
    headers: list[tuple[str, bytes]] = []
    context = SerializationContext("orders.a.v1", MessageField.VALUE, headers)
    record = {"order_id": "order-0007"}  # confluent-kafka wants 6 bytes or more of payload
    payload = serializer(record, context)
    assert payload[:1] != b"\x00"  # no id prefix: the schema is named by the guid header
    guid = sr.get_latest_version(A).guid
    assert guid is not None
    assert headers[0][1][1:] == uuid.UUID(guid).bytes
    fresh = SchemaRegistryClient({"url": served})  # nothing cached: it asks /schemas/guids/{guid}
    assert AvroDeserializer(fresh)(payload, context) == record
