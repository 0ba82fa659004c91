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

if TYPE_CHECKING:
    from mesh_stream.broker import LocalCluster, local_cluster
    from mesh_stream.consumer import ConsumedRecord, ProductConsumer
    from mesh_stream.descriptor import DataProduct, load_descriptor, load_descriptors
    from mesh_stream.errors import (
        AuthenticationError,
        AuthError,
        BrokerError,
        BrokerUnreachableError,
        ConfigurationError,
        ConsumerError,
        DeliveryError,
        DescriptorError,
        DeserializationError,
        IncompatibleSchemaError,
        KafkaAuthenticationError,
        KafkaAuthorizationError,
        KafkaSecurityError,
        MeshError,
        PermissionDeniedError,
        ProcessorError,
        ProductNotFoundError,
        ProductRejectedError,
        ProjectNotFoundError,
        RegistryError,
        RegistryUnavailableError,
        RuleViolationError,
        SchemaError,
        SchemaNotFoundError,
        SerializationError,
        SettingsError,
        SubjectNotFoundError,
        TooManyRequestsError,
        TopicMismatchError,
        VersionNotFoundError,
    )
    from mesh_stream.governance import LintReport, Violation, lint_repository
    from mesh_stream.kafka.connection import KafkaConnection
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

#: Where each public name lives. Names are imported on first use, so ``import mesh_stream``
#: costs nothing until a name is used: a domain service that uses the SDK loads only the
#: SDK's modules, and the ``mesh`` command starts without them (a Ctrl-C while Python loads
#: it ends quietly, see ``cli/entry.py``).
_LAZY = {
    **dict.fromkeys(("ConsumedRecord", "ProductConsumer"), "mesh_stream.consumer"),
    **dict.fromkeys(
        ("DataProduct", "load_descriptor", "load_descriptors"), "mesh_stream.descriptor"
    ),
    **dict.fromkeys(
        (
            "AuthError",
            "AuthenticationError",
            "BrokerError",
            "BrokerUnreachableError",
            "ConfigurationError",
            "ConsumerError",
            "DeliveryError",
            "DescriptorError",
            "DeserializationError",
            "IncompatibleSchemaError",
            "KafkaAuthenticationError",
            "KafkaAuthorizationError",
            "KafkaSecurityError",
            "MeshError",
            "PermissionDeniedError",
            "ProcessorError",
            "ProductNotFoundError",
            "ProductRejectedError",
            "ProjectNotFoundError",
            "RegistryError",
            "RegistryUnavailableError",
            "RuleViolationError",
            "SchemaError",
            "SchemaNotFoundError",
            "SerializationError",
            "SettingsError",
            "SubjectNotFoundError",
            "TooManyRequestsError",
            "TopicMismatchError",
            "VersionNotFoundError",
        ),
        "mesh_stream.errors",
    ),
    **dict.fromkeys(
        (
            "AsyncProductPublisher",
            "DeadLetteredRecord",
            "ProductPublisher",
            "PublishReport",
            "open_publisher",
        ),
        "mesh_stream.producer",
    ),
    **dict.fromkeys(("RegisteredSchema", "RegistryClient"), "mesh_stream.registry"),
    "model_from_schema": "mesh_stream.schema.models",
    "MeshSettings": "mesh_stream.settings",
    "KafkaConnection": "mesh_stream.kafka.connection",
    # the platform team's layers (launcher, governance)
    **dict.fromkeys(("LocalCluster", "local_cluster"), "mesh_stream.broker"),
    **dict.fromkeys(("LintReport", "Violation", "lint_repository"), "mesh_stream.governance"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:  # a submodule (mesh_stream.errors), as the eager imports once gave it
        try:
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'mesh_stream' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncProductPublisher",
    "AuthError",
    "AuthenticationError",
    "BrokerError",
    "BrokerUnreachableError",
    "ConfigurationError",
    "ConsumedRecord",
    "ConsumerError",
    "DataProduct",
    "DeadLetteredRecord",
    "DeliveryError",
    "DescriptorError",
    "DeserializationError",
    "IncompatibleSchemaError",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "KafkaConnection",
    "KafkaSecurityError",
    "LintReport",
    "LocalCluster",
    "MeshError",
    "MeshSettings",
    "PermissionDeniedError",
    "ProcessorError",
    "ProductConsumer",
    "ProductNotFoundError",
    "ProductPublisher",
    "ProductRejectedError",
    "ProjectNotFoundError",
    "PublishReport",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "RuleViolationError",
    "SchemaError",
    "SchemaNotFoundError",
    "SerializationError",
    "SettingsError",
    "SubjectNotFoundError",
    "TooManyRequestsError",
    "TopicMismatchError",
    "VersionNotFoundError",
    "Violation",
    "lint_repository",
    "load_descriptor",
    "load_descriptors",
    "local_cluster",
    "model_from_schema",
    "open_publisher",
]
