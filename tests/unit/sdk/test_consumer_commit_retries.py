"""`ProductConsumer.commit` rides out a coordinator that is moving (a broker restart): Kafka
answers "waiting for coordinator" for a moment, which the application never sees; an error
that asking again cannot mend is raised at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from mesh_stream import consumer as consumer_module
from mesh_stream.consumer import ProductConsumer
from mesh_stream.errors import ConsumerError
from tests.fixtures.sdk.helpers import SCHEMA_V1, new_product
from tests.unit.sdk.conftest import MemorySchemas


class Committing:
    """Stands in for librdkafka's consumer in commit(): refuses with ``errors``, then takes
    the offsets."""

    def __init__(self, real: Any, errors: list[int]) -> None:
        self.real, self.errors, self.committed, self.calls = real, list(errors), [], 0

    def commit(self, *, offsets: Any, asynchronous: bool) -> None:
        assert asynchronous is False
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        self.committed = [(tp.topic, tp.partition, tp.offset) for tp in offsets]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def consumer() -> Iterator[ProductConsumer]:
    product = new_product("commit", schema=SCHEMA_V1)
    opened = ProductConsumer(
        [product],
        group_id="unit",
        bootstrap_servers="127.0.0.1:9",  # never contacted
        registry=MemorySchemas({}, {}),  # type: ignore[arg-type]
        from_beginning=True,
        config={"log_level": 0},
        root=None,
    )
    opened._positions[(product.topic, 0)] = 42  # a record at offset 41 was returned
    yield opened
    opened.close()


def test_a_moving_coordinator_is_waited_out(consumer: ProductConsumer) -> None:
    fake = Committing(consumer._consumer, [KafkaError._WAIT_COORD, KafkaError._WAIT_COORD])
    consumer._consumer = fake  # type: ignore[assignment]
    consumer.commit()
    assert fake.calls == 3
    assert fake.committed == [(next(iter(consumer._sources)), 0, 42)]


def test_an_error_asking_again_cannot_mend_is_raised_at_once(
    consumer: ProductConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "COMMIT_RETRY_SECONDS", 0.5)
    fake = Committing(consumer._consumer, [KafkaError.ILLEGAL_GENERATION])
    consumer._consumer = fake  # type: ignore[assignment]
    with pytest.raises(ConsumerError, match="cannot commit offsets of group unit"):
        consumer.commit()
    assert fake.calls == 1
    stuck = Committing(consumer._consumer, [KafkaError._WAIT_COORD] * 1000)
    consumer._consumer = stuck  # type: ignore[assignment]
    with pytest.raises(ConsumerError, match=r"Waiting for coordinator"):
        consumer.commit()  # gives up after COMMIT_RETRY_SECONDS
    assert 1 < stuck.calls < 1000
