"""Table writes held until faust commits: one changelog record per key and commit, not per batch.

Faust writes a RocksDB put and a changelog record on every assignment to a table, so a key
updated in every batch cost both per batch, twice (its state, and its open seen-id slot): at
a steady 1,000 events/s about a fifth of the worker's CPU. The aggregate's tables are
therefore written through :class:`DeferredTable`:

* an assignment (or deletion) is kept in memory, as JSON (written and read with orjson):
  reads see it, and a later update that fails half-way cannot change what is kept;
* every kept write reaches its faust table when faust starts a commit
  (:class:`FlushBeforeCommit`, a sensor faust calls before it picks the offsets to commit),
  or earlier once ``flush_at`` keys' writes are kept (a backlog touches many keys a second,
  and one commit sending all of their records at once held up the outputs behind it). It is
  written under the event it was made under, so it goes to the same store and changelog
  partition as a direct write. Faust then flushes its producer, these changelog records
  included, and only then commits, so an offset is committed only once the effects of every
  event up to it are in the changelog, as when each write was sent at once. Tables are
  flushed in the order given (the seen table before the state table that lists its entries).
* in a rebalance, what is still kept once faust has waited for its agents is flushed, and
  faust's producer with it, before the revoke ends (:func:`defer_writes` connects that to
  faust's ``on_partitions_revoked``): a partition's next owner restores its tables from the
  changelog after that, so it sees every write, as it did when each was sent at once.
  (Dropping them instead is wrong: faust goes on acknowledging events it took before the
  revoke, and commits them if the partition comes back to this worker.)

A worker killed between commits loses the kept writes, and its uncommitted offsets with them:
the restart reads those events again and the replay guard applies each once, as after any
crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import faust
import orjson

from mesh_stream.errors import MeshError, ProcessorError
from mesh_stream.processing import faust_seams
from mesh_stream.processing.spec import shown_key, state_json

__all__ = ["DeferredTable", "DeferredWrites", "FlushBeforeCommit", "defer_writes"]

#: Room left under faust's ``producer_max_request_size`` for a changelog record's key and
#: overhead: a table value (as JSON) may take the rest.
CHANGELOG_HEADROOM_BYTES = 16 * 1024


class DeferredWritesFailedError(MeshError):
    """A flush of kept table writes failed: no commit may follow it."""


class StateTooLargeError(ProcessorError):
    """A table value larger than a changelog record may be (faust's producer would refuse
    it at every flush)."""


class DeferredWrites:
    """The deferred tables of one worker, flushed together and in order (see the module)."""

    def __init__(
        self,
        tables: Sequence[MutableMapping[str, Any]],
        flush_at: int,
        max_value_bytes: int | None = None,
    ) -> None:
        self.tables = tuple(DeferredTable(table, self) for table in tables)
        self.flush_at = flush_at
        #: The longest value (as JSON) a table's changelog record may carry, when known.
        self.max_value_bytes = max_value_bytes
        self.failed: BaseException | None = None

    def flush(self) -> int:
        """Write every kept write to its faust table, table by table; how many.

        A flush that fails raises, and so does every later one: the writes it lost are in
        no changelog while their events' offsets may be acknowledged, so no commit may follow.
        """
        if self.failed is not None:
            raise DeferredWritesFailedError(
                f"kept table writes were lost ({self.failed!r}); nothing is committed"
            )
        try:
            written = sum(table.flush() for table in self.tables)
        except BaseException as exc:
            self.failed = exc
            raise
        return written

    @property
    def kept(self) -> int:
        """Keys whose writes wait for the next flush, all tables together."""
        return sum(table.pending for table in self.tables)

    def _added(self) -> None:
        if self.kept >= self.flush_at:
            self.flush()


class DeferredTable(MutableMapping[str, Any]):
    """A faust table whose writes wait in memory for :meth:`DeferredWrites.flush`."""

    def __init__(self, table: MutableMapping[str, Any], writes: DeferredWrites) -> None:
        self.table = table
        self._writes = writes
        #: key -> (its value as JSON, or None for a deletion; the event it was made under)
        self._kept: dict[str, tuple[bytes | None, Any]] = {}

    def __getitem__(self, key: str) -> Any:
        kept = self._kept.get(key)
        if kept is None:
            return self.table[key]
        if kept[0] is None:
            raise KeyError(key)
        return orjson.loads(kept[0])

    def get(self, key: str, default: Any = None) -> Any:
        kept = self._kept.get(key)
        if kept is None:
            return self.table.get(key, default)
        return default if kept[0] is None else orjson.loads(kept[0])

    def __setitem__(self, key: str, value: Any) -> None:
        text = state_json(key, value)
        most = self._writes.max_value_bytes
        if most is not None and len(text) > most:
            # refused now, naming the key, rather than by faust's producer at the next flush,
            # which would stop the worker at every restart with aiokafka's words
            raise StateTooLargeError(
                f"the state of key {shown_key(key)} takes {len(text):,} bytes as JSON, over the "
                f"{most:,} one changelog record may hold; keep less in it (totals rather than "
                f"the events themselves)"
            )
        self._keep(key, text)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._keep(key, None)

    def __contains__(self, key: object) -> bool:
        kept = self._kept.get(key) if isinstance(key, str) else None
        return key in self.table if kept is None else kept[0] is not None

    def __iter__(self) -> Iterator[str]:
        yield from (key for key, (text, _) in self._kept.items() if text is not None)
        yield from (key for key in self.table if key not in self._kept)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def write_now(self, key: str, value: Any) -> None:
        """Write ``key`` to the faust table at once (its changelog record sent now, ahead of
        every kept write), dropping any kept write of it: for a record that must reach the
        changelog before later flushes can (expiry's clock, before its tombstones)."""
        self._kept.pop(key, None)
        self.table[key] = value

    def flush_all(self) -> int:
        """Flush every deferred table of the worker (:meth:`DeferredWrites.flush`)."""
        return self._writes.flush()

    @property
    def pending(self) -> int:
        """Writes kept since the last flush."""
        return len(self._kept)

    def flush(self) -> int:
        """Write what is kept to the faust table, each under its own event; how many."""
        kept, self._kept = self._kept, {}
        table = self.table
        for key, (text, event) in kept.items():
            with faust_seams.current_event(event):
                if text is None:
                    with contextlib.suppress(KeyError):
                        del table[key]
                else:
                    table[key] = orjson.loads(text)
        return len(kept)

    def _keep(self, key: str, text: bytes | None) -> None:
        # A rewritten key moves to the end: a flush writes keys in the order of their last
        # write, so what was written first reaches the changelog first.
        new = self._kept.pop(key, None) is None
        self._kept[key] = (text, _current_event())
        if new:
            self._writes._added()


class FlushBeforeCommit(faust.Sensor):
    """Runs ``flush`` when faust starts a commit: a worker's kept writes
    (:meth:`DeferredWrites.flush`), its outputs (:mod:`~mesh_stream.processing.outputs`).

    Faust calls ``on_commit_initiated`` at the start of every commit, before it picks the
    offsets to commit and flushes its producer; a failed flush raises there, so the commit
    fails.
    """

    def __init__(self, flush: Callable[[], object]) -> None:
        super().__init__()
        self.flush = flush

    def on_commit_initiated(self, consumer: Any) -> Any:
        del consumer
        self.flush()
        return None


def defer_writes(
    app: faust.App, *tables: MutableMapping[str, Any], flush_at: int
) -> tuple[DeferredTable, ...]:
    """Wrap ``tables`` (flushed in this order) so their writes wait for faust's commits (or
    ``flush_at`` of them are kept; 1 writes each at once), and flush them when faust revokes
    partitions; returns the wrappers."""
    most = app.conf.producer_max_request_size - CHANGELOG_HEADROOM_BYTES
    writes = DeferredWrites(tables, flush_at, most)
    app.sensors.add(FlushBeforeCommit(writes.flush))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's handler type is narrow
    async def flush_before_handing_over(sender: Any, *args: Any, **kwargs: Any) -> None:
        del sender, args, kwargs
        if writes.flush():
            await app.producer.flush()

    return writes.tables


def _current_event() -> Any:
    event = faust.current_event()
    if event is None:
        raise RuntimeError("a processor table was written outside of an event")
    return event
