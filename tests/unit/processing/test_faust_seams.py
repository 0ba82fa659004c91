"""The faust internals the engine uses exist in the installed faust, which is supported."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import inspect
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from types import MethodType, SimpleNamespace
from typing import Any

import aiokafka
import faust
import faust.streams
import faust.transport.conductor
import faust.transport.consumer
import mode
import mode.threads
import pytest
from aiokafka.consumer.fetcher import Fetcher, OffsetResetStrategy
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition as AioTP
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, ConsumerRebalanceListener
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import TP, Message
from intervaltree import IntervalTree
from mode.utils.queues import FlowControlEvent

from mesh_stream.errors import ConfigurationError
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.processing import faust_seams


def test_the_installed_faust_is_in_the_supported_range() -> None:
    installed = importlib.metadata.version("faust-streaming")
    assert faust_seams.check_faust_version() == installed


@pytest.mark.parametrize("version", ["0.15.2", "0.16.0", "1.0.0", "0.14.9"])
def test_an_unsupported_faust_is_refused_naming_both_versions(version: str) -> None:
    lowest, above = faust_seams.SUPPORTED_FAUST
    with pytest.raises(ConfigurationError) as refused:
        faust_seams.check_faust_version(version)
    message = str(refused.value)
    assert f"faust-streaming {version} is installed" in message
    assert f">={lowest},<{above}" in message


@pytest.mark.parametrize("version", ["0.15.3", "0.15.10", "0.15.4rc1"])
def test_supported_versions_pass(version: str) -> None:
    assert faust_seams.check_faust_version(version) == version


def test_each_internal_used_still_exists() -> None:
    assert isinstance(faust.streams._current_event, contextvars.ContextVar)
    assert callable(faust.Stream.take_events)
    assert isinstance(ProducerBuffer.max_messages, int)
    # flush_producer_buffer_fully: what drain_producer_buffer reads of the buffer
    assert "self.message_sent = asyncio.Event()" in inspect.getsource(ProducerBuffer)
    assert "self.pending = asyncio.Queue()" in inspect.getsource(ProducerBuffer)
    assert "await self.buffer.flush()" in inspect.getsource(AIOKafkaProducer.flush)
    assert "await self._producer_flush(self.log)" in inspect.getsource(faust.App.on_stop)
    assert "await self.flush()" in inspect.getsource(ProducerBuffer.on_stop)
    assert "acked" in Message.__slots__
    # take_ready_events: the stream internals faust's own take is built on
    assert callable(faust.Stream._enable_passive)
    for attribute in ("self._processors", "self._active_agens"):
        assert attribute in inspect.getsource(faust.Stream.__init__)
    assert "def queue" in inspect.getsource(faust.Channel)
    # ... and the stream's stopped event, which wakes the batch loop's waits
    assert "self._stopped = self._new_stopped_event()" in inspect.getsource(mode.Service.__init__)
    # FetchedInHand: how getmany reads a fetch and turns each record into a message
    getmany = inspect.getsource(faust.transport.consumer.Consumer.getmany)
    assert "await self._wait_next_records(timeout)" in getmany
    assert "to_message = self._to_message" in getmany
    assert "yield tp, to_message(tp, record)" in getmany
    # start_tables_at_once: faust's table manager start, which it repeats less the sleep
    started = inspect.getsource(TableManager.on_start)
    assert re.findall(r"await [\w.]+\(", started) == [
        "await self.sleep(",
        "await self._update_channels(",
        "await self.recovery.start(",
    ], started
    # the sensor hook the engine relies on to stop on a refused send
    assert callable(faust.Sensor.on_send_error)
    # adapt_fetch_wait: faust's consumer thread holds the aiokafka consumer, whose fetcher
    # reads its wait from this attribute for each request it builds, and leaves out of it a
    # partition whose fetched records are unread or that is paused
    built = inspect.getsource(Fetcher._get_actions_per_node)
    assert "if tp in self._records:" in built
    assert "elif tp_state.paused:" in built
    assert "self._get_actions_per_node(assignment)" in inspect.getsource(
        Fetcher._fetch_requests_routine
    )
    assert "_consumer" in vars(AIOKafkaConsumerThread)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "_fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    # ReadInOrder: why records go missing (resuming flow control empties the streams' queues
    # after the consumer was resumed and sought), and what it reads and calls to read again
    assert "self.clear()" in inspect.getsource(FlowControlEvent.resume)
    completed = inspect.getsource(Recovery.on_recovery_completed)
    assert completed.index("perform_seek()") < completed.index("flow_control.resume()")
    consumer_init = inspect.getsource(faust.transport.consumer.Consumer.__init__)
    for attribute in (
        "self._committed_offset =",
        "self._read_offset =",
        "self._acked =",
        "self._acked_index =",
    ):
        assert attribute in consumer_init
    assert "set_read_offset(tp, offset)" in inspect.getsource(
        faust.transport.consumer.Consumer._drain_messages
    )
    for method in ("seek_wait", "earliest_offsets"):
        assert callable(getattr(faust.transport.consumer.ThreadDelegateConsumer, method))
    # ReadInOrder.learn_start: the group's committed offset, asked in faust's consumer thread
    assert "self._thread = " in inspect.getsource(
        faust.transport.consumer.ThreadDelegateConsumer.__init__
    )
    assert inspect.iscoroutinefunction(AIOKafkaConsumerThread.call_thread)
    assert callable(AIOKafkaConsumerThread._ensure_consumer)
    assert inspect.iscoroutinefunction(aiokafka.AIOKafkaConsumer.committed)
    # StallWatch: what it reads to leave rebalances and recovery alone, and the end offsets
    assert "self.rebalancing = True" in inspect.getsource(faust.App.on_rebalance_start)
    assert "in_recovery: bool" in inspect.getsource(Recovery)
    assert "active_offsets: Counter[TP]" in inspect.getsource(Recovery)
    assert "highwater - offsets[tp]" in inspect.getsource(Recovery.active_remaining)
    assert inspect.iscoroutinefunction(faust.transport.consumer.ThreadDelegateConsumer.highwaters)
    assert "app.consumer_generation_id = generation" in inspect.getsource(
        ConsumerRebalanceListener.on_partitions_assigned
    )
    # consumer_view: the sets faust fetches from, and aiokafka's state of a partition
    reset_state = inspect.getsource(faust.transport.consumer.Consumer._reset_state)
    for held in ("_active_partitions", "_paused_partitions", "_buffered_partitions"):
        assert f"self.{held} = set()" in reset_state
    assert "self._subscription = SubscriptionState(" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.__init__
    )
    assert "self._records = collections.OrderedDict()" in inspect.getsource(Fetcher.__init__)
    assert "changelog_queue = self.tables.changelog_queue" in inspect.getsource(Recovery)
    # ReadInOrder's retention skip: faust commits nothing past a hole after its committed offset
    assert "if min(acked) - committed_offset > 1:" in inspect.getsource(
        faust.transport.consumer.Consumer._new_offset
    )
    # UntakenFetches: why fetched records go missing (a rebalance cancels the event loop's
    # side of a getmany only; aiokafka waits through the reassignment, then drains the live
    # active set, or every partition when it is empty; mode drops a cancelled call's
    # result), and what the wrapper calls in place of faust's getmany
    assert "await self._stop_fetcher()" in inspect.getsource(faust.App._stop_consumer)
    assert "self._drainer.cancel()" in inspect.getsource(faust.transport.consumer.Fetcher.on_stop)
    thread_getmany = inspect.getsource(AIOKafkaConsumerThread.getmany)
    assert "self._fetch_records," in thread_getmany
    assert "max_records=_consumer._max_poll_records" in thread_getmany
    fetched = inspect.getsource(Fetcher.fetched_records)
    assert "await self._subscriptions.wait_for_assignment()" in fetched
    assert "if partitions and tp not in partitions:" in fetched
    assert "self._active_partitions.update(" in inspect.getsource(
        faust.transport.consumer.Consumer._set_active_tps
    )
    assert "tp in self._buffered_partitions" in inspect.getsource(
        faust.transport.consumer.Consumer.getmany
    )
    assert "maybe_set_result, promise, result" in inspect.getsource(
        mode.threads.MethodQueue._process_enqueued
    )
    assert "if not self.consumer.flow_active:" in inspect.getsource(
        AIOKafkaConsumerThread._fetch_records
    )
    assert "thread_loop" in inspect.getsource(mode.threads.ServiceThread.__init__)
    # take_consumer_calls_as_they_come: mode's worker waits on an event never cleared, the
    # queue makes its workers from its Worker attribute, and faust's consumer holds its thread
    worker = inspect.getsource(mode.threads.MethodQueueWorker._method_queue_do_work.fun)
    assert "await wait(queue_ready)" in worker
    assert "item = await get()" in worker
    assert "_queue_ready.clear" not in inspect.getsource(mode.threads)
    assert "self.Worker(self, index=i" in inspect.getsource(mode.threads.MethodQueue.on_start)
    assert "if self._method_queue is None:" in inspect.getsource(mode.threads.QueueServiceThread)
    assert "self._thread = self._new_consumer_thread()" in inspect.getsource(
        faust.transport.consumer.ThreadDelegateConsumer.__init__
    )
    assert "self.on_worker_init.send()" in inspect.getsource(
        faust.App.worker_init_post_autodiscover
    )
    # DeliverAtOnce: the one call it takes over, and everything the hand-over can wait on
    drain = inspect.getsource(faust.transport.consumer.Consumer._drain_messages)
    assert re.search(
        r"await self\.wait_first\(\s*callback\(message\), self\.suspend_flow\.wait\(\)\s*\)", drain
    ), drain
    assert "self.suspend_flow = Event()" in inspect.getsource(
        faust.transport.consumer.Consumer.__init__
    )
    handler = inspect.getsource(faust.transport.conductor.ConductorCompiler.build)
    assert re.findall(r"await ([\w.]+)\(", handler) == [
        "acquire_flow_control",
        "wait_until_producer_ebb",
        "chan.decode",  # a raw or serializer decode: nothing it awaits can wait
        "chan.decode",
        "asyncio.wait",  # only for a full queue
        "channel.on_key_decode_error",  # only for a record that cannot be decoded
        "channel.on_value_decode_error",
    ], handler
    assert "async with self._tp_to_callback_lock:" in inspect.getsource(
        faust.transport.conductor.Conductor._compile_message_handler
    )
    assert "self._topics = set()" in inspect.getsource(faust.transport.conductor.Conductor.__init__)
    assert "if self.size > self.max_messages:" in inspect.getsource(ProducerBuffer.wait_until_ebb)
    assert "self._suspend.is_set()" in inspect.getsource(FlowControlEvent.acquire)
    assert "if self._queue is None:" in inspect.getsource(faust.Channel)


class _SlowChannel:
    """A channel whose records take 0.25 s each to reach the Kafka client."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        del wait
        await asyncio.sleep(0.25)
        self.published.append(fut.number)


