"""What every exporter reads about a product: descriptor, latest schema, where it lives.

An :class:`ExportedProduct` is built from the registry (the registered schema's latest
version: what consumers really decode) or, for a product of the local project that is not
registered yet, from its ``.avsc`` with a warning saying so. Exporters never look anything
up themselves, so the CLI, the registry's endpoints and tests feed them the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ProductNotFoundError, RegistryError, SubjectNotFoundError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import MeshProject
from mesh_stream.registry.client import RegistryClient
from mesh_stream.schema.codec import load_schema_file
from mesh_stream.settings import bootstrap_addresses


@dataclass(frozen=True)
class KafkaServer:
    """The cluster the products live on, as documents describe it (no secret in it)."""

    bootstrap_servers: str
    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    security_protocol: str = "PLAINTEXT"
    #: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 under SASL
    sasl_mechanism: str | None = None
    #: whether clients present a certificate (mutual TLS: AsyncAPI's X509 scheme)
    client_certificate: bool = False

    @property
    def hosts(self) -> list[str]:
        """Each bootstrap server as ``host:port``: a listener name such as ``PLAINTEXT://``
        in MESH_BOOTSTRAP_SERVERS is the client's business, not a document's."""
        return [
            f"{host}:{port}" if port else host
            for host, port in bootstrap_addresses(self.bootstrap_servers)
        ]

    @classmethod
    def from_connection(cls, connection: KafkaConnection) -> KafkaServer:
        return cls(
            bootstrap_servers=connection.bootstrap_servers,
            security_protocol=connection.security_protocol.value,
            sasl_mechanism=(
                connection.sasl_mechanism.value if connection.sasl_mechanism is not None else None
            ),
            client_certificate=connection.ssl_certificate_location is not None,
        )


@dataclass(frozen=True)
class ExportedProduct:
    """One product as exporters see it."""

    product: DataProduct
    #: the value schema document (parsed Avro JSON); the latest registered version, else the
    #: local .avsc
    schema: dict[str, Any]
    #: registry facts; None when the schema comes from the local .avsc
    schema_id: int | None = None
    schema_version: int | None = None
    compatibility: str | None = None
    #: products built from this one (the registry's catalog; empty from a local file)
    downstream: tuple[str, ...] = ()
    #: the registered version's Confluent ``metadata`` / ``ruleSet`` when it has them
    metadata: Mapping[str, Any] | None = None
    rule_set: Mapping[str, Any] | None = None
    #: what the reader should know (e.g. "not registered yet: exported from <file>")
    warnings: tuple[str, ...] = field(default=())

    @property
    def registered(self) -> bool:
        return self.schema_id is not None


def local_product(
    project: MeshProject,
    name: str,
    *,
    reason: str,
    descriptors: Mapping[str, DataProduct] | None = None,
) -> ExportedProduct:
    """``name`` from the project's own descriptor and ``.avsc``, warned as unregistered;
    ``descriptors`` (the project's, by name) saves reading every descriptor again per name."""
    product = descriptors.get(name) if descriptors is not None else project.descriptor(name)
    if product is None:
        raise ProductNotFoundError(
            f"product '{name}' is neither in the registry nor in the project at {project.root}; "
            f"check the name (`mesh products list`)",
            status=404,
            error_code=40404,
        )
    path = project.schema_path(product)
    schema = load_schema_file(path)  # SchemaError naming the file, as everywhere
    return ExportedProduct(
        product=product,
        schema=schema,
        warnings=(f"{name}: {reason}; exported from the local {path}",),
    )


class RegistrySource:
    """Products read through a :class:`RegistryClient`; the local project fills in products
    whose schema is not registered yet (with a warning)."""

    def __init__(self, client: RegistryClient, project: MeshProject | None = None) -> None:
        self.client = client
        self.project = project
        #: The project's descriptors by name, read once when a product is not registered
        #: (read per product, 1,000 unregistered products took minutes).
        self._local: dict[str, DataProduct] | None = None

    def _local_product(self, project: MeshProject, name: str, reason: str) -> ExportedProduct:
        if self._local is None:
            self._local = {product.name: product for product in project.descriptors()}
        return local_product(project, name, reason=reason, descriptors=self._local)

    def names(self) -> list[str]:
        return sorted(str(p["name"]) for p in self.client.list_products())

    def product(self, name: str) -> ExportedProduct:
        try:
            document = self.client.get_product(name)
        except ProductNotFoundError:
            if self.project is None:
                raise ProductNotFoundError(
                    f"product '{name}' is not registered (check the name with `mesh products "
                    f"list`, or run inside its project to export it from its .avsc)",
                    status=404,
                    error_code=40404,
                ) from None
            return self._local_product(self.project, name, "not registered in the registry")
        facts = document.pop("registry", {})
        product = DataProduct.model_validate(document)
        try:
            latest = self.client.get_latest(product.value_subject)
        except (SubjectNotFoundError, RegistryError) as exc:
            if isinstance(exc, SubjectNotFoundError) and self.project is not None:
                return self._local_product(self.project, name, "its schema is not registered")
            raise
        try:
            compatibility: str | None = self.client.get_compatibility(product.value_subject)
        except RegistryError:
            compatibility = None
        return ExportedProduct(
            product=product,
            schema=json.loads(latest.schema),
            schema_id=latest.schema_id,
            schema_version=latest.version,
            compatibility=compatibility,
            downstream=tuple(facts.get("downstream", ())),
            metadata=latest.metadata,
            rule_set=latest.rule_set,
        )
