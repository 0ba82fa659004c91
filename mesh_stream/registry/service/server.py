"""Run the registry: build it from settings and serve it with uvicorn (CLI and test fixture)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.registry_hook import governance_validators
from mesh_stream.registry.problems import DescriptorValidator
from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.settings import MeshSettings


def credentials_from_settings(settings: MeshSettings) -> Credentials | None:
    """Credentials from the file or ``MESH_REGISTRY_CREDENTIALS``; None only in open mode."""
    if settings.registry_credentials_file is not None:
        return Credentials.load(settings.registry_credentials_file)
    if settings.registry_credentials is not None:
        return Credentials.parse(settings.registry_credentials.get_secret_value())
    if settings.registry_open_writes:
        return None
    raise ConfigurationError(
        "the registry needs credentials: set MESH_REGISTRY_CREDENTIALS="
        "'admin:<token>,<domain>:<token>,...' or MESH_REGISTRY_CREDENTIALS_FILE "
        "(`mesh registry serve --credentials FILE`), or pass --open-writes for a local "
        "sandbox where everyone is admin"
    )


def build_registry(
    settings: MeshSettings, *, validators: Sequence[DescriptorValidator] | None = None
) -> tuple[FastAPI, KafkaStore]:
    """The app over a Kafka store on ``settings``' broker (replayed before this returns).

    ``validators=None`` means the governance policies (see ``MESH_REGISTRY_GOVERNANCE``,
    ``MESH_GOVERNANCE_ROOT``).
    """
    if validators is None:
        validators = governance_validators(settings)
    credentials = credentials_from_settings(settings)
    store = KafkaStore(
        settings.resolved_bootstrap_servers(),
        topic=settings.registry_topic,
        transactional_id=settings.registry_writer_id,
    )
    app = create_app(
        store,
        credentials=credentials,
        validators=validators,
        read_requires_auth=settings.registry_read_requires_auth,
    )
    return app, store


class RegistryServer:
    """uvicorn in a background thread; ``port=0`` picks a free port (see :attr:`url`)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._run, name="registry-http", daemon=True)
        self.port = port

    def _run(self) -> None:
        # uvicorn ends with sys.exit(1) when it cannot bind; keep that inside the thread,
        # start() reports it.
        with contextlib.suppress(SystemExit):
            self._server.run()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the registry HTTP server did not start on {self.host}:{self.port}; "
                    f"is the port taken? choose another with `mesh registry serve --port`"
                )
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