def _slow_buffer() -> tuple[ProducerBuffer, _SlowChannel]:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    return buffer, _SlowChannel()


def _record(channel: _SlowChannel, number: int) -> Any:
    return SimpleNamespace(number=number, message=SimpleNamespace(channel=channel))


def test_fausts_own_buffer_flush_gives_up_with_records_still_in_it() -> None:
    """Why the seam exists: faust commits after this flush, so a kill then loses them."""

    async def scenario() -> list[int]:
        buffer, channel = _slow_buffer()
        await buffer.start()
        for number in range(3):
            buffer.put(_record(channel, number))
        await ProducerBuffer.flush(buffer)
        sent = list(channel.published)
        await faust_seams.drain_producer_buffer(buffer)  # so the stop below has nothing left
        await buffer.stop()
        return sent

    assert len(asyncio.run(scenario())) < 3


def test_the_buffer_flush_waits_until_every_record_reached_the_client() -> None:
    async def scenario() -> tuple[list[int], int]:
        buffer, channel = _slow_buffer()
        await buffer.start()
        app = SimpleNamespace(producer=SimpleNamespace(buffer=buffer), on_stop=None)
        faust_seams.flush_producer_buffer_fully(app)  # type: ignore[arg-type]
        for number in range(3):
            buffer.put(_record(channel, number))
        await buffer.flush()  # what faust calls before it commits
        sent = list(channel.published)
        left = buffer.size
        await buffer.stop()
        return sent, left

    assert asyncio.run(scenario()) == ([0, 1, 2], 0)


def test_a_crash_stop_says_in_one_line_what_the_buffer_never_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crashed worker's app stops with records in its stopped buffer: the flushes of its
    stop and of the buffer's own stop after it are one warning line, no "Error while
    stopping child" traceback; another error of the stop still raises."""

    async def scenario(failure: BaseException) -> None:
        # what drain_producer_buffer reads of a buffer a crash stopped with two records in it
        buffer = SimpleNamespace(size=2, should_stop=True, state="stopping")

        async def flush_last() -> None:  # faust's App.on_stop and ProducerBuffer.on_stop
            await buffer.flush()

        buffer.on_stop = flush_last
        log = logging.getLogger("seam-app")
        app = SimpleNamespace(producer=SimpleNamespace(buffer=buffer), on_stop=flush_last, log=log)
        faust_seams.flush_producer_buffer_fully(app)  # type: ignore[arg-type]
        if not isinstance(failure, faust_seams.BufferStoppedError):
            buffer.flush = _raising(failure)
        await app.on_stop()
        await buffer.on_stop()

    with caplog.at_level(logging.WARNING, logger="seam-app"):
        asyncio.run(scenario(faust_seams.BufferStoppedError()))
    assert [r.getMessage() for r in caplog.records] == [
        "producer buffer stopped with 2 records in it, never sent: no offset after them was "
        "committed, so a restart makes them again"
    ]
    with pytest.raises(RuntimeError, match="other"):
        asyncio.run(scenario(RuntimeError("other")))


def _raising(failure: BaseException) -> Callable[[], Awaitable[None]]:
    async def fail() -> None:
        raise failure

    return fail


def test_a_buffer_that_cannot_drain_fails_the_flush_instead_of_waiting_for_ever() -> None:
    async def scenario() -> str:
        buffer, channel = _slow_buffer()
        await buffer.start()
        for number in range(20):
            buffer.put(_record(channel, number))
        try:
            await faust_seams.drain_producer_buffer(buffer, timeout_s=0.5)
        except RuntimeError as exc:
            return str(exc)
        finally:
            while buffer.size:  # what was never sent, so that the buffer can stop
                buffer.pending.get_nowait()
            await buffer.stop()
        return "drained"

    assert asyncio.run(scenario()).startswith("producer buffer not drained after 0 s")


def test_the_table_manager_starts_without_fausts_sleep_and_still_opens_changelogs_and_recovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = faust.App("seam-tables", broker="memory://", store="memory://")
    app.Table("counts", default=int)
    tables: Any = app.tables
    done: list[str] = []

    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    async def update_channels() -> None:
        done.append("changelogs")

    class FakeRecovery:
        async def start(self) -> None:
            done.append("recovery")

    monkeypatch.setattr(tables, "sleep", no_sleep)
    monkeypatch.setattr(tables, "_update_channels", update_channels)
    monkeypatch.setattr(TableManager, "recovery", FakeRecovery())
    faust_seams.start_tables_at_once(app)
    asyncio.run(tables.on_start())
    assert done == ["changelogs", "recovery"]


