"""Poison pills: undecodable records go to `<topic>.dlq` with the error in headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient

from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import DeserializationError
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.wire import frame
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import (
    REPO_ROOT,
    decoded,
    end_offsets,
    make_order,
    new_product,
    read_raw,
)


@pytest.fixture
def client(registry: RegistryAddress) -> Iterator[RegistryClient]:
    with RegistryClient(registry.url, principal="orders", token=registry.tokens["orders"]) as c:
        yield c


def write_mixed(
    product: DataProduct, kafka: KafkaAddress, client: RegistryClient
) -> tuple[int, dict[int, tuple[bytes, str, str]]]:
    """Good records 0-4, three poison pills, good records 5-9 into one partition.

    Returns the schema id and {offset: (bytes, error text, error type)} of the pills.
    """
    with ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in range(5)])
        schema_id = publisher.schema_id
        pills = [
            (
                b"plain text, not Avro",
                "unknown magic byte 112 (expected 0)",
                "DeserializationError",
            ),
            (
                frame(987_654, b"\x02"),
                "schema id 987654 is not in the registry",
                "SchemaNotFoundError",
            ),
            (
                frame(schema_id, b"\x48"),
                f"cannot decode the Avro body with writer schema id {schema_id}",
                "EOFError",
            ),
        ]
        raw = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
        offsets: list[int] = []

        def stored(err: object, message: Message) -> None:
            assert err is None
            offsets.append(message.offset() or 0)

        for value, _, _ in pills:
            raw.produce(product.topic, value, key=b"poison", on_delivery=stored)
            raw.flush(30)
        publisher.publish_many([make_order(i) for i in range(5, 10)])
    return schema_id, dict(zip(offsets, pills, strict=True))


def consume_ten(
    product: DataProduct, kafka: KafkaAddress, client: RegistryClient, group: str
) -> list[ConsumedRecord]:
    """The ten good records of :func:`write_mixed`, as a dead-lettering consumer reads them
    (the pills go to the dead-letter topic on the way)."""
    with ProductConsumer(
        [product],
        group_id=group,
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        from_beginning=True,
    ) as consumer:
        records: list[ConsumedRecord] = []
        for _ in range(30):
            records += consumer.consume(10 - len(records), 1.0)
            if len(records) == 10:
                break
    return records


def test_poison_pills_go_to_the_dead_letter_topic_and_consumption_goes_on(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("dlq", partitions=1)
    _, pills = write_mixed(product, kafka, client)
    group = f"dlq-{uuid.uuid4().hex[:8]}"
    records = consume_ten(product, kafka, client, group)
    assert [r.value for r in records] == [decoded(make_order(i)) for i in range(10)]
    assert [r.offset for r in records] == [o for o in range(13) if o not in pills]

    letters = read_raw(kafka.bootstrap_servers, product.dlq_topic, 3)
    assert len(letters) == 3
    for letter in letters:
        headers = {k: (v or b"").decode() for k, v in letter.headers() or []}
        offset = int(headers["mesh.dlq.source.offset"])
        value, error_text, error_type = pills[offset]
        assert letter.value() == value
        assert letter.key() == b"poison"
        assert headers["mesh.dlq.source.topic"] == product.topic
        assert headers["mesh.dlq.source.partition"] == "0"
        assert headers["mesh.dlq.consumer.group"] == group
        assert error_text in headers["mesh.dlq.error"]
        assert headers["mesh.dlq.error.type"] == error_type
    sources = [int(dict(letter.headers() or [])["mesh.dlq.source.offset"]) for letter in letters]
    assert sorted(sources) == sorted(pills)


def test_without_dead_letters_the_error_names_the_record_and_the_rest_still_comes(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    product = new_product("nodlq", partitions=1)
    _, pills = write_mixed(product, kafka, client)
    errors: list[str] = []
    records: list[ConsumedRecord] = []
    with ProductConsumer(
        [product],
        group_id=f"nodlq-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=kafka.bootstrap_servers,
        registry=client,
        from_beginning=True,
        dead_letters=False,
    ) as consumer:
        for _ in range(40):
            try:
                records += consumer.consume(100, 0.5)
            except DeserializationError as exc:
                errors.append(str(exc))
            if len(records) == 10:
                break
    assert [r.value for r in records] == [decoded(make_order(i)) for i in range(10)]
    assert len(errors) == 3
    for error, (offset, (_, text, _)) in zip(errors, sorted(pills.items()), strict=True):
        assert error.startswith(f"{product.topic}[0]@{offset}: ")
        assert text in error
        assert f"dead_letters=True to route such records to {product.dlq_topic}" in error


def test_a_tombstone_is_a_deletion_passed_over_or_returned_never_a_poison_pill(
    kafka: KafkaAddress, client: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A key with no value deletes that key's record (a session processor's merged
    session): a consumer passes over it, said once, and commits past it; with
    ``deletions=True`` it is returned in its place, value and schema id None."""
    product = new_product("deletions", partitions=1)
    with ProductPublisher(
        product, bootstrap_servers=kafka.bootstrap_servers, registry=client, root=REPO_ROOT
    ) as publisher:
        publisher.publish_many([make_order(i) for i in range(2)])
        raw = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
        raw.produce(product.topic, None, key=b"region-1@1700000000000")
        raw.flush(30)
        publisher.publish_many([make_order(i) for i in range(2, 4)])

    def read(deletions: bool) -> tuple[list[ConsumedRecord], int]:
        with ProductConsumer(
            [product],
            group_id=f"deletions-{uuid.uuid4().hex[:8]}",
            bootstrap_servers=kafka.bootstrap_servers,
            registry=client,
            from_beginning=True,
            deletions=deletions,
        ) as consumer:
            records: list[ConsumedRecord] = []
            for _ in range(30):
                records += consumer.consume(100, 0.5)
                if len(records) == (5 if deletions else 4):
                    break
            consumer.commit()
            return records, consumer.deletions_skipped

    with caplog.at_level("INFO", logger="mesh_stream.consumer"):
        passed_over, skipped = read(deletions=False)
    assert [r.offset for r in passed_over] == [0, 1, 3, 4]
    assert skipped == 1
    assert f"the first at {product.topic}[0]@2" in caplog.text
    assert "deletions=True to receive them" in caplog.text
    returned, skipped = read(deletions=True)
    assert [r.offset for r in returned] == [0, 1, 2, 3, 4]
    tombstone = returned[2]
    assert (tombstone.key, tombstone.value, tombstone.schema_id) == (
        "region-1@1700000000000",
        None,
        None,
    )
    assert skipped == 0
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    dlq = admin.list_topics(timeout=10).topics.get(product.dlq_topic)
    if dlq is not None:  # made with the product, perhaps: it holds nothing
        ends = end_offsets(kafka.bootstrap_servers, product.dlq_topic, len(dlq.partitions))
        assert ends == [0] * len(dlq.partitions)


