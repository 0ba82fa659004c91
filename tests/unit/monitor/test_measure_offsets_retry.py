"""A partition without a leader yet (a topic created a moment ago, as `mesh up` starts the
processors that create their DLQs) is asked again instead of failing the monitor's round;
any other error, or a leader that never comes, still fails it with the broker's reason."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin._listoffsets import OffsetSpec

from mesh_stream.errors import MeshError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.monitor import measure
from mesh_stream.monitor.measure import OFFSET_ATTEMPTS, KafkaMeter


class FlakyAdmin:
    """Answers ListOffsets with ``error`` for the first ``failures`` calls, then offset 42."""

    def __init__(self, failures: int, error: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def list_offsets(self, asked: dict[TopicPartition, Any], **_: Any) -> dict[Any, Future[Any]]:
        self.calls += 1
        answers: dict[Any, Future[Any]] = {}
        for tp in asked:
            future: Future[Any] = Future()
            if self.calls <= self.failures:
                future.set_exception(KafkaException(KafkaError(self.error)))
            else:
                future.set_result(SimpleNamespace(offset=42))
            answers[tp] = future
        return answers


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(measure, "OFFSET_RETRY_SECONDS", 0.0)
    with KafkaMeter(KafkaConnection.create("127.0.0.1:9")) as made:
        yield made


def test_a_partition_without_a_leader_yet_is_asked_again(meter: KafkaMeter) -> None:
    admin = FlakyAdmin(failures=2)
    meter._admin = admin  # type: ignore[assignment]
    assert meter._offsets([("t", 0), ("t", 1)], OffsetSpec.latest()) == {("t", 0): 42, ("t", 1): 42}
    assert admin.calls == 3


def test_a_leader_that_never_comes_fails_the_round_with_the_brokers_reason(
    meter: KafkaMeter,
) -> None:
    admin = FlakyAdmin(failures=OFFSET_ATTEMPTS)
    meter._admin = admin  # type: ignore[assignment]
    with pytest.raises(MeshError, match="Not leader for partition"):
        meter._offsets([("t", 0)], OffsetSpec.latest())
    assert admin.calls == OFFSET_ATTEMPTS


def test_other_errors_are_not_asked_again(meter: KafkaMeter) -> None:
    admin = FlakyAdmin(failures=1, error=KafkaError.TOPIC_AUTHORIZATION_FAILED)
    meter._admin = admin  # type: ignore[assignment]
    with pytest.raises(MeshError):
        meter._offsets([("t", 0)], OffsetSpec.latest())
    assert admin.calls == 1
