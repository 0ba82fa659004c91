"""Tokens issued while two `mesh registry serve` instances run on one topic: added through the
follower, used on the writer; rotated and revoked, then refused on both at once (no sleeps,
no polling); kept across a restart of both; never in either instance's output."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from mesh_stream.registry.service import create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.server import RegistryServer, bind_listener
from tests.conftest import KafkaAddress
from tests.integration.registry_process import MESH, TOKENS, RegistryProcess

pytestmark = pytest.mark.chaos  # both instances are killed and started again

ADMIN = ("admin", TOKENS["admin"])


def _schema(field: str) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "StockLevel",
            "namespace": "inventory",
            "doc": "Units on hand per item.",
            "fields": [
                {"name": "sku", "type": "string", "doc": "Item."},
                {"name": field, "type": ["null", "long"], "default": None, "doc": "Units."},
            ],
        }
    )


def _register(url: str, token: str, field: str = "units", principal: str = "inventory") -> int:
    """Register an inventory schema with ``principal``'s token; the HTTP status."""
    answer = httpx.post(
        f"{url}/subjects/inventory.stock-level.v1-value/versions",
        json={"schema": _schema(field)},
        auth=(principal, token),
        timeout=30,
    )
    assert answer.status_code in (200, 401), answer.text
    if answer.status_code == 401:
        assert answer.json()["error_code"] == 40101
    return answer.status_code


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MESH_REGISTRY_URL": url,
        "MESH_REGISTRY_PRINCIPAL": "admin",
        "MESH_REGISTRY_TOKEN": TOKENS["admin"],
    }
    return subprocess.run(
        [MESH, "registry", "credentials", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tokens_are_managed_while_two_instances_run_and_revocations_count_at_once(
    kafka: KafkaAddress,
) -> None:
    session = uuid.uuid4().hex[:8]
    topic, writer_id = f"_mesh_registry-credentials-{session}", f"writer-credentials-{session}"
    a = RegistryProcess(kafka, topic=topic, writer_id=writer_id)
    b = RegistryProcess(kafka, topic=topic, writer_id=writer_id)
    issued: list[str] = []
    with ExitStack() as stack:
        stack.enter_context(a)
        stack.enter_context(b)
        assert httpx.get(f"{a.url}/health/ready").json()["role"] == "writer"
        assert httpx.get(f"{b.url}/health/ready").json()["role"] == "follower"

        # Added through the follower (forwarded to the writer) with the CLI, used on A.
        added = _cli(b.url, "add", "inventory", "--quiet")
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        issued.append(token)
        assert len(added.stdout.splitlines()) == 1
        assert token not in added.stderr
        assert "shown only this once" in added.stderr
        assert _register(a.url, token) == 200
        assert _register(b.url, token) == 200  # same schema again: same id, via the writer

        # Rotations through the follower: the old token is refused on both at once.
        for round_ in range(3):
            rotated = httpx.post(f"{b.url}/admin/credentials/inventory/rotate", auth=ADMIN)
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["token"]
            issued.append(new)
            assert _register(a.url, token) == 401, round_
            assert _register(b.url, token) == 401, round_
            assert _register(a.url, new) == 200
            assert _register(b.url, new) == 200
            token = new

        # Revoked through the writer: the follower refuses it at once, and so does A.
        revoked = httpx.delete(f"{a.url}/admin/credentials/inventory", auth=ADMIN)
        assert revoked.status_code == 200, revoked.text
        assert _register(b.url, token) == 401
        assert _register(a.url, token) == 401
        gone = httpx.get(f"{b.url}/subjects", auth=("inventory", token))
        assert "was revoked at" in gone.json()["message"]

        # Revoked and re-added through the follower, several times, checked on the writer.
        for _ in range(3):
            again = httpx.post(f"{b.url}/admin/credentials/inventory", auth=ADMIN)
            assert again.status_code == 201, again.text
            token = again.json()["token"]
            issued.append(token)
            assert _register(a.url, token) == 200
            assert httpx.delete(f"{b.url}/admin/credentials/inventory", auth=ADMIN).is_success
            assert _register(a.url, token) == 401
            assert _register(b.url, token) == 401

        # A file principal revoked through the follower: its file token stops on both.
        assert httpx.delete(f"{b.url}/admin/credentials/payments", auth=ADMIN).is_success
        payments = ("payments", TOKENS["payments"])
        for url in (a.url, b.url):
            answer = httpx.post(
                f"{url}/subjects/payments.paid.v1-value/versions",
                json={"schema": '"string"'},
                auth=payments,
            )
            assert answer.status_code == 401, answer.text

        # One that stays: shipping, active across the restart.
        kept = httpx.post(f"{a.url}/admin/credentials/shipping", auth=ADMIN).json()["token"]
        issued.append(kept)

        a.kill()
        b.kill()
        a.start()
        b.start()
        for url in (a.url, b.url):
            assert _register(url, token) == 401  # revoked stays revoked
            shipped = httpx.post(
                f"{url}/subjects/shipping.parcel.v1-value/versions",
                json={"schema": '"string"'},
                auth=("shipping", kept),
            )
            assert shipped.status_code == 200, shipped.text
        listed = _cli(b.url, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        sources = {row["principal"]: row["source"] for row in json.loads(listed.stdout)}
        assert sources == {
            "admin": "file",
            "inventory": "revoked",
            "orders": "file",
            "payments": "revoked",
            "shipping": "issued",
        }
        assert all(secret not in listed.stdout for secret in issued)

    output = "".join(a.log + b.log)
    assert "listening on" in output
    for secret in [*issued, *TOKENS.values()]:
        assert secret not in output


class HeldTail(KafkaStore):
    """A follower whose tail can be held back (as a long pause or a slow fetch would hold
    it): while held, records it fetched wait unapplied unless a catch-up asks for them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flowing = threading.Event()
        self.flowing.set()
        self.catch_ups = 0

    def _handle(self, messages: Sequence[Any], *, replaying: bool = False) -> bool:
        if messages:
            self.flowing.wait(30)
        return super()._handle(messages, replaying=replaying)

    def catch_up_view(self, timeout: float) -> None:
        self.catch_ups += 1
        held = not self.flowing.is_set()
        self.flowing.set()
        try:
            super().catch_up_view(timeout)
        finally:
            if held:
                self.flowing.clear()


def test_a_follower_whose_tail_lags_refuses_a_token_revoked_a_moment_ago(
    kafka: KafkaAddress,
) -> None:
    session = uuid.uuid4().hex[:8]
    topic, writer_id = f"_mesh_registry-lag-{session}", f"writer-lag-{session}"
    with RegistryProcess(kafka, topic=topic, writer_id=writer_id) as a:
        listener = bind_listener("127.0.0.1", 0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        store = HeldTail(
            kafka.bootstrap_servers, topic=topic, transactional_id=writer_id, advertised_url=url
        )
        app = create_app(store, credentials=Credentials(TOKENS))
        server = RegistryServer(app, listener=listener)
        server.start()
        try:
            assert httpx.get(f"{url}/health/ready").json()["role"] == "follower"
            view = app.state.services.schemas.state

            store.flowing.clear()  # B's tail holds what it fetches from now on
            token = httpx.post(f"{a.url}/admin/credentials/inventory", auth=ADMIN).json()["token"]
            assert "inventory" not in view.credentials  # B has not applied the new token...
            assert _register(url, token) == 200  # ...and catches up to it when it is used

            assert httpx.delete(f"{a.url}/admin/credentials/inventory", auth=ADMIN).is_success
            assert view.credentials["inventory"]["state"] == "active"  # not applied yet...
            caught_up = store.catch_ups
            assert _register(url, token) == 401  # ...and refused all the same
            assert store.catch_ups == caught_up + 1
            assert view.credentials["inventory"]["state"] == "revoked"
            # The bootstrap admin needs no catch-up: it works while the tail is held.
            assert httpx.get(f"{url}/subjects", auth=ADMIN).status_code == 200
            assert store.catch_ups == caught_up + 1
        finally:
            store.flowing.set()
            server.stop()
            store.close()