def test_a_key_goes_to_the_partition_fausts_producer_gives_it() -> None:
    """Records of several keys go together to one partition: each key's must be the one
    faust's producer (aiokafka's default partitioner) picks for the key alone, where older
    workers sent its records and where its table partition is."""
    partitioner = DefaultPartitioner()
    for partitions in (1, 3, 12):
        every = list(range(partitions))
        for key in ("eu-west@1796219460000", "us-west", "cust-042", "é", ""):
            expected = partitioner(key.encode(), every, every)
            assert key_partition(key, partitions) == expected


def _batches_of(
    take: str,
    sends: list[tuple[float, int]],
    within_s: float,
    max_events: int = 5,
    idle_s: float | None = None,
    fetched_left: list[int] | None = None,
    handle_s: float = 0.0,
) -> list[tuple[float, list[int]]]:
    """(seconds after the first send, values) of each batch an agent took, sending each
    (pause before it, value) of ``sends`` through faust's own agent test context; with
    ``fetched_left``, the consumer's fetch still holds that many records after each send;
    the agent takes ``handle_s`` to handle each batch."""
    app = faust.App(f"take-{take}", broker="kafka://127.0.0.1:1", store="memory://")
    taken: list[tuple[float, list[int]]] = []
    started = [0.0]

    async def batches(stream: Any) -> Any:
        if take == "ours":
            batched = faust_seams.take_ready_events(stream, max_events, within_s, idle_s)
        else:
            batched = stream.take_events(max_events, within=within_s)
        async for events in batched:
            taken.append((time.monotonic() - started[0], [event.value for event in events]))
            await asyncio.sleep(handle_s)
            yield None

    agent = app.agent(name="batches")(batches)

    async def scenario() -> None:
        async with agent.test_context() as running:
            await asyncio.sleep(within_s * 1.5)  # nothing came for longer than within_s
            started[0] = time.monotonic()
            for number, (pause, value) in enumerate(sends):
                await asyncio.sleep(pause)
                if fetched_left is not None:
                    faust_seams.FetchedInHand.of(app.consumer).left = fetched_left[number]
                await running.put(value, wait=False)
            await asyncio.sleep(within_s * 2 + handle_s * 3)

    asyncio.run(scenario())
    return taken


def test_faust_take_holds_a_lone_event_for_its_whole_window() -> None:
    """Why the seam exists: one event of a trickle waited out every batch window."""
    ((after, values),) = _batches_of("faust", [(0.0, 1)], within_s=0.4)
    assert values == [1]
    assert after >= 0.1  # the rest of its 0.4 s window: the event came ~0.2 s into one


def test_a_lone_event_after_an_idle_spell_is_handed_over_at_once() -> None:
    ((after, values),) = _batches_of("ours", [(0.0, 1)], within_s=0.4)
    assert values == [1]
    assert after < 0.1


def test_a_steady_flow_is_still_taken_in_batches_of_at_most_max_events() -> None:
    values = list(range(30))
    taken = _batches_of("ours", [(0.01, value) for value in values], within_s=0.1)
    assert [value for _, batch in taken for value in batch] == values  # each once, in order
    assert all(len(batch) <= 5 for _, batch in taken)
    # after the first (opened on an idle stream) the batches wait to fill: not one by one
    assert len(taken) < len(values) / 2


def test_with_no_idle_spell_needed_a_steady_flow_is_handed_over_as_it_comes() -> None:
    """idle_s=0 (the aggregate agent's: its writer batches already): every batch goes as soon
    as it holds what was queued, without waiting out the window, still in order, once each."""
    values = list(range(12))
    taken = _batches_of("ours", [(0.05, value) for value in values], within_s=0.4, idle_s=0.0)
    assert [value for _, batch in taken for value in batch] == values
    assert all(len(batch) == 1 for _, batch in taken)  # each came alone, 50 ms after the last
    last_sent = 0.05 * len(values)
    assert taken[-1][0] < last_sent + 0.1  # not held for the 0.4 s window
    # A burst queued at once still travels as batches of at most max_events.
    burst = _batches_of("ours", [(0.0, value) for value in values], within_s=0.4, idle_s=0.0)
    assert [value for _, batch in burst for value in batch] == values
    assert all(len(batch) <= 5 for _, batch in burst)
    assert len(burst) < len(values)


def test_an_idle_stream_leaves_the_batch_loop_asleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no batch open there is nothing to time: waking every within_s for nothing cost an
    idle worker half its CPU."""
    waits: list[float] = []
    original = asyncio.Event.wait

    def counted(self: asyncio.Event) -> Any:
        caller = inspect.currentframe()
        by = caller.f_back if caller is not None else None
        if by is not None and by.f_code is faust_seams._take_ready_events.__code__:
            waits.append(time.monotonic())  # a wait of the batch loop itself
        return original(self)

    monkeypatch.setattr(asyncio.Event, "wait", counted)
    taken = _batches_of("ours", [(0.5, 1), (0.0, 2)], within_s=0.02, idle_s=0.0)
    assert [value for _, batch in taken for value in batch] == [1, 2]
    # about 0.6 s in all, idle most of it: a wake every 20 ms would be some 30 waits
    assert 1 <= len(waits) <= 2 + 3 * len(taken)


def test_an_event_that_waited_for_the_broker_joins_the_next_batch_not_the_one_handled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event whose start was being asked of the broker while a batch was handed over
    waits for that batch to be handled: added to it, it would be acknowledged unhandled."""

    asked: list[Any] = []

    async def second_start_is_slow(self: Any, message: Any) -> None:
        del self
        asked.append(message)
        if len(asked) == 2:
            await asyncio.sleep(0.1)  # a broker round trip

    monkeypatch.setattr(faust_seams.ReadInOrder, "needs_start", lambda *_: True)
    monkeypatch.setattr(faust_seams.ReadInOrder, "learn_start", second_start_is_slow)
    # 1 and 2 come together; 2's start is asked while 1's batch, handed over when its window
    # ends (2 was still queued), takes 0.3 s to handle
    taken = _batches_of("ours", [(0.0, 1), (0.0, 2)], within_s=0.05, idle_s=0.0, handle_s=0.3)
    assert [batch for _, batch in taken] == [[1], [2]]


def test_the_records_of_one_fetch_go_in_one_batch_though_faust_hands_them_over_one_by_one() -> None:
    """faust's consumer waits on the event loop between two records of a fetch, so the
    stream's queue is empty between them: the batch waits until the fetch is all in."""
    values = list(range(4))
    sends = [(0.02, value) for value in values]
    one_by_one = _batches_of("ours", sends, within_s=0.4, idle_s=0.0, fetched_left=[0] * 4)
    assert [batch for _, batch in one_by_one] == [[0], [1], [2], [3]]
    # A window long beside the sends: handed over with the last record, not at its end,
    # however late a loaded machine makes the sends (verify: 0.5 s for 4 sends of 20 ms).
    fetch = _batches_of("ours", sends, within_s=1.5, idle_s=0.0, fetched_left=[3, 2, 1, 0])
    [(after, batch)] = fetch
    assert batch == values
    assert after < 1.2


