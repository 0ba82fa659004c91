"""A consumer group registered by the SDK is protected by the real registry on the real
broker: a ProductConsumer registers with the fields it reads, a schema version that drops one
is refused naming the group, a compatible one is accepted; a registration the registry
refuses is only a warning, and that consumer still reads."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import IncompatibleSchemaError
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.conftest import KafkaAddress, RegistryAddress
from tests.fixtures.sdk.helpers import load_schema, make_order, new_product


def _client(registry: RegistryAddress, domain: str) -> RegistryClient:
    return RegistryClient(registry.url, principal=domain, token=registry.tokens[domain])


def _versions(registry: RegistryAddress, subject: str) -> list[int]:
    answer = httpx.get(f"{registry.url}/subjects/{subject}/versions", timeout=10)
    answer.raise_for_status()
    return [int(v) for v in answer.json()]


def test_a_consumer_registered_with_reads_is_protected_by_the_registry(
    kafka: KafkaAddress,
    registry: RegistryAddress,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    schema = load_schema("order_v1.avsc")
    product = new_product("reader", partitions=1, schema="schemas/orders/reader.avsc")
    # a pii product: payments registers (and reads) it as one of its readers
    product = product.model_copy(update={"readers": ("payments",)})
    (tmp_path / "schemas" / "orders").mkdir(parents=True)
    (tmp_path / product.schema_file).write_text(json.dumps(schema))
    group = f"payments.billing-{uuid.uuid4().hex[:8]}"
    with _client(registry, "orders") as orders, _client(registry, "payments") as payments:
        orders.register_schema(product.value_subject, json.dumps(schema))
        orders.put_product(product)
        with ProductPublisher(
            product, bootstrap_servers=kafka.bootstrap_servers, registry=orders, root=tmp_path
        ) as publisher:
            publisher.publish(make_order(0))

        def consumer(group_id: str, reads: list[str]) -> ProductConsumer:
            return ProductConsumer(
                [product],
                group_id=group_id,
                bootstrap_servers=kafka.bootstrap_servers,
                registry=payments,
                from_beginning=True,
                reads=reads,
            )

        with consumer(group, ["total", "quantity"]) as registered:
            assert registered.registered == (product.name,)
        [registration] = payments.consumers(product.name)
        assert (registration["group"], registration["owner"]) == (group, "payments")
        assert registration["reads"] == ["quantity", "total"]

        # A registration the registry refuses is a warning; the consumer reads on.
        with (
            caplog.at_level(logging.WARNING, logger="mesh_stream.consumer"),
            consumer(f"{group}-typo", ["totl"]) as refused,
        ):
            assert refused.registered == ()
            records: list[Any] = []
            for _ in range(30):
                records += refused.consume(1, 1.0)
                if records:
                    break
        assert [r.key for r in records] == [make_order(0)["order_id"]]
        assert (
            f"consumer group {group}-typo is not registered on product {product.name} (PUT "
            f"/products/{product.name}/consumers/{group}-typo: reads[0]: "
            f"'totl' is not a top-level field"
        ) in caplog.text

        before = _versions(registry, product.value_subject)  # the publisher's contract too
        # Dropping a field the group reads is refused, naming the group, its owner, the fix.
        dropped = copy.deepcopy(schema)
        dropped["fields"] = [f for f in dropped["fields"] if f["name"] != "quantity"]
        with pytest.raises(IncompatibleSchemaError) as broken:
            orders.register_schema(product.value_subject, json.dumps(dropped))
        message = str(broken.value)
        assert (
            f"consumer group '{group}' (owner payments) reads field quantity (registered reads), "
            f"which the new version removes; fix: keep the field and its type"
        ) in message
        assert _versions(registry, product.value_subject) == before  # nothing stored

        # A compatible change (an optional field with a default) is accepted.
        added = copy.deepcopy(schema)
        added["fields"].append(
            {"name": "coupon", "type": ["null", "string"], "default": None, "doc": "Coupon."}
        )
        orders.register_schema(product.value_subject, json.dumps(added))
        assert _versions(registry, product.value_subject) == [*before, before[-1] + 1]
