"""The registry on a 3-node cluster loses the leader of its topic's partition (SIGKILL).

Every request that carries a domain credential first asks the partition leader for the log's
end (read-your-revocations, :meth:`KafkaStore.catch_up_view`). After the leader dies, that
request must reach the new leader within seconds: a client that only asks for end offsets
gets no fetch error telling it the leader moved, so it would keep asking the dead node until
its periodic metadata refresh (minutes), and every authenticated request would time out
meanwhile (seen as processors crash-looping in `mesh up --secure` after a broker kill).
Reads and writes through the store then go on with the two nodes left.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from mesh_stream.broker import local_cluster
from mesh_stream.broker.cluster import LocalCluster
from mesh_stream.errors import RegistryUnavailableError
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service.kafka_store import KafkaStore
from mesh_stream.registry.service.schemas import SchemaRegistry
from mesh_stream.settings import MeshSettings

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SCHEMA = (
    '{"type": "record", "name": "Placed", "namespace": "orders", "fields": '
    '[{"name": "id", "type": "string", "doc": "Order id."}]}'
)
#: How soon after the leader's death the log's end must be readable again (Kafka elects a
#: new leader within seconds; the periodic metadata refresh alone would take minutes).
RECOVERY_S = 45.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    settings = MeshSettings(data_dir=tmp_path_factory.mktemp("leader-loss"), broker_heap="256m")
    made = local_cluster(settings)
    try:
        made.start(brokers=3, port=0, timeout=240)
        yield made
    finally:
        made.stop()


def test_the_log_end_is_read_from_the_new_leader_within_seconds(cluster: LocalCluster) -> None:
    bootstrap = cluster.status().bootstrap_servers
    assert bootstrap is not None
    topic = f"_mesh_registry-leader-{uuid.uuid4().hex[:8]}"
    # 30 s: on a cluster just started, the transaction coordinator takes a while to load.
    store = KafkaStore(bootstrap, topic=topic, transactional_id=f"w-{topic}", timeout=30)
    core = SchemaRegistry(store)
    store.open(core.state.apply)
    try:
        core.register("orders.placed.v1-value", SCHEMA)
        store.catch_up_view(5.0)  # warm: the leader is known and answers

        admin = make_admin(KafkaConnection.create(bootstrap), {"log_level": 0})
        leader = admin.list_topics(topic, timeout=30).topics[topic].partitions[0].leader
        victim = next(node for node in cluster.status().nodes if node.node_id == leader)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()

        failures: list[str] = []
        while True:
            try:
                store.catch_up_view(5.0)
                break
            except RegistryUnavailableError as exc:
                failures.append(exc.message)
                elapsed = time.monotonic() - killed
                assert elapsed < RECOVERY_S, (
                    f"the log's end still unreadable {elapsed:.0f}s after its leader "
                    f"(node {leader}) died: {failures[-1]}"
                )
        recovered = time.monotonic() - killed
        assert recovered < RECOVERY_S, f"{recovered:.0f}s: {failures}"

        # The store goes on: a new version is written and read back on the nodes left.
        second = SCHEMA.replace(
            '"doc": "Order id."}]',
            '"doc": "Order id."}, {"name": '
            '"note", "type": ["null", "string"], "default": null, '
            '"doc": "A note."}]',
        )
        registered = core.register("orders.placed.v1-value", second)
        assert core.versions("orders.placed.v1-value") == [1, 2], registered
    finally:
        store.close()
