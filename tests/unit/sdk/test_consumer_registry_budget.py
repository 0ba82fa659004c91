"""A consumer on a quiet topic still fetches a new writer schema from a registry a few
hundred ms away: librdkafka may spend all of consume()'s ``timeout`` waiting for records, and
the registry call then gets its own ``timeout`` (at least 1 s), not what was left."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Message

from mesh_stream.consumer import REGISTRY_CALL_FLOOR_S, ProductConsumer
from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.schema.codec import RecordEncoder
from tests.fixtures.sdk.helpers import SCHEMA_V1, new_product
from tests.unit.sdk.conftest import MemorySchemas, make_order

SCHEMA_ID = 7


class DistantRegistry(MemorySchemas):
    """Answers after ``delay_s``; a call given less time (``within``) fails as a real
    client's would. Records each budget it was given."""

    def __init__(self, *args: Any, delay_s: float) -> None:
        super().__init__(*args)
        self.delay_s, self.budgets, self._budget = delay_s, [], None

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        self.budgets.append(seconds)
        self._budget = seconds
        try:
            yield
        finally:
            self._budget = None

    def get_schema(self, schema_id: int) -> str:
        if self._budget is not None and self._budget < self.delay_s:
            time.sleep(self._budget)
            raise RegistryUnavailableError("no answer in time", status=503, error_code=50302)
        time.sleep(self.delay_s)
        return super().get_schema(schema_id)


class QuietTopic:
    """librdkafka on a trickle: fewer records than asked for, after the whole timeout."""

    def __init__(self, message: Message) -> None:
        self.message = message

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        assert num_messages > 1
        time.sleep(timeout)
        return [self.message]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("timeout", [0.3, 0.0])
def test_a_quiet_topics_new_schema_is_fetched_from_a_distant_registry(
    order_v1: dict[str, Any], timeout: float
) -> None:
    product = new_product("quiet", schema=SCHEMA_V1)
    registry = DistantRegistry(
        {SCHEMA_ID: order_v1}, {SCHEMA_ID: [product.value_subject]}, delay_s=0.25
    )
    consumer = ProductConsumer(
        [product],
        group_id="unit",
        bootstrap_servers="127.0.0.1:9",  # never contacted
        registry=registry,  # type: ignore[arg-type]
        from_beginning=True,
        config={"log_level": 0},
        root=None,
        registry_wait_seconds=2.0,
    )
    real = consumer._consumer
    value = RecordEncoder(order_v1, SCHEMA_ID).encode(make_order(1))
    message = Message(topic=product.topic, partition=0, offset=0, value=value, timestamp=(1, 1))
    consumer._consumer = QuietTopic(message)  # type: ignore[assignment]
    try:
        records = consumer.consume(500, timeout)
    finally:
        consumer._consumer = real
        consumer.close()
    assert [r.offset for r in records] == [0]
    assert min(registry.budgets) >= max(timeout, REGISTRY_CALL_FLOOR_S) - 0.05
