"""Every topic the mesh creates, specified in one place and replicated as the cluster allows.

:func:`topic_spec` is the one function that decides a topic's shape — product, DLQ,
internal (re-key) and changelog topics alike (:func:`product_topic_spec` is its form for a
descriptor):

- replication factor: the descriptor's ``replication_factor`` if set, else the cluster's
  ``default.replication.factor`` (read once per cluster with DescribeConfigs; when the
  broker config cannot be read, ``min(3, brokers)``). Never a hard-coded 1.
- ``min.insync.replicas``: RF-1 when RF ≥ 3, else 1, so with ``acks=all`` a write survives
  the loss of any one broker and the topic stays writable while one is down.

:func:`ensure_topic` creates a missing topic from its spec. A topic that already exists
with other partitions, replication factor, ``cleanup.policy``, ``retention.ms`` or
``min.insync.replicas`` is *reported*, not silently used: each difference is logged as a
warning (``mesh_stream.kafka.topics``) and returned; ``strict=True`` raises a
:class:`~mesh_stream.errors.TopicMismatchError` listing them instead. Warning is the
default because an existing topic is someone's data: the mesh must not stop reading or
writing it, and must not alter it behind its owner's back (fix it with
``kafka-configs``/``kafka-reassign-partitions``, or set the descriptor to match).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.admin._resource import ResourceType
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from mesh_stream.errors import (
    BrokerError,
    ConfigurationError,
    KafkaAuthorizationError,
    MeshError,
    TopicMismatchError,
)
from mesh_stream.kafka.clients import make_admin, new_topic, probed_admin
from mesh_stream.kafka.connection import KafkaConnection, explain_kafka_error

if TYPE_CHECKING:
    from mesh_stream.descriptor import DataProduct

log = logging.getLogger(__name__)
T = TypeVar("T")

# The topic configs a spec sets and ensure_topic compares with an existing topic.
COMPARED_CONFIGS = ("cleanup.policy", "retention.ms", "min.insync.replicas")


@dataclass(frozen=True)
class ClusterInfo:
    """What topic specs need to know about a cluster."""

    brokers: int
    default_replication_factor: int
    source: str = "default.replication.factor"

    @classmethod
    def of_size(cls, brokers: int) -> ClusterInfo:
        """The fallback when the broker config cannot be read: ``min(3, brokers)``."""
        return cls(brokers, max(1, min(3, brokers)), source=f"min(3, {brokers} brokers)")


@dataclass(frozen=True)
class TopicSpec:
    """How a topic must look: name, partitions, replication factor and topic configs."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


#: Topic settings a product's descriptor promises its consumers: an existing topic that
#: differs in one contradicts the descriptor (the catalog would describe another topic).
PROMISED_SETTINGS = frozenset({"partitions", "cleanup.policy", "retention.ms"})


@dataclass(frozen=True)
class TopicDifference:
    """One way an existing topic differs from its spec."""

    setting: str
    expected: str
    actual: str

    def describe(self) -> str:
        return f"{self.setting} is {self.actual}, the spec says {self.expected}"


class _HasRetention(Protocol):
    @property
    def ms(self) -> int: ...

    @property
    def cleanup_policy(self) -> object: ...


def min_insync_replicas(replication_factor: int) -> int:
    """RF-1 when RF ≥ 3 (one broker may be down, every write is on ≥ 2), else 1."""
    return replication_factor - 1 if replication_factor >= 3 else 1


def topic_spec(
    name: str,
    cluster: ClusterInfo,
    *,
    partitions: int,
    replication_factor: int | None = None,
    cleanup_policy: str = "delete",
    retention_ms: int | None = None,
) -> TopicSpec:
    """The one function that specifies a topic the mesh creates.

    ``replication_factor`` (a descriptor's) wins; else the cluster's default. A replication
    factor above the broker count is a :class:`ConfigurationError` naming both.
    """
    if partitions < 1:
        raise ConfigurationError(f"topic {name}: partitions must be >= 1, got {partitions}")
    replicas = replication_factor or cluster.default_replication_factor
    if replication_factor is not None and replication_factor > cluster.brokers:
        raise ConfigurationError(
            f"topic {name}: replication_factor {replication_factor} needs at least "
            f"{replication_factor} brokers, the cluster has {cluster.brokers}; lower "
            f"`replication_factor` in the descriptor or leave it unset (cluster default "
            f"{cluster.default_replication_factor})"
        )
    config = {
        "cleanup.policy": cleanup_policy,
        "min.insync.replicas": str(min_insync_replicas(replicas)),
    }
    if retention_ms is not None:
        config["retention.ms"] = str(retention_ms)
    return TopicSpec(name, partitions, replicas, config)


