"""Where the benchmark runs: the configured broker/registry, or throw-away local ones.

With ``MESH_BOOTSTRAP_SERVERS`` set the benchmark uses that Kafka; otherwise it starts its
own one-node KRaft broker on free ports with a temporary data directory. With
``MESH_REGISTRY_URL`` set it uses that registry (credentials from
``MESH_REGISTRY_PRINCIPAL``/``MESH_REGISTRY_TOKEN``); otherwise it serves an in-process
registry on a free port, with its state in a topic of its own on the benchmark's broker.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from mesh_stream.broker import local_cluster
from mesh_stream.settings import MeshSettings

BENCH_DOMAIN = "bench"
BENCH_TOKEN = "bench-secret"


@dataclass(frozen=True)
class BenchEnvironment:
    bootstrap_servers: str
    registry_url: str
    principal: str | None
    token: str | None
    broker_origin: str  # "configured" or "local (started for this run)"
    registry_origin: str
    #: A credential that may write any domain (the processing benchmark makes its own).
    admin_principal: str | None = None
    admin_token: str | None = None


@contextlib.contextmanager
def bench_environment(
    settings: MeshSettings, progress: Callable[[str], None] = print
) -> Iterator[BenchEnvironment]:
    """Yield a broker and a registry for the benchmark; stop whatever was started here.

    "Configured" means given in ``settings`` (flags or ``MESH_*`` variables), which
    pydantic-settings records in ``model_fields_set``.
    """
    with contextlib.ExitStack() as stack:
        if settings.bootstrap_servers:
            bootstrap, broker_origin = settings.bootstrap_servers, "configured"
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="mesh-bench-"))
            stack.callback(shutil.rmtree, data_dir, True)
            local = settings.model_copy(update={"data_dir": data_dir})
            cluster = local_cluster(local, progress=progress)
            state = cluster.start(brokers=1, port=0, timeout=local.broker_start_timeout)
            stack.callback(cluster.stop)
            bootstrap, broker_origin = state.bootstrap_servers, "local (started for this run)"
        if "registry_url" in settings.model_fields_set:
            token = settings.registry_token.get_secret_value() if settings.registry_token else None
            yield BenchEnvironment(
                bootstrap,
                settings.registry_url,
                settings.registry_principal,
                token,
                broker_origin,
                "configured",
                settings.registry_principal,
                token,
            )
            return
        from mesh_stream.registry.service.server import RegistryServer, build_registry

        session = uuid.uuid4().hex[:8]
        registry_settings = settings.model_copy(
            update={
                "bootstrap_servers": bootstrap,
                "registry_credentials": SecretStr(
                    f"admin:bench-admin-{session},{BENCH_DOMAIN}:{BENCH_TOKEN}"
                ),
                "registry_credentials_file": None,
                "registry_topic": f"_mesh_registry-bench-{session}",
                "registry_writer_id": f"mesh-registry-bench-{session}",
            }
        )
        app, store = build_registry(registry_settings, validators=[])
        stack.callback(store.close)
        server = RegistryServer(app)
        url = server.start()
        stack.callback(server.stop)
        progress(f"in-process registry at {url}")
        yield BenchEnvironment(
            bootstrap,
            url,
            BENCH_DOMAIN,
            BENCH_TOKEN,
            broker_origin,
            "in-process (this run)",
            "admin",
            f"bench-admin-{session}",
        )