def test_a_compacted_product_s_dead_letter_topic_is_never_compacted(
    kafka: KafkaAddress, client: RegistryClient
) -> None:
    """The dead-letter topic of a compacted product was made compacted like it: compaction
    would keep one dead letter per key (here the three pills share one). It deletes by age."""
    from confluent_kafka.admin import ConfigResource

    from mesh_stream.kafka.clients import make_admin
    from mesh_stream.kafka.connection import KafkaConnection
    from mesh_stream.kafka.topics import DLQ_RETENTION_MS

    document = new_product("dlq-compact", partitions=1).model_dump(mode="json", by_alias=True)
    document["retention"] = {"ms": -1, "cleanup_policy": "compact"}
    product = DataProduct.model_validate(document)
    assert product.retention.cleanup_policy.value == "compact"
    _, pills = write_mixed(product, kafka, client)
    records = consume_ten(product, kafka, client, f"dlq-{uuid.uuid4().hex[:8]}")
    assert len(records) == 10
    assert len(read_raw(kafka.bootstrap_servers, product.dlq_topic, 3)) == len(pills) == 3
    admin = make_admin(KafkaConnection.create(kafka.bootstrap_servers))
    resource = ConfigResource("topic", product.dlq_topic)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["cleanup.policy"].value == "delete"
    assert config["retention.ms"].value == str(DLQ_RETENTION_MS)


def test_mesh_tail_dead_letters_shows_each_one_with_why_and_where(
    kafka: KafkaAddress, registry: RegistryAddress, client: RegistryClient, tmp_path: Path
) -> None:
    """No command read a dead-letter topic: `mesh tail X.dlq` is not a product name (a
    processor team's campaign). `mesh tail PRODUCT --dead-letters` reads its `.dlq`."""
    import base64
    import json

    from click.testing import CliRunner

    from mesh_stream.cli.main import cli

    product = new_product("dlq-tail", partitions=1)
    _, pills = write_mixed(product, kafka, client)
    products = tmp_path / "domains" / "orders" / "products"  # a project holding it
    products.mkdir(parents=True)
    (products / "dlq-tail.yaml").write_text(yaml.safe_dump(product.to_document()))
    (tmp_path / "mesh.yaml").write_text("domains: [orders]\n")
    consume_ten(product, kafka, client, f"dlq-{uuid.uuid4().hex[:8]}")
    assert len(read_raw(kafka.bootstrap_servers, product.dlq_topic, 3)) == 3
    env = {"MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "MESH_REGISTRY_URL": registry.url}
    argv = ["tail", product.name, "--dead-letters", "--from-beginning", "--max", "3"]
    argv += ["--project", str(tmp_path)]
    shown = CliRunner().invoke(cli, [*argv, "--timeout", "30", "--json"], env=env)
    assert shown.exit_code == 0, shown.stderr
    letters = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(letters) == 3
    for letter in letters:
        assert letter["topic"] == product.dlq_topic
        assert letter["key"] == "poison"
        source = int(letter["headers"]["mesh.dlq.source.offset"])
        value, error_text, error_type = pills[source]
        assert letter["headers"]["mesh.dlq.error.type"] == error_type
        assert error_text in letter["headers"]["mesh.dlq.error"]
        if "value" in letter:
            assert letter["value"].encode() == value
        else:
            assert base64.b64decode(letter["value_base64"]) == value
    lines = CliRunner().invoke(cli, [*argv, "--timeout", "30"], env=env)
    assert lines.exit_code == 0, lines.stderr
    # A timeout shorter than the first fetch still waits for the letters the topic holds.
    quick = ["tail", product.name, "--dead-letters", "--from-beginning", "--json"]
    quick += ["--project", str(tmp_path), "--timeout", "0.001"]
    shown_quickly = CliRunner().invoke(cli, quick, env=env)
    assert shown_quickly.exit_code == 0, shown_quickly.stderr
    quick_letters = [json.loads(line) for line in shown_quickly.stdout.splitlines()]
    assert sorted(int(q["offset"]) for q in quick_letters) == [0, 1, 2]
    first = lines.stdout.splitlines()[0]
    assert first.startswith(f'{product.dlq_topic}[0]@0 key="poison" ')
    assert 'mesh.dlq.error.type="DeserializationError"' in first
