"""Get a product ready before a processor touches it: its topic exists, its schema has an id.

Faust ignores source topics that do not exist when a worker starts, and it would create an
output topic with its own defaults; so every product topic a processor reads or writes is
created here first, with the partitions, retention and cleanup policy of its descriptor. The
value schema is registered under the product's subject (``<topic>-value``), which gives the
schema id for the wire framing, and the descriptor is registered so the product, with its
lineage, is discoverable.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import BrokerError, ConfigurationError, ProductNotFoundError, SchemaError
from mesh_stream.registry.client import RegistryClient

TOPIC_ALREADY_EXISTS = 36


def topic_config(product: DataProduct) -> dict[str, str]:
    """Kafka topic configs that carry out the descriptor's retention and cleanup policy."""
    return {
        "cleanup.policy": product.retention.cleanup_policy.value,
        "retention.ms": str(product.retention.ms),
    }


def ensure_topics(
    bootstrap_servers: str, products: Iterable[DataProduct], *, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics of ``products``; returns the names created."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    wanted = {product.topic: product for product in products}
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot list topics at {bootstrap_servers}: {exc}; is the broker up "
            "(`mesh broker status`) and MESH_BOOTSTRAP_SERVERS right?"
        ) from exc
    missing = [
        NewTopic(
            topic,
            num_partitions=product.partitions,
            replication_factor=1,
            config=topic_config(product),
        )
        for topic, product in wanted.items()
        if topic not in existing
    ]
    created: list[str] = []
    if not missing:
        return created
    for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "code", lambda: None)() == TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {topic}: {exc}") from exc
    return created


def ensure_internal_topic(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    *,
    compacted: bool = False,
    timeout: float = 30.0,
) -> None:
    """Create a processor's internal topic (re-key or changelog) before faust starts.

    Faust would create it itself, but its first partition assignment can run before the new
    topic shows up in metadata, and then the worker never reads it.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    config = {"cleanup.policy": "compact"} if compacted else {}
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)],
        request_timeout=timeout,
    )
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if not (exc.args and getattr(exc.args[0], "code", lambda: None)() == TOPIC_ALREADY_EXISTS):
            raise BrokerError(f"cannot create internal topic {topic}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while topic not in admin.list_topics(topic, timeout=timeout).topics:
        if time.monotonic() > deadline:
            raise BrokerError(f"internal topic {topic} does not show up in the broker metadata")
        time.sleep(0.2)


def schema_text(product: DataProduct, repo_root: Path) -> str:
    """The `.avsc` of ``product``, read from ``repo_root``; errors name the descriptor field."""
    path = repo_root / product.schema_file
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(
            f"{product.name}: schema: cannot read {path}: {exc.strerror}; the descriptor's "
            "`schema` must be a path relative to the repository root"
        ) from exc


def register_product(
    registry: RegistryClient,
    product: DataProduct,
    repo_root: Path,
    *,
    wait_for_inputs: float = 120.0,
    poll_interval: float = 1.0,
) -> int:
    """Register the value schema under ``<topic>-value`` and the descriptor; return the id.

    The registry accepts a product only when its inputs (its lineage) are registered, which
    the source domains do when their publishers start; so this waits up to
    ``wait_for_inputs`` seconds for them, then names the ones still missing.
    """
    schema_id = registry.register_schema(product.value_subject, schema_text(product, repo_root))
    deadline = time.monotonic() + wait_for_inputs
    while True:
        missing = [name for name in product.inputs if not _is_registered(registry, name)]
        if not missing:
            break
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"{product.name}: inputs {', '.join(missing)} are not registered in the "
                f"registry at {registry.url} after {wait_for_inputs:.0f} s; start their "
                "simulators (`python -m domains.<domain>.simulator`), which register them"
            )
        time.sleep(poll_interval)
    registry.put_product(product)
    return schema_id


def register_source_product(registry: RegistryClient, product: DataProduct, repo_root: Path) -> int:
    """Register a product without inputs: its value schema, then its descriptor."""
    return register_product(registry, product, repo_root, wait_for_inputs=0)


def _is_registered(registry: RegistryClient, name: str) -> bool:
    try:
        registry.get_product(name)
    except ProductNotFoundError:
        return False
    return True


def find_product(products: Iterable[DataProduct], name: str) -> DataProduct:
    """The descriptor named ``name``; a clear error lists what exists."""
    catalogue = {product.name: product for product in products}
    try:
        return catalogue[name]
    except KeyError:
        raise ConfigurationError(
            f"no product {name!r} in the descriptors; known: {', '.join(sorted(catalogue))}"
        ) from None
