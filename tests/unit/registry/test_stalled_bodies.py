"""A request body that stops arriving is answered 408, and a client that hangs up before any
answer is counted as 499 (client closed request), not as a server error (h52: the request
waited for ever, then was logged and counted as a 500)."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

import pytest

from mesh_stream.registry.service import edge

HEAD = (
    b"POST /subjects/orders.z-value/versions HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
)


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def test_a_body_that_stops_arriving_is_answered_408(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "BODY_IDLE_S", 1.0)
    with _connect(served) as client:
        client.sendall(HEAD + b'{"schema":')
        answer = client.recv(65536).decode()
    status_line, _, rest = answer.partition("\r\n")
    assert status_line == "HTTP/1.1 408 Request Timeout", answer
    assert (
        '"message":"the request body stopped arriving: nothing for 1 s after 10 byte(s) of the '
        '100 its Content-Length says"' in rest
    )


def test_a_client_that_hangs_up_is_counted_as_499(
    served: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(edge, "BODY_IDLE_S", 30.0)
    with caplog.at_level(logging.INFO, logger="mesh_stream.registry.access"):
        with _connect(served) as client:
            client.sendall(HEAD + b'{"schema":')
            time.sleep(0.5)
        deadline = time.monotonic() + 10
        while "POST /subjects/orders.z-value/versions" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.1)
    assert "POST /subjects/orders.z-value/versions -> 499 in " in caplog.text
