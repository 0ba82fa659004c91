"""The registry: Confluent-compatible schemas plus the data product catalog.

``client`` is what the SDK and CLI use; ``service/`` is the server; ``problems`` is the
governance hook; ``error_codes`` maps errors to HTTP status and Confluent ``error_code``.
"""

from mesh_stream.registry.client import RegisteredSchema, RegistryClient
from mesh_stream.registry.problems import CatalogView, DescriptorProblem, DescriptorValidator

__all__ = [
    "CatalogView",
    "DescriptorProblem",
    "DescriptorValidator",
    "RegisteredSchema",
    "RegistryClient",
]
