"""The registry service: a Confluent-compatible schema registry and a data product catalog.

Layout: ``schemas`` and ``products`` are the domain cores (no HTTP), ``state`` folds the
log of records, ``store``/``kafka_store`` keep that log, ``auth`` decides who may write,
``edge`` guards the HTTP edge (limits, hostile bodies, the heavy-work pool), ``routes/``
holds one router per resource, ``app`` assembles them, ``server`` runs uvicorn.

The re-exported names are imported on first use: ``app`` needs the registry extra
(FastAPI), while the core CLI's `mesh registry credentials` imports ``auth`` and
``credentials`` from this package without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_stream.registry.service.app import create_app
    from mesh_stream.registry.service.store import InMemoryStore, RegistryStore

__all__ = ["InMemoryStore", "RegistryStore", "create_app"]

_HOMES = {"create_app": "app", "InMemoryStore": "store", "RegistryStore": "store"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
