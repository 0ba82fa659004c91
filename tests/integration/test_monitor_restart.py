"""A long-running monitor on a broker that restarts: it measures again by itself.

After a restart, librdkafka's admin client never answers a consumer group's committed
offsets again (every request times out; a new client is answered at once), which left
`mesh monitor` measuring nothing for as long as it ran (a platform operator's campaign).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mesh_stream.descriptor import DataProduct
from mesh_stream.health import FigureName
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.kafka.topics import cluster_info, ensure_topic, topic_spec
from mesh_stream.monitor import ProductMonitor
from mesh_stream.monitor import service as monitor_service
from mesh_stream.monitor.service import Round
from tests.integration.own_broker import own_cluster

pytestmark = pytest.mark.chaos

GROUP = "payments.billing-restart"


class _Catalog:
    def __init__(self, product: DataProduct) -> None:
        self.product = product

    def list_products(self) -> list[dict[str, Any]]:
        document = self.product.model_dump(mode="json", by_alias=True)
        return [{**document, "registry": {"consumers": [{"group": GROUP}]}}]


def _lag_records(done: Round, product: str) -> float | None:
    [health] = [h for h in done.healths if h.product == product]
    found = [
        f.value for f in health.figures if f.name == FigureName.LAG_RECORDS and f.subject == GROUP
    ]
    return found[0] if found else None


def test_a_running_monitor_measures_again_after_the_broker_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor_service, "RETRY_SECONDS", 0.5)
    product = DataProduct.model_validate(
        {
            "name": f"orders.restart-{uuid.uuid4().hex[:8]}",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Measured across a broker restart.",
            "owner": {"team": "monitor-tests", "contact": "monitor-tests@example.com"},
            "schema": "schemas/orders/restart.avsc",
            "key_field": "order_id",
            "partitions": 2,
            "retention": {"ms": 3_600_000, "cleanup_policy": "delete"},
            "slos": {"freshness_seconds": 600.0, "availability": 99.0, "max_lag_seconds": 600},
            "classification": "internal",
        }
    )
    with own_cluster(tmp_path / "kafka") as cluster:
        bootstrap = cluster.status().bootstrap_servers
        assert bootstrap is not None
        conn = KafkaConnection.create(bootstrap)
        ensure_topic(conn, topic_spec(product.topic, cluster_info(conn), partitions=2))
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
        for index in range(10):
            producer.produce(product.topic, key=f"k{index}", value=b"v", partition=0)
        producer.flush(10)
        group = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
        group.commit(
            offsets=[TopicPartition(product.topic, 0, 4), TopicPartition(product.topic, 1, 0)],
            asynchronous=False,
        )
        group.close()

        rounds: list[tuple[float, Round]] = []
        stop = threading.Event()
        monitor = ProductMonitor(
            conn,
            _Catalog(product),
            health_topic="_health-restart",
            alerts_topic="_alerts-restart",
            interval=1.0,
            kafka_timeout=4.0,
        )
        with monitor:
            runner = threading.Thread(
                target=monitor.run,
                args=(stop,),
                kwargs={"on_round": lambda done: rounds.append((time.monotonic(), done))},
            )
            runner.start()
            try:
                deadline = time.monotonic() + 60
                while not rounds and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert rounds, "no round measured before the restart"
                assert _lag_records(rounds[-1][1], product.name) == 6

                cluster.stop()
                cluster.start(brokers=1, port=0, timeout=120)
                assert cluster.status().bootstrap_servers == bootstrap  # the same port
                restarted = time.monotonic()

                deadline = restarted + 90
                after: list[Round] = []
                while time.monotonic() < deadline:
                    after = [done for at, done in rounds if at > restarted]
                    if any(_lag_records(done, product.name) == 6 for done in after):
                        break
                    time.sleep(0.5)
            finally:
                stop.set()
                runner.join(30)
        assert not runner.is_alive()
        measured = [_lag_records(done, product.name) for done in after]
        assert 6 in measured, f"rounds after the restart measured lags {measured}"
        # The health log read back what the monitor wrote before and after the restart.
        assert monitor.latest(product.name) is not None
