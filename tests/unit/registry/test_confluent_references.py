"""Avro schema references: named types from another subject's version, as Confluent has them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore
from tests.unit.registry.conftest import ORDERS, make_client

ADDRESS_SUBJECT = "orders.address.v1-value"
ORDER_SUBJECT = "orders.order-placed.v1-value"
COUNTRY = {
    "type": "enum",
    "name": "Country",
    "namespace": "shop",
    "doc": "A country.",
    "symbols": ["FR", "DE"],
}
ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "shop",
    "doc": "A postal address.",
    "fields": [{"name": "city", "type": "string", "doc": "The city."}],
}
ORDER = {
    "type": "record",
    "name": "Placed",
    "namespace": "shop",
    "doc": "An order.",
    "fields": [
        {"name": "order_id", "type": "string", "doc": "Order id."},
        {"name": "ship_to", "type": "shop.Address", "doc": "Where it goes."},
    ],
}
ADDRESS_REF = {"name": "shop.Address", "subject": ADDRESS_SUBJECT, "version": 1}


def register(
    client: TestClient, subject: str, schema: Any, references: Any = None, **extra: Any
) -> Any:
    body = {"schema": json.dumps(schema), **extra}
    if references is not None:
        body["references"] = references
    return client.post(f"/subjects/{subject}/versions", json=body, auth=ORDERS)


def error(answer: Any) -> tuple[int, int]:
    return answer.status_code, answer.json()["error_code"]


@pytest.fixture
def with_address(client: TestClient) -> TestClient:
    assert register(client, ADDRESS_SUBJECT, ADDRESS).status_code == 200
    return client


def test_a_schema_uses_a_named_type_of_another_subject(with_address: TestClient) -> None:
    client = with_address
    unresolved = register(client, ORDER_SUBJECT, ORDER)
    assert error(unresolved) == (422, 42201)
    assert 'unknown type "shop.Address"' in unresolved.json()["message"]
    answer = register(client, ORDER_SUBJECT, ORDER, [ADDRESS_REF])
    assert answer.status_code == 200, answer.text
    order_id = answer.json()["id"]
    version = client.get(f"/subjects/{ORDER_SUBJECT}/versions/1").json()
    assert version["references"] == [ADDRESS_REF]
    by_id = client.get(f"/schemas/ids/{order_id}").json()
    assert by_id["references"] == [ADDRESS_REF]
    stored = json.loads(by_id["schema"])
    assert stored["fields"][1]["type"] == "shop.Address"  # kept a reference, not inlined
    assert client.get(f"/subjects/{ADDRESS_SUBJECT}/versions/1/referencedby").json() == [order_id]
    looked = client.post(
        f"/subjects/{ORDER_SUBJECT}",
        json={"schema": json.dumps(ORDER), "references": [ADDRESS_REF]},
    )
    assert looked.json()["id"] == order_id
    again = register(client, ORDER_SUBJECT, ORDER, [ADDRESS_REF])
    assert again.json()["version"] == 1


def test_latest_reference_is_pinned_and_references_are_identity(with_address: TestClient) -> None:
    client = with_address
    latest_ref = {**ADDRESS_REF, "version": -1}
    first = register(client, ORDER_SUBJECT, ORDER, [latest_ref]).json()
    assert first["references"] == [ADDRESS_REF]  # -1 became the version it named
    evolved = {
        **ADDRESS,
        "fields": [
            *ADDRESS["fields"],
            {"name": "zip", "type": ["null", "string"], "default": None, "doc": "Zip."},
        ],
    }
    assert register(client, ADDRESS_SUBJECT, evolved).json()["version"] == 2
    second = register(client, ORDER_SUBJECT, ORDER, [{**ADDRESS_REF, "version": 2}]).json()
    assert second["version"] == 2
    assert second["id"] != first["id"]  # same text, other references: another schema
    assert client.get(f"/subjects/{ADDRESS_SUBJECT}/versions/2/referencedby").json() == [
        second["id"]
    ]
    compatible = client.post(
        f"/compatibility/subjects/{ORDER_SUBJECT}/versions/latest",
        json={"schema": json.dumps(ORDER), "references": [{**ADDRESS_REF, "version": 2}]},
    )
    assert compatible.json() == {"is_compatible": True}


def test_references_resolve_transitively(store: InMemoryStore) -> None:
    client = make_client(store)
    assert register(client, "orders.country.v1-value", COUNTRY).status_code == 200
    address = {
        **ADDRESS,
        "fields": [*ADDRESS["fields"], {"name": "country", "type": "Country", "doc": "Land."}],
    }
    country_ref = {"name": "shop.Country", "subject": "orders.country.v1-value", "version": 1}
    assert register(client, ADDRESS_SUBJECT, address, [country_ref]).status_code == 200
    order = register(client, ORDER_SUBJECT, ORDER, [ADDRESS_REF])
    assert order.status_code == 200, order.text
    replayed = make_client(InMemoryStore(store.records))
    evolved = {
        **ORDER,
        "fields": [
            *ORDER["fields"],
            {"name": "bill_to", "type": ["null", "Address"], "default": None, "doc": "Bill."},
        ],
    }
    answer = register(replayed, ORDER_SUBJECT, evolved, [ADDRESS_REF])
    assert answer.status_code == 200, answer.text  # checked against v1, parsed with its refs


@pytest.mark.parametrize(
    ("references", "named"),
    [
        ({"name": "x"}, "references is dict, not a list"),
        (["shop.Address"], "references[0] is str, not an object"),
        ([{"subject": ADDRESS_SUBJECT, "version": 1}], "references[0].name is missing"),
        ([{**ADDRESS_REF, "version": "1"}], "references[0].version is '1'"),
        ([{**ADDRESS_REF, "version": 0}], "references[0].version is '0'"),
        ([{**ADDRESS_REF, "version": True}], "references[0].version is 'True'"),
        ([{**ADDRESS_REF, "extra": 1}], "references[0].extra is not a reference field"),
        ([{**ADDRESS_REF, "version": 9}], "names the version 9 of subject"),
        ([{**ADDRESS_REF, "subject": "orders.none"}], "subject 'orders.none', which does not"),
        ([{**ADDRESS_REF, "subject": "a..b"}], "references[0].subject"),
        ([ADDRESS_REF] * 101, "references has 101 entries"),
    ],
)
def test_a_bad_reference_is_a_42201_naming_it(
    with_address: TestClient, references: Any, named: str
) -> None:
    answer = register(with_address, ORDER_SUBJECT, ORDER, references)
    assert error(answer) == (422, 42201)
    assert named in answer.json()["message"]
    assert "HTTP 500" not in answer.json()["message"]  # no status of an inner error leaks
    assert with_address.get(f"/subjects/{ORDER_SUBJECT}/versions").status_code == 404


def test_a_referenced_version_cannot_be_deleted(with_address: TestClient) -> None:
    client = with_address
    assert register(client, ORDER_SUBJECT, ORDER, [ADDRESS_REF]).status_code == 200
    for path in (f"/subjects/{ADDRESS_SUBJECT}/versions/1", f"/subjects/{ADDRESS_SUBJECT}"):
        refused = client.delete(path, auth=ORDERS)
        assert error(refused) == (422, 42206)
        assert "One or more references exist" in refused.json()["message"]
        assert ORDER_SUBJECT in refused.json()["message"]
        # who may do it (h39: a domain whose subject another domain references was told to
        # delete versions it has no right to delete)
        owner = ORDER_SUBJECT.split(".", 1)[0]
        assert refused.json()["message"].endswith(
            f"those versions must be deleted permanently first, by their subjects' owners "
            f"(domain {owner}) or admin"
        )
    assert client.delete(f"/subjects/{ORDER_SUBJECT}", auth=ORDERS).status_code == 200
    # A soft-deleted referrer still decodes its records: the reference still holds.
    assert error(client.delete(f"/subjects/{ADDRESS_SUBJECT}", auth=ORDERS)) == (422, 42206)
    gone = client.delete(f"/subjects/{ORDER_SUBJECT}?permanent=true", auth=ORDERS)
    assert gone.status_code == 200
    assert client.get(f"/subjects/{ADDRESS_SUBJECT}/versions/1/referencedby").json() == []
    assert client.delete(f"/subjects/{ADDRESS_SUBJECT}", auth=ORDERS).status_code == 200


def test_confluent_serde_round_trips_a_schema_with_references(served: str) -> None:
    sr = SchemaRegistryClient({"url": served, "basic.auth.user.info": "orders:orders-secret"})
    sr.register_schema(ADDRESS_SUBJECT, Schema(json.dumps(ADDRESS), "AVRO"))
    reference = SchemaReference("shop.Address", ADDRESS_SUBJECT, 1)
    with_refs = Schema(json.dumps(ORDER), "AVRO", [reference])
    serializer = AvroSerializer(sr, with_refs, conf={"auto.register.schemas": True})
    context = SerializationContext("orders.order-placed.v1", MessageField.VALUE)
    record = {"order_id": "o-1", "ship_to": {"city": "Lyon"}}
    framed = serializer(record, context)
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": served}))
    assert deserializer(framed, context) == record
    registered = sr.get_latest_version(ORDER_SUBJECT)
    assert registered.schema.references == [reference]
    assert sr.get_referenced_by(ADDRESS_SUBJECT, 1) == [registered.schema_id]
    looked = sr.lookup_schema(ORDER_SUBJECT, with_refs)
    assert looked.schema_id == registered.schema_id
