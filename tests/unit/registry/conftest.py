"""An in-process registry over the in-memory store, with the sample credentials."""

from __future__ import annotations

import base64
import http.client
import json
import warnings
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.problems import DescriptorValidator
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.state import Record
from mesh_stream.registry.service.store import Apply

TOKENS = {"admin": "admin-secret", "orders": "orders-secret", "payments": "payments-secret"}
ADMIN = ("admin", TOKENS["admin"])
ORDERS = ("orders", TOKENS["orders"])


def make_client(
    store: InMemoryStore | None = None, validators: tuple[DescriptorValidator, ...] = ()
) -> TestClient:
    app = create_app(
        store or InMemoryStore(), credentials=Credentials(TOKENS), validators=validators
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def client(store: InMemoryStore) -> TestClient:
    return make_client(store)


@pytest.fixture
def served() -> Iterator[str]:
    """The URL of a registry over a fresh in-memory store, served over real HTTP (for
    confluent-kafka's own client), with the sample credentials."""
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    try:
        yield running.start()
    finally:
        running.stop()


def schema(*extra_fields: str, name: str = "Placed") -> str:
    fields: list[dict[str, Any]] = [{"name": "order_id", "type": "string", "doc": "Order id."}]
    fields += [
        {"name": f, "type": ["null", "string"], "default": None, "doc": f"The {f}."}
        for f in extra_fields
    ]
    return json.dumps({"type": "record", "name": name, "doc": "An order.", "fields": fields})


def descriptor(name: str = "orders.order-placed", **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": "Orders as customers place them.",
        "owner": {"team": "checkout", "contact": "checkout@example.com"},
        "schema": "schemas/orders/order-placed.avsc",
        "slos": {"freshness_seconds": 5, "availability": 99.9},
        "classification": "internal",
        "tags": ["orders"],
    }
    document.update(changes)
    return document


class SharedLog:
    """One log, as the registry topic is for every instance."""

    def __init__(self) -> None:
        self.records: list[Record] = []


class TrailingStore(InMemoryStore):
    """An instance whose view reads the shared log only when asked to catch up (as a
    follower whose tail has not fetched yet), counting how often it is asked."""

    def __init__(self, log: SharedLog) -> None:
        super().__init__()
        self.log = log
        self.seen = 0
        self.catch_ups = 0

    def open(self, apply: Apply, *, wait: bool = True) -> None:  # noqa: ARG002
        self._apply = apply
        self._read()

    def _read(self) -> None:
        assert self._apply is not None
        for record in self.log.records[self.seen :]:
            self._apply(record)
        self.seen = len(self.log.records)

    def append(self, records: Sequence[Record]) -> None:
        self.log.records.extend(records)
        self._read()

    def catch_up_view(self, timeout: float) -> None:  # noqa: ARG002
        self.catch_ups += 1
        self._read()


def send_raw(url: str, method: str, path: str) -> tuple[int, Any]:
    """``path`` sent byte for byte (no client normalises or re-encodes it), as admin: the
    status and the JSON answer."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    basic = base64.b64encode(":".join(ADMIN).encode()).decode()
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Authorization", f"Basic {basic}")
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
