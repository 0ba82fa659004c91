"""A publisher's lifecycle without a broker (h53): close's timeout checked like flush's, a
failed ``with`` block's error kept, a full queue that Kafka does not drain refused after a
bounded wait, and a publisher nobody closed saying what became of its records."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mesh_stream import producer as producer_module
from mesh_stream.errors import ConfigurationError, DeliveryError, RegistryError
from mesh_stream.producer import ProductPublisher, open_publisher
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import TOKENS
from tests.unit.sdk.test_publisher_limits import record
from tests.unit.sdk.test_rules_contract import SCHEMA, client, product, server

__all__ = ["client", "server"]  # the fixtures, imported for their use here

REPO = Path(__file__).resolve().parents[3]


def unreachable(client: RegistryClient, **config: Any) -> ProductPublisher:
    """A publisher whose Kafka never answers: its records time out after ``message.timeout.ms``."""
    return ProductPublisher(
        product(rules=[]),
        bootstrap_servers="127.0.0.1:1",
        registry=client,
        schema=SCHEMA,
        config={"log_level": 0, **config},
        create_topic=False,
    )


def discard(made: ProductPublisher) -> None:
    """Drop what is queued and close, the records dropped being no finding here."""
    made._producer.purge()
    with contextlib.suppress(DeliveryError):
        made.close(0)


@pytest.mark.parametrize("timeout", [-1, "x", math.nan, math.inf, None])
def test_close_checks_its_timeout_and_stays_open_when_it_is_wrong(
    client: RegistryClient, timeout: Any
) -> None:
    made = unreachable(client, **{"message.timeout.ms": 500})
    try:
        with pytest.raises(ConfigurationError, match=r"^timeout=.* is not a number of seconds"):
            made.close(timeout)
        made.publish(record(0))  # still open
    finally:
        discard(made)


def test_a_failed_with_block_keeps_its_error_and_notes_what_was_not_delivered(
    client: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    made = unreachable(client, **{"message.timeout.ms": 300})
    with pytest.raises(ValueError, match="the application's own error") as raised, made:  # noqa: PT012
        made.publish(record(0))
        raise ValueError("the application's own error")
    notes = raised.value.__notes__
    assert len(notes) == 1
    assert notes[0].startswith("while closing the publisher: ")
    assert "o-0" in notes[0]  # the undelivered record, by its key
    assert "while leaving a with block on ValueError" in caplog.text


def test_closing_again_waits_again_for_records_still_queued(client: RegistryClient) -> None:
    made = unreachable(client, **{"message.timeout.ms": 60_000})
    made.publish(record(0))
    with pytest.raises(DeliveryError, match=r"still queued|not yet acknowledged"):
        made.close(0.2)
    assert made.in_flight == 1
    with pytest.raises(DeliveryError):  # it waited again, rather than return at once
        made.close(0.2)
    discard(made)


def test_a_full_queue_kafka_does_not_drain_refuses_the_record_after_a_bounded_wait(
    client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producer_module, "QUEUE_FULL_WAIT_S", 0.5)
    made = unreachable(client, **{"queue.buffering.max.messages": 1, "message.timeout.ms": 60_000})
    try:
        made.publish(record(0), headers={"h": b"1"})  # the checked send path
        with pytest.raises(DeliveryError, match=r"the producer's queue is full \(1 records"):
            made.publish(record(1), headers={"h": b"1"})
        assert made.in_flight == 1
    finally:
        discard(made)


def test_a_publisher_nobody_closed_says_what_became_of_its_records(server: RegistryServer) -> None:
    """A script that ends (``sys.exit``) with records in flight: they were dropped without a
    word. Its finalizer waits for them at the interpreter's exit and says what became of
    them: here, with no Kafka, that they were lost. (While records are in flight their
    delivery callbacks keep the publisher alive, so it is the exit that runs it.)"""
    script = f"""
import sys
from mesh_stream.producer import ProductPublisher
from mesh_stream.registry.client import RegistryClient
from tests.unit.sdk.test_publisher_limits import record
from tests.unit.sdk.test_rules_contract import SCHEMA, product
client = RegistryClient({server.url!r}, principal="orders", token={TOKENS["orders"]!r})
made = ProductPublisher(product(rules=[]), bootstrap_servers="127.0.0.1:1", registry=client,
    schema=SCHEMA, config={{"log_level": 0, "message.timeout.ms": 300}}, create_topic=False)
made.publish(record(0))
made.publish(record(1))
sys.exit(0)
"""
    ended = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ended.returncode == 0, ended.stderr
    assert (
        f"the publisher of {product().name} was not closed while records were in flight: 2 "
        f"record(s) not delivered (refused, timed out or still queued after 10 s), lost"
        in ended.stderr
    )


def test_open_publisher_checks_config_first_and_closes_the_client_it_made_on_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """h53: ``config=[1]`` was a TypeError, and a failed open left its registry client open
    (a ResourceWarning)."""
    from mesh_stream.registry import client as client_module
    from mesh_stream.settings import MeshSettings

    settings = MeshSettings(registry_url="http://127.0.0.1:9", bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ConfigurationError, match=r"^producer config must be a mapping"):
        open_publisher("orders.order-placed", settings=settings, config=[1])  # type: ignore[arg-type]
    made: list[RegistryClient] = []
    real = client_module.RegistryClient.from_settings

    def spied(given: MeshSettings) -> RegistryClient:
        made.append(real(given))
        return made[-1]

    monkeypatch.setattr(client_module.RegistryClient, "from_settings", staticmethod(spied))
    monkeypatch.chdir(tmp_path)  # no project here: the product is looked up in the registry
    with pytest.raises(RegistryError):
        open_publisher("orders.order-placed", settings=settings)
    assert len(made) == 1
    assert made[0]._http.is_closed
