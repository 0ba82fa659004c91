"""The registry service: a Confluent-compatible schema registry and a data product catalog.

Layout: ``schemas`` and ``products`` are the domain cores (no HTTP), ``state`` folds the
log of records, ``store``/``kafka_store`` keep that log, ``auth`` decides who may write,
``edge`` guards the HTTP edge (limits, hostile bodies, the heavy-work pool), ``routes/``
holds one router per resource, ``app`` assembles them, ``server`` runs uvicorn.
"""

from mesh_stream.registry.service.app import create_app
from mesh_stream.registry.service.store import InMemoryStore, RegistryStore

__all__ = ["InMemoryStore", "RegistryStore", "create_app"]
