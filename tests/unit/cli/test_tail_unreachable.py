"""`mesh tail` with no broker answering: one clear error, exit 1, no silent empty output."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.broker import reachability
from mesh_stream.cli.main import cli
from mesh_stream.errors import BrokerUnreachableError

REPO = Path(__file__).resolve().parents[3]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_tail_names_the_setting_when_no_broker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 1.5)
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(
        cli,
        ["tail", "orders.order-placed", "--timeout", "5", "--root", str(REPO)],
        env={"MESH_BOOTSTRAP_SERVERS": address, "MESH_REGISTRY_URL": "http://127.0.0.1:1"},
    )
    assert isinstance(result.exception, BrokerUnreachableError)
    message = str(result.exception)
    assert message.startswith(f"no Kafka broker answered at {address} within 1.5 s")
    assert "MESH_BOOTSTRAP_SERVERS" in message
    assert "`mesh broker start`" in message
    assert result.stdout == ""
