"""A follower forwards writes to the writer over real HTTP (two in-process registries, one a
follower whose store routes writes to the other): method, path, query, body and
credential go through, the answer comes back as it is; reads stay local; with no writer or a
dead one the answer is a quick 503 with Retry-After."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from unittest.mock import ANY

import httpx
import pytest
from starlette.testclient import TestClient

from mesh_stream.broker.cluster import free_port
from mesh_stream.errors import RegistryError, RegistryUnavailableError
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.forwarding import FORWARDED_BY, is_write, secure_cookie
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.registry.service.store import SharedStore, WriteRoute
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, schema

SUBJECT = "orders.order-placed.v1-value"

#: Generous timeouts: on a loaded machine the in-process servers may stall for seconds (a
#: forward waiting 5 s for a live writer failed a clean-clone run, verify71).
HTTP = httpx.Client(timeout=30.0)
FORWARD_S = 20.0


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
        ("POST", "/products/orders.x/check", False),  # stores nothing: any instance answers
        ("POST", "/health/ready", False),
    ],
)
def test_which_requests_are_writes(method: str, path: str, write: bool) -> None:
    assert is_write(method, path) is write


def test_writes_are_forwarded_and_answered_as_the_writer_answers(
    writer: RegistryServer, follower: tuple[RegistryServer, FollowerStore]
) -> None:
    server, store = follower
    store.route = WriteRoute.forward(writer.url, "the test writer", FORWARD_S)
    registered = HTTP.post(
        f"{server.url}/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    )
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"id": 1, "version": 1, "subject": SUBJECT, "guid": ANY}
    assert registered.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert HTTP.get(f"{writer.url}/subjects/{SUBJECT}/versions").json() == [1]
    # Reads (a lookup too) are the follower's own: its view is another store here.
    assert HTTP.get(f"{server.url}/subjects").json() == []
    lookup = HTTP.post(f"{server.url}/subjects/{SUBJECT}", json={"schema": schema()})
    assert lookup.json()["error_code"] == 40401
    # An error answer comes back as it is, a 204 too; the query string goes along.
    refused = HTTP.put(f"{server.url}/config", json={"compatibility": "NONE"}, auth=ORDERS)
    assert (refused.status_code, refused.json()["error_code"]) == (403, 40301)
    soft = HTTP.delete(f"{server.url}/subjects/{SUBJECT}", auth=ORDERS)
    assert soft.json() == [1], soft.text
    hard = HTTP.delete(f"{server.url}/subjects/{SUBJECT}?permanent=true", auth=ORDERS)
    assert hard.json() == [1], hard.text
    assert HTTP.get(f"{writer.url}/subjects?deleted=true").json() == []
    # No credential: the writer says so.
    anonymous = HTTP.post(f"{server.url}/subjects/{SUBJECT}/versions", json={"schema": schema()})
    assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101)


def test_a_wrong_credential_is_refused_by_the_follower_itself(
    writer: RegistryServer, follower: tuple[RegistryServer, FollowerStore]
) -> None:
    server, store = follower
    store.route = WriteRoute.forward(writer.url, "the test writer", FORWARD_S)
    for _ in range(25):  # more than the 20 failures a minute one address may have
        wrong = HTTP.post(
            f"{server.url}/subjects/{SUBJECT}/versions",
            json={"schema": schema()},
            auth=("orders", "wrong"),
        )
        assert wrong.status_code in (401, 429), wrong.text
    assert wrong.status_code == 429
    # The follower's own bucket for this address is empty; the writer counted none of them.
    again = HTTP.put(f"{server.url}/config", json={"compatibility": "FULL"}, auth=ADMIN)
    assert (again.status_code, again.json()["error_code"]) == (429, 42901)
    direct = HTTP.put(f"{writer.url}/config", json={"compatibility": "FULL"}, auth=ADMIN)
    assert direct.status_code == 200, direct.text


def test_a_credential_the_writer_refuses_and_the_follower_accepts_names_the_difference(
    writer: RegistryServer,
) -> None:
    """A follower given other credentials than the writer's accepts a token the writer
    refuses: the 401 says the instances differ, where it alone would blame the token."""
    store = FollowerStore()
    store.advertised_url = "http://follower:1"  # what a Kafka store advertises
    other = {**TOKENS, "orders": "follower-only-secret"}
    running = RegistryServer(create_app(store, credentials=Credentials(other)))
    running.start()
    try:
        store.route = WriteRoute.forward(writer.url, "the test writer", FORWARD_S)
        refused = HTTP.post(
            f"{running.url}/subjects/{SUBJECT}/versions",
            json={"schema": schema()},
            auth=("orders", other["orders"]),
        )
        assert (refused.status_code, refused.json()["error_code"]) == (401, 40101)
        assert refused.json()["message"].endswith(
            "(the writer, the test writer, refused a credential that the instance which "
            "forwarded it, http://follower:1, accepts: unless it was revoked a moment ago, "
            "the registry instances have different credentials; give every instance the "
            "same MESH_REGISTRY_CREDENTIALS or credentials file)"
        )
        # A credential both accept goes through; no credential gets the writer's plain 401.
        admin = HTTP.put(f"{running.url}/config", json={"compatibility": "FULL"}, auth=ADMIN)
        assert admin.status_code == 200, admin.text
        anonymous = HTTP.post(
            f"{running.url}/subjects/{SUBJECT}/versions", json={"schema": schema()}
        )
        assert anonymous.status_code == 401
        assert "instances" not in anonymous.json()["message"]
    finally:
        running.stop()


def test_no_writer_a_dead_writer_and_a_forwarding_loop_answer_503_with_retry_after(
    follower: tuple[RegistryServer, FollowerStore],
) -> None:
    server, store = follower
    body = {"schema": schema()}
    none = HTTP.post(f"{server.url}/subjects/{SUBJECT}/versions", json=body, auth=ORDERS)
    assert (none.status_code, none.json()["error_code"]) == (503, 50302)
    assert none.json()["message"] == "no writer yet: retry"
    assert none.headers["retry-after"] == "3"

    dead = f"http://127.0.0.1:{free_port()}"
    store.route = WriteRoute.forward(dead, f"writer id 'w' (at {dead})", 5.0, retry_after=2)
    gone = HTTP.post(f"{server.url}/subjects/{SUBJECT}/versions", json=body, auth=ORDERS)
    assert (gone.status_code, gone.json()["error_code"]) == (503, 50302)
    assert gone.json()["message"].startswith(
        f"registry write not forwarded: the writer, writer id 'w' (at {dead}), does not answer "
        f"(connection refused: nothing listens at that address); if it is down, another "
        f"instance takes over once its claim lapses: retry"
    )
    assert gone.headers["retry-after"] == "2"

    looped = HTTP.post(
        f"{server.url}/subjects/{SUBJECT}/versions",
        content=json.dumps(body),
        headers={FORWARDED_BY: "http://other:8081", "content-type": "application/json"},
        auth=ORDERS,
    )
    assert looped.status_code == 503, looped.text
    assert looped.json()["message"].startswith(
        "registry write forwarded by http://other:8081 to this instance, which is not the writer"
    )


def test_the_client_rides_out_a_moving_writer_and_gives_up_after_its_retry_time(
    writer: RegistryServer, follower: tuple[RegistryServer, FollowerStore]
) -> None:
    server, store = follower
    store.route = WriteRoute.nowhere("no writer yet: retry", 1)
    # The writer appears while the client waits: the same call then registers, once.
    takeover = threading.Timer(
        1.5, lambda: setattr(store, "route", WriteRoute.forward(writer.url, "writer w", FORWARD_S))
    )
    takeover.start()
    with RegistryClient(server.url, principal="orders", token=TOKENS["orders"]) as client:
        schema_id = client.register_schema(SUBJECT, schema())
        assert client.http_calls >= 2  # at least one answer said "retry"
    takeover.join()
    registered = HTTP.get(f"{writer.url}/subjects/{SUBJECT}/versions", auth=ORDERS).json()
    assert registered == [1]
    assert HTTP.get(f"{writer.url}/schemas/ids/{schema_id}").status_code == 200

    # No writer for longer than the client's retry time: the 503 reaches the caller.
    store.route = WriteRoute.nowhere("no writer yet: retry", 1)
    with RegistryClient(
        server.url, principal="orders", token=TOKENS["orders"], retry_seconds=1.0
    ) as impatient:
        with pytest.raises(RegistryUnavailableError, match="no writer yet: retry") as raised:
            impatient.register_schema(SUBJECT, schema("coupon"))
        assert impatient.http_calls >= 2
    assert (raised.value.status, raised.value.error_code) == (503, 50302)


def test_the_client_does_not_retry_a_wrong_credential(writer: RegistryServer) -> None:
    with RegistryClient(writer.url, principal="orders", token="wrong") as client:
        codes = []
        for _ in range(40):  # until the per-address failure limit trips (429 42901)
            calls = client.http_calls
            with pytest.raises(RegistryError) as raised:
                client.register_schema(SUBJECT, schema())
            assert client.http_calls == calls + 1  # each answer reached the caller at once
            codes.append(raised.value.error_code)
            if codes[-1] == 42901:
                break
        assert codes[0] == 40101
        assert codes[-1] == 42901, codes


SESSION_SECRET = "forwarding-test-session-secret-of-some-length"


def _portal_follower(scheme: str) -> tuple[TestClient, FollowerStore]:
    store = FollowerStore()
    app = create_app(store, credentials=Credentials(TOKENS), session_secret=SESSION_SECRET)
    return TestClient(app, base_url=f"{scheme}://testserver"), store


def test_a_sign_out_form_with_no_writer_gets_the_portals_page_not_the_apis_json() -> None:
    """A browser posting the sign-out form to a follower that could not forward it got the
    API's JSON 503 (h56)."""
    browser, _store = _portal_follower("http")
    answer = browser.post("/ui/logout", data={"csrf": "x"}, follow_redirects=False)
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["retry-after"] == "3"
    assert "no writer yet: retry" in answer.text
    api = browser.post(f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS)
    assert (api.status_code, api.json()["error_code"]) == (503, 50302)  # the API: JSON


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_cookies_the_writer_sets_on_a_forwarded_form_are_secure_when_the_browser_is(
    writer: RegistryServer, scheme: str, secure: bool
) -> None:
    """The writer is reached over the instances' own scheme (plain HTTP here) and set the
    forwarded form's cookies without ``Secure``, though the browser came over HTTPS (h57)."""
    browser, store = _portal_follower(scheme)
    store.route = WriteRoute.forward(
        writer.url, f"writer (at {writer.url})", FORWARD_S, retry_after=2
    )
    answer = browser.post("/ui/logout", data={"csrf": "x"}, follow_redirects=False)
    cookies = answer.headers.get_list("set-cookie")
    assert cookies, answer.text  # the writer's answer sets the CSRF cookie of its sign-in form
    assert all(("; Secure" in cookie) is secure for cookie in cookies), cookies


def test_secure_is_added_once() -> None:
    assert secure_cookie("a=b; Path=/ui") == "a=b; Path=/ui; Secure"
    assert secure_cookie("a=b; Path=/ui; secure") == "a=b; Path=/ui; secure"
    assert secure_cookie("secure=1; Path=/") == "secure=1; Path=/; Secure"  # a name, not a flag
