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

#: The suite's brokers live for seconds to minutes: with the JIT's first tier only they
#: start on about half the CPU (MESH_BROKER_JVM_OPTIONS), which a loaded run needs more than
#: peak broker speed. Inherited by every broker the tests start, in-process or through the
#: CLI; a run can set its own.
os.environ.setdefault("MESH_BROKER_JVM_OPTIONS", "-XX:TieredStopAtLevel=1")

#: The files that take longest (minutes each, from `--durations=0` of a full run), longest
#: first. The suite runs them first so that on its workers (pytest-xdist, a whole file per
#: worker, `--no-loadscope-reorder`) the many short files fill in at the end and the workers
#: finish together, instead of one worker running a long file alone at the end. Only an
#: order: a file missing here or gone from the suite changes no result.
LONGEST_FIRST = (
    "tests/integration/test_verify.py",
    "tests/integration/test_rekey_stage.py",
    "tests/integration/test_processor_scale_out.py",
    "tests/integration/test_up_secure.py",
    "tests/integration/test_health_in_mesh.py",
    "tests/integration/test_registry_cluster.py",
    "tests/integration/test_processors.py",
    "tests/integration/test_tutorial.py",
    "tests/integration/test_monitor_bench.py",
    "tests/integration/test_consumer_at_least_once.py",
    "tests/integration/test_broker_security.py",
    "tests/integration/test_registry_outage.py",
    "tests/integration/test_registry_restart.py",
    "tests/integration/test_up.py",
    "tests/integration/test_acl_ownership.py",
    "tests/integration/test_up_local.py",
    "tests/integration/test_registry_leader_loss.py",
    "tests/integration/test_broker_cli.py",
    "tests/integration/test_topic_replication.py",
    "tests/integration/test_wheel_install.py",
    "tests/integration/test_registry_bad_input.py",
    "tests/integration/test_simulators.py",
    "tests/unit/cli/test_hostile_inputs.py",
    "tests/integration/test_domain_workflow.py",
    "tests/integration/test_monitor.py",
)


def _run_order(item: pytest.Item) -> tuple[int, int]:
    """Longest files first, then the other integration and browser files, then unit tests."""
    path = item.nodeid.split("::", 1)[0]
    if path in LONGEST_FIRST:
        return (0, LONGEST_FIRST.index(path))
    return (1 if not path.startswith("tests/unit/") else 2, 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_run_order)  # stable: files keep their tests in order


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
