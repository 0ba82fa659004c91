"""mesh-stream: an event-streaming backbone for a data mesh.

The public API is what ``__all__`` lists; everything else is internal and may change.
A domain team needs little more than this::

    from mesh_stream import MeshSettings, open_publisher

    with open_publisher("orders.order-placed", settings=MeshSettings()) as publisher:
        publisher.publish({"order_id": "...", ...})
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mesh_stream.consumer import ConsumedRecord, ProductConsumer
from mesh_stream.descriptor import DataProduct, load_descriptor, load_descriptors
from mesh_stream.errors import (
    AuthError,
    BrokerError,
    ConfigurationError,
    DeliveryError,
    DescriptorError,
    DeserializationError,
    IncompatibleSchemaError,
    MeshError,
    ProductNotFoundError,
    ProductRejectedError,
    RegistryError,
    RegistryUnavailableError,
    RuleViolationError,
    SchemaError,
    SerializationError,
)
from mesh_stream.producer import (
    AsyncProductPublisher,
    DeadLetteredRecord,
    ProductPublisher,
    PublishReport,
    open_publisher,
)
from mesh_stream.registry import RegisteredSchema, RegistryClient
from mesh_stream.schema.models import model_from_schema
from mesh_stream.settings import MeshSettings

if TYPE_CHECKING:
    from mesh_stream.broker import LocalCluster, local_cluster
    from mesh_stream.governance import LintReport, Violation, lint_repository

#: Public names of the platform-team layers (launcher, governance), imported on first use
#: so that ``import mesh_stream`` in a domain service loads only the SDK.
_LAZY = {
    "LocalCluster": "mesh_stream.broker",
    "local_cluster": "mesh_stream.broker",
    "LintReport": "mesh_stream.governance",
    "Violation": "mesh_stream.governance",
    "lint_repository": "mesh_stream.governance",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mesh_stream' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncProductPublisher",
    "AuthError",
    "BrokerError",
    "ConfigurationError",
    "ConsumedRecord",
    "DataProduct",
    "DeadLetteredRecord",
    "DeliveryError",
    "DescriptorError",
    "DeserializationError",
    "IncompatibleSchemaError",
    "LintReport",
    "LocalCluster",
    "MeshError",
    "MeshSettings",
    "ProductConsumer",
    "ProductNotFoundError",
    "ProductPublisher",
    "ProductRejectedError",
    "PublishReport",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "RuleViolationError",
    "SchemaError",
    "SerializationError",
    "Violation",
    "lint_repository",
    "load_descriptor",
    "load_descriptors",
    "local_cluster",
    "model_from_schema",
    "open_publisher",
]
