"""Run the registry: build it from settings and serve it with uvicorn (CLI and test fixture)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence

import uvicorn
from fastapi import FastAPI

from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.registry_hook import governance_validators
from mesh_stream.kafka.connection import QUIET_LOG_LEVEL, KafkaConnection
from mesh_stream.registry.problems import DescriptorValidator
from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.edge import EdgeLimits
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.product_health import KafkaHealthFeed, stale_after_ms
from mesh_stream.registry.service.sample import ProductSampler
from mesh_stream.settings import MeshSettings

#: How to move the registry to another port, for both ways it is started: the server cannot
#: tell which (`mesh up` runs `mesh registry serve --port` with the port of its URL).
CHOOSE_ANOTHER_PORT = (
    "choose another port: with `mesh registry serve --port PORT` (0 picks a free one), or, "
    "for the registry `mesh up` starts, in MESH_REGISTRY_URL (e.g. http://127.0.0.1:8082)"
)


def credentials_from_settings(settings: MeshSettings) -> Credentials | None:
    """Credentials from the file or ``MESH_REGISTRY_CREDENTIALS``; None only in open mode."""
    given = (
        f"--credentials / MESH_REGISTRY_CREDENTIALS_FILE={settings.registry_credentials_file}"
        if settings.registry_credentials_file is not None
        else "MESH_REGISTRY_CREDENTIALS"
        if settings.registry_credentials is not None
        else None
    )
    if settings.registry_open_writes and given is not None:
        raise ConfigurationError(
            f"--open-writes (MESH_REGISTRY_OPEN_WRITES) lets everyone write, but credentials "
            f"are given too ({given}); drop one of them"
        )
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
    settings: MeshSettings,
    *,
    validators: Sequence[DescriptorValidator] | None = None,
    wait_for_replay: bool = True,
    progress: Callable[[str], None] | None = None,
    advertised_url: str | None = None,
) -> tuple[FastAPI, KafkaStore]:
    """The app over a Kafka store on ``settings``' broker (replayed before this returns).

    ``validators=None`` means the governance policies (see ``MESH_REGISTRY_GOVERNANCE``,
    ``MESH_GOVERNANCE_ROOT``). ``wait_for_replay=False`` returns once Kafka answered and
    replays in the background (``/health/ready`` says how far; other routes answer 503).
    ``progress`` receives the replay progress lines (default: the module's logger).
    ``advertised_url`` (default ``MESH_REGISTRY_ADVERTISED_URL``) is where the other
    instances on the topic forward writes while this one is the writer.
    """
    if validators is None:
        validators = governance_validators(settings)
    credentials = credentials_from_settings(settings)
    store = KafkaStore(
        KafkaConnection.from_settings(settings, default_client_id="mesh-registry").replace(
            client_log_level=QUIET_LOG_LEVEL
        ),
        topic=settings.registry_topic,
        transactional_id=settings.resolved_registry_writer_id,
        writer_lease=settings.registry_writer_lease_seconds,
        advertised_url=advertised_url or settings.registry_advertised_url,
        progress=progress,
    )
    health_feed = KafkaHealthFeed(store.connection, settings.health_topic)
    store.on_close(health_feed.close)
    app = create_app(
        store,
        credentials=credentials,
        validators=validators,
        read_requires_auth=settings.registry_read_requires_auth,
        limits=EdgeLimits.from_settings(settings),
        wait_for_replay=wait_for_replay,
        health_feed=health_feed,
        session_secret=(
            settings.registry_session_secret.get_secret_value()
            if settings.registry_session_secret is not None
            else None
        ),
        public_url=settings.registry_public_url,
    )
    app.state.services.health.stale_after_ms = stale_after_ms(settings.monitor_interval_seconds)
    app.state.services.samples = ProductSampler(store.connection, app.state.services.products)
    return app, store


def default_advertised_url(host: str, port: int) -> str:
    """``http://host:port``; a wildcard host (``0.0.0.0``, ``::``) becomes this host's name."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound *before* the registry joins Kafka.

    Binding first matters: the port is part of the URL this instance advertises to the
    others, and an instance that takes the writer role fences the previous writer, so a
    ``mesh registry serve`` that only then found its port taken would have done harm.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: unknown host ({exc.strerror}); "
            f"fix `mesh registry serve --host`"
        ) from exc
    family, kind, proto, _canonical, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror}; is the port taken (another "
            f"registry?) {CHOOSE_ANOTHER_PORT}"
        ) from exc
    return listener


class RegistryServer:
    """uvicorn in a background thread; ``port=0`` picks a free port (see :attr:`url`).

    Pass ``listener`` (from :func:`bind_listener`) to serve on a socket bound earlier.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        listener: socket.socket | None = None,
    ) -> None:
        self.host = host
        if listener is not None:
            port = listener.getsockname()[1]
        self._listener = listener
        # uvicorn's lines go to the root logger, in the format the entry point chose; the
        # app's own access log (mesh_stream.registry.access) replaces uvicorn's.
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                log_config=None,
                access_log=False,
                lifespan="off",
                # The peer's address is the client's: a forwarded-for header (which uvicorn
                # trusts from 127.0.0.1 by default) would let any local caller pick the
                # address its failed sign-ins count against.
                proxy_headers=False,
            )
        )
        self._thread = threading.Thread(target=self._run, name="registry-http", daemon=True)
        self.port = port

    def _run(self) -> None:
        # uvicorn ends with sys.exit(1) when it cannot bind; keep that inside the thread,
        # start() reports it.
        sockets = [self._listener] if self._listener is not None else None
        with contextlib.suppress(SystemExit):
            self._server.run(sockets=sockets)

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
                    f"is the port taken? {CHOOSE_ANOTHER_PORT}"
                )
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
