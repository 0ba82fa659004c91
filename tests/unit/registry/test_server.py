"""The uvicorn runner: a taken port is reported with the flag that fixes it."""

from __future__ import annotations

import socket

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.server import RegistryServer


def test_taken_port_names_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RegistryServer(create_app(InMemoryStore()), port=port)
        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*--port"):
            server.start(timeout=10)
