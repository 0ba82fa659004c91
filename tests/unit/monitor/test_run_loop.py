"""The monitor's loop goes on through a failed round, whatever Kafka's client raises, and
asks the next one with new Kafka clients."""

from __future__ import annotations

import logging
import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.monitor.service import ProductMonitor


def loop_only() -> ProductMonitor:
    """A monitor without Kafka or a registry: only its loop runs (measure is replaced)."""
    monitor = object.__new__(ProductMonitor)
    monitor.interval = 0.01
    monitor.metrics = None
    return monitor


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        # an admin future Kafka did not answer in time: the builtin, without a message (a
        # campaign: `error: TimeoutError (TimeoutError)` ended the monitor mid-outage)
        (TimeoutError(), "a Kafka request was not answered in time (TimeoutError)"),
        (KafkaException(KafkaError(KafkaError._TRANSPORT, "down")), "down"),
        (RegistryUnavailableError("registry at http://r is unreachable"), "unreachable"),
    ],
)
def test_a_failed_round_is_logged_and_the_next_one_runs(
    failure: BaseException, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = loop_only()
    stop = threading.Event()
    calls: list[int] = []

    def measure() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise failure
        stop.set()
        raise failure  # the second round fails too; the loop ends on the stop

    reconnects: list[int] = []
    monitor.measure = measure  # type: ignore[method-assign]
    monitor.reconnect = lambda: reconnects.append(1)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        monitor.run(stop)
    assert len(calls) == 2
    skipped = [r.getMessage() for r in caplog.records if "measurement skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert said in skipped[0]
    # each round Kafka failed: new Kafka clients for the next one; a registry outage: none
    assert len(reconnects) == (0 if isinstance(failure, RegistryUnavailableError) else 2)


def test_clients_that_cannot_be_made_again_do_not_end_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = loop_only()
    stop = threading.Event()
    calls: list[int] = []

    def measure() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise TimeoutError

    def reconnect() -> None:
        raise RuntimeError("no memory for a client")

    monitor.measure = measure  # type: ignore[method-assign]
    monitor.reconnect = reconnect  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        monitor.run(stop)
    assert len(calls) == 2  # the loop went on
    assert "new Kafka clients could not be made: no memory for a client" in caplog.text
