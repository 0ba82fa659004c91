"""Every use of faust internals, in one place, for the faust versions it was checked against.

The engine uses faust through its public API (apps, topics, agents, tables, sensors) except
for the few things below, which faust offers no public way to do. Each is written against
the faust-streaming versions in :data:`SUPPORTED_FAUST`; importing this module with another
version installed is a :class:`~mesh_stream.errors.ConfigurationError` naming both, and
``tests/unit/processing/test_faust_seams.py`` fails too, and checks that each internal used
here still exists. Upgrading faust means: widen the range, run that test and the processor
integration tests.

* :func:`current_event` -- tables write their changelog record to the partition of the
  *current event*, which the batching does not set in the agent's task
  (``faust.streams._current_event``).
* :func:`take_ready` -- batches of events that do not wait when the input is idle: like
  ``Stream.take_events``, whose batch waits its whole ``within`` unless it fills, but a batch
  is handed over as soon as the stream's queue is drained (``Stream.add_processor``,
  ``Stream._enable_passive``, ``Stream.current_event``, ``Channel.queue``).
* :func:`size_producer_buffer` -- the producer buffer's ``max_messages`` (faust's 100 stalls
  every batch that queues thousands of outputs and changelog records).
* :func:`withhold_acks` -- keep a failed batch's offsets from ever being committed
  (``Message.acked``): ``take_ready`` acknowledges a batch when the agent leaves it, even
  by an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import re
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import faust
from faust.streams import _current_event

from mesh_stream.errors import ConfigurationError

__all__ = [
    "SUPPORTED_FAUST",
    "check_faust_version",
    "current_event",
    "size_producer_buffer",
    "take_ready",
    "withhold_acks",
]

#: faust-streaming versions the seams below were checked against: lowest included, highest
#: excluded.
SUPPORTED_FAUST = ("0.15.3", "0.16")


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of ``version`` (``0.15.3rc1`` -> ``(0, 15, 3)``)."""
    parts = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != part:
            break
    return tuple(parts)


def check_faust_version(installed: str | None = None) -> str:
    """The installed faust-streaming version; an error naming it if it is unsupported."""
    if installed is None:
        installed = importlib.metadata.version("faust-streaming")
    lowest, above = SUPPORTED_FAUST
    if not _release(lowest) <= _release(installed) < _release(above):
        raise ConfigurationError(
            f"faust-streaming {installed} is installed, but mesh_stream.processing supports "
            f">={lowest},<{above} (it uses faust internals, see "
            f"mesh_stream/processing/faust_seams.py); install a supported version, e.g. "
            f"pip install 'faust-streaming>={lowest},<{above}'"
        )
    return installed


FAUST_VERSION = check_faust_version()


@contextlib.contextmanager
def current_event(event: faust.EventT[Any]) -> Iterator[None]:
    """Make ``event`` the current event while the block runs (table writes go to its
    partition's changelog)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def take_ready(
    stream: faust.StreamT[Any], max_events: int, within_s: float
) -> AsyncIterator[Sequence[faust.EventT[Any]]]:
    """Batches of up to ``max_events`` events of ``stream``: what is there as soon as the
    stream's queue is drained, else after at most ``within_s``. Each batch is acknowledged
    when the consumer asks for the next one (or leaves, even by an exception: see
    :func:`withhold_acks`)."""
    concrete: Any = stream
    queue = concrete.channel.queue
    events: list[faust.EventT[Any]] = []
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def collect(value: Any) -> Any:
        event = concrete.current_event
        if event is None:
            raise RuntimeError("faust set no current event for a value of the stream")
        events.append(event)
        if len(events) >= max_events or queue.empty():
            ready.set()
        if len(events) >= max_events:  # a full batch: stop reading until it is taken
            room.clear()
            await concrete.wait(room)
        return value

    acks_were_enabled = concrete.enable_acks
    concrete.enable_acks = False  # this function acknowledges, once a batch is processed
    concrete.add_processor(collect)
    concrete._enable_passive(aiter(concrete.channel))
    try:
        while not concrete.should_stop:
            await concrete.wait_for_stopped(ready, timeout=within_s)
            ready.clear()
            if not events:
                continue
            batch = events[:max_events]
            try:
                yield batch
            finally:
                # events read while the batch was processed stay for the next one
                del events[: len(batch)]
                for event in batch:
                    await concrete.ack(event)
                if events and (len(events) >= max_events or queue.empty()):
                    ready.set()
                room.set()
    finally:
        concrete.enable_acks = acks_were_enabled
        concrete._processors.remove(collect)


def size_producer_buffer(app: faust.App, max_messages: int) -> None:
    """Let faust's producer buffer hold ``max_messages`` before it makes the consumer wait;
    call it once the producer exists (in a task of the app)."""
    app.producer.buffer.max_messages = max_messages


def withhold_acks(events: Iterable[faust.EventT[Any]]) -> None:
    """Mark ``events`` so that acknowledging them does nothing: their offsets (and every
    later offset of their partitions) are never committed by this worker."""
    for event in events:
        event.message.acked = True