def product_topic_spec(
    product: DataProduct,
    cluster: ClusterInfo,
    *,
    topic: str | None = None,
    partitions: int | None = None,
    compacted: bool | None = None,
) -> TopicSpec:
    """:func:`topic_spec` for a product's topic (or ``topic``: its DLQ, an internal topic).

    Partitions, retention and cleanup policy come from the descriptor unless given;
    ``compacted`` forces ``cleanup.policy=compact`` (changelogs) or ``delete``.
    """
    retention: _HasRetention = product.retention
    policy = str(getattr(retention.cleanup_policy, "value", retention.cleanup_policy))
    if compacted is not None:
        policy = "compact" if compacted else "delete"
    return topic_spec(
        topic or product.topic,
        cluster,
        partitions=partitions or product.partitions,
        replication_factor=product.replication_factor,
        cleanup_policy=policy,
        retention_ms=None if policy == "compact" else retention.ms,
    )


#: How long a dead-letter topic keeps its records when its product's retention does not say
#: (a compacted product): a week to look into them and publish them again.
DLQ_RETENTION_MS = 7 * 24 * 3_600_000


def dlq_topic_spec(
    product: DataProduct, cluster: ClusterInfo, *, topic: str | None = None
) -> TopicSpec:
    """A product's dead-letter topic (or ``topic``, a rule's own): the product's partitions
    and replication, always ``delete``, never compacted, whatever the product is: compaction
    would keep one dead letter per key, and a compacted topic refuses a record without a key.
    The product's retention (-1: for ever) when it deletes, else :data:`DLQ_RETENTION_MS`."""
    product_spec = product_topic_spec(product, cluster, topic=topic or product.dlq_topic)
    deletes = "delete" in cleanup_policies(product_spec.config.get("cleanup.policy", "delete"))
    # -1 (kept for ever) is the product's too; a compacted product's keeps DLQ_RETENTION_MS
    retention = product.retention.ms if deletes and product.retention.ms != 0 else DLQ_RETENTION_MS
    return topic_spec(
        product_spec.name,
        cluster,
        partitions=product_spec.partitions,
        replication_factor=product.replication_factor,
        cleanup_policy="delete",
        retention_ms=retention,
    )


