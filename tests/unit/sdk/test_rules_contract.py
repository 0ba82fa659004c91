"""A descriptor's contract compiled into Confluent's ruleSet/metadata, registered with the
schema through the one registration home, and read back from an in-process registry as
confluent-kafka's client reads it; a bad CEL expression is refused before any request."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.contracts import compile_contract, pii_tags
from mesh_stream.descriptor import DataProduct, QualityRule, RuleFailure, parse_descriptor
from mesh_stream.errors import DescriptorError, IncompatibleSchemaError, SchemaRejectedError
from mesh_stream.governance import registry_validator
from mesh_stream.producer import ProductPublisher
from mesh_stream.registration import register_contract, register_value_schema
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import TOKENS, descriptor

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib's deprecation notice on import
    from confluent_kafka.schema_registry import SchemaRegistryClient

RULES = [
    {"name": "total-not-negative", "expr": "message.total >= 0", "doc": "Totals add up."},
    {"name": "known-currency", "expr": "message.currency in ['EUR', 'USD']", "on_failure": "DLQ"},
]
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Placed",
    "namespace": "orders",
    "doc": "An order as placed.",
    "fields": [
        {"name": "order_id", "type": "string", "doc": "Order id."},
        {"name": "total", "type": "long", "doc": "Total in cents."},
        {"name": "currency", "type": "string", "doc": "ISO currency."},
        {"name": "customer_email", "type": "string", "pii": True, "doc": "Buyer's email."},
        {
            "name": "delivery",
            "doc": "Where it goes.",
            "type": {
                "type": "record",
                "name": "Delivery",
                "namespace": "orders.shipping",
                "doc": "A delivery address.",
                "fields": [
                    {"name": "street", "type": "string", "pii": True, "doc": "Street."},
                    {"name": "country", "type": "string", "doc": "Country."},
                ],
            },
        },
    ],
}


def product(**changes: Any) -> DataProduct:
    document = descriptor(classification="pii", key_field="order_id")
    document.update({"rules": RULES, **changes})
    return DataProduct.model_validate(document)


def test_rules_become_confluent_cel_conditions_and_pii_marks_field_tags() -> None:
    contract = compile_contract(product(), SCHEMA)
    assert contract.rule_set == {
        "domainRules": [
            {
                "name": "total-not-negative",
                "doc": "Totals add up.",
                "kind": "CONDITION",
                "mode": "WRITE",
                "type": "CEL",
                "expr": "message.total >= 0",
                "onFailure": "ERROR",
            },
            {
                "name": "known-currency",
                "kind": "CONDITION",
                "mode": "WRITE",
                "type": "CEL",
                "expr": "message.currency in ['EUR', 'USD']",
                "onFailure": "DLQ",
                "params": {"dlq.topic": "orders.order-placed.v1.dlq"},
            },
        ]
    }
    assert contract.metadata == {
        "tags": {
            "orders.Placed.customer_email": ["PII"],
            "orders.shipping.Delivery.street": ["PII"],
        },
        "properties": {
            "product": "orders.order-placed",
            "domain": "orders",
            "owner": "checkout",
            "owner_contact": "checkout@example.com",
            "classification": "pii",
            "product_version": "1",
        },
    }
    assert compile_contract(product(rules=[]), SCHEMA).rule_set == {}  # not None: see below


def test_tag_paths_follow_avro_namespaces_through_unions_arrays_and_maps() -> None:
    inner = {
        "type": "record",
        "name": "Item",
        "fields": [{"name": "note", "type": "string", "pii": True}],
    }
    schema = {
        "type": "record",
        "name": "a.b.Outer",
        "fields": [
            {"name": "items", "type": {"type": "array", "items": inner}},
            {"name": "again", "type": ["null", {"type": "map", "values": "Item"}]},
            {"name": "ssn", "type": ["null", "string"], "pii": True},
        ],
    }
    assert pii_tags(schema) == {"a.b.Item.note": ["PII"], "a.b.Outer.ssn": ["PII"]}


def test_a_rule_that_is_not_cel_is_refused_where_it_is_written() -> None:
    document = descriptor(classification="pii", key_field="order_id")
    document["rules"] = [{"name": "broken", "expr": "message.total >="}]
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(yaml.safe_dump(document, sort_keys=False), "placed.yaml")
    message = str(caught.value)
    assert message.startswith("placed.yaml:")
    assert ": rules.0.expr: not valid CEL: Failed to parse expression " in message
    assert "Syntax error" in message


def test_registration_checks_the_cel_of_a_descriptor_built_without_validation() -> None:
    broken = QualityRule.model_construct(
        name="broken", expr="message.total >=", doc=None, on_failure=RuleFailure.ERROR
    )
    bad = product().model_copy(update={"rules": (broken,)})
    with pytest.raises(DescriptorError) as caught:
        compile_contract(bad, SCHEMA)
    message = str(caught.value)
    assert message.startswith(
        "orders.order-placed: rules.broken: expr 'message.total >=' is not valid CEL: "
    )
    assert "Syntax error" in message
    assert message.endswith("fix the expression in the product descriptor")


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    app = create_app(
        InMemoryStore(), credentials=Credentials(TOKENS), validators=(registry_validator(),)
    )
    running = RegistryServer(app)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.url, principal="orders", token=TOKENS["orders"]) as made:
        yield made


def test_the_registered_version_carries_the_contract_for_confluent_clients_too(
    server: RegistryServer, client: RegistryClient
) -> None:
    placed = product()
    version = register_contract(client, placed, json.dumps(SCHEMA))
    expected = compile_contract(placed, SCHEMA)
    assert version.rule_set == expected.rule_set
    assert version.metadata == expected.metadata
    again = register_value_schema(client, placed, json.dumps(SCHEMA, indent=2))
    assert again == version.schema_id  # same schema and contract: no new version
    confluent = SchemaRegistryClient(
        {"url": server.url, "basic.auth.user.info": f"orders:{TOKENS['orders']}"}
    )
    latest = confluent.get_latest_version(placed.value_subject)
    assert latest.version == version.version
    rules = latest.schema.rule_set.domain_rules
    assert [(r.name, r.kind.value, r.mode.value, r.type, r.on_failure) for r in rules] == [
        ("total-not-negative", "CONDITION", "WRITE", "CEL", "ERROR"),
        ("known-currency", "CONDITION", "WRITE", "CEL", "DLQ"),
    ]
    assert rules[1].params.params == {"dlq.topic": "orders.order-placed.v1.dlq"}
    assert latest.schema.metadata.tags.tags == {
        "orders.Placed.customer_email": ["PII"],
        "orders.shipping.Delivery.street": ["PII"],
    }


def test_a_changed_rule_is_a_new_version_whose_rules_the_publisher_gets(
    client: RegistryClient,
) -> None:
    first = register_contract(client, product(), SCHEMA)
    tighter = product(rules=[{"name": "total-positive", "expr": "message.total > 0"}])
    second = register_contract(client, tighter, SCHEMA)
    assert second.version == first.version + 1
    assert second.rule_set is not None
    assert [rule["name"] for rule in second.rule_set["domainRules"]] == ["total-positive"]
    # rules removed from the descriptor are gone from the next version (not inherited)
    third = register_contract(client, product(rules=[]), SCHEMA)
    assert third.version == second.version + 1
    assert third.rule_set is None


def test_a_refused_schema_names_product_subject_and_avsc(
    client: RegistryClient, tmp_path: Path
) -> None:
    placed = product()
    register_value_schema(client, placed, json.dumps(SCHEMA))
    client.set_compatibility("BACKWARD", placed.value_subject)
    breaking = {**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "x", "type": "int", "doc": "X."}]}
    avsc = tmp_path / "schemas/orders/order-placed.avsc"
    with pytest.raises(IncompatibleSchemaError) as caught:
        register_value_schema(client, placed, json.dumps(breaking), source=avsc)
    message = str(caught.value)
    assert message.startswith(
        f"{avsc}: the registry refused the value schema of orders.order-placed (subject "
        "orders.order-placed.v1-value): "
    )
    assert "publish it as a new major version" in message
    assert caught.value.status == 409
    undocumented = {**SCHEMA, "fields": [{"name": "order_id", "type": "string"}]}
    fresh = product(name="orders.order-refunded")
    with pytest.raises(SchemaRejectedError) as refused:
        register_value_schema(client, fresh, json.dumps(undocumented))
    text = str(refused.value)
    assert text.startswith(
        "schemas/orders/order-placed.avsc: the registry refused the value schema of "
        "orders.order-refunded (subject orders.order-refunded.v1-value): "
    )
    assert refused.value.error_code == 42218
    assert refused.value.violations


def test_a_refused_schema_given_to_the_publisher_is_named_as_that_not_the_avsc(
    client: RegistryClient,
) -> None:
    undocumented = {**SCHEMA, "fields": [{"name": "order_id", "type": "string"}]}
    with pytest.raises(SchemaRejectedError) as refused:
        ProductPublisher(
            product(name="orders.order-refunded"),
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=undocumented,
            create_topic=False,
        )
    assert str(refused.value).startswith(
        "the schema given to ProductPublisher(schema=...): the registry refused the value "
        "schema of orders.order-refunded (subject orders.order-refunded.v1-value): "
    )


def test_a_publisher_without_auto_registration_uses_the_applied_contract_or_refuses(
    client: RegistryClient,
) -> None:
    """A publisher run from a working copy registered its changed schema and rules itself
    (as Confluent's auto.register.schemas), so the catalog's descriptor and the contract in
    force drifted apart. With auto-registration off it registers nothing: it uses the version
    that holds its schema and contract, and refuses one that no version holds."""
    from mesh_stream.errors import ConfigurationError

    def publisher(made: DataProduct, schema: dict[str, Any] = SCHEMA) -> ProductPublisher:
        return ProductPublisher(
            made,
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=schema,
            create_topic=False,
            auto_register=False,
        )

    placed = product()
    with pytest.raises(ConfigurationError) as refused:  # nothing applied yet
        publisher(placed)
    assert str(refused.value) == (
        "the schema given to ProductPublisher(schema=...): the value schema of "
        "orders.order-placed with its descriptor's contract is not registered under "
        "orders.order-placed.v1-value, and MESH_PRODUCER_AUTO_REGISTER=false keeps publishers "
        "from registering it; register it with `mesh products plan` / `mesh products apply` "
        "(or publish with the schema and rules the registry holds)"
    )
    assert client.subjects() == []  # nothing was registered

    applied = register_contract(client, placed, SCHEMA)  # what apply does
    with publisher(placed) as found:
        assert found.schema_id == applied.schema_id
        assert found.rules is not None
    # a working copy's changed rule, or a changed schema: refused, the registry unchanged
    looser = product(rules=[{"name": "total-any", "expr": "message.total > -1"}])
    wider = {**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "note", "type": "string"}]}
    for changed, schema in ((looser, SCHEMA), (placed, wider)):
        with pytest.raises(ConfigurationError, match="is not registered under"):
            publisher(changed, schema)
    assert client.get_latest(placed.value_subject).version == applied.version
