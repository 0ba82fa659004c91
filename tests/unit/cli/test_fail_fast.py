"""`mesh tail` and `mesh publish` fail fast and clearly: no broker answering, an empty file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.broker import reachability
from mesh_stream.cli.main import cli
from mesh_stream.errors import BrokerUnreachableError, ConfigurationError

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


@pytest.mark.parametrize("content", ["", "\n  \n\n", "\ufeff\n", "\ufeff"])  # a BOM alone too
def test_publish_refuses_an_empty_file_before_touching_registry_or_kafka(
    tmp_path: Path, content: str
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(content)
    nobody = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(
        cli,
        ["publish", "orders.order-placed", "-f", str(records), "--root", str(REPO)],
        env={"MESH_BOOTSTRAP_SERVERS": nobody, "MESH_REGISTRY_URL": f"http://{nobody}"},
    )
    assert isinstance(result.exception, ConfigurationError)
    assert str(result.exception) == (
        f"{records}: no records in the file (JSON Lines: one JSON object per line)"
    )


@pytest.mark.parametrize("timeout", ["0", "-1"])
def test_tail_refuses_a_timeout_that_would_end_before_the_first_poll(timeout: str) -> None:
    result = CliRunner().invoke(cli, ["tail", "orders.order-placed", "--timeout", timeout])
    assert result.exit_code == 2
    assert f"Invalid value for '--timeout': {float(timeout)} is not in the range x>0." in (
        result.stderr
    )
