"""A registry of its own (its own topic on the session broker) holding the sample mesh, for
tests that read the whole mesh through the registry (the exports): the session registry is
shared with tests that register sample product names their own way."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from mesh_stream.settings import MeshSettings
from tests.browser.portal import TOKENS, register_sample_mesh


@contextmanager
def sample_registry(
    bootstrap_servers: str, label: str, *, leave_out: Collection[str] = ()
) -> Iterator[str]:
    """Its URL, with every sample product but ``leave_out`` registered (credentials: the
    browser tests' ``TOKENS``; no product topic is created)."""
    from mesh_stream.registry.service.server import RegistryServer, build_registry

    session = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=bootstrap_servers,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in TOKENS.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-{label}-{session}",
        registry_writer_id=f"mesh-registry-{label}-{session}",
    )
    app, store = build_registry(settings)
    server = RegistryServer(app)
    try:
        url = server.start()
        register_sample_mesh(url, None, leave_out=leave_out)
        yield url
    finally:
        server.stop()
        store.close()