def test_fetched_in_hand_counts_a_fetch_down_as_its_records_become_messages() -> None:
    class Consumer:
        async def _wait_next_records(self, timeout: float) -> Any:
            del timeout
            return {T0: ["a", "b"], T1: ["c"]}, {T0, T1}

        def _to_message(self, tp: Any, record: Any) -> Any:
            return (tp, record)

    consumer = Consumer()
    counter = faust_seams.FetchedInHand.of(consumer)
    assert faust_seams.FetchedInHand.of(consumer) is counter  # wrapped once
    records, _active = asyncio.run(consumer._wait_next_records(1.0))
    assert records == {T0: ["a", "b"], T1: ["c"]}
    assert counter.left == 3
    assert consumer._to_message(T0, "a") == (T0, "a")
    assert counter.left == 2
    asyncio.run(consumer._wait_next_records(1.0))  # a new fetch starts the count again
    assert counter.left == 3


class _Fetcher:
    """What :func:`faust_seams.wait_by_left_out` reads of aiokafka's fetcher; remembers the
    wait each request it builds would ask for."""

    def __init__(self) -> None:
        self._records: dict[Any, object] = {}
        self._fetch_max_wait_ms = 1_500
        self.asked: list[int] = []

    def _get_actions_per_node(self, assignment: Any) -> str:
        del assignment
        self.asked.append(self._fetch_max_wait_ms)
        return "requests"


T0, T1, CHANGELOG = (TP("t", 0), TP("t", 1), TP("t-changelog", 0))


def _assignment(paused: Iterable[Any] = ()) -> Any:
    return SimpleNamespace(
        tps=[T0, T1, CHANGELOG],
        state_value=lambda tp: SimpleNamespace(paused=tp in paused),
    )


def test_a_fetch_of_every_partition_waits_long_and_one_that_leaves_one_out_waits_short() -> None:
    fetcher = _Fetcher()
    faust_seams.wait_by_left_out(fetcher, {"t"}, busy_ms=10, idle_ms=500)
    fetcher._records[CHANGELOG] = object()  # a topic no agent reads: never counts
    assert fetcher._get_actions_per_node(_assignment()) == "requests"
    fetcher._records[T1] = object()  # fetched, not read yet: left out of the next fetch
    fetcher._get_actions_per_node(_assignment())
    del fetcher._records[T1]
    fetcher._get_actions_per_node(_assignment([T0]))  # paused: left out too
    fetcher._get_actions_per_node(_assignment())
    assert fetcher.asked == [500, 10, 10, 500]


class _ConsumerThread:
    """faust's consumer thread as ReadInOrder asks it for the group's committed offset."""

    def __init__(self, committed: int | None) -> None:
        self.committed_in_group = committed
        self.unreachable = False
        self.asked: list[TP] = []

    def _ensure_consumer(self) -> _ConsumerThread:
        return self  # stands in for the aiokafka consumer it holds

    async def committed(self, tp: TP) -> int | None:
        self.asked.append(tp)
        if self.unreachable:
            raise ConnectionError("broker unreachable")
        return self.committed_in_group

    async def call_thread(self, method: Any, *args: Any) -> Any:
        return await method(*args)


class _Consumer:
    """What ReadInOrder uses of faust's consumer: offsets it keeps, a seek, the earliest, and
    (through its thread) the group's committed offset as the broker has it."""

    def __init__(
        self,
        committed: int | None = None,
        earliest: int = 0,
        committed_in_group: int | None = None,
    ) -> None:
        self._committed_offset: dict[TP, int | None] = {_TP: committed}
        self._thread = _ConsumerThread(committed if committed is not None else committed_in_group)
        self._read_offset: dict[TP, int | None] = {}
        self._acked: dict[TP, list[int]] = {}
        self._acked_index: dict[TP, set[int]] = {}
        self.earliest = earliest
        self.end = 0  # the offset past the partition's last record, as the broker says
        self.sought: list[int] = []
        self.gaps_added: list[tuple[TP, int, int]] = []
        self.refuse_seeks = False

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps_added.append((tp, offset_from, offset_to))

    def assignment(self) -> set[TP]:
        return set() if self.refuse_seeks else {_TP}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        if self.refuse_seeks:
            raise aiokafka.errors.IllegalStateError("No current assignment for partition")
        self.sought.append(partitions[_TP])
        self._read_offset.update(partitions)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.end)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        if self.earliest < 0:
            raise ConnectionError("broker unreachable")
        return dict.fromkeys(tps, self.earliest)


_TP = TP("app-by-key", 0)


def _admitted(guard: faust_seams.ReadInOrder, consumer: _Consumer, *offsets: int) -> list[int]:
    """The offsets ``guard`` takes, each handed over by the consumer in turn."""
    taken = []
    for offset in offsets:
        consumer._read_offset[_TP] = offset  # faust's consumer notes what it handed over
        generation = guard.app.consumer_generation_id
        message = SimpleNamespace(tp=_TP, offset=offset, acked=False, generation_id=generation)
        if guard.needs_start(message):  # as the batching does
            asyncio.run(guard.learn_start(message))
        if guard.admit(message) or asyncio.run(guard.read_again(message)):
            taken.append(offset)
        else:
            assert message.acked  # set aside: never acknowledged, so never committed
    return taken


def _guard(
    consumer: _Consumer, generation: int = 1, timeout_s: float = 120.0
) -> faust_seams.ReadInOrder:
    app = SimpleNamespace(consumer_generation_id=generation)
    return faust_seams.ReadInOrder(consumer, app, [_TP.topic], timeout_s)


def test_records_in_order_are_all_taken() -> None:
    consumer = _Consumer(committed=0)
    assert _admitted(_guard(consumer), consumer, 0, 1, 2, 3) == [0, 1, 2, 3]
    assert consumer.sought == []


def test_after_a_lost_record_the_partition_is_read_again_from_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """faust lost offset 2 on its way to the stream: 3 and 4 are set aside, the consumer goes
    back to 2 (again once it had handed 4 over past it), and 2, 3, 4 are taken in order."""
    consumer = _Consumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0, 1, 3) == [0, 1]
    assert consumer.sought == [2]
    assert _admitted(guard, consumer, 4) == []
    assert consumer.sought == [2, 2]  # it had read past 2 again
    assert _admitted(guard, consumer, 2, 3, 4, 5) == [2, 3, 4, 5]
    assert guard.gaps == 1
    said = [record.getMessage() for record in caplog.records]
    assert "app-by-key[0]: faust's consumer handed over offset 3 while 2 was expected" in said[0]
    assert (
        said[1] == "app-by-key[0]: read again from offset 2 (2 events after the gap were set aside)"
    )


class _RacedConsumer(_Consumer):
    """A consumer whose delivery loop notes the record it handed over (3) after the seek's
    thread set the read offset to the missing one: faust would drop what is read again."""

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        await super().seek_wait(partitions)
        await asyncio.sleep(0)
        self._read_offset[_TP] = 3


def test_a_read_offset_raised_during_the_seek_is_set_back_to_the_missing_record() -> None:
    consumer = _RacedConsumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0, 1, 3) == [0, 1]
    assert consumer.sought == [2]
    assert consumer._read_offset[_TP] == 2  # so faust hands 2 over when it comes again
    assert _admitted(guard, consumer, 2, 3) == [2, 3]


def test_a_record_read_again_after_faust_s_own_seek_is_taken() -> None:
    """Records before the next expected come again after a seek: the replay guard refuses
    what was applied, so they are taken, and the order goes on from them."""
    consumer = _Consumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0, 1, 2, 3, 1, 2, 3, 4) == [0, 1, 2, 3, 1, 2, 3, 4]
    assert _admitted(guard, consumer, 6) == []  # and a hole after them is still one
    assert consumer.sought == [5]


