"""A one-node cluster a test module owns, to stop and start at will (outage and chaos tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Producer

from mesh_stream.broker import LocalCluster, local_cluster
from mesh_stream.settings import MeshSettings


@contextmanager
def own_cluster(data_dir: Path) -> Iterator[LocalCluster]:
    """A one-node cluster on free ports in ``data_dir``, stopped on exit whatever happened."""
    settings = MeshSettings(data_dir=data_dir)
    cluster = local_cluster(settings)
    cluster.start(brokers=1, port=0, timeout=settings.broker_start_timeout)
    try:
        yield cluster
    finally:
        cluster.stop()


def running(cluster: LocalCluster) -> str:
    """The cluster's bootstrap address, starting it again first if a test stopped it."""
    if not cluster.status().running:
        cluster.start(brokers=1, port=0, timeout=120)
    address = cluster.status().bootstrap_servers
    assert address is not None
    return address


def transactions_ready(bootstrap: str, transactional_id: str, timeout: float = 60) -> None:
    """Wait until the broker's transaction coordinator for ``transactional_id`` answers.

    A broker that was just (re)started loads its transaction log first and answers
    COORDINATOR_LOAD_IN_PROGRESS meanwhile, which on a loaded machine can outlast a store
    opened with a short timeout before the test has even begun. A store that opens with
    the same id afterwards only bumps the producer epoch.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    try:
        producer.init_transactions(timeout)
    finally:
        producer.flush(0)
