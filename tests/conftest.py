"""Session fixtures shared by every test package.

``kafka`` yields the bootstrap address of a real Kafka broker, found in this order:
``MESH_BOOTSTRAP_SERVERS`` when set; a testcontainers ``apache/kafka`` container when a
Docker engine answers; else the project's own launcher (Kafka's jars from Maven Central,
KRaft, a throw-away data dir and free ports). Teardown stops only what it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mesh_stream.broker import local_cluster
from mesh_stream.settings import MeshSettings


@dataclass(frozen=True)
class KafkaAddress:
    """Where the test broker listens, and who started it."""

    bootstrap_servers: str
    origin: str  # "env", "testcontainers" or "local"


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaAddress]:
    configured = os.environ.get("MESH_BOOTSTRAP_SERVERS")
    if configured:
        yield KafkaAddress(configured, "env")
        return
    settings = MeshSettings()
    if _docker_answers():
        from testcontainers.core.waiting_utils import wait_for_logs

        from mesh_stream.broker.cluster import free_port
        from tests.kafka_container import official_kafka_container

        port = free_port()
        image = f"apache/kafka:{settings.kafka_version}"
        with official_kafka_container(image, port) as container:
            wait_for_logs(container, "Kafka Server started", timeout=180)
            yield KafkaAddress(f"127.0.0.1:{port}", "testcontainers")
        return
    data_dir = tmp_path_factory.mktemp("mesh-data")
    settings = settings.model_copy(update={"data_dir": data_dir})
    cluster = local_cluster(settings, progress=print)
    state = cluster.start(brokers=1, port=0, timeout=settings.broker_start_timeout)
    try:
        yield KafkaAddress(state.bootstrap_servers, "local")
    finally:
        cluster.stop()


SAMPLE_DOMAINS = ("orders", "payments", "shipping", "customers", "analytics")


@dataclass(frozen=True)
class RegistryAddress:
    """Where the test registry listens, and the tokens it accepts (principal -> token)."""

    url: str
    admin_token: str
    tokens: dict[str, str]


@pytest.fixture(scope="session")
def registry(kafka: KafkaAddress) -> Iterator[RegistryAddress]:
    """The real registry service (Kafka store on the test broker, own topic) on a free port.

    Credentials: ``admin:admin-secret`` and ``<domain>:<domain>-secret`` for each sample domain.
    """
    import uuid

    from pydantic import SecretStr

    from mesh_stream.registry.service.server import RegistryServer, build_registry

    tokens = {"admin": "admin-secret", **{d: f"{d}-secret" for d in SAMPLE_DOMAINS}}
    session = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in tokens.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-test-{session}",
        registry_writer_id=f"mesh-registry-test-{session}",
    )
    app, store = build_registry(settings)
    server = RegistryServer(app)
    try:
        url = server.start()
        yield RegistryAddress(url, tokens["admin"], tokens)
    finally:
        server.stop()
        store.close()
