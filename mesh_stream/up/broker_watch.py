"""Whether Kafka answers `mesh up`: once at start (a cluster named by MESH_BOOTSTRAP_SERVERS)
and for the whole run (the local broker `mesh up` started, restarted with back-off when it dies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mesh_stream.broker import ClusterState, ClusterStatus
from mesh_stream.errors import BrokerError, KafkaSecurityError, MeshError
from mesh_stream.kafka.clients import make_admin
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error
from mesh_stream.supervisor import Backoff, ChildState, ChildStatus, EventKind, Supervisor


def probe_kafka(kafka: KafkaConnection | str, timeout: float = 10.0) -> None:
    """Raise :class:`BrokerError` naming MESH_BOOTSTRAP_SERVERS when that cluster is silent
    (:class:`KafkaSecurityError` naming the MESH_KAFKA_* setting when it refuses us)."""
    from confluent_kafka import KafkaError, KafkaException

    conn = kafka if isinstance(kafka, KafkaConnection) else KafkaConnection.create(kafka)
    bootstrap_servers = conn.bootstrap_servers
    admin = make_admin(conn, {"log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        if isinstance(exc, KafkaException):
            explained = explain_kafka_error(exc, conn, operation="DESCRIBE")
            if isinstance(explained, KafkaSecurityError):
                raise explained from exc
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        said = error.str() if isinstance(error, KafkaError) else str(exc) or type(exc).__name__
        raise BrokerError(  # librdkafka's words, not KafkaError{code=...} (h51)
            f"Kafka does not answer at MESH_BOOTSTRAP_SERVERS={bootstrap_servers} ({said}); "
            f"start that cluster, or unset MESH_BOOTSTRAP_SERVERS to let `mesh up` run a "
            f"local broker"
        ) from exc


class _Cluster(Protocol):
    """What :class:`BrokerWatch` needs of :class:`~mesh_stream.broker.LocalCluster`."""

    def status(self) -> ClusterStatus: ...

    def start(
        self, *, brokers: int = 1, port: int = 9092, timeout: float = 90.0, fresh: bool = False
    ) -> ClusterState: ...

    def log_file(self, node_id: int) -> Path: ...


class BrokerWatch:
    """Notices when the local broker `mesh up` started has died, reports it, and starts it
    again (same data, same ports) after the same exponential back-off as the children."""

    def __init__(
        self,
        cluster: _Cluster,
        supervisor: Supervisor,
        *,
        port: int,
        timeout: float,
        backoff: Backoff,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.supervisor = supervisor
        self.port = port
        self.timeout = timeout
        self.backoff = backoff
        self.interval = interval
        self._clock = clock
        self.failures = 0
        self.restarts = 0
        self._started_at = clock()
        self._next_check = self._started_at + interval
        self._restart_at: float | None = None

    def check(self) -> None:
        """Call often; does real work only every ``interval`` or when a restart is due."""
        now = self._clock()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restart_at = None
                self._restart()
            return
        if now < self._next_check:
            return
        self._next_check = now + self.interval
        if not self.cluster.status().running:
            self._failed(now, "Kafka stopped running")

    def _restart(self) -> None:
        try:
            state = self.cluster.start(brokers=1, port=self.port, timeout=self.timeout)
        except MeshError as exc:
            self._failed(self._clock(), f"Kafka did not come back: {exc}")
            return
        self._started_at = self._clock()
        self._next_check = self._started_at + self.interval
        self.supervisor.record(
            "kafka",
            EventKind.RESTARTED,
            f"restarted (restart #{self.restarts}) at {state.bootstrap_servers}",
        )

    def _failed(self, now: float, what: str) -> None:
        stable = now - self._started_at >= self.backoff.stable_after
        self.failures = 1 if stable else self.failures + 1
        delay = self.backoff.delay(self.failures)
        self.restarts += 1
        self._restart_at = now + delay
        self.supervisor.record(
            "kafka",
            EventKind.EXITED,
            f"{what}; restart #{self.restarts} in {delay:.1f}s (log: {self.cluster.log_file(1)})",
            restart_in=delay,
        )


def broker_status(cluster: _Cluster, watch: BrokerWatch | None) -> ChildStatus:
    """The local broker as a row of the live view's process table."""
    status = cluster.status()
    node = status.nodes[0] if status.nodes else None
    return ChildStatus(
        name="kafka",
        kind="broker",
        state=ChildState.RUNNING if status.running else ChildState.RESTARTING,
        pid=node.pid if node is not None and node.running else None,
        restarts=watch.restarts if watch is not None else 0,
        last_exit=None,
        log_file=cluster.log_file(1),
    )
