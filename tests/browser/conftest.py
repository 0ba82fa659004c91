"""The portal in a real browser: Debian's headless Chromium driven by Playwright.

Every test here is an integration test (a real broker and registry). The fixtures:

- ``portal_mesh`` (session): a Kafka cluster of its own (the sample products' topic names are
  shared with the processor tests on the session broker, so this mesh keeps its records
  apart) and an in-process registry on it with read auth OFF, holding the whole sample mesh:
  the 12 products of ``domains/`` registered sources first (schemas, descriptors,
  compatibility levels) and their topics created. On top of that:

  - ``DIFF_PRODUCT`` has a second schema version that adds ``DIFF_FIELD`` (an
    optional, documented field), so a version diff has something to show;
  - ``SAMPLE_PRODUCT`` (``customers.customer-profile``, fields ``full_name``, ``email``
    and ``phone`` marked PII) holds ``SAMPLE_RECORDS``, published with the SDK;
  - ``HEALTH_PRODUCTS`` each have monitor health records every 10 minutes over the last
    3 hours on the registry's health topic (freshness and volume figures, all ``ok``), so
    product pages can chart their history.

  Credentials: ``admin:admin-secret`` and ``<domain>:<domain>-secret`` per sample domain.
- ``secured_portal`` (session): a second registry over the same topic and cluster, with read
  auth ON (the same data; every page needs a sign-in).
- ``browser`` (session) and ``page`` (per test, a fresh context: no cookies carried over).
- in ``tests/browser/portal.py`` (import from there): the constants above, ``sign_in(page,
  portal, principal)``, ``axe_violations(page)`` and ``screenshot(page, name)`` (PNG under
  ``tests/browser/artifacts/``, kept by CI as test artifacts; docs/how-to/portal.md shows
  copies).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.settings import MeshSettings
from tests.browser.portal import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TOKENS,
    PortalMesh,
    portal_settings,
    publish_health,
    publish_sample_records,
    register_sample_mesh,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def portal_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node cluster only the portal tests use (see the module docstring)."""
    from tests.integration.own_broker import own_cluster, running

    with own_cluster(tmp_path_factory.mktemp("portal-kafka")) as cluster:
        yield running(cluster)


@pytest.fixture(scope="session")
def portal_session_id() -> str:
    return uuid.uuid4().hex[:8]


def _serve(settings: MeshSettings) -> Iterator[str]:
    from mesh_stream.registry.service.server import RegistryServer, build_registry

    app, store = build_registry(settings)
    server = RegistryServer(app)
    try:
        yield server.start()
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="session")
def portal_mesh(portal_cluster: str, portal_session_id: str) -> Iterator[PortalMesh]:
    settings = portal_settings(portal_cluster, portal_session_id, read_auth=False)
    connection = KafkaConnection.create(portal_cluster, client_id="portal-tests")
    publish_health(connection, settings)
    for url in _serve(settings):
        products = register_sample_mesh(url, connection)
        publish_sample_records(url, portal_cluster)
        yield PortalMesh(url, dict(TOKENS), products, False, portal_cluster)


@pytest.fixture(scope="session")
def secured_portal(
    portal_mesh: PortalMesh, portal_cluster: str, portal_session_id: str
) -> Iterator[PortalMesh]:
    """The same registry topic served by a second instance that requires a credential."""
    settings = portal_settings(portal_cluster, portal_session_id, read_auth=True)
    for url in _serve(settings):
        yield PortalMesh(url, dict(TOKENS), list(portal_mesh.products), True, portal_cluster)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module: Playwright's sync API keeps an event loop running in
    this thread while it is open, so a later module's ``asyncio.run`` would fail under it."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        context.close()
