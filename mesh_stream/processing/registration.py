"""Get a product ready before a processor touches it: its topic exists, its schema has an id.

Faust ignores source topics that do not exist when a worker starts, and it would create an
output topic with its own defaults; so every product topic a processor reads or writes is
created here first, with the partitions, retention and cleanup policy of its descriptor. The
value schema is registered under the product's subject (``<topic>-value``) through the
registry's Confluent-compatible API, which gives the schema id for the wire framing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

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


class SchemaRegistry:
    """The two calls a processor makes to the Confluent-compatible registry API.

    Register the output schema under its subject (idempotent: the same schema gets the same
    id) and fetch writer schemas by id. Errors carry the HTTP status and Confluent
    ``error_code`` and say which setting points at the registry.
    """

    def __init__(self, settings: MeshSettings, *, timeout: float = 10.0) -> None:
        auth: tuple[str, str] | None = None
        if settings.registry_principal and settings.registry_token is not None:
            auth = (settings.registry_principal, settings.registry_token.get_secret_value())
        self.url = settings.registry_url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, auth=auth, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"cannot reach the registry at {self.url} to {what}: {exc}; start it with "
                "`mesh registry serve` or set MESH_REGISTRY_URL",
                status=503,
            ) from exc
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            message = body.get("message", response.text) if isinstance(body, dict) else body
            code = body.get("error_code") if isinstance(body, dict) else None
            raise RegistryError(
                f"registry at {self.url} refused to {what}: {message}",
                status=response.status_code,
                error_code=code,
            )
        return body

    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` (Avro text) under ``subject``; returns its schema id."""
        body = self._call(
            "POST",
            f"/subjects/{subject}/versions",
            f"register a schema under subject {subject}",
            json={"schema": schema, "schemaType": "AVRO"},
        )
        return int(body["id"])

    def schema(self, schema_id: int) -> str:
        """Avro text of ``schema_id``, for decoding records written with it."""
        body = self._call("GET", f"/schemas/ids/{schema_id}", f"fetch schema id {schema_id}")
        return str(body["schema"])


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


def register_value_schema(registry: SchemaRegistry, product: DataProduct, repo_root: Path) -> int:
    """Register the product's value schema under ``<topic>-value``; returns its schema id."""
    return registry.register(product.value_subject, schema_text(product, repo_root))


def find_product(products: Iterable[DataProduct], name: str) -> DataProduct:
    """The descriptor named ``name``; a clear error lists what exists."""
    catalogue = {product.name: product for product in products}
    try:
        return catalogue[name]
    except KeyError:
        raise ConfigurationError(
            f"no product {name!r} in the descriptors; known: {', '.join(sorted(catalogue))}"
        ) from None