#: Errors of a partition whose leader is not known yet (a topic just created, or a leader
#: moving): asked again, they go away within seconds.
NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def no_leader_yet(exc: BaseException) -> bool:
    """Whether ``exc`` is Kafka saying a partition has no leader yet (:data:`NO_LEADER_YET`)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and error.code() in NO_LEADER_YET


def while_no_leader(call: Callable[[], T], *, attempts: int, pause_s: float) -> T:
    """``call()``, asked again (up to ``attempts`` times in all, ``pause_s`` apart) while it
    raises :func:`no_leader_yet`; its last exception, or any other, is raised as it is."""
    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_fixed(pause_s),
        retry=retry_if_exception(no_leader_yet),
        reraise=True,
    )
    return retrying(call)


# -- the cluster ------------------------------------------------------------------------------
_clusters: dict[tuple[str, str, str | None, str | None], ClusterInfo] = {}
_clusters_lock = threading.Lock()


def cluster_id(
    conn: KafkaConnection, *, admin: AdminClient | None = None, timeout: float = 15.0
) -> str | None:
    """The id of the cluster behind ``conn`` (None when the broker does not say), asked
    every time: a cluster recreated at the same address has another one."""
    admin = admin or make_admin(conn, {"log_level": 0})
    found = _list_topics(admin, conn, timeout).cluster_id
    return str(found) if found else None


def cluster_info(
    conn: KafkaConnection, *, admin: AdminClient | None = None, timeout: float = 15.0
) -> ClusterInfo:
    """The cluster behind ``conn``: broker count and ``default.replication.factor``.

    The brokers counted are those alive and those holding a replica of some partition: a
    broker that is down drops out of Kafka's metadata, yet the cluster still has it (one
    lost broker must not stop a product with ``replication_factor: 3`` nor make new topics
    smaller). Read once per bootstrap servers and cached (a cluster's default does not
    change under a running process), unless a 1-broker cluster answered without its
    config (one still starting may show fewer brokers than it has) or a counted broker is
    down: then it is asked again next time.
    """
    key = _cluster_key(conn)
    with _clusters_lock:
        known = _clusters.get(key)
    if known is not None:
        return known
    if admin is None:
        # The probe names a refused password, a listener wanting SASL or TLS or an untrusted
        # certificate at once; a bare metadata request calls all of them "no broker answers".
        metadata, admin = probed_admin(conn, timeout)
    else:
        metadata = _list_topics(admin, conn, timeout)
    counted: set[int] = set(metadata.brokers).union(
        *(p.replicas for t in metadata.topics.values() for p in t.partitions.values())
    )
    brokers = len(counted)
    info = ClusterInfo.of_size(brokers)
    broker_ids = sorted(metadata.brokers)
    if broker_ids:
        resource = ConfigResource(ResourceType.BROKER, str(broker_ids[0]))
        with contextlib.suppress(KafkaException, ValueError, TypeError):
            configs = admin.describe_configs([resource], request_timeout=timeout)
            entries = configs[resource].result(timeout)
            value = entries.get("default.replication.factor")
            if value is not None and value.value is not None and int(value.value) >= 1:
                info = ClusterInfo(brokers, int(value.value))
    all_up = len(metadata.brokers) == brokers
    if all_up and (brokers > 1 or info.source == "default.replication.factor"):
        with _clusters_lock:
            _clusters[key] = info
    return info


def _cluster_key(conn: KafkaConnection) -> tuple[str, str, str | None, str | None]:
    """What a cached :class:`ClusterInfo` is kept under: the cluster and who asks, by SASL
    user or client certificate (another principal's answer must not spare this one its own
    connection's check)."""
    certificate = conn.ssl_certificate_location
    return (
        conn.bootstrap_servers,
        conn.security_protocol.value,
        conn.sasl_username,
        str(certificate) if certificate is not None else None,
    )


def forget_cluster(conn: KafkaConnection) -> None:
    """Drop the cached :class:`ClusterInfo` of ``conn`` (tests that restart a cluster)."""
    with _clusters_lock:
        _clusters.pop(_cluster_key(conn), None)


def _list_topics(admin: AdminClient, conn: KafkaConnection, timeout: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise explain_kafka_error(exc, conn, operation="DESCRIBE") from exc


def list_topic_names(
    admin: AdminClient, conn: KafkaConnection, *, timeout: float = 30.0
) -> frozenset[str]:
    """The names of the topics the cluster shows this principal."""
    return frozenset(_list_topics(admin, conn, timeout).topics)


# -- creating ---------------------------------------------------------------------------------
def ensure_topic(
    conn: KafkaConnection,
    spec: TopicSpec,
    *,
    admin: AdminClient | None = None,
    strict: bool = False,
    timeout: float = 30.0,
    configs: dict[str, Mapping[str, str]] | None = None,
) -> list[TopicDifference]:
    """Create ``spec``'s topic if missing; else compare it with the spec.

    Returns the differences of an existing topic (empty when created or equal), each also
    logged as a warning; with ``strict`` they raise :class:`TopicMismatchError`. Waits
    until every partition of a new topic has a leader, so the first write lands.
    ``configs`` is as for :func:`ensure_topics`.
    """
    return ensure_topics(
        conn, [spec], admin=admin, strict=strict, timeout=timeout, configs=configs
    )[spec.name]


def ensure_topics(
    conn: KafkaConnection,
    specs: Iterable[TopicSpec],
    *,
    admin: AdminClient | None = None,
    strict: bool = False,
    timeout: float = 30.0,
    created: list[str] | None = None,
    configs: dict[str, Mapping[str, str]] | None = None,
    correct: bool = False,
) -> dict[str, list[TopicDifference]]:
    """:func:`ensure_topic` for several topics with one admin client and one create call.

    ``created``, if given, gets the names this call created: not the ones the broker said
    already exist, even when a metadata answer just before had not shown them yet.
    ``configs``, if given, gets the configs of each topic that existed (as far as the
    principal may read them), e.g. a ``max.message.bytes`` lower than the broker's.
    ``correct`` alters an existing topic's differing configs to the spec's (for topics the
    platform owns, which a broker may have auto-created with its defaults); partitions and
    replication factor are never changed.
    """
    wanted = {spec.name: spec for spec in specs}
    if admin is None:
        # The probe names a refused password or a listener needing SASL or TLS at once; a
        # bare metadata request waits out its timeout, then says no broker answers.
        metadata, admin = probed_admin(conn, timeout)
    else:
        metadata = _list_topics(admin, conn, timeout)
    existing = metadata.topics
    missing = [spec for name, spec in wanted.items() if name not in existing]
    result: dict[str, list[TopicDifference]] = {name: [] for name in wanted}
    raced: list[str] = []
    if missing:
        _wait_for_controller(admin, conn, metadata, timeout)
        futures = admin.create_topics(
            [
                new_topic(
                    spec.name,
                    partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=spec.config,
                )
                for spec in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    # Created meanwhile, or just before and not in our metadata yet: compare
                    # it once the metadata shows it (else it would pass as matching).
                    raced.append(name)
                    _wait_for_leaders(admin, name, 1, timeout)
                    continue
                raise _create_error(conn, wanted[name], exc) from exc
        for spec in missing:
            if spec.name not in raced:
                _wait_for_leaders(admin, spec.name, spec.partitions, timeout)
                if created is not None:
                    created.append(spec.name)
    for name in [n for n in wanted if n in existing or n in raced]:
        state = describe_topic(admin, conn, name, timeout=timeout)
        result[name] = [] if state is None else differences(wanted[name], state)
        if configs is not None and state is not None:
            configs[name] = state.config
    if correct:
        for name, found in result.items():
            result[name] = _correct_configs(admin, conn, name, found, timeout)
    problems = {name: found for name, found in result.items() if found}
    for name, found in problems.items() if not strict else ():
        log.warning(
            "topic %s exists and differs from its spec: %s; using it as it is",
            name,
            "; ".join(item.describe() for item in found),
        )
    if strict and problems:
        raise TopicMismatchError(
            "; ".join(
                f"topic {name} exists but "
                + ", ".join(item.describe() for item in found)
                + " (alter the topic with kafka-configs / kafka-reassign-partitions, or make "
                "the descriptor match)"
                for name, found in problems.items()
            )
        )
    return result


@dataclass(frozen=True)
class TopicState:
    """How an existing topic looks: partition count, replica counts, topic configs."""

    name: str
    partitions: int
    replica_counts: frozenset[int]
    config: Mapping[str, str] = field(default_factory=dict)
    #: The configs set on the topic itself (not the broker's defaults): someone chose them.
    explicit: frozenset[str] = frozenset()


def one_broker_stops_writes(state: TopicState) -> str | None:
    """Why losing any one broker stops every ``acks=all`` write to the topic (None when it
    does not): its ``min.insync.replicas`` is not below its replication factor. Stricter
    than a spec, so no difference, but the outage it turns into is worth saying."""
    required = state.config.get("min.insync.replicas", "")
    if not required.isdigit() or not state.replica_counts:
        return None
    replicas = min(state.replica_counts)
    if replicas < 2 or int(required) < replicas:
        return None
    return (
        f"min.insync.replicas {required} is not below its replication factor {replicas}: with "
        f"any one broker down, every write to it is refused (NOT_ENOUGH_REPLICAS); "
        f"{replicas - 1} keeps writes going through one lost broker"
    )


def writes_refused_for_replicas(
    conn: KafkaConnection, topic: str, *, timeout: float = 5.0
) -> str | None:
    """Why ``acks=all`` writes to ``topic`` are refused now, if it is that too few of its
    partitions' replicas are in sync (fewer than its ``min.insync.replicas``): the broker
    answers NOT_ENOUGH_REPLICAS, which the producer retries and reports only as a timeout.
    None when every partition has enough in sync, or the cluster cannot tell within
    ``timeout`` (a diagnosis for an error already raised: it never raises itself)."""
    deadline = time.monotonic() + timeout

    def left() -> float:  # the calls below share ``timeout``
        return max(0.1, deadline - time.monotonic())

    try:
        admin = make_admin(conn, {"log_level": 0, "socket.timeout.ms": int(timeout * 1000)})
        described = admin.list_topics(topic, timeout=left()).topics.get(topic)
        if described is None or described.error is not None:
            return None
        resource = ConfigResource(ResourceType.TOPIC, topic)
        entries = admin.describe_configs([resource], request_timeout=left())[resource]
        required = entries.result(left()).get("min.insync.replicas")
    except (KafkaException, ConfigurationError, TimeoutError, RuntimeError):
        return None
    if required is None or not str(required.value).isdigit():
        return None
    needed = int(str(required.value))
    found = {number: (list(p.replicas), list(p.isrs)) for number, p in described.partitions.items()}
    return too_few_in_sync(topic, needed, found)


def too_few_in_sync(
    topic: str, needed: int, partitions: Mapping[int, tuple[Sequence[int], Sequence[int]]]
) -> str | None:
    """What :func:`writes_refused_for_replicas` says of ``topic`` whose partitions have
    these (replicas, in-sync replicas), its ``min.insync.replicas`` being ``needed``. Kafka 4
    holds a partition to at most as many replicas as it has; earlier brokers refuse every
    write when the setting is above the replica count, which is said as such (h46)."""
    short = {
        number: (replicas, isrs)
        for number, (replicas, isrs) in sorted(partitions.items())
        if len(isrs) < min(needed, len(replicas))
    }
    if short:
        numbers = ", ".join(str(number) for number in short)
        lagging = sorted(
            {b for replicas, isrs in short.values() for b in replicas if b not in isrs}
        )
        in_sync = "/".join(str(n) for n in sorted({len(isrs) for _, isrs in short.values()}))
        return (
            f"partition(s) {numbers} of topic {topic} have {in_sync} replica(s) in sync, fewer "
            f"than its min.insync.replicas {needed}, so Kafka refuses every acks=all write to "
            f"them (NOT_ENOUGH_REPLICAS) until broker(s) {', '.join(map(str, lagging))} are "
            f"back in sync"
        )
    fewest = min((len(replicas) for replicas, _ in partitions.values()), default=needed)
    if needed > fewest:
        return (
            f"topic {topic} has min.insync.replicas {needed}, more than its {fewest} "
            f"replica(s): brokers before Kafka 4.0 refuse every acks=all write to it "
            f"(NOT_ENOUGH_REPLICAS); lower it to at most {fewest}"
        )
    return None


def differences(spec: TopicSpec, state: TopicState) -> list[TopicDifference]:
    """Each way ``state`` differs from ``spec`` (empty: the topic is as specified).

    Configs the state does not show (no DescribeConfigs right) are not compared; a
    ``min.insync.replicas`` above the spec's is stricter, not a difference.
    """
    found: list[TopicDifference] = []
    if state.partitions != spec.partitions:
        found.append(TopicDifference("partitions", str(spec.partitions), str(state.partitions)))
    if state.replica_counts and state.replica_counts != {spec.replication_factor}:
        actual = "/".join(str(count) for count in sorted(state.replica_counts))
        found.append(TopicDifference("replication factor", str(spec.replication_factor), actual))
    for key in COMPARED_CONFIGS:
        expected, actual_value = spec.config.get(key), state.config.get(key)
        if expected is None or actual_value is None or actual_value == expected:
            continue
        if key == "cleanup.policy" and cleanup_policies(actual_value) == cleanup_policies(expected):
            continue  # "compact,delete" is "delete,compact"
        if key == "min.insync.replicas" and int(actual_value) >= int(expected):
            continue
        found.append(TopicDifference(key, expected, actual_value))
    return found


def _correct_configs(
    admin: AdminClient,
    conn: KafkaConnection,
    name: str,
    found: list[TopicDifference],
    timeout: float,
) -> list[TopicDifference]:
    """Alter ``name``'s differing configs to the spec's; the differences left (partitions,
    replication factor, or configs the principal may not alter)."""
    fixable = [item for item in found if item.setting in COMPARED_CONFIGS]
    if not fixable:
        return found
    resource = ConfigResource(
        ResourceType.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry(item.setting, item.expected, incremental_operation=AlterConfigOpType.SET)
            for item in fixable
        ],
    )
    try:
        admin.incremental_alter_configs([resource])[resource].result(timeout)
    except (KafkaException, TimeoutError) as exc:
        problem = (
            explain_kafka_error(exc, conn, topic=name, operation="ALTER_CONFIGS")
            if isinstance(exc, KafkaException)
            else f"no answer within {timeout:.0f} s"
        )
        log.warning("topic %s: could not correct its configs: %s", name, problem)
        return found
    log.warning(
        "topic %s differed from its spec and was corrected: %s",
        name,
        "; ".join(f"{item.setting} {item.actual} -> {item.expected}" for item in fixable),
    )
    return [item for item in found if item not in fixable]


def cleanup_policies(value: str) -> frozenset[str]:
    """A ``cleanup.policy`` as a set (``compact,delete`` is ``delete,compact``)."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def describe_topic(
    admin: AdminClient, conn: KafkaConnection, name: str, *, timeout: float = 30.0
) -> TopicState | None:
    """The state of topic ``name`` (None if it does not exist)."""
    try:
        described = admin.list_topics(name, timeout=timeout).topics.get(name)
    except KafkaException as exc:
        raise explain_kafka_error(exc, conn, topic=name, operation="DESCRIBE") from exc
    if described is None or described.error is not None:
        return None
    partitions = described.partitions
    replicas = frozenset(len(p.replicas) for p in partitions.values())
    config: dict[str, str] = {}
    explicit: set[str] = set()
    resource = ConfigResource(ResourceType.TOPIC, name)
    with contextlib.suppress(KafkaException):  # no DescribeConfigs right: configs unknown
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource]
        for key, entry in entries.result(timeout).items():
            if entry.value is not None:
                config[key] = str(entry.value)
            # the C client gives the source as a number, not as its ConfigSource
            if getattr(entry.source, "value", entry.source) == _SET_ON_THE_TOPIC:
                explicit.add(key)
    return TopicState(name, len(partitions), replicas, config, frozenset(explicit))


_SET_ON_THE_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value

#: A product's own topic, ``<domain>.<name>.v<major>``: not its ``.dlq`` topic, which
#: readers may be granted to create, nor an internal or ``_mesh_…`` platform topic.
_PRODUCT_TOPIC = re.compile(r"[a-z][a-z0-9-]*\.[^.]+\.v[1-9][0-9]*")


def product_topic_kind(name: str) -> str | None:
    """``a data product's topic`` or ``a product's dead-letter topic`` when ``name`` has the
    form of one, else None: for settings that name a platform topic of their own."""
    if _PRODUCT_TOPIC.fullmatch(name):
        return "a data product's topic"
    if name.endswith(".dlq") and _PRODUCT_TOPIC.fullmatch(name[: -len(".dlq")]):
        return "a product's dead-letter topic"
    return None


def _create_error(conn: KafkaConnection, spec: TopicSpec, exc: KafkaException) -> Exception:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError) and error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
        return BrokerError(
            f"cannot create topic {spec.name} with replication factor "
            f"{spec.replication_factor} at {conn.bootstrap_servers}: {error.str()}; are all "
            f"brokers up (`mesh broker status`)? Or set `replication_factor` in the descriptor"
        )
    explained = explain_kafka_error(exc, conn, topic=spec.name, operation="CREATE")
    owner = spec.name.split(".", 1)[0]
    if (
        isinstance(error, KafkaError)
        and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        and _PRODUCT_TOPIC.fullmatch(spec.name)
        and conn.sasl_username not in (None, owner)
    ):
        # Granting the CREATE the general message suggests would let one domain write
        # another's product (a campaign): the topic's name says whose it is.
        return KafkaAuthorizationError(
            f"{conn.principal} may not CREATE topic {spec.name} at {conn.bootstrap_servers} "
            f"(TOPIC_AUTHORIZATION_FAILED): its name makes it domain {owner}'s, and only "
            f"{owner}'s user creates and writes it; publish with {owner}'s credentials "
            f"(MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD)"
        )
    if type(explained).__name__ == "MeshError":
        return BrokerError(f"cannot create topic {spec.name}: {explained}")
    return explained


#: Longest a topic's creation waits for the cluster to name a controller (then it is tried:
#: librdkafka's own wait and error follow).
CONTROLLER_WAIT_S = 10.0


def _wait_for_controller(
    admin: AdminClient, conn: KafkaConnection, metadata: ClusterMetadata, timeout: float
) -> None:
    """Return once ``admin`` knows a controller, asking the cluster again meanwhile.

    librdkafka sends CreateTopics to the controller its metadata names and does not ask again
    while waiting for one: an admin client whose first answer came from a cluster still
    electing one (just started) failed after its whole timeout with "Failed while waiting for
    controller", though the controller was there a moment later."""
    deadline = time.monotonic() + min(timeout, CONTROLLER_WAIT_S)
    while metadata.controller_id < 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        with contextlib.suppress(MeshError):  # an election under way may fail an ask or two
            metadata = _list_topics(admin, conn, max(0.1, min(2.0, deadline - time.monotonic())))


def _wait_for_leaders(admin: AdminClient, topic: str, partitions: int, timeout: float) -> None:
    """Return once every partition of a new topic has a leader (so the first write lands)."""
    deadline = time.monotonic() + min(timeout, 15.0)
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            found = admin.list_topics(topic, timeout=5).topics.get(topic)
            if (
                found is not None
                and found.error is None
                and len(found.partitions) >= partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                return
        time.sleep(0.1)