def test_the_first_record_of_an_assignment_is_expected_at_the_committed_offset() -> None:
    consumer = _Consumer(committed=10)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 12) == []
    assert consumer.sought == [10]
    assert _admitted(guard, consumer, 10, 11, 12) == [10, 11, 12]
    # a new assignment starts from the offset faust sought to, not from what was read
    consumer._committed_offset[_TP] = 5
    guard.app.consumer_generation_id = 2
    assert _admitted(guard, consumer, 5, 6) == [5, 6]
    assert consumer._thread.asked == []  # faust knew the committed offsets: nothing asked


def test_where_faust_does_not_know_the_committed_offset_the_broker_is_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At a takeover faust hands records over before it looked the committed offset up, and
    a new group has none: the start is asked of the broker, so a record faust drops before
    the first one it hands over is read again rather than passed by."""
    takeover = _Consumer(committed=None, committed_in_group=92)
    assert _admitted(_guard(takeover), takeover, 92, 93) == [92, 93]
    assert takeover._thread.asked == [_TP]
    assert takeover.sought == []
    dropped = _Consumer(committed=None, committed_in_group=92)
    assert _admitted(_guard(dropped), dropped, 93) == []
    assert dropped.sought == [92]
    # a new group starts where the broker's log starts (faust resets to the earliest offset)
    new_group = _Consumer(committed=None, earliest=7)
    assert _admitted(_guard(new_group), new_group, 7, 8) == [7, 8]
    first_dropped = _Consumer(committed=None, earliest=0)
    assert _admitted(_guard(first_dropped), first_dropped, 1) == []
    assert first_dropped.sought == [0]
    # a broker that cannot say: the first record sets the order, with a warning
    unreachable = _Consumer(committed=None, earliest=-1)
    unreachable._thread.unreachable = True
    assert _admitted(_guard(unreachable), unreachable, 5, 6) == [5, 6]
    said = [record.getMessage() for record in caplog.records]
    assert any(
        "app-by-key[0]: could not learn where the partition starts; taking offset 5" in line
        for line in said
    ), said


class _StallApp:
    """What StallWatch reads of the app: the generation, whether it is rebalancing, and its
    tables' recovery (faust's own ``active_remaining`` over the offsets set here)."""

    def __init__(self) -> None:
        self.consumer_generation_id = 1
        self.rebalancing = False
        recovery = SimpleNamespace(
            in_recovery=False, active_highwaters=Counter(), active_offsets=Counter()
        )
        recovery.active_remaining = MethodType(Recovery.active_remaining, recovery)
        self.tables = SimpleNamespace(recovery=recovery)


def _stall_watch(end: int, committed: int = 10) -> tuple[faust_seams.StallWatch, Any, Any]:
    consumer = _Consumer(committed=committed)
    consumer.end = end
    app = _StallApp()
    guard = faust_seams.ReadInOrder(consumer, app, [_TP.topic])
    return faust_seams.StallWatch(consumer, app, guard, stall_s=60.0), consumer, guard


def _stop_of(watch: faust_seams.StallWatch) -> str:
    """The stop of ``watch`` checked at 0, 1, 30 and 60 s (nothing yet: the first check only
    notes the assignment, and 60 s have not passed since the second) and then at 62 s."""
    for now in (0.0, 1.0, 30.0, 60.0):
        asyncio.run(watch.check(now=now))
    with pytest.raises(faust_seams.PartitionStalledError) as stalled:
        asyncio.run(watch.check(now=62.0))
    return str(stalled.value)


def test_a_partition_whose_records_wait_and_never_reach_the_stream_stops_the_worker() -> None:
    watch, _, _ = _stall_watch(end=25)
    assert _stop_of(watch).startswith(
        "app-by-key[0]: 15 record(s) wait from offset 10 and none reached the stream for 61 s"
    )


def test_a_partition_that_moves_on_or_has_nothing_waiting_is_no_stall() -> None:
    watch, consumer, guard = _stall_watch(end=25)
    asyncio.run(watch.check(now=0.0))
    asyncio.run(watch.check(now=1.0))
    for offset, now in zip(range(10, 15), (40.0, 80.0, 120.0, 160.0, 200.0), strict=True):
        message = SimpleNamespace(tp=_TP, offset=offset, acked=False, generation_id=1)
        assert guard.admit(message)  # one event taken every 40 s: slow, not stalled
        asyncio.run(watch.check(now=now))
    consumer.end = 15  # everything taken: nothing waits, however long
    for now in (300.0, 400.0, 500.0):
        asyncio.run(watch.check(now=now))


def test_a_state_recovery_that_reads_nothing_of_its_changelog_stops_the_worker() -> None:
    watch, _, _ = _stall_watch(end=25)
    recovery = watch.app.tables.recovery
    changelog = TP("app-state-changelog", 2)
    watch.app.rebalancing = True  # faust's rebalance lasts until its recovery ends
    recovery.in_recovery = True
    recovery.active_highwaters[changelog] = 116
    recovery.active_offsets[changelog] = -1  # nothing read yet: 117 records to recover
    assert _stop_of(watch).startswith(
        "app-state-changelog[2]: the recovery of the state from its changelog has 117 "
        "record(s) left after offset -1 and read none for 61 s; stopping the worker"
    )


def test_a_state_recovery_that_moves_on_or_ends_is_no_stall() -> None:
    watch, _, _ = _stall_watch(end=25)
    recovery = watch.app.tables.recovery
    changelog = TP("app-state-changelog", 2)
    recovery.in_recovery = True
    recovery.active_highwaters[changelog] = 116
    recovery.active_offsets[changelog] = -1
    asyncio.run(watch.check(now=0.0))
    for offset, now in zip((10, 20, 30, 40), (50.0, 100.0, 150.0, 200.0), strict=True):
        recovery.active_offsets[changelog] = offset  # slow, but reading: no stall
        asyncio.run(watch.check(now=now))
    recovery.active_offsets[changelog] = 116  # all read: recovery about to end
    for now in (300.0, 400.0):
        asyncio.run(watch.check(now=now))
    recovery.in_recovery = False  # the stream's records now count, from a fresh clock
    asyncio.run(watch.check(now=401.0))
    asyncio.run(watch.check(now=450.0))


def test_a_broker_away_during_stall_checks_is_said_once_not_every_check(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faust_seams, "STALL_CHECK_EVERY_S", 0.001)
    watch, consumer, _ = _stall_watch(end=10)
    answers = iter([True] * 2 + [False] * 20 + [True] * 3 + [False] * 5 + [True] * 1000)

    async def highwaters(*tps: TP) -> dict[TP, int]:
        if not next(answers):
            raise TimeoutError("no broker")
        return dict.fromkeys(tps, consumer.end)

    consumer.highwaters = highwaters

    async def watch_a_while() -> None:
        async def crash(exc: BaseException) -> None:
            raise AssertionError(f"no stall here: {exc}")

        running = asyncio.ensure_future(watch.run(crash))
        await asyncio.sleep(0.5)
        running.cancel()

    with caplog.at_level(logging.INFO, logger=faust_seams.log.name):
        asyncio.run(watch_a_while())
    said = [record.getMessage() for record in caplog.records]
    failed = [line for line in said if line.startswith("could not check")]
    again = [line for line in said if line.startswith("checking the internal partitions")]
    assert len(failed) == 2, said  # two spells of 20 and 5 failed checks
    assert "TimeoutError('no broker')" in failed[0]
    assert len(again) == 2, said


def test_a_stall_report_says_what_faust_and_aiokafka_hold_of_the_partition() -> None:
    asyncio.run(_stall_report_views())


async def _stall_report_views() -> None:  # aiokafka's partition states need a running loop
    subscription = SubscriptionState()
    subscription.subscribe(topics={_TP.topic})
    subscription.assign_from_subscribed({AioTP(_TP.topic, _TP.partition)})
    state = subscription.subscription.assignment.state_value(_TP)
    aiokafka_consumer = SimpleNamespace(
        _subscription=subscription, _fetcher=SimpleNamespace(_records={})
    )
    consumer = SimpleNamespace(
        _active_partitions=set(),
        _paused_partitions=set(),
        _buffered_partitions={_TP},
        _thread=SimpleNamespace(_consumer=aiokafka_consumer),
    )
    assert faust_seams.consumer_view(consumer, _TP) == "faust: buffer-full; aiokafka: position none"
    state.await_reset(OffsetResetStrategy.EARLIEST)
    assert faust_seams.consumer_view(consumer, _TP).endswith("position none, awaiting reset")
    state.seek(290)
    state.pause()
    aiokafka_consumer._fetcher._records[_TP] = object()
    consumer._active_partitions.add(_TP)
    consumer._read_offset = {_TP: 289}
    assert faust_seams.consumer_view(consumer, _TP) == (
        "faust: active,buffer-full, read offset 289; aiokafka: position 290, paused, "
        "records prefetched"
    )
    other = TP(_TP.topic, _TP.partition + 1)
    assert faust_seams.consumer_view(consumer, other) == (
        "faust: not fetched; aiokafka: not assigned"
    )
    del consumer._thread  # a consumer being rebuilt
    assert faust_seams.consumer_view(consumer, _TP) == (
        "faust: active,buffer-full, read offset 289; aiokafka: ?"
    )


def test_rebalances_and_recovery_restart_the_stall_clock() -> None:
    watch, _, _ = _stall_watch(end=25)
    asyncio.run(watch.check(now=0.0))
    asyncio.run(watch.check(now=1.0))
    watch.app.tables.recovery.in_recovery = True  # restoring tables: records wait, rightly
    asyncio.run(watch.check(now=100.0))
    watch.app.tables.recovery.in_recovery = False
    watch.app.consumer_generation_id = 2  # a new assignment
    asyncio.run(watch.check(now=101.0))
    asyncio.run(watch.check(now=102.0))
    asyncio.run(watch.check(now=150.0))  # 48 s since the clock started again
    with pytest.raises(faust_seams.PartitionStalledError):
        asyncio.run(watch.check(now=170.0))


def test_records_deleted_by_retention_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = _Consumer(committed=2, earliest=5)
    assert _admitted(_guard(consumer), consumer, 5, 6) == [5, 6]
    assert consumer.sought == []
    assert "offsets 2-4 were deleted by retention before they were read" in caplog.text
    # and faust commits them: its own offset arithmetic, over the two acknowledged
    consumer._acked[_TP], consumer._acked_index[_TP] = [5, 6], {5, 6}
    consumer._gap = {_TP: IntervalTree()}
    assert faust.transport.consumer.Consumer._new_offset(consumer, _TP) == 7  # type: ignore[arg-type]
    # what is left from the earliest on is still read in order
    later = _Consumer(committed=2, earliest=5)
    guard = _guard(later)
    assert _admitted(guard, later, 7) == []
    assert later.sought == [5]
    assert _admitted(guard, later, 5, 6, 7) == [5, 6, 7]


def test_a_missing_record_that_never_comes_back_stops_the_worker() -> None:
    consumer = _Consumer(committed=0)
    guard = _guard(consumer, timeout_s=0.0)
    assert _admitted(guard, consumer, 0, 2) == [0]
    with pytest.raises(RuntimeError, match=r"app-by-key\[0\]: offset 1 did not come back"):
        _admitted(guard, consumer, 3)


def test_a_broker_that_cannot_say_its_earliest_offset_still_gets_the_seek(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = _Consumer(committed=0, earliest=-1)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0, 2) == [0]
    assert consumer.sought == [1]
    assert "could not ask the broker for its earliest offset" in caplog.text
    assert _admitted(guard, consumer, 1, 2) == [1, 2]


def test_a_record_a_stream_skipped_and_acknowledged_is_not_committed_before_it_is_read() -> None:
    """faust's stream acknowledges a record it skips; past a gap none was taken, so those
    acknowledgements go until the records are read again."""
    consumer = _Consumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0, 1) == [0, 1]
    consumer._acked[_TP] = [0, 1, 2]  # 2 skipped (and acknowledged) by the stream
    consumer._acked_index[_TP] = {0, 1, 2}
    assert _admitted(guard, consumer, 3) == []
    assert consumer._acked[_TP] == [0, 1]
    assert consumer._acked_index[_TP] == {0, 1}


def test_faust_s_gap_bookkeeping_is_off_for_the_guarded_topics_only() -> None:
    """faust counts the offsets its consumer skipped over as acknowledged: for the internal
    topic that would commit past the records being read again."""
    consumer = _Consumer(committed=0)
    _guard(consumer)
    other = TP("elsewhere", 0)
    asyncio.run(consumer._add_gap(_TP, 3, 7))
    asyncio.run(consumer._add_gap(other, 3, 7))
    assert consumer.gaps_added == [(other, 3, 7)]


def test_an_event_of_an_earlier_assignment_is_set_aside_without_a_seek() -> None:
    consumer = _Consumer(committed=0)
    guard = _guard(consumer, generation=2)
    stale = SimpleNamespace(tp=_TP, offset=0, acked=False, generation_id=1)
    assert not guard.admit(stale)
    assert not asyncio.run(guard.read_again(stale))
    assert stale.acked
    assert consumer.sought == []
    assert _admitted(guard, consumer, 0, 1) == [0, 1]


def test_a_partition_revoked_before_its_seek_is_left_to_its_next_assignment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=faust_seams.__name__)
    consumer = _Consumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, consumer, 0) == [0]
    consumer.refuse_seeks = True  # revoked: aiokafka refuses a seek of it
    assert _admitted(guard, consumer, 2) == []
    assert "not read again from 1: the partition was reassigned" in caplog.text
    # while it is still assigned, a failed seek is an error (the worker stops)
    consumer.assignment = lambda: {_TP}  # type: ignore[method-assign]
    with pytest.raises(aiokafka.errors.IllegalStateError):
        _admitted(guard, consumer, 3)


class _RecordingProducer:
    """faust's producer as far as a send goes: records each value as the Kafka client would
    take it, with no suspension (as aiokafka's ``send`` appends to its batches); Kafka refuses
    every record to partition ``refuse`` as too large."""

    def __init__(self, log: list[object], refuse: int | None = None) -> None:
        self.log = log
        self.refuse = refuse
        self.sent: list[tuple[str, int | None, object]] = []

    async def maybe_start(self) -> bool:
        return False

    async def send(
        self,
        topic: str,
        key: Any,
        value: Any,
        partition: Any,
        timestamp: Any,
        headers: Any,
        *,
        transactional_id: Any = None,
    ) -> asyncio.Future[None]:
        del key, timestamp, transactional_id  # what the engine sends: none of them
        self.log.append(value)
        self.sent.append((topic, partition, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if partition == self.refuse:
            done.set_exception(aiokafka.errors.MessageSizeTooLargeError())
        else:
            done.set_result(None)
        return done


def test_a_batch_sent_together_has_no_suspension_between_two_records() -> None:
    """faust's Topic.send lets the event loop run between two records (so aiokafka's sender
    sent each in a request of its own); send_together hands them all over before it does."""

    async def scenario() -> tuple[list[object], list[object], list[Any]]:
        log: list[object] = []
        app = faust.App("seams-send-together", broker="kafka://127.0.0.1:1")
        producer = _RecordingProducer(log)
        app.producer = producer  # type: ignore[assignment]
        topic = app.topic("internal", key_serializer="raw", value_serializer="raw")

        async def ticker() -> None:
            while True:
                log.append("loop")
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        log.clear()
        for value in (b"a", b"b"):
            await topic.send(value=value, partition=0, force=True)
        through_topic = log[:]
        log.clear()
        futures = await faust_seams.send_together(
            app, "internal", [(b"a", 0, None), (b"b", 2, [("clock", b"[]")])]
        )
        await asyncio.sleep(0)
        together = log[:]
        ticking.cancel()
        assert producer.sent[-2:] == [("internal", 0, None), ("internal", 2, [("clock", b"[]")])]
        return through_topic, together, [await future for future in futures]

    through_topic, together, results = asyncio.run(scenario())
    # faust itself: the loop runs between the two records (if not, the seam can go)
    assert "loop" in through_topic[through_topic.index(b"a") : through_topic.index(b"b")]
    # the seam: both records handed over back to back, the loop runs only after
    assert together[together.index(b"a") :] == [b"a", b"b", "loop"]
    assert results == [None, None]


def _count_tasks() -> list[int]:
    """Count, in the list returned, the tasks the running loop makes from now on (until its
    task factory is set back to None)."""
    made = [0]

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        made[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    asyncio.get_running_loop().set_task_factory(counting)
    return made


def _delivery_scenario(block: str) -> tuple[faust_seams.DeliverAtOnce, list[str], int]:
    """One hand-over through the consumer's wrapped ``wait_first``, as faust's
    ``_drain_messages`` makes it, with ``block`` (one of :data:`_BLOCKS`, or "nothing") set
    up first: the seam's counters, what the hand-over did, and how many tasks were made."""

    async def scenario() -> tuple[faust_seams.DeliverAtOnce, list[str], int]:
        app = faust.App(f"seams-deliver-{block}", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer
        seam = faust_seams.DeliverAtOnce.install(consumer, app)
        assert faust_seams.DeliverAtOnce.install(consumer, app) is seam  # once
        app.flow_control.resume()  # as recovery leaves it (a worker starts suspended)
        topic = app.topic("internal", value_serializer="raw")
        app.topics.add(topic)
        topic.queue.put_nowait(object())  # a queue in use, not full
        if block == "queue full":
            while not topic.queue.full():
                topic.queue.put_nowait(object())
        elif block == "flow suspended":
            consumer.suspend_flow.set()
        elif block == "flow control":
            app.flow_control.suspend()
        elif block == "producer buffer":
            app.producer.buffer.max_messages = -1
        elif block == "subscription change":
            await app.topics._tp_to_callback_lock.acquire()
        done: list[str] = []

        async def hand_over() -> str:
            done.append("handed over")
            return "handed over"

        made = _count_tasks()
        await consumer.wait_first(hand_over(), consumer.suspend_flow.wait())
        asyncio.get_running_loop().set_task_factory(None)
        return seam, done, made[0]

    return asyncio.run(scenario())


#: What can make the conductor's hand-over of a record wait.
_BLOCKS = ("queue full", "flow suspended", "flow control", "producer buffer", "subscription change")


def test_a_record_that_cannot_wait_is_handed_over_without_a_task() -> None:
    seam, done, made = _delivery_scenario("nothing")
    assert done == ["handed over"]
    assert (seam.at_once, seam.waited, made) == (1, 0, 0)


@pytest.mark.parametrize("block", _BLOCKS)
def test_a_hand_over_that_could_wait_goes_through_fausts_own_wait_first(block: str) -> None:
    """Then a rebalance can abandon it, as faust intends: faust's wait_first makes its tasks
    (the hand-over, suspend_flow's wait, the consumer's stopped and crashed)."""
    seam, _, made = _delivery_scenario(block)
    assert (seam.at_once, seam.waited) == (0, 1)
    assert made >= 4


def test_the_consumers_yield_after_a_fetch_makes_no_task_and_its_longer_sleeps_are_modes() -> None:
    async def scenario() -> tuple[int, int]:
        app = faust.App("seams-deliver-sleep", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer
        faust_seams.DeliverAtOnce.install(consumer, app)
        made = _count_tasks()
        await consumer.sleep(0)
        yielded = made[0]
        await consumer.sleep(0.01)  # mode's: ends early if the consumer stops
        asyncio.get_running_loop().set_task_factory(None)
        return yielded, made[0] - yielded

    assert asyncio.run(scenario()) == (0, 1)  # mode's wait_for makes one task per sleep
    assert "await self.sleep(0)" in inspect.getsource(
        faust.transport.consumer.Consumer._drain_messages
    )


def _method_queue_calls(worker: type[mode.threads.MethodQueueWorker]) -> tuple[list[int], int]:
    """Results of 20 calls through a method queue with ``worker`` workers on a loop of its
    own (as faust's consumer thread has), and the tasks made while they ran; the queue is
    stopped at the end (a worker waiting for a call must not hold the stop up)."""

    async def scenario() -> tuple[list[int], int]:
        queue = mode.threads.MethodQueue(num_workers=2)
        queue.Worker = worker
        await queue.start()
        loop = asyncio.get_running_loop()

        async def square(number: int) -> int:
            return number * number

        results = []
        await asyncio.sleep(0.05)  # both workers waiting for a call
        made = _count_tasks()
        for number in range(20):
            promise = loop.create_future()
            await queue.call(promise, square, number)
            results.append(await promise)
        loop.set_task_factory(None)
        await asyncio.wait_for(queue.stop(), 5)
        return results, made[0]

    return asyncio.run(scenario())


def test_the_consumer_threads_calls_are_taken_as_they_come() -> None:
    ours, ours_made = _method_queue_calls(faust_seams.CallsAsTheyCome)
    modes, modes_made = _method_queue_calls(mode.threads.MethodQueueWorker)
    assert ours == modes == [number * number for number in range(20)]
    assert ours_made == 0
    assert modes_made >= 3 * 20  # why the seam exists: tasks for a wait that never waits


def test_a_worker_initialising_gives_the_consumer_thread_the_lean_queue_worker() -> None:
    app = faust.App("seams-calls", broker="kafka://127.0.0.1:1", store="memory://")
    faust_seams.take_consumer_calls_as_they_come(app)
    app.on_worker_init.send()  # as App.main does before the worker starts
    assert app.consumer._thread.method_queue.Worker is faust_seams.CallsAsTheyCome


def test_other_waits_of_the_consumer_are_left_to_faust() -> None:
    async def scenario() -> tuple[faust_seams.DeliverAtOnce, list[Any]]:
        app = faust.App("seams-deliver-other", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer
        seam = faust_seams.DeliverAtOnce.install(consumer, app)
        other = asyncio.Event()
        other.set()

        async def work() -> str:
            return "done"

        one = await consumer.wait_first(work())
        two = await consumer.wait_first(work(), other.wait())
        return seam, [one.results, sorted(map(str, two.results))]

    seam, results = asyncio.run(scenario())
    assert (seam.at_once, seam.waited) == (0, 0)
    assert results == [["done"], ["True", "done"]]  # Event.wait returns True


class _Refusals(faust.Sensor):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        del producer, state
        self.errors.append(exc)


def test_a_record_sent_together_and_refused_names_where_and_reaches_the_sensors() -> None:
    async def scenario() -> tuple[list[BaseException], list[BaseException | None]]:
        app = faust.App("seams-send-refused", broker="kafka://127.0.0.1:1")
        app.producer = _RecordingProducer([], refuse=1)  # type: ignore[assignment]
        refusals = _Refusals()
        app.sensors.add(refusals)
        futures = await faust_seams.send_together(
            app, "internal", [(b"a", 0, None), (b"b", 1, None)], what="internal record"
        )
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        return refusals.errors, [o if isinstance(o, BaseException) else None for o in outcomes]

    errors, outcomes = asyncio.run(scenario())
    assert outcomes[0] is None
    refused = outcomes[1]
    assert isinstance(refused, faust_seams.SendRefusedError)
    assert str(refused).startswith("internal record to internal[1] refused: MessageSizeTooLarge")
    assert isinstance(refused.__cause__, aiokafka.errors.MessageSizeTooLargeError)
    assert errors == [refused]


class _FetchingThread:
    """faust's consumer thread as :class:`UntakenFetches` sees it, over a real aiokafka
    subscription. ``call_thread`` runs the call as a task of its own whose result, as mode's
    does, is dropped when the caller was cancelled meanwhile; ``_fetch_records`` hands out
    ``records`` once ``release`` is set, moving aiokafka's position past them, as aiokafka's
    ``fetched_records`` does."""

    def __init__(self, records: dict[Any, list[Any]]) -> None:
        self.subscription = SubscriptionState()
        self.subscription.subscribe(topics={tp.topic for tp in records})
        self.subscription.assign_from_subscribed({AioTP(tp.topic, tp.partition) for tp in records})
        for tp, batch in records.items():
            self.state(tp).seek(batch[0].offset)
        self.records = records
        self.release = asyncio.Event()
        self.seeks: list[tuple[Any, int]] = []
        self.calls: list[asyncio.Task[Any]] = []
        #: Called as soon as a call's result is set, before its caller can resume.
        self.on_result: Any = None
        self.thread_loop = asyncio.get_running_loop()
        self.consumer = SimpleNamespace(
            flow_active=True,
            _active=set(records),
            _buffered_partitions=set(),
        )
        self.consumer._get_active_partitions = lambda: self.consumer._active
        self._aiokafka = SimpleNamespace(
            _subscription=self.subscription, _max_poll_records=500, seek=self._seek
        )

    def state(self, tp: Any) -> Any:
        return self.subscription.subscription.assignment.state_value(tp)

    def _seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.state(tp).seek(offset)

    def _ensure_consumer(self) -> Any:
        return self._aiokafka

    async def _fetch_records(
        self, consumer: Any, active: Any, timeout: Any = None, max_records: Any = None
    ) -> dict[Any, list[Any]]:
        del consumer, active, timeout, max_records
        await self.release.wait()
        for tp, batch in self.records.items():
            self.state(tp).consumed_to(batch[-1].offset + 1)
        return dict(self.records)

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        promise = asyncio.get_running_loop().create_future()

        async def run() -> None:
            result = await fun(*args, **kwargs)
            if not promise.cancelled():
                promise.set_result(result)
                if self.on_result is not None:
                    self.on_result()

        self.calls.append(asyncio.ensure_future(run()))
        return await promise


def _fetched(tp: Any, first: int, last: int) -> list[Any]:
    return [SimpleNamespace(offset=offset) for offset in range(first, last + 1)]


_CHANGELOG = TP("app-seen-changelog", 1)


def test_faust_loses_the_records_a_call_cancelled_by_a_rebalance_fetches_and_they_are_given_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(guarded: bool) -> tuple[int, list[tuple[Any, int]]]:
        thread = _FetchingThread({_CHANGELOG: _fetched(_CHANGELOG, 0, 107)})
        if guarded:
            faust_seams.UntakenFetches.install(thread)
        else:  # faust's own getmany, on the same thread
            thread.getmany = MethodType(AIOKafkaConsumerThread.getmany, thread)  # type: ignore[attr-defined]
        caller = asyncio.ensure_future(thread.getmany({_CHANGELOG}, 1.0))  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # the call is in the thread, waiting for records
        caller.cancel()  # the fetcher stopped for a rebalance
        with pytest.raises(asyncio.CancelledError):
            await caller
        thread.release.set()  # after the reassignment, the abandoned call takes the records
        await asyncio.gather(*thread.calls)
        return thread.state(_CHANGELOG).position, thread.seeks

    # faust alone: aiokafka is past all 108 records and nobody got them (the recovery hang)
    assert asyncio.run(scenario(guarded=False)) == (108, [])
    caplog.set_level(logging.INFO, logger=faust_seams.__name__)
    assert asyncio.run(scenario(guarded=True)) == (0, [(_CHANGELOG, 0)])
    assert (
        "app-seen-changelog[1]: gave 108 fetched record(s) (offsets 0-107) back to the "
        "consumer, to be fetched again: its caller gave up (a rebalance)" in caplog.text
    )


def test_records_handed_over_as_the_call_is_cancelled_are_given_back_too() -> None:
    async def scenario() -> tuple[int, list[tuple[Any, int]]]:
        thread = _FetchingThread({_CHANGELOG: _fetched(_CHANGELOG, 40, 49)})
        faust_seams.UntakenFetches.install(thread)
        caller = asyncio.ensure_future(thread.getmany({_CHANGELOG}, 1.0))  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        thread.on_result = caller.cancel  # handed over, and cancelled before it resumes
        thread.release.set()
        await asyncio.gather(*thread.calls)
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0)  # the give-back runs in the consumer thread's loop
        return thread.state(_CHANGELOG).position, thread.seeks

    assert asyncio.run(scenario()) == (40, [(_CHANGELOG, 40)])


def test_a_call_whose_caller_takes_the_records_gives_nothing_back() -> None:
    async def scenario() -> tuple[Any, int, list[tuple[Any, int]]]:
        thread = _FetchingThread({_TP: _fetched(_TP, 5, 9)})
        faust_seams.UntakenFetches.install(thread)
        caller = asyncio.ensure_future(thread.getmany({_TP}, 1.0))  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        thread.release.set()
        records = await caller
        return records, thread.state(_TP).position, thread.seeks

    records, position, seeks = asyncio.run(scenario())
    assert [r.offset for r in records[_TP]] == [5, 6, 7, 8, 9]
    assert (position, seeks) == (10, [])


def test_records_of_a_partition_faust_would_not_hand_over_are_given_back() -> None:
    async def scenario() -> tuple[Any, dict[Any, int], list[tuple[Any, int]]]:
        thread = _FetchingThread({_TP: _fetched(_TP, 5, 9), _CHANGELOG: _fetched(_CHANGELOG, 0, 3)})
        faust_seams.UntakenFetches.install(thread)
        caller = asyncio.ensure_future(thread.getmany({_TP, _CHANGELOG}, 1.0))  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        thread.consumer._active.discard(_TP)  # paused while the call waited (faust drops these)
        thread.release.set()
        records = await caller
        positions = {tp: thread.state(tp).position for tp in (_TP, _CHANGELOG)}
        return records, positions, thread.seeks

    records, positions, seeks = asyncio.run(scenario())
    assert list(records) == [_CHANGELOG]
    assert positions == {_TP: 5, _CHANGELOG: 4}
    assert seeks == [(_TP, 5)]


def test_a_seek_since_the_records_were_taken_stands() -> None:
    async def scenario() -> tuple[int, list[tuple[Any, int]]]:
        thread = _FetchingThread({_CHANGELOG: _fetched(_CHANGELOG, 0, 9)})
        guard = faust_seams.UntakenFetches.install(thread)
        thread.state(_CHANGELOG).consumed_to(10)
        thread.state(_CHANGELOG).seek(3)  # the recovery sought after they were taken
        guard.give_back(thread._aiokafka, thread.records, "test")
        return thread.state(_CHANGELOG).position, thread.seeks

    assert asyncio.run(scenario()) == (3, [])
