"""Bad requests against the registry on its Kafka store: always a clean 4xx, and the log in
Kafka still replays into exactly the state the running instance serves."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mesh_stream.registry.service.app import is_public
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress

ADMIN = ("admin", "admin-secret")
SUBJECT = "orders.order-placed.v1-value"
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Placed",
        "doc": "An order.",
        "fields": [{"name": "order_id", "type": "string", "doc": "Order id."}],
    }
)


@dataclass(frozen=True)
class Running:
    url: str
    settings: MeshSettings
    app: FastAPI


@pytest.fixture(scope="module")
def running(kafka: KafkaAddress) -> Iterator[Running]:
    tag = uuid.uuid4().hex[:8]
    config = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr("admin:admin-secret"),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-bad-{tag}",
        registry_writer_id=f"bad-input-{tag}",
    )
    app, store = build_registry(config, validators=())
    server = RegistryServer(app)
    url = server.start()
    assert (
        httpx.post(
            f"{url}/subjects/{SUBJECT}/versions", json={"schema": SCHEMA}, auth=ADMIN
        ).status_code
        == 200
    )
    try:
        yield Running(url, config, app)
    finally:
        server.stop()
        store.close()


def observe(url: str) -> list[object]:
    subjects = httpx.get(f"{url}/subjects").json()
    return [
        subjects,
        [httpx.get(f"{url}/subjects/{quote(s, safe='')}/versions").json() for s in subjects],
        httpx.get(f"{url}/subjects/{SUBJECT}/versions/latest").json(),
        httpx.get(f"{url}/config").json(),
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST", "PUT", "DELETE"]),
    route=st.sampled_from(
        ["/subjects/{name}/versions", "/subjects/{name}", "/config/{name}", "/products/{name}"]
    ),
    name=st.one_of(st.text(max_size=30), st.sampled_from(["../x", "a/b", "..", "\u202e"])),
    body=st.one_of(
        st.binary(max_size=100),
        st.text(max_size=40).map(lambda t: json.dumps({"schema": t}).encode()),
        st.just(b"{" * 5000),
    ),
)
def test_bad_requests_never_500(
    running: Running, method: str, route: str, name: str, body: bytes
) -> None:
    response = httpx.request(
        method,
        running.url + route.format(name=quote(name, safe="")),
        content=body,
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["error_code"], int)


def test_a_registry_topic_that_is_not_compacted_is_refused(kafka: KafkaAddress) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from mesh_stream.errors import ConfigurationError

    topic = f"_mesh_registry-delete-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    created = admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "delete"})])
    created[topic].result(30)
    config = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr("admin:x"),
        registry_credentials_file=None,
        registry_topic=topic,
        registry_writer_id=f"w-{topic}",
    )
    with pytest.raises(ConfigurationError) as refused:
        build_registry(config, validators=())
    assert f"registry topic {topic!r} has cleanup.policy=delete" in str(refused.value)
    assert "MESH_REGISTRY_TOPIC" in str(refused.value)


#: A subject nobody registers: hostile calls (deletes too) cannot change the served state.
UNUSED = "orders.hostile.v1-value"


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves but health and docs, path parameters filled in."""
    found = []
    for route in iter_route_contexts(app.routes):
        if is_public(route) and route.path != "/":
            continue
        if route.path.startswith("/ui"):  # the portal's pages: tests/unit/registry/portal
            continue
        path = route.path
        for name in route.param_convertors:
            path = path.replace(f"{{{name}:path}}", UNUSED).replace(f"{{{name}}}", "1")
        found.extend((method, path) for method in sorted(route.methods - {"HEAD"}))
    return found


