"""Interop of data-quality rules: a descriptor's CEL rules, registered with its schema, are
enforced alike by our publisher and by confluent-kafka's own AvroSerializer (use.latest.version,
its CEL executor and DLQ action) against our registry, on a real broker: the same records
reach the topic, the same are refused, the same are dead-lettered with the same value and
``__rule.*`` headers."""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib's deprecation notice on import
    from confluent_kafka import SerializingProducer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.rule_registry import RuleRegistry
    from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
    from confluent_kafka.schema_registry.rules.dlq.dlq_action import DlqAction
    from confluent_kafka.serialization import SerializationError, StringSerializer

from pathlib import Path

from click.testing import CliRunner

from mesh_stream.bench.sdk_bench import make_record, schema
from mesh_stream.cli.main import cli
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import RuleViolationError
from mesh_stream.errors import SerializationError as MeshSerializationError
from mesh_stream.producer import (
    AsyncProductPublisher,
    DeadLetteredRecord,
    DeliveredRecord,
    ProductPublisher,
)
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import end_offsets, read_raw

RULES = [
    {"name": "amount-not-negative", "expr": "message.amount_cents >= 0"},
    {
        "name": "known-currency",
        "expr": "message.currency in ['EUR', 'USD', 'GBP']",
        "doc": "We sell in three currencies.",
        "on_failure": "DLQ",
    },
    {
        "name": "short-note",
        "expr": "message.note == null || size(message.note) <= 60",
        "on_failure": "DLQ",
    },
]
REFUSED = {2, 6}  # a negative amount (ERROR), checked before the currency
DEAD = {4, 8}  # an unknown currency; a note too long


def records() -> list[dict[str, Any]]:
    batch = [make_record(index) for index in range(12)]
    batch[2]["amount_cents"] = -5
    batch[4]["currency"] = "JPY"
    batch[6].update(amount_cents=-1, currency="XXX")
    batch[8]["note"] = "x" * 61
    return batch


def product(label: str) -> DataProduct:
    short = f"rules-{label}-{uuid.uuid4().hex[:8]}"
    return DataProduct.model_validate(
        {
            "name": f"orders.{short}",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Orders with data-quality rules (interop test).",
            "owner": {"team": "rules-tests", "contact": "rules@example.com"},
            "schema": f"schemas/orders/{short}.avsc",
            "key_field": "order_id",
            "partitions": 1,
            "slos": {"freshness_seconds": 60, "availability": 99.0},
            "classification": "pii",
            "rules": RULES,
        }
    )


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


def _dead_letters(kafka: KafkaAddress, dlq_topic: str) -> list[dict[str, Any]]:
    letters = []
    for message in read_raw(kafka.bootstrap_servers, dlq_topic, len(DEAD)):
        headers = {name: value.decode() for name, value in message.headers() or []}
        letters.append(
            {
                "value": json.loads(message.value()),
                "rule": {k: v for k, v in headers.items() if k.startswith("__rule.")},
            }
        )
    return letters


def _keys(kafka: KafkaAddress, topic: str) -> list[str]:
    count = 12 - len(REFUSED) - len(DEAD)
    return [m.key().decode() for m in read_raw(kafka.bootstrap_servers, topic, count)]


