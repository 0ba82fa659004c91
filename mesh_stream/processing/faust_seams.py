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
* :func:`take_ready_events` -- batches that do not wait when the input is idle. faust's own
  take always waits its full ``within`` for more events, so one event of a trickle waited
  that long; this one is written on the same stream internals faust's take uses (the
  buffering processor, the passive drainer, the channel's queue, manual acknowledgements).
  It also counts the records of the consumer's last fetch not yet handed to the streams
  (:class:`FetchedInHand`, on ``Consumer._wait_next_records`` and ``_to_message``): faust
  hands them over one at a time with a suspension between, so an empty queue alone does not
  say that the fetch is all in.
* :class:`ReadInOrder` -- part of :func:`take_ready_events`: a batch takes each partition's
  records in offset order, none left out, or reads them again. faust can lose a record
  between its consumer and a stream: when a worker is assigned partitions, faust resumes
  them and seeks to the committed offsets while its consumer is already handing records to
  the streams, and only then resumes its flow control, which empties every stream's queue
  (``FlowControlEvent.resume`` clears ``clear_on_resume`` queues). A record handed over in
  between is dropped; its successors are handed over and acknowledged, so the offsets
  committed pass it and it is never processed. The scale-out test lost whole internal records
  that way, each on the first takeover of a partition. This reads
  ``Consumer._committed_offset`` and ``_read_offset``, seeks with ``seek_wait``, drops
  acknowledgements of records past a gap from ``_acked`` and ``_acked_index`` (faust's
  pure-Python stream acknowledges a record it skips), and turns faust's gap bookkeeping
  (``Consumer._add_gap``) off for the internal topic: it counts skipped offsets as
  acknowledged.
* :class:`StallWatch` -- part of :func:`take_ready_events`: stops a worker whose owned
  partition's records wait and none reaches the stream (asks ``highwaters``; reads
  ``App.rebalancing`` and ``Recovery.in_recovery``), or whose recovery of its state reads
  nothing of the changelog records left (``Recovery.active_remaining`` and
  ``active_offsets``); its report ends with
  :func:`consumer_view`, which reads faust's ``_active_partitions``, ``_paused_partitions``
  and ``_buffered_partitions`` and aiokafka's partition state and prefetched records.
* :func:`size_producer_buffer` -- the producer buffer's ``max_messages`` (faust's 100 stalls
  every batch that queues thousands of outputs and changelog records).
* :func:`start_tables_at_once` -- faust's table manager sleeps a second as it starts
  (``TableManager.on_start``), for tables declared late, before it opens the changelogs and
  starts the recovery. The engine declares its tables before the worker starts, so every
  start and restart of a worker waited that second for nothing.
* :func:`withhold_acks` -- keep a failed batch's offsets from ever being committed
  (``Message.acked``): a batched take acknowledges a batch when the agent leaves it, even
  by an exception.
* :func:`flush_producer_buffer_fully` -- faust's ``ProducerBuffer.flush`` gives up after
  0.1 s without progress and returns with records still in the buffer (or one on its way
  into the Kafka client), after which faust flushes the client and commits: a worker killed
  then has committed offsets whose changelog and output records were never sent. The app's
  own stop (``App.on_stop``, which flushes last) says in one line what a crash left unsent.
* :func:`send_together` -- a batch's records sent with no suspension between them, so they
  leave in one produce request. faust's ``Topic.send`` yields to the event loop once per
  record (it gets the producer through ``App.maybe_start_producer``, a mode ``stampede``,
  which sleeps 0 first), so aiokafka's sender task took each internal record of a re-key batch
  into a produce request of its own, and the aggregate then fetched and handled each apart.
  This sends through faust's producer (``app.producer.send``, public), past the topic's
  serializers, which raw bytes do not need.
