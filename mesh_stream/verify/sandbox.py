"""A throwaway Kafka and registry that `mesh verify` runs a processor on.

The processor's topics are named after its products, so running it next to a live mesh
would read and write that mesh's topics. Verify therefore starts its own single-node Kafka
(the launcher of `mesh broker start`, on free ports, in the run's work folder) and its own
registry (in this process, on a free port, state in that Kafka, no governance policies:
verify judges the processing, not the contracts), and deletes both when it ends.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from pydantic import SecretStr

from mesh_stream.broker import local_cluster
from mesh_stream.errors import BrokerError
from mesh_stream.kafka.clients import make_producer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings

__all__ = ["Sandbox", "open_sandbox"]

#: The one principal of the sandbox registry.
PRINCIPAL = "admin"


@dataclass(frozen=True)
class Sandbox:
    """Where the throwaway Kafka and registry listen, and settings that reach them."""

    settings: MeshSettings
    work_dir: Path

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.resolved_bootstrap_servers()

    @property
    def registry_url(self) -> str:
        return self.settings.registry_url

    def registry(self) -> RegistryClient:
        return RegistryClient.from_settings(self.settings)

    def worker_environment(self) -> dict[str, str]:
        """The ``MESH_*`` variables a worker needs to run on the sandbox."""
        token = self.settings.registry_token
        assert token is not None
        return {
            "MESH_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "MESH_REGISTRY_URL": self.registry_url,
            "MESH_REGISTRY_PRINCIPAL": PRINCIPAL,
            "MESH_REGISTRY_TOKEN": token.get_secret_value(),
            "MESH_DATA_DIR": str(self.work_dir / "workers"),
        }


def _plain_settings(settings: MeshSettings, **changes: object) -> MeshSettings:
    """``settings`` with the live mesh's connection and registry choices replaced: the
    sandbox is PLAINTEXT, its registry has one generated credential."""
    return settings.model_copy(
        update={
            "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": None,
            "kafka_sasl_username": None,
            "kafka_sasl_password": None,
            "kafka_ssl_ca_location": None,
            "kafka_ssl_certificate_location": None,
            "kafka_ssl_key_location": None,
            "kafka_client_id": None,
            "registry_credentials_file": None,
            "registry_open_writes": False,
            "registry_read_requires_auth": False,
            "registry_advertised_url": None,
            "registry_topic": "_mesh_registry",
            "registry_writer_id": "mesh-verify-registry",
            **changes,
        }
    )


def _await_transaction_coordinator(conn: KafkaConnection) -> None:
    """Until a fresh broker's transaction coordinator answers, quietly: the registry's
    transactional producer would otherwise print librdkafka's retries on stderr."""
    producer = make_producer(conn, {"transactional.id": "mesh-verify-warm-up", "log_level": 0})
    try:
        producer.init_transactions(60)
    except KafkaException as exc:
        raise BrokerError(
            f"the throwaway Kafka at {conn.bootstrap_servers} did not start its transaction "
            f"coordinator within 60 s: {exc}"
        ) from exc


#: JVM options of the throwaway broker when MESH_BROKER_JVM_OPTIONS is unset.
QUICK_START_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


@contextmanager
def open_sandbox(
    settings: MeshSettings, work_dir: Path, progress: Callable[[str], None]
) -> Iterator[Sandbox]:
    """Start a one-node Kafka and a registry under ``work_dir``; stop both on exit."""
    with ExitStack() as stack:
        # The launcher's lines say when Kafka's jars are fetched (a first run takes minutes).
        # A throwaway broker that lives a minute starts on half the CPU with the JIT's first
        # tier only (unless MESH_BROKER_JVM_OPTIONS says otherwise).
        update: dict[str, object] = {"data_dir": work_dir}
        if not settings.broker_jvm_options.strip():
            update["broker_jvm_options"] = QUICK_START_JVM_OPTIONS
        cluster = local_cluster(settings.model_copy(update=update), progress)
        progress("starting a throwaway Kafka (one node, free ports) ...")
        state = cluster.start(brokers=1, port=0, timeout=settings.broker_start_timeout)
        stack.callback(cluster.stop)
        _await_transaction_coordinator(KafkaConnection.create(state.bootstrap_servers))
        token = secrets.token_urlsafe(18)
        registry_settings = _plain_settings(
            settings,
            bootstrap_servers=state.bootstrap_servers,
            data_dir=work_dir,
            registry_credentials=SecretStr(f"{PRINCIPAL}:{token}"),
        )
        app, store = build_registry(registry_settings, validators=(), progress=lambda _l: None)
        stack.callback(store.close)
        server = RegistryServer(app)
        url = server.start()
        stack.callback(server.stop)
        sandbox_settings = registry_settings.model_copy(
            update={
                "registry_url": url,
                "registry_principal": PRINCIPAL,
                "registry_token": SecretStr(token),
                "registry_credentials": None,
            }
        )
        progress(f"sandbox: Kafka at {state.bootstrap_servers}, registry at {url}")
        yield Sandbox(sandbox_settings, work_dir)
