"""Whether a starting registry instance follows the claimed writer: only a writer that
refuses connections (crashed) is taken over at start-up; a slow one is followed, and its
lease decides the rest."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

from mesh_stream.registry.service.kafka_store import KafkaStore


def _answers(url: str) -> bool:
    starting = SimpleNamespace(advertised_url="http://127.0.0.1:1")  # not the writer's
    claim: dict[str, Any] = {"url": url}
    return KafkaStore._answers(starting, claim)  # type: ignore[arg-type]


def test_a_writer_that_refuses_connections_is_taken_over() -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _answers(f"http://127.0.0.1:{port}") is False


def test_a_writer_too_slow_to_answer_is_followed() -> None:
    with socket.socket() as slow:  # listens, never answers: the request times out
        slow.bind(("127.0.0.1", 0))
        slow.listen(8)
        assert _answers(f"http://127.0.0.1:{slow.getsockname()[1]}") is True


def test_a_claim_with_this_instance_s_own_url_is_not_followed() -> None:
    assert _answers("http://127.0.0.1:1") is False