#: Hostile JSON bodies and what the edge answers to each, on every route.
HOSTILE: dict[str, tuple[bytes, int, int, str]] = {
    "malformed": (b'{"schema": ', 400, 40001, "malformed JSON body: Expecting value"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, 400, 40001, "nested over 20000 levels deep"),
    "not utf-8": (b'{"schema": "\xc3\x28"}', 400, 40001, "not valid UTF-8 at byte 12"),
    "huge int": (b'{"partitions": ' + b"7" * 10_000 + b"}", 400, 40001, "10000 digits"),
    "huge float": (b'{"partitions": 1e999}', 400, 40001, "1e999 is out of range"),
    "nan": (b'{"partitions": NaN}', 400, 40001, "NaN is not JSON"),
    "surrogate": (b'{"description": "\\ud800x"}', 422, 42216, "lone UTF-16 surrogate"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_route_answers_hostile_bodies_with_a_clean_4xx(running: Running, case: str) -> None:
    raw, status, code, text = HOSTILE[case]
    routes = _routes(running.app)
    assert len(routes) == 55  # a new route must answer hostile bodies too: count it here
    for method, path in routes:
        answer = httpx.request(
            method,
            running.url + path,
            content=raw,
            headers={"content-type": "application/vnd.schemaregistry.v1+json"},
            auth=ADMIN,
        )
        assert (answer.status_code, answer.json()["error_code"]) == (status, code), (
            method,
            path,
            answer.text,
        )
        assert text in answer.json()["message"]


def test_wrong_types_on_every_route_are_4xx(running: Running) -> None:
    for method, path in _routes(running.app):
        for body in ([1, 2], "text", 12, None, {"schema": 5, "compatibility": []}):
            answer = httpx.request(method, running.url + path, json=body, auth=ADMIN)
            assert answer.status_code < 500, (method, path, body, answer.text)
            if answer.status_code >= 400:
                assert isinstance(answer.json()["error_code"], int)


def test_a_lone_surrogate_is_a_422_and_the_next_write_of_any_domain_succeeds(
    running: Running,
) -> None:
    url = running.url
    schema = json.dumps(
        {
            "type": "record",
            "name": "Paid",
            "namespace": "payments",
            "doc": "\ud800",
            "fields": [{"name": "amount", "type": "double", "doc": "Amount."}],
        }
    )
    assert "\\ud800" in schema  # the escape, as a client sends it
    subject = f"payments.paid-{uuid.uuid4().hex[:6]}.v1-value"
    refused = httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": schema}, auth=ADMIN)
    assert refused.status_code == 422
    assert refused.json() == {
        "error_code": 42216,
        "message": "the schema has a lone UTF-16 surrogate (e.g. \\ud800) in doc; the registry "
        "stores UTF-8 text, which cannot hold it: send a valid character or a surrogate pair",
    }
    for path in (f"/subjects/{SUBJECT}", f"/compatibility/subjects/{SUBJECT}/versions"):
        answer = httpx.post(url + path, json={"schema": schema}, auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42216)
    descriptor = httpx.put(
        f"{url}/products/orders.order-placed",
        content=b'{"name": "orders.order-placed", "owner": {"team": "a\\udc00"}}',
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert descriptor.status_code == 422
    assert descriptor.json()["message"].startswith(
        "the JSON body has a lone UTF-16 surrogate (e.g. \\ud800) in owner.team;"
    )
    # Nothing was left half-written: the next writes, of two domains, succeed.
    fixed = schema.replace("\\ud800", "A payment.")
    written = httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": fixed}, auth=ADMIN)
    assert written.status_code == 200, written.text
    config = httpx.put(f"{url}/config/{SUBJECT}", json={"compatibility": "FULL"}, auth=ADMIN)
    assert config.json() == {"compatibility": "FULL"}
    assert httpx.delete(f"{url}/config/{SUBJECT}", auth=ADMIN).status_code == 200


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_json_on_any_route_never_500(running: Running, data: st.DataObject) -> None:
    method, path = data.draw(st.sampled_from(_routes(running.app)))
    leaf = st.one_of(
        st.text(max_size=20),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        # lone surrogates, a valid pair, and a backslash that only looks like an escape
        st.sampled_from(["\ud800", "a\udfff", "\ud83d\ude00", "x\\ud800"]),
    )
    document = data.draw(
        st.recursive(
            leaf,
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(
                    st.sampled_from(["schema", "name", "compatibility", "tags", "\udc00"]),
                    inner,
                    max_size=4,
                ),
            ),
            max_leaves=20,
        )
    )
    answer = httpx.request(
        method,
        running.url + path,
        content=json.dumps(document).encode(),
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json()["error_code"], int)


def test_log_replays_to_the_served_state(running: Running) -> None:
    oversized = httpx.post(
        f"{running.url}/subjects/{SUBJECT}/versions",
        content=b"[" + b"1," * (600 * 1024) + b"1]",
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert oversized.status_code == 413
    served = observe(running.url)
    # A second instance replays the same topic. It must use the same writer id (a second
    # writer id on one topic is refused), so it fences the first one's writer: this test
    # comes last in the module.
    app, store = build_registry(running.settings, validators=())
    replica = RegistryServer(app)
    try:
        assert observe(replica.start()) == served
    finally:
        replica.stop()
        store.close()