def test_our_publisher_and_confluent_serializer_refuse_and_dead_letter_the_same_records(
    kafka: KafkaAddress, registry: RegistryAddress, client: RegistryClient
) -> None:
    ours, theirs = product("ours"), product("theirs")
    batch = records()

    # Ours: the publisher registers the descriptor's contract and runs the version's rules.
    with ProductPublisher(
        ours, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    ) as publisher:
        report = publisher.publish_many(batch)
        with pytest.raises(RuleViolationError) as caught:
            publisher.publish(batch[2])
    assert report.published == 12 - len(REFUSED) - len(DEAD)
    assert {item.index for item in report.rejected} == REFUSED
    assert {item.index for item in report.dead_lettered} == DEAD
    assert {item.topic for item in report.dead_lettered} == {ours.dlq_topic}
    first = report.rejected[0].error
    assert isinstance(first, RuleViolationError)
    assert (first.rule, first.record_index) == ("amount-not-negative", 2)
    assert str(first).startswith(
        f"{ours.name}: record 2 fails quality rule 'amount-not-negative' "
        "(message.amount_cents >= 0): Rule expr failed: message.amount_cents >= 0; "
    )
    assert caught.value.record_index is None

    # Theirs: the same descriptor registered the same way (topic, DLQ topic, contract), then
    # confluent-kafka's serializer with the latest version's rules and nothing registered.
    ProductPublisher(
        theirs, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    ).close()
    rules = RuleRegistry()
    rules.register_executor(CelExecutor())
    dlq = DlqAction({"bootstrap.servers": kafka.bootstrap_servers, "dlq.auto.flush": "true"})
    rules.register_action(dlq)
    confluent = SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": f"orders:{registry.tokens['orders']}"}
    )
    serializer = AvroSerializer(
        confluent,
        conf={"auto.register.schemas": False, "use.latest.version": True},
        rule_registry=rules,
    )
    producer = SerializingProducer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": serializer,
        }
    )
    failed: set[int] = set()
    for index, record in enumerate(batch):
        try:
            producer.produce(theirs.topic, key=record["order_id"], value=record)
        except SerializationError:
            failed.add(index)
    assert producer.flush(30) == 0
    producer.close()
    dlq.close()  # flushes its own producer, then lets it go
    del dlq

    assert failed == REFUSED | DEAD  # confluent-kafka raises for both, after teeing to the DLQ
    assert _keys(kafka, ours.topic) == _keys(kafka, theirs.topic)
    mine, its = _dead_letters(kafka, ours.dlq_topic), _dead_letters(kafka, theirs.dlq_topic)
    assert [letter["value"] for letter in mine] == [letter["value"] for letter in its]
    assert [letter["value"]["order_id"] for letter in mine] == [
        batch[index]["order_id"] for index in sorted(DEAD)
    ]
    for letter, name in ((mine, ours), (its, theirs)):
        assert [item["rule"] for item in letter] == [
            {
                "__rule.name": "known-currency",
                "__rule.mode": "WRITE",
                "__rule.subject": name.value_subject,
                "__rule.topic": name.topic,
                "__rule.exception": "We sell in three currencies.",
            },
            {
                "__rule.name": "short-note",
                "__rule.mode": "WRITE",
                "__rule.subject": name.value_subject,
                "__rule.topic": name.topic,
                "__rule.exception": "Rule expr failed: message.note == null || "
                "size(message.note) <= 60",
            },
        ]


