"""Registries that answer badly, on real sockets of 127.0.0.1, for tests of what the client
and the commands on it say: an HTTP server answering fixed JSON per path, and a socket that
accepts connections and never answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Answers(BaseHTTPRequestHandler):
    """Answers the longest path prefix in ``routes``: bytes are sent as they are with 200, a
    ``(status, JSON)`` pair with that status, anything else as JSON with 200. Other paths get
    the registry's 404 for an unknown subject (``/subjects/...``) or product."""

    routes: Mapping[str, Any] = {}

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        hit = max((p for p in self.routes if path.startswith(p)), key=len, default=None)
        if hit is not None:
            answer = self.routes[hit]
            status, body = answer if isinstance(answer, tuple) else (200, answer)
        elif path.startswith("/subjects/"):
            status, body = 404, {"error_code": 40401, "message": "Subject not found"}
        else:
            status, body = 404, {"error_code": 40404, "message": "no such data product"}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def answering(routes: Mapping[str, Any]) -> Iterator[str]:
    """The URL of an HTTP server answering ``routes`` (see :class:`_Answers`)."""
    with serving(type("Handler", (_Answers,), {"routes": dict(routes)})) as url:
        yield url


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """The URL of an HTTP server on a free local port whose requests ``handler`` answers,
    on a thread of its own until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent() -> Iterator[tuple[str, list[socket.socket]]]:
    """The URL of a socket that accepts connections and never answers (a read timeout), and
    the connections it accepted (one per attempt: the client opens a new one after a
    timeout)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
