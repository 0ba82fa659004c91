"""A follower forwards writes to the writer over real HTTP (two in-process registries, one a
follower whose store routes writes to the other): method, path, query, body and
credential go through, the answer comes back as it is; reads stay local; with no writer or a
dead one the answer is a quick 503 with Retry-After."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from mesh_stream.broker.cluster import free_port
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.forwarding import FORWARDED_BY, is_write
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.store import SharedStore, WriteRoute
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, schema

SUBJECT = "orders.order-placed.v1-value"


class FollowerStore(InMemoryStore):
    """An in-memory store whose writes belong to another instance."""

    def __init__(self) -> None:
        super().__init__()
        self.route = WriteRoute.nowhere("no writer yet: retry", 3)

    def write_route(self) -> WriteRoute:
        return self.route


@pytest.fixture
def writer() -> Iterator[RegistryServer]:
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def follower() -> Iterator[tuple[RegistryServer, FollowerStore]]:
    store = FollowerStore()
    assert isinstance(store, SharedStore)
    running = RegistryServer(create_app(store, credentials=Credentials(TOKENS)))
    running.start()
    yield running, store
    running.stop()


@pytest.mark.parametrize(
    ("method", "path", "write"),
    [
        ("POST", "/subjects/s/versions", True),
        ("POST", "/subjects/a/b/versions/", True),
        ("POST", "/subjects/s", False),  # lookup
        ("POST", "/compatibility/subjects/s/versions/latest", False),
        ("GET", "/subjects", False),
        ("DELETE", "/subjects/s", True),
        ("DELETE", "/subjects/s/versions/1", True),
        ("PUT", "/config", True),
        ("DELETE", "/config/s", True),
        ("POST", "/products", True),
        ("PUT", "/products/orders.x", True),
        ("DELETE", "/products/orders.x", True),
        ("POST", "/health/ready", False),
    ],
)
def test_which_requests_are_writes(method: str, path: str, write: bool) -> None:
    assert is_write(method, path) is write


def test_writes_are_forwarded_and_answered_as_the_writer_answers(
    writer: RegistryServer, follower: tuple[RegistryServer, FollowerStore]
) -> None:
    server, store = follower
    store.route = WriteRoute.forward(writer.url, "the test writer", 5.0)
    registered = httpx.post(
        f"{server.url}/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    )
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"id": 1, "version": 1, "subject": SUBJECT}
    assert registered.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert httpx.get(f"{writer.url}/subjects/{SUBJECT}/versions").json() == [1]
    # Reads (a lookup too) are the follower's own: its view is another store here.
    assert httpx.get(f"{server.url}/subjects").json() == []
    lookup = httpx.post(f"{server.url}/subjects/{SUBJECT}", json={"schema": schema()})
    assert lookup.json()["error_code"] == 40401
    # An error answer comes back as it is, a 204 too; the query string goes along.
    refused = httpx.put(f"{server.url}/config", json={"compatibility": "NONE"}, auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    soft = httpx.delete(f"{server.url}/subjects/{SUBJECT}", auth=ORDERS)
    assert soft.json() == [1], soft.text
    hard = httpx.delete(f"{server.url}/subjects/{SUBJECT}?permanent=true", auth=ORDERS)
    assert hard.json() == [1], hard.text
    assert httpx.get(f"{writer.url}/subjects?deleted=true").json() == []
    # No credential: the writer says so.
    anonymous = httpx.post(f"{server.url}/subjects/{SUBJECT}/versions", json={"schema": schema()})
    assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101)


def test_a_wrong_credential_is_refused_by_the_follower_itself(
    writer: RegistryServer, follower: tuple[RegistryServer, FollowerStore]
) -> None:
    server, store = follower
    store.route = WriteRoute.forward(writer.url, "the test writer", 5.0)
    for _ in range(25):  # more than the 20 failures a minute one address may have
        wrong = httpx.post(
            f"{server.url}/subjects/{SUBJECT}/versions",
            json={"schema": schema()},
            auth=("orders", "wrong"),
        )
        assert wrong.status_code in (401, 429), wrong.text
    assert wrong.status_code == 429
    # The follower's own bucket for this address is empty; the writer counted none of them.
    again = httpx.put(f"{server.url}/config", json={"compatibility": "FULL"}, auth=ADMIN)
    assert (again.status_code, again.json()["error_code"]) == (429, 42901)
    direct = httpx.put(f"{writer.url}/config", json={"compatibility": "FULL"}, auth=ADMIN)
    assert direct.status_code == 200, direct.text


def test_no_writer_a_dead_writer_and_a_forwarding_loop_answer_503_with_retry_after(
    follower: tuple[RegistryServer, FollowerStore],
) -> None:
    server, store = follower
    body = {"schema": schema()}
    none = httpx.post(f"{server.url}/subjects/{SUBJECT}/versions", json=body, auth=ORDERS)
    assert (none.status_code, none.json()["error_code"]) == (503, 50302)
    assert none.json()["message"] == "no writer yet: retry"
    assert none.headers["retry-after"] == "3"

    dead = f"http://127.0.0.1:{free_port()}"
    store.route = WriteRoute.forward(dead, f"writer id 'w' (at {dead})", 5.0, retry_after=2)
    gone = httpx.post(f"{server.url}/subjects/{SUBJECT}/versions", json=body, auth=ORDERS)
    assert (gone.status_code, gone.json()["error_code"]) == (503, 50302)
    assert gone.json()["message"].startswith(
        f"registry write not forwarded: the writer writer id 'w' (at {dead}) does not answer "
        f"(ConnectError: "
    )
    assert gone.headers["retry-after"] == "2"

    looped = httpx.post(
        f"{server.url}/subjects/{SUBJECT}/versions",
        content=json.dumps(body),
        headers={FORWARDED_BY: "http://other:8081", "content-type": "application/json"},
        auth=ORDERS,
    )
    assert looped.status_code == 503, looped.text
    assert looped.json()["message"].startswith(
        "registry write forwarded by http://other:8081 to this instance, which is not the writer"
    )