def test_a_single_publish_reports_its_dead_letter_and_a_replayed_one_skips_that_rule(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    placed = product("single")
    bad = records()[4]  # an unknown currency: the DLQ rule known-currency fails
    with ProductPublisher(
        placed, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    ) as publisher:
        dead = publisher.publish(bad, headers={"trace": b"t-1"})
        assert dead is not None
        assert (dead.rule, dead.topic, dead.index) == ("known-currency", placed.dlq_topic, None)
        # fixed by hand and sent again: the rule it failed is skipped (confluent-kafka's replay)
        again = publisher.publish(bad, headers={"__rule.name": b"known-currency"})
        assert again is None
    [letter] = read_raw(kafka.bootstrap_servers, placed.dlq_topic, 1)
    assert letter.key().decode() == bad["order_id"]
    headers = dict(letter.headers() or [])
    assert headers["trace"] == b"t-1"
    assert headers["mesh.dlq.error.type"] == b"RuleViolationError"
    assert headers["mesh.dlq.source.schema.id"] == str(publisher.schema_id).encode()
    [published] = read_raw(kafka.bootstrap_servers, placed.topic, 1)
    assert published.key().decode() == bad["order_id"]


def test_mesh_publish_counts_dead_letters_apart(
    kafka: KafkaAddress, registry: RegistryAddress, client: RegistryClient, tmp_path: Path
) -> None:
    placed = product("cli")
    ProductPublisher(
        placed, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    ).close()
    client.put_product(placed)  # the CLI finds the product in the registry's catalog
    lines = tmp_path / "records.jsonl"
    lines.write_text("".join(json.dumps(record) + "\n" for record in records()[3:6]))
    avsc = tmp_path / "order_event.avsc"
    avsc.write_text(json.dumps(schema()))
    env = {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": "orders",
        "MESH_REGISTRY_TOKEN": registry.tokens["orders"],
    }
    args = ["publish", placed.name, "--file", str(lines), "--schema", str(avsc)]
    result = CliRunner().invoke(cli, args, env=env)
    # records 3, 4, 5: 4 has an unknown currency (DLQ); none breaks the ERROR rule
    assert result.exit_code == 0, result.output
    assert (
        f"published 2 record(s) to {placed.topic}; dead-lettered 1 to {placed.dlq_topic} "
        "(quality rules): line(s) 2"
    ) in result.output
    # which line, and why (a campaign: every other outcome was named by FILE:LINE)
    assert (
        f"{lines}:2: dead-lettered to {placed.dlq_topic}: fails quality rule 'known-currency' "
        "(message.currency in ['EUR', 'USD', 'GBP']): "
    ) in result.output


def test_the_asyncio_publisher_runs_the_rules_too(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    placed = product("async")
    good, refused, dead = (records()[index] for index in (0, 2, 4))

    async def publish() -> tuple[object, object]:
        async with AsyncProductPublisher(
            placed, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
        ) as publisher:
            with pytest.raises(RuleViolationError, match="'amount-not-negative'"):
                await publisher.publish(refused)
            return await publisher.publish(good), await publisher.publish(dead)

    stored, diverted = asyncio.run(publish())
    assert isinstance(stored, DeliveredRecord)
    assert stored.topic == placed.topic
    assert isinstance(diverted, DeadLetteredRecord)
    assert (diverted.rule, diverted.topic) == ("known-currency", placed.dlq_topic)
    [letter] = read_raw(kafka.bootstrap_servers, placed.dlq_topic, 1)
    assert json.loads(letter.value()) == dead


def test_a_record_that_does_not_fit_the_schema_is_refused_before_any_rule_runs(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """A misfit failing a DLQ rule too went to the dead-letter topic (an object as its
    note's text) instead of raising (a campaign): the schema is checked first, everywhere."""
    placed = product("misfit")
    misfit = {**records()[4], "amount_cents": "12", "note": object()}  # currency JPY: DLQ rule
    with ProductPublisher(
        placed, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    ) as publisher:
        with pytest.raises(MeshSerializationError, match="amount_cents: expected long") as one:
            publisher.publish(misfit)
        assert not isinstance(one.value, RuleViolationError)
        report = publisher.publish_many([records()[0], misfit, records()[4]])
        assert [r.index for r in report.rejected] == [1]
        assert "amount_cents: expected long" in str(report.rejected[0].error)
        assert [d.index for d in report.dead_lettered] == [2]
        with pytest.raises(MeshSerializationError, match="2 of 3 records do not fit") as many:
            publisher.publish_many([misfit, records()[1], records()[2]], all_or_nothing=True)
        assert "amount_cents: expected long" in str(many.value)
        assert "'amount-not-negative'" in str(many.value)  # record 2 fails an ERROR rule

    async def publish_async() -> None:
        async with AsyncProductPublisher(
            placed, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
        ) as publisher:
            with pytest.raises(MeshSerializationError, match="amount_cents: expected long"):
                await publisher.publish(misfit)

    asyncio.run(publish_async())
    assert end_offsets(kafka.bootstrap_servers, placed.dlq_topic, 1) == [1]  # records()[4] only
    assert end_offsets(kafka.bootstrap_servers, placed.topic, 1) == [1]  # records()[0] only


def test_rules_added_through_confluents_api_on_the_same_schema_are_enforced_as_latest(
    kafka: KafkaAddress, registry: RegistryAddress, client: RegistryClient
) -> None:
    """A later version of the same schema carrying a rule (posted through Confluent's API,
    not the descriptor) is what a Confluent serializer with use.latest.version enforces;
    our publisher registered the descriptor's version, matched the older one, and published
    what the rule refuses (a campaign)."""
    plain = product("latest").model_copy(update={"rules": []})
    first = ProductPublisher(
        plain, bootstrap_servers=kafka.bootstrap_servers, registry=client, schema=schema()
    )
    first.close()
    registered = client.get_latest(plain.value_subject)
    ruled = client.register_version(
        plain.value_subject,
        registered.schema,
        rule_set={
            "domainRules": [
                {
                    "name": "amount-not-negative",
                    "kind": "CONDITION",
                    "type": "CEL",
                    "mode": "WRITE",
                    "expr": "message.amount_cents >= 0",
                    "onFailure": "ERROR",
                }
            ]
        },
    )
    assert ruled.version == registered.version + 1
    bad = records()[2]  # amount_cents -5
    with (
        RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as fresh,
        ProductPublisher(
            plain, bootstrap_servers=kafka.bootstrap_servers, registry=fresh, schema=schema()
        ) as publisher,
    ):
        assert publisher.schema_id == ruled.schema_id
        with pytest.raises(RuleViolationError, match="amount-not-negative"):
            publisher.publish(bad)
        assert publisher.publish(records()[0]) is None
