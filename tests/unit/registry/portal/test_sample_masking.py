"""The live sample's core without a broker: PII paths, masking by viewer, decoding real
Confluent-framed records (confluent-kafka ``Message`` objects built here), error lines for
undecodable records, and the REST route's answers on a registry that has no Kafka.

Reading from a real topic is tests/integration/test_product_sample.py's job.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import load_project
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.sample import (
    MASK,
    ProductSampler,
    mask_value,
    pii_field_paths,
    sees_pii,
)
from mesh_stream.schema.codec import RecordEncoder
from mesh_stream.up.plan import topological
from tests.unit.registry.conftest import TOKENS

REPO_ROOT = Path(__file__).resolve().parents[4]
PROFILE = "customers.customer-profile"

NESTED = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {
            "name": "buyer",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Buyer",
                    "fields": [
                        {"name": "email", "type": "string", "pii": True},
                        {"name": "country", "type": "string"},
                    ],
                },
            ],
        },
        {
            "name": "contacts",
            "type": {"type": "array", "items": "Buyer"},
        },
        {
            "name": "by_role",
            "type": {"type": "map", "values": "Buyer"},
        },
        {"name": "note", "type": ["null", "string"], "pii": True},
    ],
}


def register_sample_mesh(services: Services) -> None:
    """Every sample product of domains/, sources first, straight into the in-process cores."""
    project = load_project(REPO_ROOT)
    for product in topological(project.descriptors()):
        text = (REPO_ROOT / product.schema_file).read_text(encoding="utf-8")
        services.schemas.register(product.value_subject, text)
        services.products.put(product.to_document(), principal="admin")


@pytest.fixture(scope="module")
def services() -> Services:
    app = create_app(InMemoryStore())
    found: Services = app.state.services
    register_sample_mesh(found)
    return found


@pytest.fixture(scope="module")
def sampler(services: Services) -> ProductSampler:
    # The connection is never used by ``assemble``: no broker is asked anything here.
    return ProductSampler(KafkaConnection.create("127.0.0.1:1"), services.products)


def _profile(i: int) -> dict[str, Any]:
    return {
        "customer_id": f"cust-{i}",
        "full_name": f"Name {i}",
        "email": f"c{i}@example.org",
        "phone": None if i % 2 else f"+44 {i}",
        "region": "eu-west",
        "segment": "VIP",
        "updated_at": 1_764_000_000_000 + i,
    }


def _messages(services: Services, count: int) -> list[Any]:
    product = services.products.get_product(PROFILE)
    assert product is not None
    latest = services.schemas.live_versions(product.value_subject)[-1]
    encoder = RecordEncoder(services.schemas.get_schema(latest.schema_id), latest.schema_id)
    return [
        Message(
            topic=product.topic,
            partition=i % 3,
            offset=100 + i,
            key=f"cust-{i}".encode(),
            value=encoder.encode(_profile(i)),
            timestamp=(1, 1_764_000_000_000 + i * 1000),
        )
        for i in range(count)
    ]


def test_pii_paths_cover_nested_union_array_and_map_fields() -> None:
    assert pii_field_paths(NESTED) == {"buyer.email", "contacts.email", "by_role.email", "note"}


def test_masking_follows_the_schema_into_unions_arrays_and_maps() -> None:
    value = {
        "id": "o-1",
        "buyer": {"email": "a@x.org", "country": "NL"},
        "contacts": [{"email": "b@x.org", "country": "DE"}],
        "by_role": {"payer": {"email": "c@x.org", "country": "FR"}},
        "note": "call after 6",
    }
    masked = mask_value(value, NESTED, pii_field_paths(NESTED))
    assert masked == {
        "id": "o-1",
        "buyer": {"email": MASK, "country": "NL"},
        "contacts": [{"email": MASK, "country": "DE"}],
        "by_role": {"payer": {"email": MASK, "country": "FR"}},
        "note": MASK,
    }
    assert value["buyer"]["email"] == "a@x.org"  # the decoded record itself is untouched
    assert mask_value({**value, "buyer": None}, NESTED, {"buyer.email"})["buyer"] is None


def test_masking_reaches_every_depth_of_a_recursive_type() -> None:
    chain = {
        "type": "record",
        "name": "Link",
        "fields": [
            {"name": "secret", "type": "string", "pii": True},
            {"name": "next", "type": ["null", "Link"]},
        ],
    }
    paths = pii_field_paths(chain)
    assert paths == {"secret"}
    value = {"secret": "a", "next": {"secret": "b", "next": {"secret": "c", "next": None}}}
    assert mask_value(value, chain, paths) == {
        "secret": MASK,
        "next": {"secret": MASK, "next": {"secret": MASK, "next": None}},
    }


def test_only_the_owning_domain_and_admin_see_pii(services: Services) -> None:
    product = services.products.get_product(PROFILE)
    assert product is not None
    assert sees_pii("customers", product)
    assert sees_pii("admin", product)
    assert not sees_pii("orders", product)
    assert not sees_pii("analytics", product)  # a declared reader still gets masks
    assert not sees_pii(None, product)


def test_another_domain_sees_masks_the_owner_sees_values(
    services: Services, sampler: ProductSampler
) -> None:
    product = services.products.get_product(PROFILE)
    assert product is not None
    messages = _messages(services, 6)

    other = sampler.assemble(product, messages, "orders", limit=4)
    assert other.masked == ["email", "full_name", "phone"]
    assert [r.offset for r in other.records] == [105, 104, 103, 102]  # newest first
    assert [r.partition for r in other.records] == [2, 1, 0, 2]
    newest = other.records[0]
    assert newest.key == "cust-5"
    assert newest.timestamp_ms == 1_764_000_005_000
    assert newest.value == {
        "customer_id": "cust-5",
        "full_name": MASK,
        "email": MASK,
        "phone": MASK,
        "region": "eu-west",
        "segment": "VIP",
        "updated_at": "2025-11-24T16:00:00.005000+00:00",
    }
    assert other.fields == [
        "customer_id",
        "full_name",
        "email",
        "phone",
        "region",
        "segment",
        "updated_at",
    ]
    anonymous = sampler.assemble(product, messages, None, limit=1)
    assert anonymous.records[0].value is not None
    assert anonymous.records[0].value["email"] == MASK

    owner = sampler.assemble(product, messages, "customers", limit=4)
    assert owner.masked == []
    assert owner.records[0].value is not None
    assert owner.records[0].value["full_name"] == "Name 5"
    assert owner.records[0].value["email"] == "c5@example.org"
    assert owner.records[1].value is not None
    assert owner.records[1].value["phone"] == "+44 4"
    assert json.dumps(owner.to_document())  # JSON-able as the REST route returns it


def test_an_undecodable_record_is_an_error_line_with_its_coordinates(
    services: Services, sampler: ProductSampler
) -> None:
    product = services.products.get_product(PROFILE)
    assert product is not None
    good = _messages(services, 1)[0]
    broken = [
        Message(topic=product.topic, partition=1, offset=7, value=b"not avro", timestamp=(1, 5)),
        Message(
            topic=product.topic,
            partition=2,
            offset=8,
            value=b"\x00\x00\x00\x27\x0fxx",
            timestamp=(1, 4),
        ),
        Message(topic=product.topic, partition=0, offset=9, value=None, timestamp=(1, 3)),
    ]
    sample = sampler.assemble(product, [good, *broken], "customers", limit=10)
    assert [r.error is None for r in sample.records] == [True, False, False, True]
    errors = [r.error or "" for r in sample.records[1:3]]
    assert errors[0].startswith("customers.customer-profile.v1[1]@7: ")
    assert "magic byte" in errors[0]
    assert errors[1].startswith("customers.customer-profile.v1[2]@8: ")
    assert "schema id 9999" in errors[1]
    assert all(len(e) <= 300 for e in errors)
    # a tombstone is a deletion of its key, not a record that failed to decode
    assert [r.deleted for r in sample.records] == [False, False, False, True]
    tombstone = sample.records[3].to_document()
    assert (tombstone["value"], tombstone["error"], tombstone["deleted"]) == (None, None, True)


def test_a_pii_product_marking_no_field_is_masked_whole(services: Services) -> None:
    app = create_app(InMemoryStore())
    found: Services = app.state.services
    unmarked = {
        "type": "record",
        "name": "Secret",
        "fields": [{"name": "who", "type": "string"}, {"name": "what", "type": "string"}],
    }
    registered = found.schemas.register("customers.secret.v1-value", json.dumps(unmarked))
    found.products.put(
        {
            "name": "customers.secret",
            "domain": "customers",
            "kind": "source-aligned",
            "description": "Unmarked personal data.",
            "owner": {"team": "t", "contact": "t@example.org"},
            "schema": "schemas/customers/secret.avsc",
            "key_field": "who",
            "slos": {"freshness_seconds": 5, "availability": 99.0},
            "classification": "pii",
        },
        principal="admin",
    )
    product = found.products.get_product("customers.secret")
    assert product is not None
    framed = RecordEncoder(json.dumps(unmarked), registered.schema_id).encode(
        {"who": "Ann", "what": "x"}
    )
    message = Message(
        topic=product.topic, partition=0, offset=0, key=b"Ann", value=framed, timestamp=(1, 1)
    )
    sampler = ProductSampler(KafkaConnection.create("127.0.0.1:1"), found.products)
    shown = sampler.assemble(product, [message], "orders", limit=5)
    assert shown.records[0].value == {"who": MASK, "what": MASK}
    assert shown.records[0].key == MASK  # the key is the masked key field's value
    assert sampler.assemble(product, [message], "customers", limit=5).records[0].key == "Ann"


def test_the_rest_route_without_kafka_says_so() -> None:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True)
    register_sample_mesh(app.state.services)
    client = TestClient(app, raise_server_exceptions=False)
    auth = ("orders", TOKENS["orders"])
    answer = client.get(f"/products/{PROFILE}/sample", auth=auth)
    assert answer.status_code == 503
    assert answer.json()["error_code"] == 50302
    assert "no Kafka connection here" in answer.json()["message"]
    unknown = client.get("/products/customers.nope/sample", auth=auth)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, 40404)
    for limit in ("0", "101", "-1", "x" * 5000, "1e3"):
        bad = client.get(f"/products/{PROFILE}/sample", params={"limit": limit}, auth=auth)
        assert bad.status_code == 422, (limit, bad.text)
    anonymous = client.get(f"/products/{PROFILE}/sample")
    assert anonymous.status_code == 401


class _HeldSampler(ProductSampler):
    """Serves messages built here instead of reading a topic (the reading itself is the
    integration test's); decoding, masking and the page are the real ones."""

    def __init__(self, services: Services, messages: list[Any]) -> None:
        super().__init__(KafkaConnection.create("127.0.0.1:1"), services.products)
        self.messages = messages
        self.asked: list[tuple[str | None, int]] = []

    def sample(self, name: str, principal: str | None, limit: int = 20) -> Any:
        self.asked.append((principal, limit))
        product = self.catalog.get_product(name)
        assert product is not None
        return self.assemble(product, self.messages, principal, limit)


def _portal(with_sampler: bool) -> tuple[TestClient, _HeldSampler | None]:
    app = create_app(
        InMemoryStore(), credentials=Credentials({**TOKENS, "customers": "customers-secret"})
    )
    services: Services = app.state.services
    register_sample_mesh(services)
    held = _HeldSampler(services, _messages(services, 5)) if with_sampler else None
    services.samples = held
    return TestClient(app, raise_server_exceptions=False), held


def test_the_portal_sample_masks_for_anonymous_and_shows_the_owner_everything() -> None:
    client, held = _portal(with_sampler=True)
    assert held is not None
    url = f"/ui/products/{PROFILE}/sample"
    anonymous = client.get(url, headers={"HX-Request": "true"})
    assert anonymous.status_code == 200
    text = anonymous.text
    assert "<html" not in text  # a fragment for htmx
    assert text.count(f'<span class="masked">{MASK}</span>') == 15  # 3 fields x 5 records
    assert "c4@example.org" not in text
    assert 'data-partition="1" data-offset="104"' in text
    assert "2025-11-24 16:00:04.000 UTC" in text  # the Kafka timestamp of offset 104
    assert "masked for you: <code>email</code>, <code>full_name</code>, <code>phone</code>" in text

    owner = client.get(
        url,
        params={"limit": "2"},
        headers={"HX-Request": "true", "Authorization": "Bearer customers-secret"},
    )
    assert owner.status_code == 200
    assert MASK not in owner.text
    assert "c4@example.org" in owner.text
    assert "Name 3" in owner.text
    assert owner.text.count("<tr data-partition=") == 2
    assert held.asked == [(None, 20), ("customers", 2)]

    for hostile in ("0", "-5", "1000000", "abc", "9" * 5000, "½"):
        client.get(url, params={"limit": hostile}, headers={"HX-Request": "true"})
    assert [limit for _, limit in held.asked[2:]] == [1, 20, 20, 20, 20, 20]

    page = client.get(url)  # without htmx: a page of its own
    assert page.status_code == 200
    assert "<html" in page.text
    assert "Live sample of" in page.text


def test_the_portal_sample_without_kafka_or_product_is_a_message() -> None:
    client, _ = _portal(with_sampler=False)
    url = f"/ui/products/{PROFILE}/sample"
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "no Kafka connection here" in fragment.text
    page = client.get(url)
    assert page.status_code == 503
    assert "no Kafka connection here" in page.text
    assert "<html" in page.text
    unknown = client.get("/ui/products/customers.nope/sample")
    assert unknown.status_code == 404
    assert "No product named &#39;customers.nope&#39; is registered." in unknown.text
    hostile = client.get("/ui/products/<b>x</b>.y/sample", headers={"HX-Request": "true"})
    assert hostile.status_code in (200, 404)
    assert "<b>x</b>" not in hostile.text


def test_a_broker_that_does_not_answer_is_a_503_within_the_deadline(services: Services) -> None:
    import socket
    import time

    from mesh_stream.errors import RegistryUnavailableError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sampler = ProductSampler(
        KafkaConnection.create(f"127.0.0.1:{port}"), services.products, deadline_seconds=1.0
    )
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as caught:
        sampler.sample(PROFILE, "customers")
    assert time.monotonic() - started < 5
    assert (caught.value.status, caught.value.error_code) == (503, 50302)
    assert caught.value.message.startswith(
        "cannot read customers.customer-profile.v1 for a sample: Kafka did not answer within 1 s"
    )


def test_the_product_page_section_says_who_sees_pii() -> None:
    client, _ = _portal(with_sampler=True)
    url = f"/ui/products/{PROFILE}"
    anonymous = client.get(url)
    assert anonymous.status_code == 200
    section = anonymous.text.split('<section class="sample"', 1)[1].split("</section>", 1)[0]
    assert "unless you sign in as the\n    <strong>customers</strong> domain" in section
    assert f'hx-get="/ui/products/{PROFILE}/sample"' in section
    assert 'hx-trigger="revealed"' in section
    owner = client.get(url, headers={"Authorization": "Bearer customers-secret"})
    assert "your domain owns this product" in owner.text
    open_registry = create_app(InMemoryStore())
    register_sample_mesh(open_registry.state.services)
    page = TestClient(open_registry).get(url)
    assert "This registry has no credentials, so everyone sees every field." in page.text


def test_pii_marked_only_in_a_soft_deleted_version_stays_masked() -> None:
    """Records written with a version that marked a field PII keep it masked after that
    version is soft-deleted and no live version marks anything (the writer schema says so)."""
    app = create_app(InMemoryStore())
    found: Services = app.state.services
    marked = {
        "type": "record",
        "name": "Visit",
        "fields": [
            {"name": "email", "type": "string", "pii": True},
            {"name": "page", "type": "string"},
        ],
    }
    unmarked = {**marked, "fields": [{"name": "email", "type": "string"}, marked["fields"][1]]}
    subject = "orders.visit.v1-value"
    first = found.schemas.register(subject, json.dumps(marked))
    found.schemas.register(subject, json.dumps(unmarked))
    found.schemas.delete_version(subject, 1)
    found.products.put(
        {
            "name": "orders.visit",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Page visits.",
            "owner": {"team": "t", "contact": "t@example.org"},
            "schema": "schemas/orders/visit.avsc",
            "key_field": "email",
            "slos": {"freshness_seconds": 5, "availability": 99.0},
            "classification": "internal",
        },
        principal="admin",
    )
    product = found.products.get_product("orders.visit")
    assert product is not None
    framed = RecordEncoder(json.dumps(marked), first.schema_id).encode(
        {"email": "ann@example.org", "page": "/"}
    )
    message = Message(
        topic=product.topic,
        partition=0,
        offset=0,
        key=b"ann@example.org",
        value=framed,
        timestamp=(1, 1),
    )
    sampler = ProductSampler(KafkaConnection.create("127.0.0.1:1"), found.products)
    for outsider in ("payments", None):
        shown = sampler.assemble(product, [message], outsider, limit=5)
        assert shown.records[0].value == {"email": MASK, "page": "/"}
        assert shown.records[0].key == MASK
        assert "email" in shown.masked
    owner = sampler.assemble(product, [message], "orders", limit=5).records[0]
    assert owner.value == {"email": "ann@example.org", "page": "/"}
    assert owner.key == "ann@example.org"


def test_a_pii_product_marking_no_field_masks_fields_only_older_versions_have() -> None:
    """A ``pii`` product with no marks masks every field for outsiders, the fields of an
    older version's records that the latest schema dropped included."""
    app = create_app(InMemoryStore())
    found: Services = app.state.services
    older = {
        "type": "record",
        "name": "Contact",
        "fields": [{"name": "who", "type": "string"}, {"name": "phone", "type": "string"}],
    }
    newer = {**older, "fields": [older["fields"][0]]}
    subject = "customers.contact.v1-value"
    first = found.schemas.register(subject, json.dumps(older))
    found.schemas.register(subject, json.dumps(newer))
    found.products.put(
        {
            "name": "customers.contact",
            "domain": "customers",
            "kind": "source-aligned",
            "description": "Contacts, unmarked.",
            "owner": {"team": "t", "contact": "t@example.org"},
            "schema": "schemas/customers/contact.avsc",
            "slos": {"freshness_seconds": 5, "availability": 99.0},
            "classification": "pii",
        },
        principal="admin",
    )
    product = found.products.get_product("customers.contact")
    assert product is not None
    framed = RecordEncoder(json.dumps(older), first.schema_id).encode(
        {"who": "Ann", "phone": "+44 1"}
    )
    message = Message(
        topic=product.topic, partition=0, offset=0, key=b"Ann", value=framed, timestamp=(1, 1)
    )
    sampler = ProductSampler(KafkaConnection.create("127.0.0.1:1"), found.products)
    shown = sampler.assemble(product, [message], "orders", limit=5).records[0]
    assert shown.value == {"who": MASK, "phone": MASK}
    assert shown.key == MASK
    owner = sampler.assemble(product, [message], "customers", limit=5).records[0]
    assert owner.value == {"who": "Ann", "phone": "+44 1"}


def test_the_portal_shows_a_tombstone_as_deleted_not_as_an_error() -> None:
    client, held = _portal(with_sampler=True)
    assert held is not None
    held.messages = [
        *held.messages,
        Message(topic="t", partition=0, offset=200, value=None, timestamp=(1, 9_000_000_000_000)),
    ]
    text = client.get(f"/ui/products/{PROFILE}/sample", headers={"HX-Request": "true"}).text
    row = text[text.index('data-partition="0" data-offset="200"') :]
    row = row[: row.index("</tr>")]
    assert "deleted (a tombstone: this key has no value any more)" in row
    assert "sample-error" not in row
