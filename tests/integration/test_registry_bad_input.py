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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

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
        yield Running(url, config)
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


def test_log_replays_to_the_served_state(running: Running) -> None:
    oversized = httpx.post(
        f"{running.url}/subjects/{SUBJECT}/versions",
        content=b"[" + b"1," * (600 * 1024) + b"1]",
        headers={"content-type": "application/json"},
        auth=ADMIN,
    )
    assert oversized.status_code == 413
    served = observe(running.url)
    # A second, read-only instance with its own writer id replays the same topic.
    replica_settings = running.settings.model_copy(
        update={"registry_writer_id": running.settings.registry_writer_id + "-replica"}
    )
    app, store = build_registry(replica_settings, validators=())
    replica = RegistryServer(app)
    try:
        assert observe(replica.start()) == served
    finally:
        replica.stop()
        store.close()


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