* the partition faust's producer gives a keyed record (aiokafka's default partitioner) must
  be :func:`mesh_stream.kafka.partitions.key_partition`'s, so records of several keys can be
  sent together to a key's partition without moving any key away from the table partition
  holding its state (checked by a test against aiokafka's partitioner).
* :class:`UntakenFetches` -- records faust's consumer thread fetched for a ``getmany``
  whose caller gave up (a rebalance cancels the event loop's side only; the thread's call
  drains what faust's live active-partition set holds after the reassignment, and mode drops
  the result), or that faust would skip, are given back to aiokafka (a seek to the first).
  Wraps ``AIOKafkaConsumerThread.getmany`` and reads faust's ``_get_active_partitions``,
  ``_buffered_partitions`` and ``flow_active``, and aiokafka's partition positions.
* :class:`DeliverAtOnce` -- part of :func:`take_ready_events`: faust's consumer hands each
  fetched record to the conductor through ``Consumer.wait_first(callback(message),
  suspend_flow.wait())``, so that a rebalance can abandon a hand-over that is blocked (flow
  control suspended, the producer buffer full, a stream's queue full). mode's ``wait_first``
  makes four tasks, waits and cancels three of them for every record: at 1,000 events/s with
  10 ms batches about a tenth of the worker's CPU. When nothing the hand-over awaits can block
  (the same conditions the conductor checks: ``flow_control``, the producer buffer's
  ``size``, the conductor's ``_tp_to_callback_lock`` and its channels' queues, and the
  consumer's own ``suspend_flow``), the record is handed over directly, which is what
  ``wait_first`` ends up doing then; otherwise faust's own call runs. Wraps the consumer's
  ``wait_first``, matched to that one call by its ``suspend_flow.wait()`` argument, and its
  ``sleep``, which the same loop calls with 0 after every fetch to let the event loop run
  (mode's ``sleep(0)`` makes a task and cancels it to do that; ``asyncio.sleep(0)`` does it
  alone).
* :func:`take_consumer_calls_as_they_come` -- faust's consumer runs aiokafka in a thread of
  its own and calls into it through mode's method queue (a fetch, a commit, a seek). mode's
  queue worker waits on the queue's ready event before each call it takes, through
  ``Service.wait`` (three tasks made, two cancelled), though that event is set at the first
  call and never cleared, so the wait always returns at once. The seam gives the consumer
  thread's queue a worker (``MethodQueue.Worker``) that takes each call straight off the
  queue, made when faust's worker initialises (``App.on_worker_init``), before the consumer
  thread starts.
* :func:`adapt_fetch_wait` -- the longest the broker holds a fetch of faust's consumer
  (faust passes aiokafka a fixed 1,500 ms). aiokafka sends no new fetch to a broker while one
  is in flight, so records arriving on a partition left out of the pending fetch (it still had
  buffered records when the fetch was sent) wait until that fetch returns: up to 1.5 s when
  the other partitions are idle, which is what a steady trickle on some partitions of the
  internal topic looked like. A short wait for every fetch cost an idle worker a fetch
  request every few ms; so the wait is short only for a fetch that leaves a partition out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import importlib.metadata
import logging
import re
import threading
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Any, cast

import faust
import mode
import mode.threads
from faust.streams import _current_event
from mode.services import WaitResults

from mesh_stream.errors import ConfigurationError, ProcessorError

__all__ = [
    "SUPPORTED_FAUST",
    "BufferStoppedError",
    "DeliverAtOnce",
    "FetchedInHand",
    "ReadInOrder",
    "adapt_fetch_wait",
    "check_faust_version",
    "consumer_view",
    "current_event",
    "drain_producer_buffer",
    "flush_producer_buffer_fully",
    "size_producer_buffer",
    "start_tables_at_once",
    "take_consumer_calls_as_they_come",
    "take_ready_events",
    "withhold_acks",
]

#: faust-streaming versions the seams below were checked against: lowest included, highest
#: excluded.
SUPPORTED_FAUST = ("0.15.3", "0.16")

log = logging.getLogger(__name__)

#: Longest the aggregate waits for a missing internal record to come back (ReadInOrder).
REREAD_TIMEOUT_S = 120.0
#: Longest the aggregate waits for the broker to say where a partition starts (ReadInOrder).
START_QUERY_TIMEOUT_S = 10.0
#: How often the aggregate checks that each internal partition's records reach it (StallWatch).
STALL_CHECK_EVERY_S = 5.0


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


class FetchedInHand:
    """How many records of faust's consumer's last fetch it has not yet handed on to the
    streams. faust's consumer hands them over one by one, waiting on the event loop between
    two (``Consumer._drain_messages``), so a stream's queue runs empty between the records of
    one fetch. Counted when a fetch returns (``_wait_next_records``) and down as each record
    becomes a message (``_to_message``). A record faust skips (its partition paused) is never
    counted down; the next fetch starts the count again."""

    ATTRIBUTE = "_mesh_fetched_in_hand"

    def __init__(self) -> None:
        self.left = 0

    @classmethod
    def of(cls, consumer: Any) -> FetchedInHand:
        """The count of ``consumer`` (faust's), wrapping its two methods the first time."""
        found = getattr(consumer, cls.ATTRIBUTE, None)
        if isinstance(found, cls):
            return found
        counter = cls()
        wait_next_records, to_message = consumer._wait_next_records, consumer._to_message

        async def counted_wait(timeout: float) -> Any:
            counter.left = 0
            records, active = await wait_next_records(timeout)
            counter.left = sum(len(batch) for batch in records.values()) if records else 0
            return records, active

        def counted_to_message(tp: Any, record: Any) -> Any:
            counter.left -= 1
            return to_message(tp, record)

        consumer._wait_next_records = counted_wait
        consumer._to_message = counted_to_message
        setattr(consumer, cls.ATTRIBUTE, counter)
        return counter


class ReadInOrder:
    """Takes each partition's events in offset order with none left out; after a gap, reads
    the partition again from the first offset missing.

    The internal topic is written without transactions and never compacted, so its offsets
    have no holes: an event whose offset is past the next one expected means faust lost the
    records in between (see the module). Such an event is set aside (never acknowledged), and
    so is every later one of its partition until the missing offset comes: the consumer is
    sent back to it, and again while it is still handing over records past it (faust's
    consumer drops records below the offset it last handed over, so a seek made while it was
    half-way through a fetch does not stick). An event at or before the expected offset is a
    record read again (after a seek): the replay guard refuses what was applied already. A
    partition's first event of an assignment is expected at the offset faust sought to, the
    committed one (asked of the broker when faust's consumer does not know it yet: at a
    takeover its records may come before faust looked it up, and a new group has none, so it
    starts at the earliest offset the broker has); an event of an earlier assignment is set
    aside. Records the broker no
    longer has (deleted by retention before they were read) are skipped with a warning. A
    missing offset that does not come within ``timeout_s`` is an error (the worker stops)
    rather than a skip.

    faust's own gap bookkeeping is turned off for ``topics``: when its consumer hands over an
    offset more than one past the last, it counts the offsets between as acknowledged, which
    would commit past the records being read again.
    """

    def __init__(
        self,
        consumer: Any,
        app: Any,
        topics: Collection[str],
        timeout_s: float = REREAD_TIMEOUT_S,
    ) -> None:
        self.consumer = consumer
        self.app = app
        self.topics = frozenset(topics)
        self.timeout_s = timeout_s
        self._generation: int | None = None
        #: partition -> offset its next event must have
        self._next: dict[Any, int] = {}
        #: partition -> where the broker said this assignment starts (see learn_start)
        self._start: dict[Any, int] = {}
        #: partition -> (first offset missing, events set aside, loop time it went missing)
        self.rereading: dict[Any, tuple[int, int, float]] = {}
        #: gaps found since the worker started
        self.gaps = 0
        add_gap = consumer._add_gap
        guarded = self.topics

        async def add_gap_elsewhere(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic not in guarded:
                await add_gap(tp, offset_from, offset_to)

        consumer._add_gap = add_gap_elsewhere

    def admit(self, message: Any) -> bool:
        """True if ``message`` is to be taken: its partition's next, or one read again; False
        if it is of an earlier assignment or records before it are missing (then
        :meth:`read_again`)."""
        generation = self._current_generation()
        if message.generation_id != generation:
            return False
        tp, offset = message.tp, message.offset
        expected = self._expected(tp)
        if expected is not None and offset > expected:
            return False
        self._next[tp] = offset + 1
        if tp in self.rereading:
            first, set_aside, _ = self.rereading.pop(tp)
            log.warning(
                "%s: read again from offset %d (%d events after the gap were set aside)",
                _where(tp),
                first,
                set_aside,
            )
        return True

    def needs_start(self, message: Any) -> bool:
        """True if nothing here says yet where ``message``'s partition starts in this
        assignment (no event taken, no committed offset in faust's consumer): then
        :meth:`learn_start` before :meth:`admit`."""
        generation = self._current_generation()
        return message.generation_id == generation and self._expected(message.tp) is None

    async def learn_start(self, message: Any) -> None:
        """Ask the broker where ``message``'s partition starts for this consumer group: its
        committed offset, or with none the earliest offset it has, where a new group's
        consumer starts (the engine sets faust's ``consumer_auto_offset_reset`` to earliest).
        Without it the first event handed over would be taken as the start,
        and a record faust dropped before it would go unnoticed. If the broker cannot say,
        that first event is the start, as before, with a warning."""
        generation = self._current_generation()
        tp = message.tp
        if await self.start_of(tp) is None and self._current_generation() == generation:
            log.warning(
                "%s: could not learn where the partition starts; taking offset %d, the first "
                "record handed over, as its start",
                _where(tp),
                message.offset,
            )
            self._start[tp] = message.offset

    async def start_of(self, tp: Any) -> int | None:
        """The offset ``tp``'s next event must have in this assignment; when nothing here
        knows it, asked of the broker (the group's committed offset, else the earliest) and
        kept for the assignment. None if the broker cannot say now."""
        generation = self._current_generation()
        expected = self._expected(tp)
        if expected is not None:
            return cast("int", expected)
        start = await self._committed(tp)
        if start is None:
            start = await self._earliest(tp)
        if start is not None and self._current_generation() == generation:
            self._start[tp] = start  # a rebalance meanwhile: the next assignment asks again
        return start

    async def read_again(self, message: Any) -> bool:
        """Set ``message`` aside (never acknowledged); if records before it are missing, send
        the consumer back to the first of them, unless it is reading from there already. True
        (take it after all) if the broker no longer has them."""
        message.acked = True  # never acknowledged, as withhold_acks does
        generation = self.app.consumer_generation_id
        if message.generation_id != generation:
            return False  # of an earlier assignment: faust sought the partition since
        tp, offset = message.tp, message.offset
        expected = self._expected(tp)
        gap = self.rereading.get(tp)
        now = asyncio.get_running_loop().time()
        if gap is None:
            earliest = await self._earliest(tp)
            if self.app.consumer_generation_id != generation:
                return False  # a rebalance while the broker was asked
            if earliest is not None and earliest > expected:
                log.warning(
                    "%s: offsets %d-%d were deleted by retention before they were read",
                    _where(tp),
                    expected,
                    earliest - 1,
                )
                self._next[tp] = expected = earliest
                # faust commits a partition only from its committed offset on, with no hole
                # (its gap bookkeeping is off here): from the earliest, or never again
                self.consumer._committed_offset[tp] = earliest
                if offset <= earliest:
                    message.acked = False
                    return self.admit(message)
            self.gaps += 1
            log.warning(
                "%s: faust's consumer handed over offset %d while %d was expected; reading "
                "again from %d (nothing from there on is acknowledged before it is read)",
                _where(tp),
                offset,
                expected,
                expected,
            )
            gap = (expected, 0, now)
        elif now - gap[2] > self.timeout_s:
            raise RuntimeError(
                f"{_where(tp)}: offset {gap[0]} did not come back within {self.timeout_s:.0f} s "
                f"of reading the partition again; stopping rather than skipping it"
            )
        self._forget_acks_from(tp, expected)
        self.rereading[tp] = (gap[0], gap[1] + 1, gap[2])
        if gap[1] == 0 or self.consumer._read_offset.get(tp) != expected:
            await self._seek(tp, expected, generation)  # (again) reading past the gap
        return False

    def _current_generation(self) -> int:
        """The consumer's generation, forgetting what was noted under an earlier one (a new
        assignment: faust sought every partition)."""
        generation: int = self.app.consumer_generation_id
        if generation != self._generation:
            self._generation = generation
            self._next.clear()
            self._start.clear()
            self.rereading.clear()
        return generation

    def _expected(self, tp: Any) -> Any:
        """The offset ``tp``'s next event must have: one past the last taken, or at the start
        of an assignment the committed offset faust sought to, or where the broker said the
        partition starts (None if neither is known)."""
        expected = self._next.get(tp)
        if expected is None:
            expected = self.consumer._committed_offset.get(tp)
        return expected if expected is not None else self._start.get(tp)

    async def _committed(self, tp: Any) -> int | None:
        """The group's committed offset of ``tp`` as the broker has it; None if there is none
        or the broker cannot say now. Asked through the aiokafka consumer in faust's consumer
        thread (faust has no call for it; it reads it only as it seeks)."""
        try:
            thread = self.consumer._thread
            async with asyncio.timeout(START_QUERY_TIMEOUT_S):
                offset = await thread.call_thread(thread._ensure_consumer().committed, tp)
        except Exception as exc:  # the earliest offset, or the first record, stands in
            log.warning(
                "%s: could not ask the broker for the committed offset: %r", _where(tp), exc
            )
            return None
        return offset if isinstance(offset, int) and offset >= 0 else None

    async def _seek(self, tp: Any, offset: int, generation: int) -> None:
        """Send the consumer back to ``offset`` of ``tp``; nothing if a rebalance took the
        partition meanwhile (the next assignment seeks to the committed offset)."""
        try:
            await self.consumer.seek_wait({tp: offset})
        except Exception:
            if self.app.consumer_generation_id == generation and tp in self.consumer.assignment():
                raise
            log.info("%s: not read again from %d: the partition was reassigned", _where(tp), offset)
            return
        if self.app.consumer_generation_id == generation:
            # faust drops a fetched record below its read offset, which the seek set in the
            # consumer's thread while faust's delivery loop, here, may have raised it again to
            # the record just set aside: the records read again would then be dropped
            self.consumer._read_offset[tp] = offset

    def _forget_acks_from(self, tp: Any, offset: int) -> None:
        """Drop the consumer's acknowledgements of ``tp`` from ``offset`` on: none of those
        records was taken yet, but faust's pure-Python stream acknowledges a record it skips
        (one of an earlier assignment, or read while flow control was suspended), and a
        commit would pass it."""
        acked = self.consumer._acked.get(tp)
        if acked and max(acked) >= offset:
            acked[:] = [done for done in acked if done < offset]
            index = self.consumer._acked_index.get(tp)
            if index is not None:
                index.difference_update([done for done in index if done >= offset])

    async def _earliest(self, tp: Any) -> int | None:
        """The earliest offset the broker has of ``tp``; None if it cannot say now."""
        try:
            return cast("int | None", (await self.consumer.earliest_offsets(tp)).get(tp))
        except Exception as exc:  # a seek still reads the records if they are there
            log.warning("%s: could not ask the broker for its earliest offset: %r", _where(tp), exc)
            return None


def _where(tp: Any) -> str:
    return f"{tp.topic}[{tp.partition}]"


def consumer_view(consumer: Any, tp: Any) -> str:
    """What faust's consumer and aiokafka's under it hold of ``tp``, for a stall's report:
    whether faust fetches it (active), has it paused, or left it out for a full stream buffer,
    its read offset (below which it drops fetched records), and aiokafka's position, pause and
    prefetched records. Read without a lock while faust's consumer thread may change them, so
    a snapshot that may be a moment stale; "?" for what could not be read."""
    faust_side = [
        name
        for name, held in (
            ("active", getattr(consumer, "_active_partitions", None)),
            ("paused", getattr(consumer, "_paused_partitions", None)),
            ("buffer-full", getattr(consumer, "_buffered_partitions", None)),
        )
        if held is not None and tp in held
    ]
    view = f"faust: {','.join(faust_side) or 'not fetched'}"
    read_offset = getattr(consumer, "_read_offset", {}).get(tp)
    if read_offset is not None:  # faust drops, silently, a fetched record below it
        view += f", read offset {read_offset}"
    try:
        aiokafka_consumer = consumer._thread._consumer
        state = aiokafka_consumer._subscription.subscription.assignment.state_value(tp)
        prefetched = tp in aiokafka_consumer._fetcher._records
    except Exception:  # a consumer being rebuilt, or another aiokafka: the report goes on
        return f"{view}; aiokafka: ?"
    if state is None:
        return f"{view}; aiokafka: not assigned"
    position = state.position if state.has_valid_position else "none"
    flags = "".join(
        (
            ", paused" if state.paused else "",
            ", awaiting reset" if state.awaiting_reset else "",
            ", records prefetched" if prefetched else "",
        )
    )
    return f"{view}; aiokafka: position {position}{flags}"


class PartitionStalledError(RuntimeError):
    """Records of an assigned partition wait, and none has reached the stream for too long."""


class StallWatch:
    """Stops the worker when records of an assigned partition of ``in_order``'s topics wait in
    Kafka and none reaches the stream for ``stall_s`` (outside rebalances and recovery), or
    when a recovery of the tables' state has changelog records left and reads none of them
    for ``stall_s``.

    Scale-out runs under load saw the surviving worker, after a takeover, go on with its own
    partition and do nothing for the two it took over, for minutes: its recovery of their
    state from the changelogs never received a record (faust only warns "No event received
    for active tp ... since recovery start", every 5 s, for ever). Nothing is lost (nothing
    past them was committed), nothing done either. A restart recovers and reads them again,
    so a stall becomes one line and a restart instead of a standstill."""

    def __init__(self, consumer: Any, app: Any, in_order: ReadInOrder, stall_s: float) -> None:
        self.consumer = consumer
        self.app = app
        self.in_order = in_order
        self.stall_s = stall_s
        self._generation: int | None = None
        #: partition -> (the offset its next event must have, loop time it was first seen so)
        self._waiting: dict[Any, tuple[int, float]] = {}
        #: (changelog partitions with records left, and the offsets reached), loop time first so
        self._recovering: tuple[frozenset[tuple[Any, int]], float] | None = None

    async def run(self, crash: Callable[[BaseException], Awaitable[None]]) -> None:
        """Check every STALL_CHECK_EVERY_S until cancelled; a stall goes to ``crash``. Checks
        that fail (the broker away) are said once, and once more when they work again, not
        every STALL_CHECK_EVERY_S."""
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(STALL_CHECK_EVERY_S)
            try:
                await self.check()
            except PartitionStalledError as exc:
                log.error("%s", exc)
                await crash(exc)
                return
            except Exception as exc:  # the broker did not answer: not a stall of ours
                if failing_since is None:
                    failing_since = loop.time()
                    log.warning(
                        "could not check the internal partitions for a stall: %r (said once "
                        "until a check works again)",
                        exc,
                    )
                continue
            if failing_since is not None:
                log.info(
                    "checking the internal partitions for a stall again, after %.0f s without",
                    loop.time() - failing_since,
                )
                failing_since = None

    async def check(self, now: float | None = None) -> None:
        """Raise :class:`PartitionStalledError` if a partition has stalled for ``stall_s``."""
        app = self.app
        generation = app.consumer_generation_id
        recovery = app.tables.recovery
        now = asyncio.get_running_loop().time() if now is None else now
        if generation != self._generation:
            self._generation = generation
            self._waiting.clear()  # a new assignment: every clock starts again
            self._recovering = None
            return
        if recovery.in_recovery:  # faust's rebalance lasts until the recovery ends
            self._waiting.clear()  # records wait, rightly, until the state is back
            self._check_recovery(recovery, now)
            return
        self._recovering = None
        if app.rebalancing:
            self._waiting.clear()  # an assignment settling
            return
        topics = self.in_order.topics
        assigned = [tp for tp in self.consumer.assignment() if tp.topic in topics]
        if not assigned:
            return
        ends = await self.consumer.highwaters(*assigned)
        if app.consumer_generation_id != generation:
            return
        for tp in assigned:
            end = ends.get(tp)
            expected = await self.in_order.start_of(tp)
            if end is None or expected is None or end <= expected or tp in self.in_order.rereading:
                self._waiting.pop(tp, None)  # nothing waiting (or ReadInOrder times its re-read)
                continue
            since = self._waiting.get(tp)
            if since is None or since[0] != expected:
                self._waiting[tp] = (expected, now)  # records wait; the clock starts
            elif now - since[1] >= self.stall_s:
                raise PartitionStalledError(
                    f"{_where(tp)}: {end - expected} record(s) wait from offset {expected} and "
                    f"none reached the stream for {now - since[1]:.0f} s; stopping the worker "
                    f"so that a restart reads them again (nothing past offset {expected} of "
                    f"it is committed; {consumer_view(self.consumer, tp)})"
                )

    def _check_recovery(self, recovery: Any, now: float) -> None:
        """Raise :class:`PartitionStalledError` if the changelog partitions ``recovery`` still
        has records of have read none of them for ``stall_s``."""
        left = {tp: n for tp, n in recovery.active_remaining().items() if n > 0}
        if not left:
            self._recovering = None
            return
        offsets = recovery.active_offsets
        reached = frozenset((tp, offsets[tp]) for tp in left)
        if self._recovering is None or self._recovering[0] != reached:
            self._recovering = (reached, now)  # a record was read (or a new recovery): clock
            return
        if now - self._recovering[1] < self.stall_s:
            return
        tp = min(left, key=_where)
        others = f" (and {len(left) - 1} more changelog partition(s))" if len(left) > 1 else ""
        queue = getattr(self.app.tables, "changelog_queue", None)
        queued = f"; {queue.qsize()} changelog record(s) queued" if queue is not None else ""
        raise PartitionStalledError(
            f"{_where(tp)}: the recovery of the state from its changelog has {left[tp]} "
            f"record(s) left after offset {offsets[tp]} and read none for "
            f"{now - self._recovering[1]:.0f} s{others}; stopping the worker so that a restart "
            f"recovers again ({consumer_view(self.consumer, tp)}{queued})"
        )


class DeliverAtOnce:
    """Hands a fetched record to the streams without mode's ``wait_first`` when the hand-over
    cannot block (see the module); counts how often each way was taken."""

    ATTRIBUTE = "_mesh_deliver_at_once"

    def __init__(self, consumer: Any, app: Any) -> None:
        self.consumer = consumer
        self.app = app
        #: Records handed over directly, and through faust's own ``wait_first``.
        self.at_once = 0
        self.waited = 0

    @classmethod
    def install(cls, consumer: Any, app: Any) -> DeliverAtOnce:
        """Wrap ``consumer``'s (faust's) ``wait_first`` once."""
        found = getattr(consumer, cls.ATTRIBUTE, None)
        if isinstance(found, cls):
            return found
        seam = cls(consumer, app)
        wait_first = consumer.wait_first
        flow_wait = type(consumer.suspend_flow).wait.__code__

        async def deliver_or_wait_first(*coros: Any, timeout: Any = None) -> Any:
            handing_over = (
                len(coros) == 2
                and timeout is None
                and _waits_on(coros[1], flow_wait)
                and _owned_by(coros[1], consumer.suspend_flow)
            )
            if handing_over and seam.cannot_block():
                handing, suspended = coros
                suspended.close()
                seam.at_once += 1
                return WaitResults([handing], [await handing], False)
            if handing_over:
                seam.waited += 1
            return await wait_first(*coros, timeout=timeout)

        sleep = consumer.sleep

        async def sleep_or_yield(seconds: Any) -> None:
            if seconds == 0:  # mode's sleep(0) makes a task and cancels it to yield once
                await asyncio.sleep(0)
                return
            await sleep(seconds)

        consumer.wait_first = deliver_or_wait_first
        consumer.sleep = sleep_or_yield
        setattr(consumer, cls.ATTRIBUTE, seam)
        return seam

    def cannot_block(self) -> bool:
        """Whether nothing the conductor awaits while it hands a record over can wait: flow
        on, the producer buffer within its size, no subscription change under way, no
        stream queue full."""
        consumer, app = self.consumer, self.app
        if consumer.suspend_flow.is_set() or consumer.should_stop or consumer._crashed.is_set():
            return False
        if not app.flow_control.is_active():
            return False
        buffer = app.producer.buffer
        if buffer.size > buffer.max_messages:
            return False
        conductor = app.topics
        if conductor._tp_to_callback_lock.locked():
            return False
        return not any(
            topic._queue is not None and topic._queue.full() for topic in conductor._topics
        )


def _waits_on(awaitable: Any, code: Any) -> bool:
    """Whether ``awaitable`` is a coroutine of the function whose code is ``code``."""
    return getattr(awaitable, "cr_code", None) is code


def _owned_by(coroutine: Any, event: Any) -> bool:
    """Whether the (unstarted) ``Event.wait`` ``coroutine`` waits on ``event``."""
    frame = getattr(coroutine, "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") is event


def take_ready_events(
    stream: faust.StreamT[Any],
    max_events: int,
    within_s: float,
    idle_s: float | None = None,
    crash: Callable[[BaseException], Awaitable[None]] | None = None,
    stall_s: float | None = None,
) -> AsyncIterator[Sequence[faust.EventT[Any]]]:
    """Batches of up to ``max_events`` events, as faust's ``Stream.take_events``, except that a
    batch whose first event found the stream idle (no event for ``idle_s``, default
    ``within_s``) is handed over as soon as it holds every event faust has already fetched
    (the stream's queue is empty and :class:`FetchedInHand` says none is on its way), instead
    of waiting out ``within_s`` for more. With the default a steady flow is still
    batched every ``within_s`` and a trickle is not held back; ``idle_s=0`` hands every batch
    over once it holds what was fetched (for a stream whose writer batches already). A batch is
    acknowledged when the consumer asks for the next one (or leaves, even by an exception: see
    :func:`withhold_acks`). Each partition's events are taken in offset order, none left out
    (:class:`ReadInOrder`: the stream's topics must have no holes in their offsets, as the
    internal topic has none). An error while an event is added stops the stream (faust's
    ``crash``), or goes to ``crash`` if given; so does, with ``stall_s``, a partition whose
    records wait and none reaches the stream for that long, or a recovery of the state that
    reads none of the changelog records it has left for that long (:class:`StallWatch`)."""
    concrete = cast("faust.Stream[Any]", stream)
    app = concrete.app
    in_hand = FetchedInHand.of(app.consumer)
    DeliverAtOnce.install(app.consumer, app)
    topics = getattr(concrete.channel, "topics", ())
    in_order = ReadInOrder(app.consumer, app, [str(topic) for topic in topics])
    batches = _take_ready_events(
        concrete,
        max_events,
        within_s,
        within_s if idle_s is None else idle_s,
        in_hand,
        in_order,
        crash if crash is not None else concrete.crash,
        StallWatch(app.consumer, app, in_order, stall_s) if stall_s is not None else None,
    )
    # Registered as faust registers its own take's, so a stopping stream closes it.
    concrete._active_agens.add(batches)
    return batches


async def _take_ready_events(
    concrete: faust.Stream[Any],
    max_events: int,
    within_s: float,
    idle_s: float,
    in_hand: FetchedInHand,
    in_order: ReadInOrder,
    crash: Callable[[BaseException], Awaitable[None]],
    stall_watch: StallWatch | None,
) -> AsyncGenerator[Sequence[faust.EventT[Any]], None]:
    channel = cast("faust.Channel[Any]", aiter(concrete.channel))
    queue = channel.queue  # what the consumer has fetched and the stream has not yet read
    loop = asyncio.get_running_loop()
    events: list[faust.EventT[Any]] = []
    opened = asyncio.Event()  # the batch in the making has its first event
    ready = asyncio.Event()  # hand the batch over now
    taken = asyncio.Event()  # a full batch was handed over: collect again
    handing_over: asyncio.Future[None] | None = None
    last_event_at = -within_s
    opened_idle = False

    async def collect(value: Any) -> Any:
        nonlocal handing_over, last_event_at, opened_idle
        try:
            event = concrete.current_event
            if event is None:
                raise RuntimeError("a batched stream found no current event")
            message = event.message
            if in_order.needs_start(message):
                await in_order.learn_start(message)
            if not in_order.admit(message) and not await in_order.read_again(message):
                return value  # set aside: records before it are being read again
            # Last, after every other suspension: a batch handed over meanwhile must be
            # handled and acknowledged before this event joins the next (it would be
            # acknowledged with that batch, never handled).
            if handing_over is not None:
                try:
                    await handing_over
                finally:
                    handing_over = None
            now = loop.time()
            if not events:
                opened_idle = now - last_event_at >= idle_s
                opened.set()
            last_event_at = now
            events.append(event)
            if len(events) >= max_events:
                ready.set()
                taken.clear()
                await concrete.wait(taken)  # type: ignore[arg-type]  # any .wait() will do
            elif opened_idle and queue.empty() and in_hand.left <= 0:
                ready.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as faust's own take: the stream stops, loudly
            concrete.log.exception("Error adding to take buffer: %r", exc)
            await crash(exc)
        return value

    def wake(_: Any) -> None:  # the stream stopped: end any wait, the loop sees should_stop
        opened.set()
        ready.set()

    acks_before = concrete.enable_acks
    concrete.enable_acks = False  # acknowledged below, once the batch has been handled
    concrete.add_processor(collect)
    concrete._enable_passive(cast("faust.ChannelT[Any]", channel))
    watching = asyncio.ensure_future(stall_watch.run(crash)) if stall_watch is not None else None
    stopped = asyncio.ensure_future(concrete._stopped.wait())
    stopped.add_done_callback(wake)
    try:
        while not concrete.should_stop:
            if not events:
                # Nothing to time until a batch opens: waking every within_s instead cost an
                # idle worker a few ms of CPU a second.
                await opened.wait()
                continue
            if not ready.is_set():
                # A timer, not mode's wait_for_stopped: that makes three tasks and cancels two
                # at every wait, twice a batch (the stream's stop wakes these waits instead).
                timer = loop.call_later(within_s, ready.set)
                try:
                    await ready.wait()
                finally:
                    timer.cancel()
            if not events:
                ready.clear()
                continue
            handing_over = loop.create_future()
            try:
                yield list(events)
            finally:
                batch = list(events)
                events.clear()
                opened.clear()
                ready.clear()
                for event in batch:
                    await concrete.ack(event)
                if not handing_over.done():
                    handing_over.set_result(None)
                taken.set()
    finally:
        stopped.cancel()
        if watching is not None:
            watching.cancel()
        concrete.enable_acks = acks_before
        concrete._processors.remove(collect)


def size_producer_buffer(app: faust.App, max_messages: int) -> None:
    """Let faust's producer buffer hold ``max_messages`` before it makes the consumer wait;
    call it once the producer exists (in a task of the app)."""
    app.producer.buffer.max_messages = max_messages


def start_tables_at_once(app: faust.App) -> None:
    """Start ``app``'s table manager without faust's one-second wait for late tables (see the
    module); call it once every table is declared, before the worker starts."""
    tables: Any = app.tables

    async def on_start() -> None:  # faust's on_start, less its ``await self.sleep(1.0)``
        if not tables.should_stop:
            await tables._update_channels()
            await tables.recovery.start()

    tables.on_start = on_start


#: Longest a flush waits for the producer buffer to drain before it fails (and the commit
#: that asked for it with it).
BUFFER_DRAIN_TIMEOUT_S = 120.0


class BufferStoppedError(RuntimeError):
    """faust's producer buffer stopped (the worker crashed) holding records it never handed
    to the Kafka client: a commit after them must not happen."""


async def drain_producer_buffer(buffer: Any, timeout_s: float = BUFFER_DRAIN_TIMEOUT_S) -> None:
    """Wait until ``buffer`` (faust's ``ProducerBuffer``) holds no record and is handing none
    to the Kafka client; a RuntimeError after ``timeout_s``, or if the buffer stopped first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # The sender task waits on the queue between records; while it does not, it is sending one.
    while buffer.size or not buffer.pending._getters:
        if buffer.should_stop or buffer.state != "running":
            if buffer.size:
                raise BufferStoppedError(
                    f"producer buffer stopped with {buffer.size} records in it"
                )
            return
        if loop.time() > deadline:
            raise RuntimeError(
                f"producer buffer not drained after {timeout_s:.0f} s ({buffer.size} records "
                f"left): nothing is committed"
            )
        buffer.message_sent.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)


def flush_producer_buffer_fully(app: faust.App) -> None:
    """Make the flush faust runs before every commit wait for the whole producer buffer
    (:func:`drain_producer_buffer`); call it once the producer exists (in a task of the app)."""
    buffer = app.producer.buffer

    async def flush() -> None:
        await drain_producer_buffer(buffer)

    buffer.flush = flush  # type: ignore[method-assign]  # this one buffer, on purpose
    told: list[bool] = []

    def told_once(stop: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        # The app's stop flushes last, after its consumer stopped and committed (each commit
        # flushed first), and so does the buffer's own stop after it: records a crash left
        # in the buffer are told in one line, not as "Error while stopping child" with a
        # traceback after the crash line.
        async def stopping() -> None:
            try:
                await stop()
            except BufferStoppedError as exc:
                if not told:
                    told.append(True)
                    app.log.warning(
                        "%s, never sent: no offset after them was committed, so a restart "
                        "makes them again",
                        exc,
                    )

        return stopping

    app.on_stop = told_once(app.on_stop)  # type: ignore[method-assign,assignment]  # this app
    stopping_buffer: Any = buffer  # ProducerBufferT does not declare mode's on_stop
    stopping_buffer.on_stop = told_once(stopping_buffer.on_stop)


class SendRefusedError(ProcessorError):
    """Kafka refused a record sent with :func:`send_together`, or did not acknowledge it."""


async def send_together(
    app: faust.App,
    topic: str,
    records: Iterable[tuple[bytes, int, list[tuple[str, bytes]] | None]],
    what: str = "record",
) -> list[asyncio.Future[Any]]:
    """Send each (value, partition, headers) to ``topic`` without a suspension between two
    sends, so aiokafka's sender takes them all into one produce request; returns each
    record's future (its metadata once Kafka has it, or a :class:`SendRefusedError`).

    A refusal also goes to the app's sensors' ``on_send_error``, as it would from
    ``Topic.send``, so the engine's stop-on-send-error sensor sees it."""
    producer = await app.maybe_start_producer()
    send = producer.send
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = []
    for value, partition, headers in records:
        sent = await send(topic, None, value, partition, None, headers)
        named: asyncio.Future[Any] = loop.create_future()
        cast(asyncio.Future[Any], sent).add_done_callback(
            functools.partial(_settle, app, producer, f"{what} to {topic}[{partition}]", named)
        )
        futures.append(named)
    return futures


def _settle(
    app: faust.App, producer: Any, where: str, named: asyncio.Future[Any], sent: asyncio.Future[Any]
) -> None:
    """Pass ``sent``'s outcome on to ``named``, a refusal named by ``where``."""
    if sent.cancelled():
        named.set_exception(SendRefusedError(f"{where} was never acknowledged (cancelled)"))
        return
    error = sent.exception()
    if error is None:
        named.set_result(sent.result())
        return
    refused = SendRefusedError(f"{where} refused: {error!r}")
    refused.__cause__ = error
    named.set_exception(refused)
    # faust hands each sensor its own state of the send (``state[sensor]``); there is none.
    app.sensors.on_send_error(producer, refused, collections.defaultdict(lambda: None))


def withhold_acks(events: Iterable[faust.EventT[Any]]) -> None:
    """Mark ``events`` so that acknowledging them does nothing: their offsets (and every
    later offset of their partitions) are never committed by this worker."""
    for event in events:
        event.message.acked = True


def wait_by_left_out(fetcher: Any, topics: Collection[str], busy_ms: int, idle_ms: int) -> None:
    """Make ``fetcher`` (aiokafka's) ask the broker to hold a fetch at most ``busy_ms`` when
    it leaves out a partition of ``topics`` (its fetched records are not read yet, or it is
    paused), and ``idle_ms`` when it asks for all of them: then any new record ends the
    fetch at once, so a long wait costs no latency, only fewer requests. Partitions of other
    topics do not count: faust keeps its changelogs assigned, with fetched records it never
    reads, so they are always left out."""
    build = fetcher._get_actions_per_node

    def actions_per_node(assignment: Any) -> Any:
        records = fetcher._records
        left_out = any(
            tp in records or assignment.state_value(tp).paused
            for tp in assignment.tps
            if tp.topic in topics
        )
        fetcher._fetch_max_wait_ms = busy_ms if left_out else idle_ms
        return build(assignment)

    fetcher._get_actions_per_node = actions_per_node


class UntakenFetches:
    """Gives back to aiokafka the records faust's consumer thread fetched for a caller that
    no longer takes them, so that they are fetched again instead of being lost.

    faust calls aiokafka's ``fetched_records`` in its consumer thread on behalf of the event
    loop (``AIOKafkaConsumerThread.getmany``, a mode ``call_thread``). A rebalance stops
    faust's fetcher, which cancels that call on the event loop's side only: the thread goes
    on waiting, through the rebalance (aiokafka waits for the new assignment), and then takes
    the records of whatever partitions faust's live set of active partitions holds by then,
    or of every partition when that set is empty. aiokafka's position moves past them and
    mode drops the result of a cancelled call. When the records were a changelog's, the
    state recovery that had just sought to them waits for them for ever (the stall seen in
    the scale-out test: aiokafka's position at the changelog's end, nothing delivered).
    Records of a partition faust's ``getmany`` will not hand over (not active, not buffered)
    are given back the same way. Giving back is a seek to the first record given back, and
    only while aiokafka's position is still just past the last one (no seek since).
    """

    ATTRIBUTE = "_mesh_untaken_fetches"

    def __init__(self) -> None:
        self.given_back = 0

    @classmethod
    def install(cls, thread: Any) -> UntakenFetches:
        """Wrap ``thread``'s (faust's ``AIOKafkaConsumerThread``) ``getmany`` once."""
        found = getattr(thread, cls.ATTRIBUTE, None)
        if isinstance(found, cls):
            return found
        guard = cls()
        fetch_records = thread._fetch_records
        faust_consumer = thread.consumer

        async def taking(
            handoff: _Handoff,
            consumer: Any,
            active: Any,
            timeout: float | None = None,
            max_records: int | None = None,
        ) -> Any:
            records = await fetch_records(
                consumer, active, timeout=timeout, max_records=max_records
            )
            if not records:
                return records
            if not faust_consumer.flow_active or not handoff.hand(records):
                guard.give_back(consumer, records, "its caller gave up (a rebalance)")
                return {}
            wanted = faust_consumer._get_active_partitions()
            buffered = faust_consumer._buffered_partitions
            untaken = {
                tp: batch
                for tp, batch in records.items()
                if tp not in wanted and tp not in buffered
            }
            if untaken:
                guard.give_back(consumer, untaken, "faust would not hand them over")
                return {tp: batch for tp, batch in records.items() if tp not in untaken}
            return records

        async def getmany(active_partitions: Any, timeout: float) -> Any:
            consumer = thread._ensure_consumer()
            handoff = _Handoff()
            try:
                return await thread.call_thread(
                    taking,
                    handoff,
                    consumer,
                    active_partitions,
                    timeout=timeout,
                    max_records=consumer._max_poll_records,
                )
            except asyncio.CancelledError:
                taken = handoff.abandon()
                if taken:  # handed over just as the call was cancelled: give back in the thread
                    reason = "its caller gave up (a rebalance)"
                    with contextlib.suppress(RuntimeError):  # its loop closed: consumer stopped
                        thread.thread_loop.call_soon_threadsafe(
                            guard.give_back, consumer, taken, reason
                        )
                raise

        thread.getmany = getmany
        setattr(thread, cls.ATTRIBUTE, guard)
        return guard

    def give_back(self, consumer: Any, records: Any, reason: str) -> None:
        """Seek each partition of ``records`` (aiokafka's, by partition) back to its first
        record, unless something moved its position since they were taken."""
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        for tp, batch in records.items():
            state = assignment.state_value(tp) if assignment is not None else None
            if not batch or state is None or not state.has_valid_position:
                continue  # revoked: its next owner starts from the committed offset
            first, last = batch[0].offset, batch[-1].offset
            if state.position != last + 1:
                continue  # sought elsewhere since: that seek stands
            consumer.seek(tp, first)
            self.given_back += len(batch)
            log.info(
                "%s: gave %d fetched record(s) (offsets %d-%d) back to the consumer, to be "
                "fetched again: %s",
                _where(tp),
                len(batch),
                first,
                last,
                reason,
            )


class _Handoff:
    """Whether a fetch's caller still takes its records: decided once, under a lock, by the
    first of the consumer thread (handing them) and the event loop (giving up)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._taken: Any = None

    def hand(self, records: Any) -> bool:
        with self._lock:
            if self._abandoned:
                return False
            self._taken = records
            return True

    def abandon(self) -> Any:
        with self._lock:
            self._abandoned = True
            taken, self._taken = self._taken, None
            return taken


class CallsAsTheyCome(mode.threads.MethodQueueWorker):
    """A method-queue worker that takes each call straight off the queue (see the module)."""

    @mode.Service.task
    async def _method_queue_do_work(self) -> None:
        method_queue = self.method_queue
        take = method_queue._queue.get
        run = method_queue._process_enqueued
        while not self.should_stop and not method_queue.should_stop:
            await run(await take())  # a call taken is always run: its caller waits for it


def take_consumer_calls_as_they_come(app: faust.App) -> None:
    """Give faust's consumer thread a method queue whose workers are :class:`CallsAsTheyCome`,
    once faust's worker initialises (before the consumer thread starts)."""

    def install(sender: Any, *args: Any, **kwargs: Any) -> None:
        del sender, args, kwargs
        thread = getattr(app.consumer, "_thread", None)
        if isinstance(thread, mode.threads.QueueServiceThread):
            thread.method_queue.Worker = CallsAsTheyCome

    app.on_worker_init.connect(install, weak=False)  # type: ignore[arg-type]  # mode's type is narrow


async def adapt_fetch_wait(
    app: faust.App, topics: Collection[str], busy_ms: int, idle_ms: int, timeout_s: float = 120.0
) -> bool:
    """Make the broker answer faust's consumer fetches within ``busy_ms`` when a fetch leaves
    out a partition of ``topics`` (those the app's agents read), ``idle_ms`` otherwise
    (:func:`wait_by_left_out`); call it in a task of the app. Waits for the consumer to
    start (up to ``timeout_s``); False if it never did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        thread = getattr(app.consumer, "_thread", None)
        consumer = getattr(thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if consumer is not None and fetcher is not None:
            consumer._fetch_max_wait_ms = busy_ms  # a rebuilt fetcher keeps the short wait
            wait_by_left_out(fetcher, frozenset(topics), busy_ms, idle_ms)
            UntakenFetches.install(thread)
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
