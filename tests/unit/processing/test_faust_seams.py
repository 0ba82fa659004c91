"""The faust internals the engine uses exist in the installed faust, which is supported."""

from __future__ import annotations

import contextvars
import importlib.metadata
import inspect

import aiokafka
import faust
import faust.streams
import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
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
    assert "acked" in Message.__slots__
    # the sensor hook the engine relies on to stop on a refused send
    assert callable(faust.Sensor.on_send_error)
    # shorten_fetch_wait: faust's consumer thread holds the aiokafka consumer, whose fetcher
    # reads its wait from this attribute for each request it builds
    assert "_consumer" in vars(AIOKafkaConsumerThread)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "_fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
