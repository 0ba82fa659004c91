"""A processor never creates its inputs' topics: an input the registry has but the cluster
lacks stops the worker's preparation with one message naming it and its domain, before the
output is registered or any topic made (until December 2026 the processor created it, with
the reader's principal, as if it owned the product)."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from domains.analytics.processors import revenue
from mesh_stream.descriptor import load_descriptor
from mesh_stream.errors import ConfigurationError, SubjectNotFoundError
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.processing import app as processing_app
from mesh_stream.project import load_project
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"admin": "admin-secret", "orders": "orders-secret", "analytics": "analytics-secret"}


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    running.start()
    yield running
    running.stop()


def test_an_input_without_its_topic_stops_the_processor_naming_it_and_creates_nothing(
    kafka: KafkaAddress, server: RegistryServer, tmp_path: Path
) -> None:
    major = random.randrange(100, 10_000)  # topics no other test of the session makes
    source = REPO / "domains" / "analytics" / "products" / "revenue-by-region.yaml"
    products = tmp_path / "domains" / "analytics" / "products"
    products.mkdir(parents=True)
    (products / source.name).write_text(
        source.read_text(encoding="utf-8") + f"version: {major}\n", encoding="utf-8"
    )
    schema = load_descriptor(source).schema_file
    (tmp_path / schema).parent.mkdir(parents=True)
    shutil.copy(REPO / schema, tmp_path / schema)
    (tmp_path / "mesh.yaml").write_text("domains: [analytics]\n")
    project = load_project(tmp_path)
    output = project.descriptor("analytics.revenue-by-region")
    assert output is not None

    # The orders domain registers its product (schema, then descriptor) but has not created
    # its topic on this cluster.
    placed = load_descriptor(REPO / "domains" / "orders" / "products" / "order-placed.yaml")
    placed = placed.model_copy(update={"version": major})
    with RegistryClient(server.url, principal="orders", token=TOKENS["orders"]) as orders:
        orders.register_schema(
            placed.value_subject, (REPO / placed.schema_file).read_text(encoding="utf-8")
        )
        orders.put_product(placed)

    settings = MeshSettings(bootstrap_servers=kafka.bootstrap_servers, data_dir=tmp_path / "data")
    with RegistryClient(server.url, principal="analytics", token=TOKENS["analytics"]) as reg:
        with pytest.raises(ConfigurationError) as stopped:
            processing_app.prepare(
                settings, output.name, project=project, registry=reg, processor=revenue.PROCESSOR
            )
        with pytest.raises(SubjectNotFoundError):  # the output was not registered either
            reg.get_latest(output.value_subject)

    assert str(stopped.value) == (
        f"processor analytics.revenue-by-region: the topic of input orders.order-placed "
        f"(orders.order-placed.v{major}) does not exist on the cluster at "
        f"{kafka.bootstrap_servers}, though the registry has the product; a processor never "
        "creates its inputs' topics: their domain (orders) does, with `mesh products apply` "
        "in its project or its publisher's first start (or point MESH_BOOTSTRAP_SERVERS at "
        "the cluster that has them)"
    )
    admin = make_admin(KafkaConnection.from_settings(settings))
    existing = admin.list_topics(timeout=30).topics
    assert placed.topic not in existing
    assert placed.dlq_topic not in existing
    assert output.topic not in existing
