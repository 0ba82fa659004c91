"""Where the registry log lives: the interface, and the in-memory store for unit tests.

The Kafka-backed store (:mod:`.kafka_store`) implements the same interface. ``append`` must
return only once the records are durable and folded into the state, so a write is visible
to the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mesh_stream.registry.service.state import Record

Apply = Callable[[Record], None]


class RegistryStore(Protocol):
    """A durable, ordered log of registry records."""

    def open(self, apply: Apply, *, wait: bool = True) -> None:
        """Replay every stored record through ``apply``, then keep applying new ones.

        ``wait=False`` may return before the replay ends (see :meth:`starting`).
        """
        ...

    def starting(self) -> str | None:
        """Why the store cannot serve yet (e.g. replay under way); None once it can."""
        ...

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether reads and writes can be served now, with details (a reason if not)."""
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

    def open(self, apply: Apply, *, wait: bool = True) -> None:  # noqa: ARG002 - always waits
        self._apply = apply
        for record in self.records:
            apply(record)

    def starting(self) -> str | None:
        return None if self._apply is not None else "not opened"

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        reason = self.starting()
        if reason is not None:
            return False, {"reason": reason, "records": len(self.records)}
        return True, {"records": len(self.records)}

    def append(self, records: Sequence[Record]) -> None:
        if self._apply is None:
            raise RuntimeError("InMemoryStore.append before open")
        for record in records:
            record.encode()  # refused as Kafka would refuse it (422), before anything is stored
        with self._lock:
            self.records.extend(records)
            for record in records:
                self._apply(record)

    def close(self) -> None:
        self._apply = None
