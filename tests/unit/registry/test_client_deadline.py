"""`RegistryClient.within`: calls return by a deadline, however long a silent registry would
keep them (10 s a read, retried for 30 s), so a consumer's `consume(timeout=1)` returns."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.registry.client import RegistryClient


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A local port whose every connection ``handle`` gets (with the stop event), in a thread
    of its own; its URL, until the block ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
            threading.Thread(target=handle, args=(held[-1], stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A port that takes connections and requests and never answers (a hung registry)."""
    with serving(lambda _connection, _stop: None) as url:
        yield url


def test_a_call_within_a_deadline_gives_up_there(silent_registry: str) -> None:
    client = RegistryClient(silent_registry, timeout=10.0, retry_seconds=30.0)
    started = time.monotonic()
    with client.within(1.0), pytest.raises(RegistryUnavailableError) as unanswered:
        client.get_schema(1)
    took = time.monotonic() - started
    assert took < 5.0, took  # without the deadline: 30 s and more
    assert "did not answer GET /schemas/ids/1 within 1 s" in str(unanswered.value)
    assert unanswered.value.waited == 1.0
    assert client._left() is None  # the deadline ends with the block


def test_an_inner_deadline_never_outlasts_the_outer_one(silent_registry: str) -> None:
    client = RegistryClient(silent_registry, timeout=10.0)
    with client.within(0.5), client.within(60.0):
        left = client._left()
        assert left is not None
        assert left <= 0.5


@pytest.fixture
def trickling_registry() -> Iterator[str]:
    """A port that answers every request with headers, then one body byte every 0.1 s for
    a minute (a campaign, h49: httpx's timeouts bound each read, so it hung a command)."""

    def trickle(connection: socket.socket, stop: threading.Event) -> None:
        connection.recv(65536)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 600\r\n\r\n["
        )
        for _ in range(600):
            if stop.wait(0.1):
                return
            try:
                connection.sendall(b" ")
            except OSError:
                return

    with serving(trickle) as url:
        yield url


def test_an_answer_sent_a_byte_at_a_time_is_given_up_after_three_reads_time(
    trickling_registry: str,
) -> None:
    client = RegistryClient(trickling_registry, timeout=1.0, retry_seconds=0.0)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as unanswered:
        client.get_schema(1)
    took = time.monotonic() - started
    assert took < 20, took  # each read came within 1 s, the whole not within 3 (it sends for 60)
    assert "did not answer GET /schemas/ids/1 in full within 3 s (it was still sending)" in str(
        unanswered.value
    )


def test_an_unreachable_registry_mentions_the_cache_only_to_a_client_it_answered() -> None:
    """A one-shot command's first call said "no earlier answer ... is cached" (h49), about a
    cache it never had; a client the registry answered before can have one."""

    def schema_once(connection: socket.socket, _stop: threading.Event) -> None:
        connection.recv(65536)
        body = b'{"schema": "\\"string\\""}'
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        connection.close()

    with serving(schema_once) as url:
        client = RegistryClient(url, timeout=5.0, retry_seconds=0.0)
        assert client.get_schema(1) == '"string"'
    with pytest.raises(RegistryUnavailableError) as after_an_answer:
        client.get_schema(2)
    assert "for GET /schemas/ids/2, and no earlier answer to it is cached; start it" in str(
        after_an_answer.value
    )
    never = RegistryClient(url, timeout=5.0, retry_seconds=0.0)
    with pytest.raises(RegistryUnavailableError) as first_call:
        never.get_schema(2)
    assert "for GET /schemas/ids/2; start it (`mesh registry serve`)" in str(first_call.value)
    assert "cached" not in str(first_call.value)
