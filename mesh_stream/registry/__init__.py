"""The registry: Confluent-compatible schemas plus the data product catalog.

``client`` is what the SDK and CLI use; ``service/`` is the server; ``problems`` is the
governance hook; ``error_codes`` maps errors to HTTP status and Confluent ``error_code``.
The names below load their module when first used, so importing ``problems`` or
``error_codes`` (layer 1) does not load the client (layer 2).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_stream.registry.client import RegisteredSchema, RegistryClient
    from mesh_stream.registry.problems import (
        CatalogView,
        DescriptorProblem,
        DescriptorValidator,
    )

_HOMES = {
    "RegisteredSchema": "mesh_stream.registry.client",
    "RegistryClient": "mesh_stream.registry.client",
    "CatalogView": "mesh_stream.registry.problems",
    "DescriptorProblem": "mesh_stream.registry.problems",
    "DescriptorValidator": "mesh_stream.registry.problems",
}

__all__ = [
    "CatalogView",
    "DescriptorProblem",
    "DescriptorValidator",
    "RegisteredSchema",
    "RegistryClient",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
