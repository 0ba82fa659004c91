"""Which input offsets the re-key stage commits once Kafka acknowledged its batches, how it
waits for a registry that is away, and how long a batch waits to fill."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import TopicPartition

from mesh_stream.descriptor import load_descriptors
from mesh_stream.errors import DeserializationError, RegistryUnavailableError, SchemaNotFoundError
from mesh_stream.processing.app import ProcessorSpec
from mesh_stream.processing.rekey import (
    RekeyStage,
    Wire,
    decode_when_registry_answers,
    offsets_to_commit,
    read_batch,
    records_of,
)
from mesh_stream.settings import MeshSettings

REPO = Path(__file__).resolve().parents[3]


def _positions(offsets: list[TopicPartition]) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, tp.offset) for tp in offsets]


def test_the_newest_offset_of_each_owned_partition_is_committed() -> None:
    acknowledged = [  # two batches, oldest first
        TopicPartition("orders", 0, 10),
        TopicPartition("orders", 1, 7),
        TopicPartition("orders", 0, 25),
        TopicPartition("payments", 2, 3),
    ]
    owned = [TopicPartition("orders", 0), TopicPartition("orders", 1)]
    owned.append(TopicPartition("payments", 2))
    assert _positions(offsets_to_commit(acknowledged, owned)) == [
        ("orders", 0, 25),
        ("orders", 1, 7),
        ("payments", 2, 3),
    ]


def test_partitions_revoked_meanwhile_are_left_to_their_new_owner() -> None:
    acknowledged = [TopicPartition("orders", 0, 10), TopicPartition("orders", 1, 7)]
    owned = [TopicPartition("orders", 1)]  # partition 0 went to another worker
    assert _positions(offsets_to_commit(acknowledged, owned)) == [("orders", 1, 7)]
    assert offsets_to_commit(acknowledged, []) == []


def _decoding(answers: list[Exception | dict[str, Any]]) -> Callable[[], Awaitable[Any]]:
    async def attempt() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return attempt


def test_a_record_waits_for_the_registry_and_is_decoded_once_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    away = RegistryUnavailableError("connection refused")
    answers: list[Exception | dict[str, Any]] = [away, away, {"order_id": "o-1"}]
    with caplog.at_level(logging.WARNING):
        record = asyncio.run(
            decode_when_registry_answers(_decoding(answers), "orders[1]@5", away, 30.0, "mesh-x")
        )
    assert record == {"order_id": "o-1"}
    assert answers == []
    lines = [r.getMessage() for r in caplog.records]
    assert "orders[1]@5 needs a writer schema and the registry is unavailable" in lines[0]
    assert "registry answered after" in lines[-1]


def test_a_registry_away_longer_than_the_wait_stops_the_stage_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    away = RegistryUnavailableError("connection refused")
    answers: list[Exception | dict[str, Any]] = [away] * 50
    started = time.monotonic()
    with caplog.at_level(logging.ERROR), pytest.raises(RegistryUnavailableError) as raised:
        asyncio.run(
            decode_when_registry_answers(_decoding(answers), "orders[1]@5", away, 0.5, "mesh-x")
        )
    assert time.monotonic() - started < 5
    assert "re-key stage of mesh-x stops: orders[1]@5 needs a writer schema" in str(raised.value)
    assert "MESH_CONSUMER_REGISTRY_WAIT_SECONDS" in str(raised.value)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        str(raised.value.message)
    ]


def test_a_registry_that_comes_back_without_the_schema_makes_a_dead_letter() -> None:
    away = RegistryUnavailableError("connection refused")
    gone = SchemaNotFoundError("schema 404 not found", status=404, error_code=40403)
    answers: list[Exception | dict[str, Any]] = [gone]
    with pytest.raises(DeserializationError, match=r"orders\[1\]@5: schema 404 not found"):
        asyncio.run(
            decode_when_registry_answers(_decoding(answers), "orders[1]@5", away, 30.0, "mesh-x")
        )


def test_a_partitions_keys_go_in_records_of_at_most_so_many_events_in_order() -> None:
    groups: list[tuple[str, list[Wire]]] = [
        ("eu", [["e1"], ["e2"], ["e3"]]),
        ("us", [["u1"]]),
        ("ap", [["a1"], ["a2"], ["a3"], ["a4"]]),
    ]
    records = list(records_of(groups, 3))
    assert records == [
        [("eu", [["e1"], ["e2"], ["e3"]])],
        [("us", [["u1"]]), ("ap", [["a1"], ["a2"]])],
        [("ap", [["a3"], ["a4"]])],
    ]
    assert list(records_of(groups, 500)) == [groups]
    assert list(records_of([], 3)) == []


class _Reads:
    """Stands in for the confluent-kafka consumer's ``consume``: records each call's timeout."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def consume(self, count: int, timeout: float) -> list[Any]:
        self.timeouts.append(timeout)
        return ["record"] * min(count, 3)


def test_a_batch_opened_after_an_idle_spell_takes_what_is_fetched_without_waiting() -> None:
    reads = _Reads()
    batch, read_at = read_batch(reads, 100, 0.02, last_read=time.monotonic() - 5)  # type: ignore[arg-type]
    assert len(batch) == 4
    assert reads.timeouts[1] == 0.0
    assert read_at <= time.monotonic()


def test_while_the_input_is_busy_a_batch_fills_until_the_window_after_the_last_one() -> None:
    reads = _Reads()
    read_batch(reads, 100, 0.5, last_read=time.monotonic() - 0.1)  # type: ignore[arg-type]
    assert 0.35 < reads.timeouts[1] <= 0.4


@pytest.mark.parametrize("wait_ms", [7, 20, 60])
def test_a_busy_input_s_batch_waits_the_configured_processor_batch_wait(wait_ms: int) -> None:
    products = {p.name: p for p in load_descriptors(REPO / "domains")}
    output = products["analytics.revenue-by-region"]
    settings = MeshSettings(processor_batch_wait_ms=wait_ms)
    spec = ProcessorSpec(output, (products["orders.order-placed"],), 1, settings, "{}")
    app = faust.App(f"t-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:1", store="memory://")
    target = app.topic("internal")
    stage = RekeyStage(app, spec, target, lambda *_a: (), None, lambda _g, _m: [])  # type: ignore[arg-type]
    reads = _Reads()
    stage._consumer = reads  # type: ignore[assignment]
    stage._last_read = time.monotonic()  # a batch was just read: the input is busy
    assert len(stage._consume(100)) == 4
    assert wait_ms / 1000 - 0.005 < reads.timeouts[1] <= wait_ms / 1000
