"""Confluent's /mode: read-only registries and subjects, and IMPORT keeping another's ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, make_client, schema

A = "orders.a.v1-value"
B = "orders.b.v1-value"


def register(
    client: TestClient, subject: str, text: str, auth: tuple[str, str] = ORDERS, **extra: Any
) -> Any:
    return client.post(f"/subjects/{subject}/versions", json={"schema": text, **extra}, auth=auth)


def put_mode(client: TestClient, mode: Any, subject: str = "", query: str = "") -> Any:
    path = f"/mode/{subject}" if subject else "/mode"
    return client.put(path + query, json={"mode": mode}, auth=ADMIN)


def error(answer: Any) -> tuple[int, int]:
    return answer.status_code, answer.json()["error_code"]


def test_read_only_refuses_schema_writes_and_serves_reads(client: TestClient) -> None:
    assert client.get("/mode").json() == {"mode": "READWRITE"}
    registered = register(client, A, schema()).json()
    assert put_mode(client, "READONLY").json() == {"mode": "READONLY"}
    assert client.get("/mode").json() == {"mode": "READONLY"}
    refused = register(client, A, schema("note"))
    assert error(refused) == (422, 42205)
    assert refused.json()["message"] == (
        f"Subject '{A}' is in read-only mode (READONLY); the subject follows the registry's "
        f'mode: an admin can allow writes with PUT /mode {{"mode": "READWRITE"}}, or for this '
        f'subject alone with PUT /mode/{A} {{"mode": "READWRITE"}}'
    )
    # A schema registered already answers its id, as Confluent's registry does: its
    # serializers register on every start (auto.register.schemas), read-only or not.
    again = register(client, A, schema())
    assert (again.status_code, again.json()["id"]) == (200, registered["id"])
    assert error(register(client, A, schema("other"), ADMIN, id=99)) == (422, 42205)
    assert error(client.delete(f"/subjects/{A}/versions/1", auth=ORDERS)) == (422, 42205)
    assert error(client.delete(f"/subjects/{A}", auth=ORDERS)) == (422, 42205)
    assert client.get(f"/subjects/{A}/versions/1").json()["id"] == registered["id"]
    assert client.post(f"/subjects/{A}", json={"schema": schema()}).status_code == 200
    # A subject's own mode wins over a global READONLY, but not over READONLY_OVERRIDE.
    assert put_mode(client, "READWRITE", A).json() == {"mode": "READWRITE"}
    assert register(client, A, schema("note")).status_code == 200
    assert put_mode(client, "READONLY_OVERRIDE").status_code == 200
    overridden = register(client, A, schema("note", "more"))
    assert error(overridden) == (422, 42205)
    assert overridden.json()["message"] == (
        f"Subject '{A}' is in read-only mode (READONLY_OVERRIDE); the registry's mode "
        f"READONLY_OVERRIDE overrides every subject's: an admin can allow writes with PUT "
        f'/mode {{"mode": "READWRITE"}}'
    )
    assert put_mode(client, "READONLY", A).status_code == 200
    assert put_mode(client, "READWRITE").status_code == 200
    own = register(client, A, schema("note", "more"))
    assert own.json()["message"] == (
        f"Subject '{A}' is in read-only mode (READONLY); an admin can allow writes with PUT "
        f'/mode/{A} {{"mode": "READWRITE"}}'
    )
    assert put_mode(client, "READWRITE", A).status_code == 200
    assert put_mode(client, "READONLY_OVERRIDE").status_code == 200
    assert client.get(f"/mode/{A}?defaultToGlobal=true").json() == {"mode": "READONLY_OVERRIDE"}
    assert put_mode(client, "READWRITE").status_code == 200
    assert register(client, A, schema("note", "more")).status_code == 200


def test_subject_modes_read_set_and_delete(client: TestClient) -> None:
    missing = client.get(f"/mode/{A}")
    assert error(missing) == (404, 40409)
    assert "does not have subject-level mode configured" in missing.json()["message"]
    assert client.get(f"/mode/{A}?defaultToGlobal=true").json() == {"mode": "READWRITE"}
    assert put_mode(client, "readonly", A).json() == {"mode": "READONLY"}
    assert client.get(f"/mode/{A}").json() == {"mode": "READONLY"}
    assert error(register(client, A, schema())) == (422, 42205)
    assert register(client, B, schema()).status_code == 200  # other subjects write on
    assert client.delete(f"/mode/{A}", auth=ADMIN).json() == {"mode": "READONLY"}
    assert error(client.delete(f"/mode/{A}", auth=ADMIN)) == (404, 40409)
    assert register(client, A, schema()).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/mode"), ("PUT", f"/mode/{A}"), ("DELETE", f"/mode/{A}")],
)
def test_only_admin_changes_a_mode(client: TestClient, method: str, path: str) -> None:
    body = {"mode": "READONLY"} if method == "PUT" else None
    refused = client.request(method, path, json=body, auth=ORDERS)
    assert error(refused) == (403, 40301)
    assert client.request(method, path, json=body).status_code == 401
    assert client.get("/mode").json() == {"mode": "READWRITE"}


@pytest.mark.parametrize("mode", ["WRITEONLY", "", 7, None, ["READONLY"], "READ WRITE"])
def test_an_unknown_mode_is_42204(client: TestClient, mode: Any) -> None:
    for subject in ("", A):
        answer = put_mode(client, mode, subject)
        assert error(answer) == (422, 42204)
        message = answer.json()["message"]
        assert "one of READWRITE, READONLY, READONLY_OVERRIDE, IMPORT" in message
        # an empty body (or a null mode) says the mode is missing, not "Invalid mode 'None'"
        assert message.startswith("the body has no mode" if mode is None else "Invalid mode")


def test_hostile_mode_requests_are_clean_4xx(client: TestClient) -> None:
    bad_json = client.put("/mode", content=b'{"mode": ', auth=ADMIN)
    assert error(bad_json) == (400, 40001)
    assert client.put("/mode?force=maybe", json={"mode": "IMPORT"}, auth=ADMIN).status_code == 422
    assert client.put("/mode", content=b"[]", auth=ADMIN).status_code == 422
    assert error(client.get("/mode/a..b")) == (422, 42215)


def test_import_over_existing_schemas_needs_force(client: TestClient) -> None:
    register(client, A, schema())
    refused = put_mode(client, "IMPORT")
    assert error(refused) == (422, 42205)
    assert "?force=true" in refused.json()["message"]
    assert error(put_mode(client, "IMPORT", A)) == (422, 42205)
    assert put_mode(client, "IMPORT", B).json() == {"mode": "IMPORT"}  # B is empty
    assert put_mode(client, "IMPORT", query="?force=true").json() == {"mode": "IMPORT"}


def test_import_keeps_ids_and_versions_and_never_overwrites(client: TestClient) -> None:
    outside = register(client, A, schema(), id=40, auth=ADMIN)
    assert error(outside) == (422, 42205)
    assert "not in import mode" in outside.json()["message"]
    assert put_mode(client, "IMPORT", B).status_code == 200
    squatting = register(client, B, schema(name="B"), id=40, version=3)  # a domain's credential
    assert error(squatting) == (403, 40301)
    imported = register(client, B, schema(name="B"), id=40, version=3, auth=ADMIN).json()
    assert (imported["id"], imported["version"]) == (40, 3)
    assert (
        register(client, B, schema(name="B"), id=40, version=3, auth=ADMIN).json() == imported
    )  # again
    assert json.loads(client.get("/schemas/ids/40").json()["schema"]) == json.loads(
        schema(name="B")
    )
    other_schema = register(client, B, schema("x", name="B"), id=40, version=4, auth=ADMIN)
    assert error(other_schema) == (422, 42205)
    assert "Overwrite schema for the same ID is not permitted" in other_schema.json()["message"]
    taken_version = register(client, B, schema("x", name="B"), id=41, version=3, auth=ADMIN)
    assert error(taken_version) == (422, 42205)
    assert "version 3" in taken_version.json()["message"]
    # An incompatible schema is imported as it is (the source registry judged it).
    breaking = {"type": "record", "name": "B", "doc": "B.", "fields": []}
    assert register(client, B, json.dumps(breaking), id=7, version=4, auth=ADMIN).json()["id"] == 7
    assert client.get(f"/subjects/{B}/versions").json() == [3, 4]
    assert client.delete(f"/mode/{B}", auth=ADMIN).status_code == 200
    fresh = register(client, A, schema()).json()
    assert fresh["id"] == 41  # after the largest id imported
    assert error(register(client, A, schema(), id=41, auth=ADMIN)) == (422, 42205)


def test_no_id_or_version_past_the_top_is_handed_out_after_an_import_there(
    client: TestClient,
) -> None:
    """h39: after an import at 2147483647, the next id and version went past what clients
    read (Java reads the id as negative) and the registry refused its own version on GET."""
    top, c = 2**31 - 1, "orders.c.v1-value"

    def imported(subject: str, schema_id: int, version: int) -> None:
        assert put_mode(client, "IMPORT", subject).status_code == 200
        answer = register(
            client, subject, schema(name="B"), id=schema_id, version=version, auth=ADMIN
        )
        assert (answer.json()["id"], answer.json()["version"]) == (schema_id, version)
        assert client.delete(f"/mode/{subject}", auth=ADMIN).status_code == 200

    imported(c, 5, top)
    no_version = register(client, c, schema("x", name="B"), auth=ADMIN)  # id 6 is free
    assert error(no_version) == (422, 42205)
    assert no_version.json()["message"] == (
        f"no version of subject '{c}' is left: new ones are handed out above the subject's "
        f"highest version, {top}, the largest clients read (four bytes, signed), most likely "
        "imported; nothing was stored. Register with an explicit id and version in IMPORT "
        "mode, or delete that version permanently"
    )
    imported(B, top, 1)
    no_id = register(client, A, schema())
    assert error(no_id) == (422, 42205)
    assert no_id.json()["message"] == (
        f"no schema id is left: new ones are handed out above the highest id in use, {top}, "
        "the largest clients read (four bytes, signed), most likely imported; nothing was "
        "stored. Register with an explicit id and version in IMPORT mode, or delete that "
        "version permanently"
    )
    assert client.get(f"/subjects/{c}/versions").json() == [top]
    assert client.get(f"/subjects/{A}/versions").status_code == 404


@pytest.mark.parametrize("field", ["id", "version"])
def test_an_import_id_or_version_given_as_a_boolean_is_refused_not_taken_as_1(
    client: TestClient, field: str
) -> None:
    assert put_mode(client, "IMPORT", B).status_code == 200
    chosen = {"id": 40, "version": 3, field: True}
    refused = register(client, B, schema(name="B"), **chosen, auth=ADMIN)
    assert error(refused) == (422, 422)
    assert refused.json()["message"] == (
        f"invalid request: body.{field}: must be a whole number, not a boolean"
    )
    assert client.get(f"/subjects/{B}/versions").status_code == 404  # nothing imported


def test_modes_survive_a_replay(store: InMemoryStore) -> None:
    client = make_client(store)
    put_mode(client, "READONLY")
    put_mode(client, "IMPORT", A)
    client.delete(f"/mode/{A}", auth=ADMIN)
    put_mode(client, "READWRITE", B)
    replayed = make_client(InMemoryStore(store.records))
    assert replayed.get("/mode").json() == {"mode": "READONLY"}
    assert replayed.get(f"/mode/{A}").status_code == 404
    assert replayed.get(f"/mode/{B}").json() == {"mode": "READWRITE"}


@pytest.fixture
def two_registries() -> Iterator[tuple[str, str]]:
    first = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    second = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    try:
        yield first.start(), second.start()
    finally:
        first.stop()
        second.stop()


def test_migrating_a_registry_in_import_mode_keeps_old_records_decodable(
    two_registries: tuple[str, str],
) -> None:
    old_url, new_url = two_registries
    admin_conf = {"basic.auth.user.info": f"admin:{TOKENS['admin']}"}
    old = SchemaRegistryClient({"url": old_url, **admin_conf})
    # The old registry: ids 1-3, one id shared by two subjects, a soft-deleted version.
    old.register_schema(B, Schema(schema(name="B"), "AVRO"))
    old.register_schema(A, Schema(schema(), "AVRO"))
    old.register_schema(A, Schema(schema("note"), "AVRO"))
    old.register_schema("orders.copy.v1-value", Schema(schema(), "AVRO"))
    old.delete_version(A, 1)
    serializer = AvroSerializer(old, schema("note"), conf={"auto.register.schemas": False})
    context = SerializationContext("orders.a.v1", MessageField.VALUE)
    framed = serializer({"order_id": "o-1", "note": "fragile"}, context)
    old_id = int.from_bytes(framed[1:5], "big")

    new = SchemaRegistryClient({"url": new_url, **admin_conf})
    assert new.update_global_mode("IMPORT") == "IMPORT"
    assert new.get_global_mode() == "IMPORT"
    copied = 0
    for subject in old.get_subjects(deleted=True):
        for version in old.get_versions(subject, deleted=True):
            found = old.get_version(subject, version, deleted=True)
            body = {
                "schema": found.schema.schema_str,
                "id": found.schema_id,
                "version": found.version,
            }
            answer = httpx.post(  # confluent-kafka has no call that sends an id
                f"{new_url}/subjects/{subject}/versions", json=body, auth=ADMIN
            ).json()
            assert (answer["id"], answer["version"]) == (found.schema_id, found.version)
            copied += 1
    assert copied == 4
    assert new.update_global_mode("READWRITE") == "READWRITE"

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": new_url}))
    assert deserializer(framed, context) == {"order_id": "o-1", "note": "fragile"}
    assert new.get_schema(old_id).schema_str == old.get_schema(old_id).schema_str
    assert new.get_versions(A) == [1, 2]  # soft deletes are the migration's to repeat
    with pytest.raises(SchemaRegistryError) as refused:
        new.update_mode(A, "IMPORT")
    assert refused.value.error_code == 42205
    assert new.update_mode(A, "READONLY") == "READONLY"
    assert new.get_mode(A) == "READONLY"
    assert new.delete_mode(A) == "READONLY"
