"""Where the registry log lives: the interface, and the in-memory store for unit tests.

The Kafka-backed store (:mod:`.kafka_store`) implements the same interface. ``append`` must
return only once the records are durable and folded into the state, so a write is visible
to the next read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mesh_stream.registry.service.state import Record

Apply = Callable[[Record], None]
#: Told ``(stage, seconds)`` of each write that stored its records (the registry's metrics).
WriteTimer = Callable[[str, float], None]


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


@dataclass(frozen=True)
class WriteRoute:
    """Where a write request goes now, for a store shared by several registry instances.

    Here (this instance writes), forwarded to ``url`` (the writer; ``writer`` describes it
    for messages, ``timeout`` bounds the forwarded request), or nowhere yet (``reason``,
    answered 503 with ``Retry-After: retry_after``).
    """

    url: str | None = None
    writer: str = ""
    timeout: float = 30.0
    reason: str | None = None
    retry_after: int = 1

    @classmethod
    def here(cls) -> WriteRoute:
        return cls()

    @classmethod
    def forward(cls, url: str, writer: str, timeout: float, *, retry_after: int = 1) -> WriteRoute:
        return cls(url=url, writer=writer, timeout=timeout, retry_after=retry_after)

    @classmethod
    def nowhere(cls, reason: str, retry_after: int) -> WriteRoute:
        return cls(reason=reason, retry_after=retry_after)

    @property
    def local(self) -> bool:
        return self.url is None and self.reason is None


@runtime_checkable
class SharedStore(Protocol):
    """A store several instances share: one writes, the others forward writes to it."""

    def write_route(self) -> WriteRoute:
        """Where a write request that reaches this instance goes now."""
        ...


#: How long a request waits for this instance's view to reach its log's end: before a
#: credential the log can change is trusted (then 503: never a stale answer), and before a
#: follower answers a write it forwarded (best effort).
CATCH_UP_SECONDS = 5.0


@runtime_checkable
class CatchingUpStore(Protocol):
    """A store whose view may trail its log (another instance wrote): it can catch up on demand.

    Authentication asks for this before trusting a credential the log can change (issued or
    revoked tokens), so a token revoked through any instance is refused here at once. A
    store without it (the in-memory one) applies every record before ``append`` returns.
    """

    def catch_up_view(self, timeout: float) -> None:
        """Return once the view holds every record committed before this call."""
        ...


class InMemoryStore:
    """A list in memory; ``records`` can be replayed into a fresh service to test restarts."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.records: list[Record] = list(records)
        self._apply: Apply | None = None
        self._lock = threading.Lock()
        self._write_timer: WriteTimer | None = None
        #: how long :meth:`open` took to replay ``records`` (None before)
        self.replay_seconds: float | None = None

    def open(self, apply: Apply, *, wait: bool = True) -> None:  # noqa: ARG002 - always waits
        started = time.monotonic()
        self._apply = apply
        for record in self.records:
            apply(record)
        self.replay_seconds = time.monotonic() - started

    def observe_writes(self, timer: WriteTimer) -> None:
        """Tell ``timer`` how long each :meth:`append` took (stage ``append``)."""
        self._write_timer = timer

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
        started = time.monotonic()
        with self._lock:
            self.records.extend(records)
            for record in records:
                self._apply(record)
        if self._write_timer is not None:
            self._write_timer("append", time.monotonic() - started)

    def close(self) -> None:
        self._apply = None
