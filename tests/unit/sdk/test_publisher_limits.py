"""What a publisher refuses before anything reaches Kafka: a record over the producer's
``message.max.bytes`` (like a record that fails its schema: the batch goes on), and how a
refused schema given by a caller is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.descriptor import load_descriptor
from mesh_stream.errors import (
    ConfigurationError,
    RegistryError,
    SchemaRejectedError,
    SerializationError,
)
from mesh_stream.kafka.clients import RECORD_OVERHEAD_BYTES
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.sdk.test_rules_contract import SCHEMA, client, product, server

__all__ = ["client", "server"]  # the fixtures, imported for their use here

LIMIT = 4000


def record(index: int, size: int = 10) -> dict[str, Any]:
    return {
        "order_id": f"o-{index}",
        "total": 5,
        "currency": "EUR",
        "customer_email": "x" * size,
        "delivery": {"street": "Main 1", "country": "NL"},
    }


def publisher(client: RegistryClient) -> ProductPublisher:
    return ProductPublisher(
        product(rules=[]),
        bootstrap_servers="127.0.0.1:1",
        registry=client,
        schema=SCHEMA,
        config={"message.max.bytes": LIMIT},
        create_topic=False,
    )


def test_a_record_over_message_max_bytes_is_refused_with_its_size_and_the_limit(
    client: RegistryClient,
) -> None:
    made = publisher(client)
    try:
        made.prepare(record(0, size=LIMIT - 200))  # fits
        with pytest.raises(SerializationError) as refused:
            made.prepare(record(1, size=LIMIT))
        size = len(made.encoder.encode(record(1, size=LIMIT))) + len("o-1") + RECORD_OVERHEAD_BYTES
        assert str(refused.value) == (
            f"record of {made.product.name} is {size} bytes encoded, over the producer's limit "
            f"of {LIMIT} bytes (message.max.bytes; the broker's message.max.bytes and the "
            f"topic's max.message.bytes cap it too); it was not published"
        )
        with pytest.raises(SerializationError, match="over the producer's limit"):
            made.publish(record(2, size=LIMIT))
        assert made.in_flight == 0  # nothing was handed to Kafka
    finally:
        made._producer.purge()
        made._closed = True


def test_publish_many_reports_an_oversize_record_and_sends_the_others_or_none(
    client: RegistryClient,
) -> None:
    made = publisher(client)
    batch = [record(0), record(1, size=LIMIT), record(2)]
    try:
        with pytest.raises(SerializationError, match=r"record 1: record of .* over the producer"):
            made.publish_many(batch, all_or_nothing=True)
        assert made.in_flight == 0
    finally:
        made._producer.purge()
        made._closed = True


def test_a_key_too_long_for_the_limit_is_refused_before_anything_is_sent(
    client: RegistryClient,
) -> None:
    """h53: a small value skipped the size check whatever its key, so an over-long key was
    refused by Kafka afterwards, and ``all_or_nothing`` had sent the records before it."""
    made = ProductPublisher(
        product(rules=[]),
        bootstrap_servers="127.0.0.1:1",
        registry=client,
        schema=SCHEMA,
        config={"message.max.bytes": 100_000},
        create_topic=False,
    )
    long_key = "k" * 100_000
    try:
        with pytest.raises(SerializationError, match="over the producer's limit"):
            made.publish(record(0), key=long_key)
        keyed = [record(0), {**record(1), "order_id": long_key}, record(2)]  # key_field
        with pytest.raises(SerializationError, match=r"record 1: record of .* over the producer"):
            made.publish_many(keyed, all_or_nothing=True)
        assert made.in_flight == 0  # nothing was handed to Kafka
        made.publish(record(3), key="k" * 1000)  # a long key that fits is taken
        assert made.in_flight == 1
    finally:
        made._producer.purge()
        made._closed = True


def test_a_refused_schema_is_named_as_the_caller_says(client: RegistryClient) -> None:
    undocumented = {**SCHEMA, "fields": [{"name": "order_id", "type": "string"}]}
    with pytest.raises(SchemaRejectedError) as refused:
        ProductPublisher(
            product(name="orders.order-refunded"),
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=undocumented,
            schema_source="--schema refunded.avsc",
            create_topic=False,
        )
    assert str(refused.value).startswith(
        "--schema refunded.avsc: the registry refused the value schema of orders.order-refunded"
    )


def test_a_key_field_not_in_the_schema_is_named_at_its_descriptor_line(
    client: RegistryClient, tmp_path: Path
) -> None:
    """h50: `mesh publish` said `orders.x: key_field 'nosuch' is not a field...` with no
    file:line, where `mesh lint` points at the descriptor's line."""
    document = product(rules=[]).to_document()
    document["key_field"] = "nosuch"
    path = tmp_path / "order-placed.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    line = path.read_text().splitlines().index("key_field: nosuch") + 1
    with pytest.raises(ConfigurationError) as refused:
        ProductPublisher(
            load_descriptor(path),
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=SCHEMA,
            create_topic=False,
        )
    assert str(refused.value).startswith(
        f"{path}:{line}: key_field 'nosuch' is not a field of the schema "
    )
    made_in_code = product(rules=[], key_field="nosuch")
    with pytest.raises(ConfigurationError, match=r"^orders\.\S+: key_field 'nosuch' is not"):
        ProductPublisher(
            made_in_code,
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=SCHEMA,
            create_topic=False,
        )


def test_a_publisher_without_a_write_credential_starts_on_the_registered_version(
    server: RegistryServer, client: RegistryClient
) -> None:
    """h50: it registered the same schema again (a write) to learn its id, so a credential
    that may only read the registry could not publish even what its owner had registered."""
    placed = product(rules=[])
    owners = ProductPublisher(
        placed, bootstrap_servers="127.0.0.1:1", registry=client, schema=SCHEMA, create_topic=False
    )
    owners.close()
    with RegistryClient(server.url) as anonymous:  # reads only: writes are refused to it
        reader = ProductPublisher(
            placed,
            bootstrap_servers="127.0.0.1:1",
            registry=anonymous,
            schema=SCHEMA,
            create_topic=False,
        )
        reader.close()
        assert reader.schema_id == owners.schema_id
        with pytest.raises(RegistryError) as refused:  # a new schema is still a write
            ProductPublisher(
                placed,
                bootstrap_servers="127.0.0.1:1",
                registry=anonymous,
                schema={**SCHEMA, "doc": "changed"},
                create_topic=False,
            )
        assert refused.value.status == 401


@pytest.mark.parametrize(
    "config",
    [
        {"bootstrap.servers": "127.0.0.1:2"},
        {"sasl.password": "hunter2"},
        {"security.protocol": "plaintext"},
        {"ssl.ca.location": "/tmp/ca.pem"},
        [("acks", "all")],
    ],
)
def test_config_may_not_replace_the_connection(client: RegistryClient, config: Any) -> None:
    """h53: ``config={"bootstrap.servers": ...}`` sent the records to another cluster than
    the one the topic and registry checks ran against, and they timed out there."""
    with pytest.raises(ConfigurationError) as refused:
        ProductPublisher(
            product(rules=[]),
            bootstrap_servers="127.0.0.1:1",
            registry=client,
            schema=SCHEMA,
            config=config,
            create_topic=False,
        )
    said = str(refused.value)
    assert said.startswith("producer config ")
    assert "hunter2" not in said
