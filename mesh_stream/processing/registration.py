"""Get a product ready before a processor touches it: its topic exists, its schema has an id.

Faust ignores source topics that do not exist when a worker starts, and it would create an
output topic with its own defaults; so every product topic a processor reads or writes is
created here first, with the partitions, retention and cleanup policy of its descriptor. The
value schema is registered under the product's subject (``<topic>-value``) in the
Confluent-compatible registry, which gives the schema id for the wire framing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    BrokerError,
    ConfigurationError,
    RegistryError,
    RegistryUnavailableError,
    SchemaError,
)
from mesh_stream.settings import MeshSettings

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


def registry_client(settings: MeshSettings) -> SchemaRegistryClient:
    """A Confluent registry client for ``settings.registry_url`` with the configured credential."""
    conf: dict[str, str] = {"url": settings.registry_url}
    if settings.registry_principal and settings.registry_token is not None:
        token = settings.registry_token.get_secret_value()
        conf["basic.auth.user.info"] = f"{settings.registry_principal}:{token}"
    return SchemaRegistryClient(conf)


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


def register_value_schema(
    client: SchemaRegistryClient, product: DataProduct, repo_root: Path
) -> int:
    """Register the product's value schema under ``<topic>-value``; returns its schema id."""
    text = schema_text(product, repo_root)
    try:
        return int(client.register_schema(product.value_subject, Schema(text, "AVRO")))
    except SchemaRegistryError as exc:
        error = RegistryError if exc.http_status_code != -1 else RegistryUnavailableError
        raise error(
            f"registry refused schema of {product.name} for subject {product.value_subject}: "
            f"{exc.error_message}",
            status=max(exc.http_status_code, 0) or 503,
            error_code=exc.error_code,
        ) from exc
    except Exception as exc:  # transport errors of the client (requests/httpx)
        raise RegistryUnavailableError(
            f"cannot reach the registry to register {product.value_subject}: {exc}; start it "
            "with `mesh registry serve` or set MESH_REGISTRY_URL",
            status=503,
        ) from exc


def fetch_schema(client: SchemaRegistryClient, schema_id: int) -> str:
    """Schema text of ``schema_id`` (for decoding); errors name the id and the registry."""
    try:
        return str(client.get_schema(schema_id).schema_str)
    except SchemaRegistryError as exc:
        raise RegistryError(
            f"registry has no schema id {schema_id}: {exc.error_message}",
            status=max(exc.http_status_code, 0) or 503,
            error_code=exc.error_code,
        ) from exc
    except Exception as exc:
        raise RegistryUnavailableError(
            f"cannot reach the registry to fetch schema id {schema_id}: {exc}; "
            "check MESH_REGISTRY_URL",
            status=503,
        ) from exc


def find_product(products: Iterable[DataProduct], name: str) -> DataProduct:
    """The descriptor named ``name``; a clear error lists what exists."""
    catalogue = {product.name: product for product in products}
    try:
        return catalogue[name]
    except KeyError:
        raise ConfigurationError(
            f"no product {name!r} in the descriptors; known: {', '.join(sorted(catalogue))}"
        ) from None
