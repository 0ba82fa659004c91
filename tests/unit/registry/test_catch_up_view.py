"""KafkaStore.catch_up_view, the check in front of every non-admin credential: it waits for
the view to reach the end offset asked after the call arrived, shares one request among
callers that arrive together (a failure too), and never answers from a stale view."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.registry.service.kafka_store import KafkaStore


class Broker:
    """Stands in for the partition leader's end-offset answer (the only Kafka call made)."""

    def __init__(self, end: int, *, delay: float = 0.0, down: bool = False) -> None:
        self.end = end
        self.delay = delay
        self.down = down
        self.asked = 0
        self.gate = threading.Event()

    def end_offset(self, timeout: float) -> int:  # noqa: ARG002
        self.asked += 1
        if self.delay:
            self.gate.wait(self.delay)
        if self.down:
            raise RegistryUnavailableError("Kafka did not answer", status=503, error_code=50302)
        return self.end


def _store(broker: Broker, applied: int) -> KafkaStore:
    store = KafkaStore("127.0.0.1:1", topic="_mesh_registry-unit")  # never connects here
    store._end_offset = broker.end_offset  # type: ignore[method-assign]
    store._next_offset = applied
    return store


def test_it_returns_once_the_view_reached_the_end_and_never_answers_stale() -> None:
    broker = Broker(end=7)
    store = _store(broker, applied=7)
    store.catch_up_view(1.0)
    assert broker.asked == 1
    # The tail applies the last records a moment later: the call waits for them.
    behind = _store(Broker(end=9), applied=7)
    threading.Timer(0.2, lambda: behind._advance(9)).start()
    behind.catch_up_view(5.0)
    assert behind._next_offset == 9
    # A tail that does not get there in time: 503, not a stale answer.
    stuck = _store(Broker(end=9), applied=7)
    with pytest.raises(RegistryUnavailableError, match="behind its log") as refused:
        stuck.catch_up_view(0.2)
    assert (refused.value.status, refused.value.error_code) == (503, 50302)


def test_callers_that_arrive_together_share_one_request_and_its_failure() -> None:
    broker = Broker(end=3, delay=0.3)
    store = _store(broker, applied=3)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: store.catch_up_view(2.0), range(16)))
    assert 2 <= broker.asked <= 3  # the first, then one for all who queued behind it
    down = Broker(end=0, delay=0.3, down=True)
    outage = _store(down, applied=0)
    failures = []

    def call(_: int) -> None:
        try:
            outage.catch_up_view(2.0)
        except RegistryUnavailableError as exc:
            failures.append(exc)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(call, range(16)))
    assert len(failures) == 16
    assert down.asked <= 3  # not one timeout per queued request
    assert "to check a credential against the latest revocations" in failures[0].message


def test_a_write_that_finds_no_writer_says_why_this_instance_could_not_take_over() -> None:
    """h59: with two brokers of three down, writes answered "one takes over within seconds:
    retry" for as long as the outage lasted; why no instance could take over (Kafka refusing
    the transactional producer) was only in a log line."""
    store = KafkaStore("127.0.0.1:1", topic="_mesh_registry-unit")  # never connects here
    store._starting = None
    route = store.write_route()
    assert route.url is None
    assert route.reason is not None
    assert route.reason.endswith("one takes over within seconds: retry")
    store._takeover_problem = (
        time.monotonic(),
        "Failed to initialize Producer ID: Broker: Coordinator not available",
    )
    assert str(store.write_route().reason).endswith(
        "retry; this instance's last try to take it over failed: Failed to initialize "
        "Producer ID: Broker: Coordinator not available"
    )
    store._takeover_problem = (time.monotonic() - store.writer_lease - 1, "long ago")
    assert "long ago" not in str(store.write_route().reason)
