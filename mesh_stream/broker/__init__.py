"""The local Kafka launcher: Apache Kafka's jars from Maven Central, run in KRaft mode."""

from __future__ import annotations

from mesh_stream.broker.cluster import ClusterState, ClusterStatus, LocalCluster, NodeStatus
from mesh_stream.broker.distribution import KafkaDistribution, Progress, _silent
from mesh_stream.broker.security import SECURITY_MODES, BrokerCredentials
from mesh_stream.settings import MeshSettings, jvm_options

__all__ = [
    "SECURITY_MODES",
    "BrokerCredentials",
    "ClusterState",
    "ClusterStatus",
    "KafkaDistribution",
    "LocalCluster",
    "NodeStatus",
    "local_cluster",
]


def local_cluster(settings: MeshSettings, progress: Progress | None = None) -> LocalCluster:
    """The launcher for the broker that ``settings`` describe (cache, data dir, heap)."""
    distribution = KafkaDistribution(settings.kafka_version, settings.cache_dir)
    return LocalCluster(
        distribution,
        settings.data_dir / "broker",
        heap=settings.broker_heap,
        jvm_options=jvm_options(settings.broker_jvm_options),
        progress=progress or _silent,
    )
