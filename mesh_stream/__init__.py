"""mesh-stream: an event-streaming backbone for a data mesh.

The public API is what ``__all__`` lists; everything else is internal and may change.
"""

from __future__ import annotations

from mesh_stream.errors import (
    BrokerError,
    ConfigurationError,
    DeliveryError,
    DescriptorError,
    DeserializationError,
    MeshError,
    PolicyViolationError,
    RegistryError,
    SchemaError,
    SerializationError,
)
from mesh_stream.settings import MeshSettings

__all__ = [
    "BrokerError",
    "ConfigurationError",
    "DeliveryError",
    "DescriptorError",
    "DeserializationError",
    "MeshError",
    "MeshSettings",
    "PolicyViolationError",
    "RegistryError",
    "SchemaError",
    "SerializationError",
]
