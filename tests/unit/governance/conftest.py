"""Fixture trees for governance tests.

``fixtures/good`` is a small, lint-clean mesh of three domains (shop, people with a PII
product, insights with a consumer-aligned product declaring field lineage). Every other
folder under ``fixtures/`` holds only the files that differ from ``good``: the tree of a
case is ``good`` with the case's files copied over it, so each case shows exactly what is
deliberately wrong.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def build_tree(case: str, destination: Path) -> Path:
    """``fixtures/good`` overlaid with ``fixtures/<case>``, copied to ``destination``."""
    root = destination / case
    shutil.copytree(FIXTURES / "good", root)
    if case != "good":
        shutil.copytree(FIXTURES / case, root, dirs_exist_ok=True)
    return root


def line_containing(path: Path, text: str) -> int:
    """1-based number of the only line of ``path`` that contains ``text``."""
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, f"{text!r} occurs on lines {lines} of {path}"
    return lines[0]


@pytest.fixture
def mesh_tree(tmp_path: Path) -> Callable[[str], Path]:
    """Build the tree of a fixture case in a temporary folder and return its root."""
    return lambda case: build_tree(case, tmp_path)


# -- registries that answer badly, on real sockets of 127.0.0.1 -------------------------------


@contextmanager
def silent_registry() -> Iterator[str]:
    """The URL of a socket that accepts connections and never answers (a read timeout)."""
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
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


class _Answers(BaseHTTPRequestHandler):
    """Answers ``(status, JSON)`` of the longest path prefix in ``routes`` (a bare JSON value
    is answered with 200); other paths get the registry's 404 for an unknown subject or
    product."""

    routes: Mapping[str, Any] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        hit = max((p for p in self.routes if path.startswith(p)), key=len, default=None)
        if hit is not None:
            answer = self.routes[hit]
            status, body = answer if isinstance(answer, tuple) else (200, answer)
        elif path.startswith("/subjects/"):
            status, body = 404, {"error_code": 40401, "message": "Subject not found"}
        else:
            status, body = 404, {"error_code": 40404, "message": "no such data product"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def answering_registry(routes: Mapping[str, Any]) -> Iterator[str]:
    """The URL of an HTTP server answering ``routes`` (see :class:`_Answers`)."""
    handler = type("Handler", (_Answers,), {"routes": dict(routes)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
