"""The faust internals the engine uses exist in the installed faust, which is supported."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import inspect
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import faust.streams
import pytest
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import Message

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing import faust_seams


def test_the_installed_faust_is_in_the_supported_range() -> None:
    installed = importlib.metadata.version("faust-streaming")
    assert faust_seams.check_faust_version() == installed


@pytest.mark.parametrize("version", ["0.15.2", "0.16.0", "1.0.0", "0.14.9"])
def test_an_unsupported_faust_is_refused_naming_both_versions(version: str) -> None:
    lowest, above = faust_seams.SUPPORTED_FAUST
    with pytest.raises(ConfigurationError) as refused:
        faust_seams.check_faust_version(version)
    message = str(refused.value)
    assert f"faust-streaming {version} is installed" in message
    assert f">={lowest},<{above}" in message


@pytest.mark.parametrize("version", ["0.15.3", "0.15.10", "0.15.4rc1"])
def test_supported_versions_pass(version: str) -> None:
    assert faust_seams.check_faust_version(version) == version


def test_each_internal_used_still_exists() -> None:
    assert isinstance(faust.streams._current_event, contextvars.ContextVar)
    assert callable(faust.Stream.take_events)
    assert isinstance(ProducerBuffer.max_messages, int)
    # flush_producer_buffer_fully: what drain_producer_buffer reads of the buffer
    assert "self.message_sent = asyncio.Event()" in inspect.getsource(ProducerBuffer)
    assert "self.pending = asyncio.Queue()" in inspect.getsource(ProducerBuffer)
    assert "await self.buffer.flush()" in inspect.getsource(AIOKafkaProducer.flush)
    assert "acked" in Message.__slots__
    # the sensor hook the engine relies on to stop on a refused send
    assert callable(faust.Sensor.on_send_error)
    # shorten_fetch_wait: faust's consumer thread holds the aiokafka consumer, whose fetcher
    # reads its wait from this attribute for each request it builds
    assert "_consumer" in vars(AIOKafkaConsumerThread)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "_fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


class _SlowChannel:
    """A channel whose records take 0.25 s each to reach the Kafka client."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        del wait
        await asyncio.sleep(0.25)
        self.published.append(fut.number)


def _slow_buffer() -> tuple[ProducerBuffer, _SlowChannel]:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    return buffer, _SlowChannel()


def _record(channel: _SlowChannel, number: int) -> Any:
    return SimpleNamespace(number=number, message=SimpleNamespace(channel=channel))


def test_fausts_own_buffer_flush_gives_up_with_records_still_in_it() -> None:
    """Why the seam exists: faust commits after this flush, so a kill then loses them."""

    async def scenario() -> list[int]:
        buffer, channel = _slow_buffer()
        await buffer.start()
        for number in range(3):
            buffer.put(_record(channel, number))
        await ProducerBuffer.flush(buffer)
        sent = list(channel.published)
        await faust_seams.drain_producer_buffer(buffer)  # so the stop below has nothing left
        await buffer.stop()
        return sent

    assert len(asyncio.run(scenario())) < 3


def test_the_buffer_flush_waits_until_every_record_reached_the_client() -> None:
    async def scenario() -> tuple[list[int], int]:
        buffer, channel = _slow_buffer()
        await buffer.start()
        app = SimpleNamespace(producer=SimpleNamespace(buffer=buffer))
        faust_seams.flush_producer_buffer_fully(app)  # type: ignore[arg-type]
        for number in range(3):
            buffer.put(_record(channel, number))
        await buffer.flush()  # what faust calls before it commits
        sent = list(channel.published)
        left = buffer.size
        await buffer.stop()
        return sent, left

    assert asyncio.run(scenario()) == ([0, 1, 2], 0)


def test_a_buffer_that_cannot_drain_fails_the_flush_instead_of_waiting_for_ever() -> None:
    async def scenario() -> str:
        buffer, channel = _slow_buffer()
        await buffer.start()
        for number in range(20):
            buffer.put(_record(channel, number))
        try:
            await faust_seams.drain_producer_buffer(buffer, timeout_s=0.5)
        except RuntimeError as exc:
            return str(exc)
        finally:
            while buffer.size:  # what was never sent, so that the buffer can stop
                buffer.pending.get_nowait()
            await buffer.stop()
        return "drained"

    assert asyncio.run(scenario()).startswith("producer buffer not drained after 0 s")


def test_a_key_goes_to_the_partition_fausts_producer_gives_it() -> None:
    """Records of several keys go together to one partition: each key's must be the one
    faust's producer (aiokafka's default partitioner) picks for the key alone, where older
    workers sent its records and where its table partition is."""
    partitioner = DefaultPartitioner()
    for partitions in (1, 3, 12):
        every = list(range(partitions))
        for key in ("eu-west@1796219460000", "us-west", "cust-042", "é", ""):
            expected = partitioner(key.encode(), every, every)
            assert faust_seams.key_partition(key, partitions) == expected
