"""Property tests: whatever a client sends, the registry answers 4xx with a Confluent body,
never 500, and the store stays intact (replaying it gives the same answers)."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh_stream.registry.service import InMemoryStore
from mesh_stream.registry.service.state import RegistryState
from tests.unit.registry.conftest import ADMIN, descriptor, make_client, schema

SUBJECT = "orders.order-placed.v1-value"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "../etc/passwd", "a/../b", "%2e%2e", "ünïcödé.x-value", "a\x00b"]),
    st.text(min_size=256, max_size=300, alphabet="ab"),
)
versions = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["latest", "-1", "0", "1.5", "", "\uff11", "99999999999"]),
    st.text(max_size=12),
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps({"schema": json.dumps(v)}).encode()),
    st.text(max_size=50).map(lambda t: json.dumps({"schema": t}).encode()),
)


def _setup() -> tuple[InMemoryStore, TestClient, list[object]]:
    store = InMemoryStore()
    client = make_client(store)
    client.post(f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ADMIN)
    client.put("/products/orders.order-placed", json=descriptor(), auth=ADMIN)
    return store, client, _observe(client)


def _observe(client: TestClient) -> list[object]:
    get = client.get
    return [
        get("/subjects").json(),
        get(f"/subjects/{SUBJECT}/versions/latest").json(),
        get("/products").json(),
        get("/config").json(),
    ]


def _assert_clean_error(response: httpx.Response) -> None:
    status = response.status_code
    assert status < 500, response.text
    if status >= 400:
        body = response.json()
        assert isinstance(body["error_code"], int)
        assert body["message"]


def _view(state: RegistryState) -> tuple[object, ...]:
    return (state.schemas, state.versions, state.configs, state.products, state.max_id)


def _fold(store: InMemoryStore) -> tuple[object, ...]:
    """The state a restarted service would build from the stored log."""
    state = RegistryState()
    for record in store.records:
        state.apply(record)
    return _view(state)


# One registry for all examples: each request must leave it intact or changed only validly.
_SHARED: tuple[InMemoryStore, TestClient] = _setup()[:2]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    route=st.sampled_from(
        [
            "/subjects/{name}/versions",
            "/subjects/{name}/versions/{version}",
            "/subjects/{name}",
            "/config/{name}",
            "/compatibility/subjects/{name}/versions/{version}",
            "/schemas/ids/{version}",
            "/products/{name}",
            "/products/{name}/lineage",
            "/products/{name}/health",
            "/products/{name}/health/history?minutes={version}",
        ]
    ),
    name=names,
    version=versions,
    body=bodies,
    content_type=st.sampled_from(
        ["application/json", "application/vnd.schemaregistry.v1+json", "text/plain"]
    ),
)
def test_any_request_gets_a_4xx_not_a_500_and_keeps_the_store(
    method: str, route: str, name: str, version: str, body: bytes, content_type: str
) -> None:
    store, client = _SHARED
    before = _observe(client)
    path = route.format(name=quote(name, safe=""), version=quote(version, safe=""))
    response = client.request(
        method,
        path,
        content=body if method in ("POST", "PUT") else None,
        headers={"content-type": content_type},
        auth=ADMIN,
    )
    _assert_clean_error(response)
    if response.status_code >= 400:
        assert _observe(client) == before
    assert _fold(store) == _view(client.app.state.services.schemas.state)


@settings(max_examples=40, deadline=None)
@given(name=names)
def test_strange_subject_names_are_refused_clearly_or_work(name: str) -> None:
    _store, client, _before = _setup()
    response = client.post(
        f"/subjects/{quote(name, safe='')}/versions", json={"schema": schema()}, auth=ADMIN
    )
    _assert_clean_error(response)
    if response.status_code == 200:
        fetched = client.get(f"/subjects/{quote(name, safe='')}/versions/1")
        assert fetched.json()["subject"] == name


def test_named_bad_inputs() -> None:
    _store, client, _before = _setup()
    post = client.post
    malformed = post(
        f"/subjects/{SUBJECT}/versions",
        content=b"{nope",
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert (malformed.status_code, malformed.json()["error_code"]) == (400, 40001)
    deep = post(
        f"/subjects/{SUBJECT}/versions",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert (deep.status_code, deep.json()["error_code"]) == (400, 40001)
    nested = post(f"/subjects/{SUBJECT}/versions", json={"schema": "[" * 5000 + "]" * 5000})
    assert (nested.status_code, nested.json()["error_code"]) == (401, 40101)
    nested = post(
        f"/subjects/{SUBJECT}/versions", json={"schema": "[" * 5000 + "]" * 5000}, auth=ADMIN
    )
    assert (nested.status_code, nested.json()["error_code"]) == (422, 42201)
    assert "nested too deeply" in nested.json()["message"]
    avro = post(f"/subjects/{SUBJECT}/versions", json={"schema": '{"type": "recrod"}'}, auth=ADMIN)
    assert (avro.status_code, avro.json()["error_code"]) == (422, 42201)
    assert "recrod" in avro.json()["message"]
    big = post(
        f"/subjects/{SUBJECT}/versions",
        content=b" " * (1024 * 1024 + 1),
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert (big.status_code, big.json()["error_code"]) == (413, 41301)
    traversal = post(
        f"/subjects/{quote('../../etc', safe='')}/versions", json={"schema": schema()}, auth=ADMIN
    )
    assert (traversal.status_code, traversal.json()["error_code"]) == (422, 42215)
    absurd = client.get(f"/subjects/{SUBJECT}/versions/4294967296")
    assert (absurd.status_code, absurd.json()["error_code"]) == (422, 42202)
    unknown = client.get("/subjects/orders.none.v1-value/versions")
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, 40401)
    protobuf = post(
        f"/subjects/{SUBJECT}/versions",
        json={"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"},
        auth=ADMIN,
    )
    assert (protobuf.status_code, protobuf.json()["error_code"]) == (422, 42201)


def test_a_huge_unknown_product_name_is_not_echoed_whole() -> None:
    client = make_client()
    name = "orders." + "x" * 5_000
    for path in (f"/products/{name}", f"/products/{name}/health", f"/products/{name}/sample"):
        answer = client.get(path, auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (404, 40404), path
        message = answer.json()["message"]
        assert message.startswith("Product 'orders.xxxxx"), path
        assert "(5007 characters) not found" in message
        assert len(message) < 200
    short = client.get("/products/orders.nope", auth=ADMIN).json()["message"]
    assert short == "Product 'orders.nope' not found."
