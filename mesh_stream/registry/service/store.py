"""Where the registry log lives: the interface, and the in-memory store for unit tests.

The Kafka-backed store (:mod:`.kafka_store`) implements the same interface. ``append`` must
return only once the records are durable and folded into the state, so a write is visible
to the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from mesh_stream.registry.service.state import Record

Apply = Callable[[Record], None]


class RegistryStore(Protocol):
    """A durable, ordered log of registry records."""

    def open(self, apply: Apply) -> None:
        """Replay every stored record through ``apply``, then keep applying new ones."""
        ...

    def append(self, records: Sequence[Record]) -> None:
        """Store ``records`` atomically and return once ``apply`` has seen them."""
        ...

    def close(self) -> None:
        """Release connections; the log itself stays."""
        ...


class InMemoryStore:
    """A list in memory; ``records`` can be replayed into a fresh service to test restarts."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.records: list[Record] = list(records)
        self._apply: Apply | None = None
        self._lock = threading.Lock()

    def open(self, apply: Apply) -> None:
        self._apply = apply
        for record in self.records:
            apply(record)

    def append(self, records: Sequence[Record]) -> None:
        if self._apply is None:
            raise RuntimeError("InMemoryStore.append before open")
        with self._lock:
            self.records.extend(records)
            for record in records:
                self._apply(record)

    def close(self) -> None:
        self._apply = None
