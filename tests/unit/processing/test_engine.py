"""The engine's route and update, without Kafka: the sample processors' outputs equal their
one-pass recomputation through batches, duplicates, late records and replays after crashes;
a failure is one line naming processor, record, exception and field."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
import re
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, cast

import pytest

from domains.analytics.processors import customer_360, fulfilment_sla, revenue
from mesh_stream.descriptor import load_descriptors
from mesh_stream.errors import ConfigurationError, DeliveryError, ProcessorError
from mesh_stream.kafka.partitions import key_partition
from mesh_stream.processing import Dedup, Hopping, Input, Processor, Tumbling, faust_seams
from mesh_stream.processing import engine as engine_module
from mesh_stream.processing.app import (
    KeyedOutput,
    ProcessorSpec,
    StopOnSendError,
    confirmed_flush,
    handle_batch,
)
from mesh_stream.processing.deferred import DeferredWrites
from mesh_stream.processing.engine import (
    Aggregation,
    crash_line,
    retarget,
)
from mesh_stream.processing.expiry import FORGET_AT_ONCE, WindowExpiry, clock_key, window_start
from mesh_stream.processing.outputs import OutputProducer
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.rekey import (
    CLOCK_HEADER,
    Envelope,
    FatalKafkaStop,
    Wire,
    clock_bounds,
)
from mesh_stream.registration import schema_text
from mesh_stream.settings import MeshSettings
from tests.fixtures.processing import raised_at_line

REPO = Path(__file__).resolve().parents[3]
MINUTE = 60_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
TOPIC = "orders.order-placed.v1"
#: Partitions of the internal topic, and most events an internal record holds, in these tests.
INTERNAL_PARTITIONS = 3
EVENTS_PER_RECORD = 7
#: Longest internal record before it is split, in these tests: a few events' worth.
SPLIT_BYTES = 900


class JsonTable(MutableMapping[str, Any]):
    """A table that, like RocksDB, hands out copies: in-place changes not stored are lost."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class Internal(NamedTuple):
    """An internal record as the aggregate agent reads it."""

    partition: int
    value: bytes
    offset: int
    headers: list[tuple[str, bytes]]


def partition_of(key: str) -> int:
    return key_partition(key, INTERNAL_PARTITIONS)


class Worker:
    """An Aggregation fed the way the re-key stage and the aggregate agent feed it."""

    def __init__(
        self, processor: Processor, defaults: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.processor = processor
        self.defaults = defaults
        self.states, self.seen = JsonTable(), JsonTable()
        topics = {f"{spec.product}.v1": spec.product for spec in processor.inputs}
        self.topics = topics
        self.outputs: dict[str, dict[str, Any]] = {}
        self.newest_input_ms: dict[str, int] = {}
        self.restart()
        self.internal_offsets: dict[int, int] = {}
        self.offsets: dict[str, int] = {}
        #: Every output published (None: a tombstone), in order, and how many a flush has seen.
        self.published: list[tuple[str, dict[str, Any] | None]] = []
        self.flushed = 0

    def restart(self) -> None:
        """A new process over the same tables: nothing in memory carries over."""
        self.aggregation = Aggregation(
            self.processor,
            self.topics,
            self.states,
            self.seen,
            self.publish,
            partition_of,
            dict.fromkeys(self.topics, 1),
            defaults=self.defaults,
        )

    def publish(self, key: str, record: Any, newest_input_ms: int) -> None:
        """Keep the latest record per key, as a compacted topic would (None: a tombstone)."""
        if record is None:
            self.outputs.pop(key, None)
        else:
            self.outputs[key] = dict(record)
        self.newest_input_ms[key] = newest_input_ms
        self.published.append((key, None if record is None else dict(record)))

    async def flush(self) -> None:
        """What faust's producer flush does: every output published so far is in Kafka."""
        self.flushed = len(self.published)

    def lose_unflushed_outputs(self) -> None:
        """A crash: the outputs published since the last flush never reached Kafka."""
        del self.published[self.flushed :]
        self.outputs = {}
        for key, record in self.published:
            if record is None:
                self.outputs.pop(key, None)
            else:
                self.outputs[key] = record

    def forward(self, batch: list[InputRecord]) -> list[Internal]:
        """Route one batch: the internal records it makes, as the re-key stage sends them."""
        by_key: dict[str, list[Wire]] = {}
        for item in batch:
            topic = f"{item.product}.v1"
            offset = self.offsets.get(topic, 0)
            self.offsets[topic] = offset + 1
            for key, wire in self.aggregation.route(
                topic, 0, offset, dict(item.record), item.arrival_ms
            ):
                by_key.setdefault(key, []).append(wire)
        # as the re-key stage sends them: per partition, keys together, a few events a record
        by_partition: dict[int, list[tuple[str, list[Wire]]]] = {}
        for key, wires in by_key.items():
            partition = key_partition(key, INTERNAL_PARTITIONS)
            by_partition.setdefault(partition, []).append((key, wires))
        internal = []
        for partition, groups in by_partition.items():
            before_last, last = clock_bounds(groups)
            records = self.aggregation.encode_records(
                groups, 10**9, most=EVENTS_PER_RECORD, split_bytes=SPLIT_BYTES
            )
            for number, value in enumerate(records, 1):
                offset = self.internal_offsets.get(partition, 0)
                self.internal_offsets[partition] = offset + 1
                bound = last if number == len(records) else before_last
                internal.append(Internal(partition, value, offset, [(CLOCK_HEADER, bound)]))
        return internal

    def aggregate(self, internal: list[Internal]) -> None:
        """As the aggregate agent takes a batch: per partition, each key's envelopes of every
        record together, then the partition's windows due are forgotten."""
        by_partition: dict[int, dict[str, list[Envelope]]] = {}
        for partition, value, offset, headers in internal:
            groups = by_partition.setdefault(partition, {})
            unpacked = self.aggregation.unpack(value, None, partition, offset, headers)
            for key, envelopes in unpacked:
                assert key_partition(key, INTERNAL_PARTITIONS) == partition
                groups.setdefault(key, []).extend(envelopes)
        forgetting = self.aggregation if self.aggregation.expiry is not None else None
        batch = handle_batch(
            by_partition,
            self.aggregation.update,
            forgetting,
            self.flush,
            lambda _partition: contextlib.nullcontext(),
        )
        asyncio.run(batch)


def run_with_crashes(
    processor: Processor, records: list[InputRecord], seed: int
) -> dict[str, dict[str, Any]]:
    """Batches of random size; after some batches a crash: the batch is replayed, with the
    state table as it was before the batch (its changelog record lost) or as it is; or the
    re-key stage crashed and forwards the batch's input records again, as new internal
    records."""
    rng = random.Random(seed)
    worker = Worker(processor)
    position = 0
    while position < len(records):
        size = rng.randint(1, 40)
        batch = records[position : position + size]
        position += size
        read_from = dict(worker.offsets)
        internal = worker.forward(batch)
        before = dict(worker.states.data)
        worker.aggregate(internal)
        crash = rng.random()
        if crash < 0.2:  # the state's changelog record was lost; seen entries were not
            worker.states.data = before
            worker.aggregate(internal)
        elif crash < 0.4:  # offsets not committed: everything is read again
            worker.aggregate(internal)
        elif crash < 0.55:  # the re-key stage's offsets not committed: it sends them again
            worker.offsets = read_from
            worker.aggregate(worker.forward(batch))
    return worker.outputs


def orders(rng: random.Random, count: int) -> list[dict[str, Any]]:
    made = []
    for _ in range(count):
        placed = BASE + rng.randrange(6 * MINUTE)
        made.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "order_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "customer_id": f"cust-{rng.randrange(20)}",
                "region": rng.choice(["eu-west", "us-east", "ap-south"]),
                "channel": "WEB",
                "currency": "EUR",
                "total_amount": Decimal(rng.randint(100, 90_000)) / 100,
                "items": [],
                "placed_at": placed,
            }
        )
    return made


def with_duplicates_and_lateness(
    rng: random.Random, product: str, values: list[dict[str, Any]], time_field: str
) -> list[InputRecord]:
    """Each value arrives soon after its event time, some very late, some twice."""
    sent = []
    for value in values:
        late = rng.random() < 0.1
        arrival = value[time_field] + (rng.randrange(2 * MINUTE, 5 * MINUTE) if late else 500)
        sent.append(InputRecord(product, value, arrival))
        if rng.random() < 0.15:
            sent.append(InputRecord(product, value, arrival + rng.randrange(1, 20_000)))
    return sent


def test_revenue_equals_its_recomputation_through_duplicates_lateness_and_replays() -> None:
    rng = random.Random(7)
    records = with_duplicates_and_lateness(
        rng, "orders.order-placed", orders(rng, 400), "placed_at"
    )
    expected = recompute(revenue.PROCESSOR, records)
    assert sum(w["order_count"] for w in expected.values()) < len(records)  # some dropped
    assert run_with_crashes(revenue.PROCESSOR, records, seed=1) == expected
    assert run_with_crashes(revenue.PROCESSOR, records, seed=2) == expected


def test_customer_360_equals_its_recomputation_and_keeps_pii_out_of_state() -> None:
    rng = random.Random(11)
    placed = orders(rng, 200)
    profiles = [
        {
            "customer_id": f"cust-{n % 20}",
            "full_name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": None,
            "region": rng.choice(["eu-west", "us-east"]),
            "segment": rng.choice(["NEW", "VIP"]),
            "updated_at": BASE + rng.randrange(6 * MINUTE),
        }
        for n in range(40)
    ]
    engagements = [
        {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "customer_id": f"cust-{rng.randrange(20)}",
            "kind": "VIEW",
            "session_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "occurred_at": BASE + rng.randrange(6 * MINUTE),
        }
        for _ in range(150)
    ]
    records = [
        *with_duplicates_and_lateness(rng, "orders.order-placed", placed, "placed_at"),
        *with_duplicates_and_lateness(rng, "customers.customer-profile", profiles, "updated_at"),
        *with_duplicates_and_lateness(
            rng, "customers.engagement-event", engagements, "occurred_at"
        ),
    ]
    rng.shuffle(records)
    expected = recompute(customer_360.PROCESSOR, records)
    worker_outputs = run_with_crashes(customer_360.PROCESSOR, records, seed=3)
    assert worker_outputs == expected
    worker = Worker(customer_360.PROCESSOR)
    worker.aggregate(worker.forward(records))
    stored = json.dumps(worker.states.data) + json.dumps(worker.seen.data)
    assert "ada@example.com" not in stored
    assert "Lovelace" not in stored


def test_fulfilment_sla_equals_its_recomputation() -> None:
    rng = random.Random(5)
    placed = orders(rng, 100)
    records = with_duplicates_and_lateness(rng, "orders.order-placed", placed, "placed_at")
    for order in placed:
        at = order["placed_at"]
        for product, field, extra in (
            ("payments.payment-captured", "captured_at", {}),
            ("payments.payment-failed", "failed_at", {"payment_id": str(uuid.uuid4())}),
            ("shipping.shipment-dispatched", "dispatched_at", {}),
        ):
            if rng.random() < 0.7:
                value = {"order_id": order["order_id"], field: at + rng.randrange(90_000), **extra}
                records += with_duplicates_and_lateness(rng, product, [value], field)
    rng.shuffle(records)
    assert run_with_crashes(fulfilment_sla.PROCESSOR, records, seed=4) == recompute(
        fulfilment_sla.PROCESSOR, records
    )


def test_without_the_replay_guard_a_replay_counts_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison finds the bug the guard prevents (a mutation check of the harness)."""
    rng = random.Random(7)
    records = [InputRecord("orders.order-placed", o, o["placed_at"]) for o in orders(rng, 200)]
    monkeypatch.setattr(engine_module, "apply_once", lambda *_args, **_kwargs: True)
    assert run_with_crashes(revenue.PROCESSOR, records, seed=1) != recompute(
        revenue.PROCESSOR, records
    )


def test_without_dedup_events_the_rekey_stage_sends_again_count_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No dedup field: an event the re-key stage forwards again after its crash (same input
    record, a new internal position) is recognised by its input offset alone; without that
    guard, it counts twice."""
    rng = random.Random(11)
    records = [InputRecord("orders.order-placed", o, o["placed_at"]) for o in orders(rng, 300)]
    plain = dataclasses.replace(revenue.PROCESSOR, dedup=None)
    expected = recompute(plain, records)
    for seed in range(4):
        assert run_with_crashes(plain, records, seed=seed) == expected
    guard = engine_module.apply_once

    def internal_positions_only(*args: Any, source: Any = None) -> bool:
        del source
        return guard(*args)

    monkeypatch.setattr(engine_module, "apply_once", internal_positions_only)
    assert run_with_crashes(plain, records, seed=1) != expected


def test_engine_bookkeeping_is_hidden_from_apply_and_emit() -> None:
    seen_states: list[dict[str, Any]] = []

    def count(state: dict[str, Any], _event: Any) -> None:
        seen_states.append(dict(state))
        state["n"] = state.get("n", 0) + 1

    processor = Processor(
        "analytics.t",
        (Input("orders.order-placed", key=lambda f: f["region"], reads=("event_id", "region")),),
        count,
        lambda key, state: {"key": key, **state},
        dedup=Dedup("event_id", horizon_ms=60_000),
    )
    worker = Worker(processor)
    records = [
        InputRecord("orders.order-placed", {"event_id": e, "region": "eu"}, BASE + n)
        for n, e in enumerate(["a", "b", "a", "c"])
    ]
    worker.aggregate(worker.forward(records[:2]))
    worker.aggregate(worker.forward(records[2:]))
    assert worker.outputs == {"eu": {"key": "eu", "n": 3}}
    assert all(not key.startswith("_") for state in seen_states for key in state)
    assert any(key.startswith("_") for key in json.loads(worker.states.data["eu"]))


def test_envelopes_keep_decimals_bytes_and_nesting() -> None:
    fields = {
        "amount": Decimal("12.30"),
        "raw": b"\x00\xff",
        "items": [{"price": Decimal("-0.01"), "sku": "x"}],
        "plain": {"a": 1},
    }
    processor = Processor(
        output="analytics.lines",
        inputs=(Input("orders.order-placed", reads=tuple(fields), key=lambda _f: "k"),),
        apply=lambda _state, _event: None,
        emit=lambda _key, _state: {},
    )
    aggregation = Aggregation(processor, {TOPIC: "orders.order-placed"}, JsonTable(), None, print)
    [(_key, wire)] = aggregation.route(TOPIC, 1, 7, dict(fields), BASE)
    [(key, [envelope])] = Aggregation.envelopes(aggregation.encode([("k", [wire])]), None, 2, 30)
    assert key == "k"
    assert envelope.fields == fields
    assert isinstance(envelope.fields["amount"], Decimal)
    assert (envelope.input, envelope.where, envelope.arrival_ms) == (
        "orders.order-placed",
        f"{TOPIC}[1]@7",
        BASE,
    )
    assert (envelope.partition, envelope.offset, envelope.index) == (2, 30, 0)


def test_envelopes_keep_nan_and_infinities_at_any_depth_and_refuse_dates_by_name() -> None:
    """JSON has no NaN or infinity (orjson would write null): they travel tagged and come
    back as the floats ``key`` saw; a date, which has no internal form, is refused by type."""
    fields = {
        "ratio": math.nan,
        "limits": [math.inf, -math.inf, 0.5],
        "nested": {"score": math.nan, "plain": 1.25},
        "text": "é",
        "none": None,
    }
    processor = Processor(
        output="analytics.ratios",
        inputs=(Input("orders.order-placed", reads=tuple(fields), key=lambda _f: "k"),),
        apply=lambda _state, _event: None,
        emit=lambda _key, _state: {},
    )
    aggregation = Aggregation(processor, {TOPIC: "orders.order-placed"}, JsonTable(), None, print)
    [(_key, wire)] = aggregation.route(TOPIC, 0, 3, dict(fields), BASE)
    [(_key, [envelope])] = Aggregation.envelopes(aggregation.encode([("k", [wire])]), None, 0, 1)
    got = envelope.fields
    assert math.isnan(got["ratio"])
    assert math.isnan(got["nested"]["score"])
    assert got["limits"] == [math.inf, -math.inf, 0.5]
    assert (got["nested"]["plain"], got["text"], got["none"]) == (1.25, "é", None)

    dated = Processor(
        output="analytics.dated",
        inputs=(Input("orders.order-placed", reads=("day",), key=lambda _f: "k"),),
        apply=lambda _state, _event: None,
        emit=lambda _key, _state: {},
    )
    aggregation = Aggregation(dated, {TOPIC: "orders.order-placed"}, JsonTable(), None, print)
    [(_key, wire)] = aggregation.route(TOPIC, 0, 4, {"day": date(2026, 12, 4)}, BASE)
    with pytest.raises(TypeError, match="date cannot travel on the internal topic"):
        aggregation.encode([("k", [wire])])


def _noted(key: str = "k") -> tuple[Aggregation, list[Wire]]:
    """An aggregation reading a free-text note, and the wires of notes of 10 to 30,000
    characters (input records 0-11 of partition 3)."""
    processor = Processor(
        output="analytics.notes",
        inputs=(Input("orders.order-placed", reads=("note",), key=lambda _f: key),),
        apply=lambda _state, _event: None,
        emit=lambda _key, _state: {},
    )
    aggregation = Aggregation(processor, {TOPIC: "orders.order-placed"}, JsonTable(), None, print)
    sizes = [10, 30_000, 200, 5, 12_000, 40, 25_000, 7, 7, 7, 9_000, 1]
    wires = [
        wire
        for offset, size in enumerate(sizes)
        for _key, wire in aggregation.route(TOPIC, 3, offset, {"note": "n" * size}, BASE)
    ]
    return aggregation, wires


def test_internal_records_over_the_split_size_are_split_keeping_every_event_in_order() -> None:
    """Events that read large fields would make one partition's share of a batch a record
    Kafka refuses (its 1 MB limit) at every restart: a record over the split size is halved
    until it fits or holds one event, and the events still arrive once each, in order."""
    aggregation, wires = _noted()
    groups = [("a", wires[:5]), ("b", wires[5:])]
    records = aggregation.encode_records(groups, 10**6, split_bytes=20_000)
    assert len(records) > 2
    for value in records:
        events = [e for _k, found in Aggregation.envelopes(value, None, 0, 0) for e in found]
        assert len(value) <= 20_000 or len(events) == 1
    got = [
        (key, envelope.source_offset, len(envelope.fields["note"]))
        for value in records
        for key, found in Aggregation.envelopes(value, None, 0, 0)
        for envelope in found
    ]
    expected = [(key, wire[2], len(wire[5][0])) for key, group in groups for wire in group]
    assert got == expected
    # under the split size, a record is left whole
    assert len(aggregation.encode_records(groups, 10**6, split_bytes=10**6)) == 1


def test_an_event_alone_over_the_record_limit_stops_the_worker_naming_its_input_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    aggregation, wires = _noted()
    with caplog.at_level(logging.ERROR), pytest.raises(Exception, match="internal topic"):
        aggregation.encode_records([("k", wires)], 20_000, split_bytes=1_000)
    assert [r.getMessage() for r in caplog.records] == [
        f"processor analytics.notes crashed on {TOPIC}[3]@1: its event takes "
        f"{len(aggregation.encode([('k', [wires[1]])])):,} bytes on the internal topic, over "
        "the 20,000 one internal record may hold: declare fewer or smaller fields in the "
        "reads of input orders.order-placed (note)"
    ]
    # an event under the limit, though over the split size, travels alone
    assert len(aggregation.encode_records([("k", wires[4:5])], 20_000, split_bytes=1_000)) == 1


def test_an_event_over_the_record_limit_for_its_key_blames_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 2 MB key was blamed on the (tiny) fields the processor reads."""
    aggregation, wires = _noted(key="k" * 30_000)
    with caplog.at_level(logging.ERROR), pytest.raises(Exception, match="internal topic"):
        aggregation.encode_records([("k" * 30_000, wires[:1])], 20_000, split_bytes=1_000)
    assert (
        caplog.records[0]
        .getMessage()
        .endswith(
            "over the 20,000 one internal record may hold: its key (what key returned, with its "
            "window) is 30,000 bytes; key must return a short identifier"
        )
    )


def test_records_an_earlier_version_left_without_a_field_this_one_reads_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A version that crashed with records on its internal topic, fixed to read one more
    field: its restart blamed apply for a KeyError of a field the input record has."""
    earlier = _contract_breaker()  # reads ("region",)
    record = InputRecord("orders.order-placed", {"region": "eu", "amount": 3}, BASE)
    left = Worker(earlier).forward([record])

    def add(state: dict[str, Any], event: Any) -> None:
        state["total"] = state.get("total", 0) + event.fields["amount"]

    fixed = Worker(_contract_breaker(reads=("region", "amount"), apply=add))
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: B017, PT011
        fixed.aggregate(left)
    assert [r.getMessage() for r in caplog.records] == [
        f"processor analytics.t crashed on internal record {left[0].partition}@0: it was "
        "written by an earlier version of this processor, reading orders.order-placed's "
        "fields ['region'], without ['amount'], which this version reads; its events cannot "
        "be read again from the input (the re-key stage committed them). Run the earlier "
        "version until consumer group mesh-analytics.t has no lag on "
        "mesh-analytics.t-by-key, then this one; if the earlier version stops on one of "
        "them, run it fixed without the new fields first (docs: write a processor, Changing "
        "a processor)"
    ]
    # a version reading fewer fields reads them
    fewer = Worker(_contract_breaker())
    fewer.aggregate(Worker(_contract_breaker(reads=("region", "amount"))).forward([record]))
    assert fewer.outputs == {"eu": {"n": 1}}


def test_an_internal_record_this_engine_cannot_read_is_one_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Worker(_contract_breaker())
    value = worker.forward([InputRecord("orders.order-placed", {"region": "eu"}, BASE)])[0].value
    broken = value.replace(b'["eu",', b'["eu","extra",', 1)  # a key group of three items
    assert broken != value
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: B017, PT011
        worker.aggregate([Internal(1, broken, 7, [])])
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(
        "processor analytics.t crashed on internal record 1@7: the internal record cannot be read ("
    )
    assert line.endswith(
        "it was not written by this engine's re-key stage as this version reads it"
    )
    # a layout of another shape, with no events for _parse to trip on (the session's review)
    caplog.clear()
    odd = engine_module._FORMAT_MARK + b'["x"]]'
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: B017, PT011
        worker.aggregate([Internal(1, odd, 8, [])])
    [line] = [r.getMessage() for r in caplog.records]
    assert "crashed on internal record 1@8: the internal record cannot be read" in line


def test_records_of_the_first_internal_format_are_still_read() -> None:
    """A record written before the compact format (a list of named objects) still reaches
    ``apply`` with its decimals, its window and its input record's position."""
    first_format = json.dumps(
        [
            {
                "input": "orders.order-placed",
                "topic": TOPIC,
                "partition": 1,
                "offset": 7,
                "arrival_ms": BASE,
                "event_ms": BASE - 5,
                "fields": {"total_amount": "12.30", "lines": [{"p": {"$decimal": "1.5"}}]},
                "decimals": ["total_amount"],
                "window": ["eu", 0, 60_000],
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
            {
                "input": "x",
                "topic": TOPIC,
                "partition": 0,
                "offset": 8,
                "arrival_ms": 5,
                "fields": {},
            },
        ]
    ).encode()
    [(key, [first, second])] = Aggregation.envelopes(first_format, b"eu@0", 2, 30)
    assert key == "eu@0"
    assert first.fields == {"total_amount": Decimal("12.30"), "lines": [{"p": Decimal("1.5")}]}
    assert (first.where, first.event_ms, first.window) == (
        f"{TOPIC}[1]@7",
        BASE - 5,
        ["eu", 0, 60_000],
    )
    assert first.trace == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert (second.index, second.event_ms, second.window, second.trace) == (1, 5, None, None)


def test_a_record_lacking_a_declared_field_is_one_line_with_the_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Worker(revenue.PROCESSOR)
    record = {"event_id": "e", "total_amount": Decimal(1), "currency": "EUR", "placed_at": BASE}
    with caplog.at_level(logging.ERROR), pytest.raises(Exception, match="region") as raised:
        list(worker.aggregation.route("orders.order-placed.v1", 2, 1041, record, BASE))
    assert [r.getMessage() for r in caplog.records] == [
        "processor analytics.revenue-by-region crashed on orders.order-placed.v1[2]@1041: "
        "field 'region' of orders.order-placed is not in the record: its writer schema lacks "
        "it, and the latest schema gives it no default (give the field a default in "
        "orders.order-placed's schema, or leave it out of `reads`)"
    ]
    assert isinstance(raised.value.__cause__, KeyError)


def test_a_field_added_with_a_default_reads_as_it_in_records_written_before() -> None:
    """Upstream added `colour` with a default (a change that always goes through): every
    record written before it stopped the worker with KeyError 'colour', even with
    `.get()` in apply (a processor team's campaign)."""
    from mesh_stream.processing.codec import field_defaults
    from mesh_stream.processing.reads import read_defaults

    latest = json.dumps(
        {
            "type": "record",
            "name": "Event",
            "fields": [
                {"name": "region", "type": "string"},
                {"name": "colour", "type": ["null", "string"], "default": None},
                {"name": "units", "type": "int", "default": 1},
            ],
        }
    )
    seen: list[tuple[Any, Any]] = []

    def fold(state: dict[str, Any], event: Any) -> None:
        seen.append((event.fields["colour"], event.fields["units"]))
        state["n"] = state.get("n", 0) + 1

    processor = Processor(
        "analytics.t",
        (
            Input(
                "orders.order-placed",
                key=lambda f: f["region"],
                reads=("region", "colour", "units"),
            ),
        ),
        fold,
        lambda _key, state: state,
    )
    defaults = read_defaults(processor, {"orders.order-placed": latest})
    assert defaults == {"orders.order-placed": {"colour": None, "units": 1}}
    assert field_defaults(latest, ("region",)) == {}
    worker = Worker(processor, defaults=defaults)
    old, new = {"region": "eu"}, {"region": "eu", "colour": "red", "units": 4}
    internal = worker.forward(
        [
            InputRecord("orders.order-placed", old, BASE),
            InputRecord("orders.order-placed", new, BASE),
        ]
    )
    worker.aggregate(internal)
    assert seen == [(None, 1), ("red", 4)]
    # the reference reads the old record the same way (mesh verify recomputes with it)
    inputs = [
        InputRecord("orders.order-placed", old, BASE),
        InputRecord("orders.order-placed", new, BASE),
    ]
    assert recompute(processor, inputs, defaults=defaults) == worker.outputs
    with pytest.raises(ConfigurationError, match="has no field 'colour'"):
        recompute(processor, inputs)  # without the defaults: the field is missing


def test_apply_and_emit_failures_name_the_input_record(caplog: pytest.LogCaptureFixture) -> None:
    def broken(state: dict[str, Any], event: Any) -> None:
        state["total"] = event.fields["total"]  # not in reads: a KeyError naming it

    processor = Processor(
        "analytics.t",
        (Input("orders.order-placed", key=lambda f: f["region"], reads=("region",)),),
        broken,
        lambda _key, state: state,
    )
    worker = Worker(processor)
    internal = worker.forward([InputRecord("orders.order-placed", {"region": "eu"}, BASE)])
    with caplog.at_level(logging.ERROR), pytest.raises(Exception, match="total"):
        worker.aggregate(internal)
    assert caplog.records[0].getMessage() == (
        "processor analytics.t crashed on orders.order-placed.v1[0]@0: apply raised KeyError "
        "'total': 'total' is not one of the fields apply is given of orders.order-placed, its "
        "`reads` (region); if it is a field of orders.order-placed, add it there"
        + _at('state["total"] = event.fields["total"]  # not in reads')
    )
    assert worker.outputs == {}
    assert worker.states.data == {}


def test_a_state_that_is_not_json_stops_the_worker_naming_the_input_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def keeps_a_decimal(state: dict[str, Any], event: Any) -> None:
        state["total"] = Decimal(event.fields["total"])

    processor = Processor(
        "analytics.t",
        (Input("orders.order-placed", key=lambda f: f["region"], reads=("region", "total")),),
        keeps_a_decimal,
        lambda _key, state: state,
    )
    worker = Worker(processor)
    internal = worker.forward(
        [InputRecord("orders.order-placed", {"region": "eu", "total": "1.50"}, BASE)]
    )
    with caplog.at_level(logging.ERROR), pytest.raises(Exception, match="Decimal"):
        worker.aggregate(internal)
    line = caplog.records[0].getMessage()
    assert line.startswith("processor analytics.t crashed on orders.order-placed.v1[0]@0: ")
    assert "Decimal is not JSON serializable" in line
    assert worker.outputs == {}
    assert worker.states.data == {}


def test_a_state_grown_past_a_changelog_record_stops_the_worker_naming_the_input_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``apply`` that keeps every event makes a state faust's producer would refuse at
    every restart: the worker stops at the event that made it too large, naming it."""

    def keeps_every_note(state: dict[str, Any], event: Any) -> None:
        state.setdefault("notes", []).append(event.fields["note"])

    processor = Processor(
        "analytics.t",
        (Input("orders.order-placed", key=lambda _f: "all", reads=("note",)),),
        keeps_every_note,
        lambda _key, state: {"count": len(state["notes"])},
    )
    (states,) = DeferredWrites([JsonTable()], 1000, max_value_bytes=5_000).tables
    published: list[Any] = []
    aggregation = Aggregation(
        processor, {TOPIC: "orders.order-placed"}, states, None, lambda *a: published.append(a)
    )
    wires = [
        wire
        for offset in range(10)
        for _key, wire in aggregation.route(TOPIC, 0, offset, {"note": "n" * 1_000}, BASE)
    ]
    [(key, envelopes)] = Aggregation.envelopes(aggregation.encode([("all", wires)]), None, 0, 0)

    class Current:  # what the deferred table reads of faust's current event
        message = types.SimpleNamespace(topic="by-key", partition=0)

    current = Current()
    with faust_seams.current_event(current), caplog.at_level(logging.ERROR):  # type: ignore[arg-type]
        for envelope in envelopes[:4]:
            aggregation.update(key, [envelope])
        with pytest.raises(Exception, match="changelog record"):
            aggregation.update(key, [envelopes[4]])
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith(f"processor analytics.t crashed on {TOPIC}[0]@4: the state of key ")
    assert "over the 5,000 one changelog record may hold; keep less in it" in line
    assert len(published) == 4  # the four events that fitted were published, not the fifth
    assert len(states["all"]["value"]["notes"]) == 4


def test_crash_line_names_function_exception_and_field() -> None:
    line = crash_line("analytics.x", "a.b.v1[0]@3", ValueError("bad order 7"))
    assert line == "processor analytics.x crashed on a.b.v1[0]@3: ValueError bad order 7"
    line = crash_line("analytics.x", "a.b.v1[0]@3", KeyError("region"), function="key")
    assert line == (
        "processor analytics.x crashed on a.b.v1[0]@3: key raised KeyError 'region' "
        "(field 'region')"
    )


def _contract_breaker(**changes: Any) -> Processor:
    """A one-input counting processor with ``changes`` to its functions or its input."""
    declared = Input("orders.order-placed", key=lambda f: f["region"], reads=("region",))
    if "key" in changes or "reads" in changes:
        declared = dataclasses.replace(
            declared,
            key=changes.pop("key", declared.key),
            reads=changes.pop("reads", declared.reads),
        )

    def count(state: dict[str, Any], _event: Any) -> None:
        state["n"] = state.get("n", 0) + 1

    processor = Processor("analytics.t", (declared,), count, lambda _key, state: dict(state))
    return dataclasses.replace(processor, **changes)


def _at(code: str) -> str:
    return raised_at_line(code, __file__)


BROKEN_CONTRACTS = {
    "key returns an int": (
        {"key": lambda f: len(f["region"])},
        "key returned int 2; it must return a str (or None to drop the record)",
    ),
    "key reads a field reads lacks": (
        {"key": lambda f: f["country"]},
        "key raised KeyError 'country': field 'country' of orders.order-placed is not in the "
        "input's `reads` (only those are given to the processor); add it there"
        + _at('lambda f: f["country"]'),
    ),
    "apply returns a new state": (
        {"apply": lambda state, _event: {**state, "n": 1}},
        "apply returned dict, which would be lost; it must change the state it is given in "
        "place and return None",
    ),
}
EMIT_BREAKERS = {
    "emit returns None": (
        {"emit": lambda _key, _state: None},
        "emit returned None for key 'eu'; it must return the output record (a dict of its fields)",
    ),
    "emit returns a list": (
        {"emit": lambda _key, state: list(state.items())},
        "emit returned the list [('n', 1)] for key 'eu'; it must return the output record (a "
        "dict of its fields)",
    ),
}


@pytest.mark.parametrize("case", [*BROKEN_CONTRACTS, *EMIT_BREAKERS])
def test_a_broken_function_contract_stops_the_worker_with_one_line_saying_which(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a new team gets wrong first: the line names the function and what it did wrong,
    and nothing is published (nor stored, before emit: emit returning None was a raw
    TypeError from deep in the engine, with no crash line)."""
    changes, said = {**BROKEN_CONTRACTS, **EMIT_BREAKERS}[case]
    worker = Worker(_contract_breaker(**changes))
    record = InputRecord("orders.order-placed", {"region": "eu"}, BASE)
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: B017, PT011
        worker.aggregate(worker.forward([record]))
    assert [r.getMessage() for r in caplog.records] == [
        f"processor analytics.t crashed on orders.order-placed.v1[0]@0: {said}"
    ]
    assert worker.outputs == {}
    if case in BROKEN_CONTRACTS:  # emit runs once the state is written
        assert worker.states.data == {}
    # the recomputation that mesh verify compares with refuses it the same way
    with pytest.raises(ProcessorError) as refused:
        recompute(worker.processor, [dataclasses.replace(record, where="o.v1[0]@0")])
    assert str(refused.value) == f"processor analytics.t on o.v1[0]@0: {said}"


def test_an_apply_changing_its_event_fields_changes_no_other_window() -> None:
    """Under a Hopping window the recomputation applied one Event to every window, so an
    apply that changed `event.fields` (or a list inside it) changed what the next window saw;
    the engine reads each window's event from the internal topic, so `mesh verify` reported
    keys that differ with no hint (processor campaign). Each window gets its own copy."""

    def counts_and_spoils(state: dict[str, Any], event: Any) -> None:
        state["n"] = state.get("n", 0) + len(event.fields["tags"])
        event.fields["tags"].append("spoiled")  # a list inside the fields
        event.fields["region"] = "spoiled"

    declared = Input(
        "orders.order-placed", key=lambda f: str(f["region"]), reads=("region", "tags")
    )
    processor = Processor(
        "analytics.t",
        (declared,),
        counts_and_spoils,
        lambda _key, state: dict(state),
        window=Hopping(size_ms=60_000, advance_ms=20_000),
    )
    records = [
        InputRecord("orders.order-placed", {"region": "eu", "tags": ["a", "b"]}, BASE + i)
        for i in range(3)
    ]
    expected = recompute(processor, records)
    assert {state["n"] for state in expected.values()} == {6}  # 3 events of 2 tags each
    worker = Worker(processor)
    worker.aggregate(worker.forward(records))
    assert worker.outputs == expected


def _id(n: int) -> int:
    return n - 1 if n % 10 == 9 else n


def _dedup_worker(field: str, count: int) -> tuple[Worker, list[InputRecord]]:
    processor = _contract_breaker(reads=("region", "status", "event_id"), dedup=Dedup(field=field))
    records = [
        InputRecord(
            "orders.order-placed",
            # every tenth event a copy of the one before, as a retrying producer sends
            {"region": f"r{_id(n) % 3}", "status": "placed", "event_id": f"e{_id(n)}"},
            BASE,
        )
        for n in range(count)
    ]
    return Worker(processor), records


def _dedup_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dedup dropped" in r.getMessage()]


def test_dedup_on_a_field_events_share_is_warned_of_once(caplog: pytest.LogCaptureFixture) -> None:
    """Dedup on a field that is no event id (a status every event has) dropped all but the
    first event of each key without a word (h55: 17 of 20 events lost): four in five of the
    first 20 events found copies, so one warning, naming a copy."""
    worker, records = _dedup_worker("status", 1_050)
    with caplog.at_level(logging.WARNING):
        worker.aggregate(worker.forward(records))
    assert {state["n"] for state in worker.outputs.values()} == {1}  # what was lost
    assert worker.aggregation.duplicates == 1_050 - 3
    [warned] = _dedup_warnings(caplog)
    assert re.match(
        r"processor analytics\.t: dedup dropped 1[6-9] of the first 20 events as copies of "
        r"events their key had seen \(by field 'status', e\.g\. 'placed' at "
        r"orders\.order-placed\.v1\[0\]@\d+\)",
        warned,
    ), warned
    assert warned.endswith(
        "if 'status' is not unique to each event (an event id), those events are lost; dedup "
        "on a field no two events share"
    )


def test_dedup_on_an_event_id_with_real_copies_and_re_sent_events_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A few real copies are what dedup is for; events the re-key stage sends again after a
    restart (the same input records at new internal positions) are no copies at all: neither
    is warned of, and only the real copies are counted (review h57)."""
    worker, records = _dedup_worker("event_id", 1_050)
    with caplog.at_level(logging.WARNING):
        worker.aggregate(worker.forward(records[:900]))
        worker.restart()
        worker.offsets.clear()  # the re-key stage reads its uncommitted records again
        worker.aggregate(worker.forward(records))
    assert _dedup_warnings(caplog) == []
    # this process's real copies; a copy of the last event applied before the restart is
    # one again (its input record was not applied: the copy was dropped), so counted again
    assert worker.aggregation.duplicates in {(1_050 - 900) // 10, (1_050 - 900) // 10 + 1}
    assert sum(state["n"] for state in worker.outputs.values()) == 1_050 - 1_050 // 10


def test_a_key_that_drops_every_record_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """None is a legal key (a filter), so a key that keeps nothing runs on; one warning names
    it, and a key that kept a record before is never warned about."""
    records = [
        InputRecord("orders.order-placed", {"region": f"r{n}"}, BASE)
        for n in range(engine_module.NOTHING_KEPT_WARNING_AFTER + 5)
    ]
    dropping = Worker(_contract_breaker(key=lambda _f: None))
    with caplog.at_level(logging.WARNING):
        internal = dropping.forward(records)
    assert internal == []
    last = engine_module.NOTHING_KEPT_WARNING_AFTER - 1
    assert [r.getMessage() for r in caplog.records] == [
        f"processor analytics.t: key returned None for each of the first "
        f"{engine_module.NOTHING_KEPT_WARNING_AFTER} input records (the last "
        f"orders.order-placed.v1[0]@{last}), so none reached apply or the output; None drops "
        f"a record: check key if it should keep some"
    ]
    caplog.clear()
    keeps_one = Worker(
        _contract_breaker(key=lambda f: f["region"] if f["region"] == "r0" else None)
    )
    with caplog.at_level(logging.WARNING):
        keeps_one.forward(records)
    assert caplog.records == []


def test_an_empty_key_is_kept_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """A key looked up with a default of "" folds every record without the field into one
    key; that runs on (it is legal), and one warning names the first such record."""
    records = [
        InputRecord("orders.order-placed", {"region": region}, BASE + n)
        for n, region in enumerate(["eu", "", "", "us", ""])
    ]
    worker = Worker(_contract_breaker(key=lambda f: f["region"]))
    with caplog.at_level(logging.WARNING):
        worker.aggregate(worker.forward(records))
    assert [r.getMessage() for r in caplog.records] == [
        "processor analytics.t: key returned an empty string for orders.order-placed.v1[0]@1; "
        "every record given that key is folded into one state and one output record: return "
        "None to drop a record, else a non-empty identifier"
    ]
    assert worker.outputs == recompute(worker.processor, records)
    assert set(worker.outputs) == {"eu", "", "us"}


def test_the_recomputation_names_the_function_that_raised_and_the_record() -> None:
    def emit(_key: str, _state: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("no currency")

    processor = _contract_breaker(emit=emit)
    record = InputRecord("orders.order-placed", {"region": "eu"}, BASE, where="o.v1[1]@4")
    with pytest.raises(ProcessorError) as refused:
        recompute(processor, [record])
    assert str(
        refused.value
    ) == "processor analytics.t on o.v1[1]@4: emit raised ValueError no currency" + _at(
        'raise ValueError("no currency")'
    )
    assert isinstance(refused.value.__cause__, ValueError)


def _revenue_output() -> KeyedOutput:
    """The sample's revenue output, encoding with its real schema (nothing is sent)."""
    products = {p.name: p for p in load_descriptors(REPO / "domains")}
    output = products["analytics.revenue-by-region"]
    text = schema_text(output, REPO)
    spec = ProcessorSpec(output, (products["orders.order-placed"],), 1, MeshSettings(), text)
    return KeyedOutput(spec, OutputProducer(spec.connection, spec.app_id))


@pytest.mark.parametrize(
    ("change", "max_bytes", "said"),
    [
        (
            lambda record: record.pop("updated_at"),
            None,
            "updated_at: required field missing",
        ),
        (
            lambda record: record.update(window_id=record["window_id"].upper()),
            None,
            "its key field 'window_id' is 'EU-WEST@",
        ),
        (  # Kafka would refuse it at every restart: never handed to librdkafka
            lambda _record: None,
            50,  # as OutputProducer.start sets it for a topic taking 147 bytes
            ": it takes 1",  # ... bytes, over the 50 one record of ... may take
        ),
    ],
    ids=["a field missing", "key field is not the key", "larger than its topic takes"],
)
def test_an_emitted_record_the_output_refuses_stops_the_worker_naming_emit_and_key(
    change: Any, max_bytes: int | None, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    def emit(key: Any, window: dict[str, Any]) -> dict[str, Any]:
        record = revenue.window_record(key, window)
        change(record)
        return record

    worker = Worker(dataclasses.replace(revenue.PROCESSOR, emit=emit))
    output = _revenue_output()
    if max_bytes is not None:
        output.sender.max_record_bytes = max_bytes
    worker.aggregation.publish = output.publish
    order = orders(random.Random(4), 1)[0] | {"region": "eu-west", "placed_at": BASE}
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: B017, PT011
        worker.aggregate(worker.forward([InputRecord("orders.order-placed", order, BASE)]))
    [line] = [r.getMessage() for r in caplog.records]
    window = f"eu-west@{BASE - BASE % 60_000}"
    assert line.startswith(
        "processor analytics.revenue-by-region crashed on orders.order-placed.v1[0]@0: emit "
        f"returned a record for key {window!r}: "
    )
    assert said in line
    if max_bytes is not None:
        assert "bytes, over the 50 one record of analytics.revenue-by-region.v1 may take" in line
    assert output.sender._producer is None  # nothing reached librdkafka


def test_run_reports_a_configuration_problem_in_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ConfigurationError("processor analytics.revenue-by-region reads field 'region'")

    monkeypatch.setattr(engine_module, "prepare", refuse)
    chosen = types.SimpleNamespace(processor_event_loop="asyncio")  # the policy stays
    monkeypatch.setattr(engine_module, "MeshSettings", lambda: chosen)
    with pytest.raises(SystemExit) as exited:
        engine_module.run(revenue.PROCESSOR, ["worker"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: processor analytics.revenue-by-region reads field 'region'\n"


def test_run_names_a_state_folder_it_cannot_make_in_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The worker's state folder under MESH_DATA_DIR made by the processor's app (a settings
    campaign: an unusable one was a traceback)."""
    blocked = tmp_path / "blocked"

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(blocked / "processors"))

    monkeypatch.setattr(engine_module, "prepare", refuse)
    chosen = types.SimpleNamespace(processor_event_loop="asyncio", data_dir=blocked)
    monkeypatch.setattr(engine_module, "MeshSettings", lambda: chosen)
    with pytest.raises(SystemExit) as exited:
        engine_module.run(revenue.PROCESSOR, ["worker"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"error: Permission denied: {blocked / 'processors'}; check MESH_DATA_DIR "
        f"({blocked}), where the worker keeps its state\n"
    )


def test_run_names_a_bad_setting_in_one_line_and_exits_2_as_the_cli_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESH_PROCESSOR_STATE_FLUSH_AT", "0")
    monkeypatch.setenv("MESH_PROCESSOR_BATCH_WAIT", "5")  # a typo, warned of first
    with pytest.raises(SystemExit) as exited:
        engine_module.run(revenue.PROCESSOR, ["worker"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "warning: MESH_PROCESSOR_BATCH_WAIT is not a mesh-stream setting and is ignored; "
        "did you mean MESH_PROCESSOR_BATCH_WAIT_MS?\n"
        "error: invalid MESH_* environment setting:\n"
        "  MESH_PROCESSOR_STATE_FLUSH_AT='0': Input should be greater than or equal to 1\n"
    )


def test_retarget_renames_output_and_inputs_in_declaration_order() -> None:
    products = {p.name: p for p in load_descriptors(REPO / "domains")}
    source = products["orders.order-placed"].model_copy(
        update={"name": "bench1.order-placed", "domain": "bench1"}
    )
    output = products["analytics.revenue-by-region"].model_copy(
        update={"name": "bench1.revenue-by-region", "domain": "bench1", "inputs": (source.name,)}
    )
    spec = ProcessorSpec(output, (source,), 1, MeshSettings(), "{}")
    moved = retarget(revenue.PROCESSOR, spec)
    assert moved.output == "bench1.revenue-by-region"
    assert [i.product for i in moved.inputs] == ["bench1.order-placed"]
    assert moved.inputs[0].reads == revenue.PROCESSOR.inputs[0].reads
    with pytest.raises(ConfigurationError, match=r"declares 3 inputs, but bench1\.revenue"):
        retarget(customer_360.PROCESSOR, spec)


def test_routed_decimals_reach_apply_as_decimals() -> None:
    worker = Worker(revenue.PROCESSOR)
    order = orders(random.Random(3), 1)[0]
    [(_partition, value, _offset, _headers)] = worker.forward(
        [InputRecord("orders.order-placed", order, BASE)]
    )
    [(_key, [envelope])] = worker.aggregation.envelopes(value, None, 0, 0)
    assert envelope.fields["total_amount"] == order["total_amount"]
    assert isinstance(envelope.fields["total_amount"], Decimal)
    assert value.count(b'"orders.order-placed"') == 1  # named once per record, not per event


def test_an_output_names_the_newest_input_record_it_reflects() -> None:
    """The output's newest-input stamp (its `mesh.input.newest-ms` header in a worker) is the
    newest arrival among the events its batch counted; duplicates it skipped do not count."""
    rng = random.Random(5)
    placed = orders(rng, 3)
    for order in placed:
        order["region"] = "eu-west"
        order["placed_at"] = BASE
    counted = [
        InputRecord("orders.order-placed", order, BASE + 100 + n) for n, order in enumerate(placed)
    ]
    duplicate = InputRecord("orders.order-placed", placed[0], BASE + 5_000)
    worker = Worker(revenue.PROCESSOR)
    worker.aggregate(worker.forward([*counted, duplicate]))
    [key] = worker.outputs
    assert worker.outputs[key]["order_count"] == 3
    assert worker.newest_input_ms[key] == BASE + 102


def test_an_input_read_from_a_topic_after_an_input_without_one_keeps_its_product() -> None:
    """The record's layout lists the inputs this worker reads, so each wire's input index
    points into it even when a declared input has no topic here."""
    processor = Processor(
        output="analytics.three",
        inputs=tuple(
            Input(name, reads=("n",), key=lambda _f: "k") for name in ("a.x", "b.y", "c.z")
        ),
        apply=lambda _state, _event: None,
        emit=lambda _key, _state: {},
    )
    aggregation = Aggregation(
        processor, {"a.x.v1": "a.x", "c.z.v1": "c.z"}, JsonTable(), None, print
    )
    [(key, wire)] = aggregation.route("c.z.v1", 0, 4, {"n": 1}, BASE)
    [(_key, [envelope])] = Aggregation.envelopes(aggregation.encode([(key, [wire])]), None, 0, 0)
    assert (envelope.input, envelope.where, envelope.fields) == ("c.z", "c.z.v1[0]@4", {"n": 1})


# -- closed windows are forgotten --------------------------------------------------------------


def revenue_retained(retain_ms: int) -> Processor:
    """The sample revenue processor, its closed windows kept ``retain_ms``."""
    window = Tumbling(size_ms=MINUTE, grace_ms=30_000, retain_ms=retain_ms)
    return dataclasses.replace(revenue.PROCESSOR, window=window)


def steady_orders(rng: random.Random, minutes: int) -> list[InputRecord]:
    """Orders over ``minutes``, each arriving a second after it was placed, some twice."""
    sent = []
    for order in sorted(orders_over(rng, 40 * minutes, minutes), key=lambda o: o["placed_at"]):
        sent.append(InputRecord("orders.order-placed", order, order["placed_at"] + 1_000))
        if rng.random() < 0.15:
            sent.append(InputRecord("orders.order-placed", order, order["placed_at"] + 2_000))
    return sent


def orders_over(rng: random.Random, count: int, minutes: int) -> list[dict[str, Any]]:
    made = orders(rng, count)
    for order in made:
        order["placed_at"] = BASE + rng.randrange(minutes * MINUTE)
    return made


def feed(worker: Worker, records: list[InputRecord], batch: int = 25) -> None:
    for start in range(0, len(records), batch):
        worker.aggregate(worker.forward(records[start : start + batch]))


def test_closed_windows_go_with_their_seen_ids_once_retained_and_outputs_stay_exact() -> None:
    rng = random.Random(5)
    records = steady_orders(rng, minutes=20)
    processor = revenue_retained(retain_ms=2 * MINUTE)
    worker = Worker(processor)
    feed(worker, records)

    assert worker.outputs == recompute(processor, records)  # every window was emitted, exactly
    newest = max(item.arrival_ms for item in records)
    windows = set(worker.outputs)
    kept = {key for key in worker.states.data if window_start(key) is not None}
    # each partition keeps the clock it forgot windows by (its newest arrival)
    assert set(worker.states.data) - kept == {clock_key(p) for p in range(INTERNAL_PARTITIONS)}
    # within a partition's clock (its newest arrival) of the newest overall: a few windows
    recent = {k for k in windows if int(k.rsplit("@", 1)[1]) + 3.5 * MINUTE > newest - MINUTE}
    assert kept <= recent, sorted(kept - recent)
    assert len(kept) < len(windows) / 3  # 20 minutes of windows, about 4 kept
    # no seen slot outlives the state listing it
    assert {entry.split("#", 1)[0] for entry in worker.seen.data} <= kept
    listed = {
        f"{key}#{slot}"
        for key in kept
        for slot in json.loads(worker.states.data[key]).get("_seen_in", [])
    }
    assert set(worker.seen.data) == listed


def test_a_restarted_worker_forgets_the_windows_its_tables_held() -> None:
    rng = random.Random(6)
    records = steady_orders(rng, minutes=12)
    processor = revenue_retained(retain_ms=MINUTE)
    first = Worker(processor)
    feed(first, records[: len(records) // 2])
    held = {key for key in first.states.data if window_start(key) is not None}
    first.restart()  # a new worker over the same tables: it never updated those keys itself
    feed(first, records[len(records) // 2 :])
    assert held
    assert not held & set(first.states.data)
    assert {entry.split("#", 1)[0] for entry in first.seen.data} <= set(first.states.data)


@pytest.mark.parametrize("how", ["restart", "revoke"])
def test_events_replayed_after_their_window_was_forgotten_leave_its_output_whole(
    how: str,
) -> None:
    """Deleting a window deletes its replay marks, and its tombstone may be in the changelog
    before the offsets of its events are committed: the replay after a crash or a rebalance
    must meet the clock that forgot the window, not publish it again from nothing."""
    rng = random.Random(11)
    records = steady_orders(rng, minutes=12)
    processor = revenue_retained(retain_ms=0)
    worker = Worker(processor)
    sent: list[list[tuple[int, bytes, int]]] = []
    for start in range(0, len(records), 20):
        sent.append(worker.forward(records[start : start + 20]))
        worker.aggregate(sent[-1])
        if len(sent) % 7 == 0:  # the last four batches' offsets were not committed
            if how == "restart":
                worker.restart()
            else:
                assert worker.aggregation.expiry is not None
                worker.aggregation.expiry.forget_partitions()  # what a revoke does
            for internal in sent[-4:]:
                worker.aggregate(internal)
    windows = {key for key in worker.states.data if window_start(key) is not None}
    assert len(windows) < len(worker.outputs) / 2  # most windows were forgotten
    assert worker.outputs == recompute(processor, records)


def test_an_event_reaching_a_forgotten_window_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = random.Random(8)
    records = steady_orders(rng, minutes=8)
    processor = revenue_retained(retain_ms=MINUTE)
    worker = Worker(processor)
    feed(worker, records)
    first = min(records, key=lambda item: item.arrival_ms)
    region = first.record["region"]
    window = f"{region}@{first.record['placed_at'] - first.record['placed_at'] % MINUTE}"
    assert window not in worker.states.data
    emitted = worker.outputs[window]
    # a copy of that window's order, but a new event, whose record timestamp is still in time
    straggler = dict(first.record, event_id=str(uuid.UUID(int=rng.getrandbits(128))))
    # ... for a partition that has seen later arrivals: behind every other by minutes
    with caplog.at_level(logging.WARNING):
        feed(worker, [InputRecord("orders.order-placed", straggler, first.arrival_ms)])
    assert window not in worker.states.data  # not opened again from nothing
    assert worker.outputs[window] == emitted  # nor emitted again with one order
    assert f"dropped 1 event(s) of window {window}" in caplog.text
    assert "orders.order-placed.v1[0]@" in caplog.text
    # old records replayed in bulk (10 s after that warning): counted each, one warning
    worker.aggregation._next_drop_warning = 0.0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        feed(worker, [dataclasses.replace(item, arrival_ms=first.arrival_ms) for item in records])
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    assert worker.aggregation.dropped > len(records) / 2


def test_a_window_key_s_start_is_read_back_and_other_keys_are_never_forgotten() -> None:
    assert window_start("eu@west@1700000040000") == 1_700_000_040_000
    assert window_start("cust-7") is None
    assert window_start("x@") is None
    hashed: list[str] = []

    def partition_of(key: str) -> int:
        hashed.append(key)
        return 0 if key.startswith(("a", "b")) else 1

    expiry = WindowExpiry(Tumbling(size_ms=10, grace_ms=5, retain_ms=100), partition_of, [("t", 0)])
    expiry.scan(["a@0", "cust-7", "b@1000", "z@0"])  # every partition's keys in one pass
    assert hashed == []  # a key's partition is worked out once a clock reaches its time
    assert not expiry.needs_scan()
    expiry.observe(0, ("t", 0), 115)
    assert expiry.accepts(0, "b@1000")  # a@0 closes at 15, goes at 115
    assert expiry.due(0) == ["a@0"]  # z@0 is due too, but lives in partition 1
    assert hashed == ["a@0", "z@0"]  # b@1000 is not due: never hashed
    expiry.observe(1, ("t", 0), 115)
    assert expiry.due(1) == ["z@0"]
    expiry.observe(0, ("t", 0), 116)
    assert not expiry.accepts(0, "c@0")  # too old to open again
    assert expiry.accepts(0, "cust-7")
    assert expiry.due(0) == []


def test_the_clock_is_the_slowest_input_partition_s_so_a_backlog_read_unevenly_loses_nothing() -> (
    None
):
    window = Tumbling(size_ms=MINUTE, retain_ms=MINUTE)
    expiry = WindowExpiry(window, lambda _key: 0, [("orders", 0), ("orders", 1), ("payments", 0)])
    expiry.observe(0, ("orders", 0), BASE + 60 * MINUTE)  # an hour ahead of the others
    expiry.observe(0, ("orders", 1), BASE + 60 * MINUTE)
    assert expiry.clock(0) is None  # payments[0] brought nothing yet: nothing is forgotten
    assert expiry.accepts(0, f"eu@{BASE}")
    expiry.observe(0, ("payments", 0), BASE + 30_000)
    assert expiry.clock(0) == BASE + 30_000
    assert expiry.accepts(0, f"eu@{BASE}")
    assert expiry.due(0) == []
    expiry.observe(0, ("payments", 0), BASE + 3 * MINUTE)  # the slowest is past its retention
    assert expiry.due(0) == [f"eu@{BASE}"]
    assert expiry.clock(1) is None  # another partition has its own clock
    expiry.forget_partitions()  # a rebalance: keys and saved clocks are read again
    assert expiry.needs_scan()
    assert expiry.needs_restore(0)
    assert expiry.clock(0) is None
    expiry.restore(0, [["orders", 0, BASE], ["orders", 1, BASE], ["payments", 0, BASE + 1]])
    assert not expiry.needs_restore(0)
    assert expiry.clock(0) == BASE
    expiry.restore(1, {"not": "a saved clock"})
    assert expiry.clock(1) is None


def test_retain_ms_below_zero_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="retain_ms must be >= 0, got -1"):
        Tumbling(size_ms=MINUTE, retain_ms=-1)
    with pytest.raises(ConfigurationError, match="retain_ms must be >= 0"):
        Hopping(size_ms=MINUTE, advance_ms=10_000, retain_ms=-5)


def test_an_input_partition_that_brings_nothing_is_named_once_as_holding_forgetting_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    window = Tumbling(size_ms=MINUTE, retain_ms=0)
    expiry = WindowExpiry(window, lambda _key: 0, [("orders", 0), ("orders", 1)])
    expiry.observe(0, ("orders", 0), BASE)
    assert expiry.accepts(0, f"eu@{BASE}")
    assert expiry.held_back_by(0) == []  # nothing is past its retention yet
    expiry.observe(0, ("orders", 0), BASE + 2 * MINUTE)
    assert expiry.due(0) == []  # orders[1] brought nothing: the clock is unknown
    assert expiry.held_back_by(0) == [("orders", 1)]

    worker = Worker(revenue_retained(retain_ms=0))
    worker.aggregation = Aggregation(
        worker.processor,
        worker.topics,
        worker.states,
        worker.seen,
        worker.publish,
        partition_of,
        dict.fromkeys(worker.topics, 2),  # partition 1 of the input never brings anything
    )
    with caplog.at_level(logging.WARNING):
        feed(worker, steady_orders(random.Random(3), minutes=6))
    told = [r.getMessage() for r in caplog.records if "keeps windows" in r.getMessage()]
    assert told, "nothing said why no window is forgotten"
    assert len(told) == len({m.split("partition ", 1)[1].split(":")[0] for m in told})  # once
    assert "orders.order-placed.v1[1] brought it no event yet" in told[0]
    assert worker.aggregation.forgotten == 0


@pytest.mark.parametrize(("batch", "split"), [(25, False), (400, False), (400, True)])
def test_a_batch_spanning_more_than_retain_ms_drops_no_on_time_event(
    batch: int, split: bool
) -> None:
    """A re-key batch reaches a partition grouped by key, so a key early in it (or in an
    earlier record of it) may carry arrivals from after another key's window closed (an event
    of the next window that arrived before a straggler within the grace). The clock moves by
    the batch's oldest arrivals, once the batch is handled, so that window's on-time events
    still count, even when the agent's batches end between a re-key batch's records."""
    rng = random.Random(12)
    sent = [
        InputRecord("orders.order-placed", order, order["placed_at"] + rng.randrange(45_000))
        for order in orders_over(rng, 1_200, minutes=30)
    ]
    records = sorted(sent, key=lambda item: item.arrival_ms)  # some later than the grace
    processor = revenue_retained(retain_ms=0)
    worker = Worker(processor)
    for start in range(0, len(records), batch):
        internal = worker.forward(records[start : start + batch])
        for taken in [[record] for record in internal] if split else [internal]:
            worker.aggregate(taken)
    expected = recompute(processor, records)
    assert sum(w["order_count"] for w in expected.values()) < len(records)  # late ones dropped
    assert worker.outputs == expected
    assert worker.aggregation.dropped == 0
    # closed windows were still forgotten: each partition's clock is at least the oldest
    # arrival of the last 400 records (every partition had events among them)
    kept = {key for key in worker.states.data if window_start(key) is not None}
    floor = min(item.arrival_ms for item in records[-400:])
    gone = {key for key in worker.outputs if (window_start(key) or 0) + MINUTE + 30_000 <= floor}
    assert len(gone) > len(worker.outputs) / 2
    assert not gone & kept


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_crash_losing_unflushed_outputs_loses_no_forgotten_window(seed: int) -> None:
    """A forgotten window's clock makes a replay drop its events, as its last output counts
    them: so that output is flushed to Kafka before the clock is written. Here a crash loses
    every output published since the last flush while the tables keep every write (the
    clock and tombstones included), and the batches since the last commit are replayed."""
    rng = random.Random(seed)
    sent = [
        InputRecord("orders.order-placed", order, order["placed_at"] + rng.randrange(45_000))
        for order in orders_over(rng, 600, minutes=15)
    ]
    records = sorted(sent, key=lambda item: item.arrival_ms)
    processor = revenue_retained(retain_ms=0)
    worker = Worker(processor)
    forwarded: list[list[Internal]] = []
    committed = crashes = 0
    for start in range(0, len(records), 15):
        forwarded.append(worker.forward(records[start : start + 15]))
        worker.aggregate(forwarded[-1])
        luck = rng.random()
        if luck < 0.2:  # a commit: the producer flushed, then the offsets committed
            asyncio.run(worker.flush())
            committed = len(forwarded)
        elif luck < 0.35:
            crashes += 1
            worker.lose_unflushed_outputs()
            worker.restart()
            for internal in forwarded[committed:]:
                worker.aggregate(internal)
    assert crashes >= 3
    kept = {key for key in worker.states.data if window_start(key) is not None}
    assert len(kept) < len(worker.outputs) / 2  # most windows were forgotten on the way
    assert worker.outputs == recompute(processor, records)


def test_a_worker_back_after_downtime_forgets_its_windows_a_few_thousand_at_a_time() -> None:
    """After downtime longer than retain_ms every restored window is due at once: each call
    names (and hashes) at most FORGET_AT_ONCE of them, the rest come in the next calls."""
    hashed: list[str] = []

    def partition_of(key: str) -> int:
        hashed.append(key)
        return 0

    window = Tumbling(size_ms=10, retain_ms=0)
    expiry = WindowExpiry(window, partition_of, [("t", 0)])
    keys = [f"k{n}@{n * 10}" for n in range(2 * FORGET_AT_ONCE + 5)]
    expiry.scan(keys)
    expiry.observe(0, ("t", 0), 10**9)  # the first arrival after a long stop
    assert expiry.has_due(0)
    first = expiry.due(0)
    assert len(first) == len(hashed) == FORGET_AT_ONCE
    assert first == keys[:FORGET_AT_ONCE]  # oldest first
    rest = expiry.due(0) + expiry.due(0)
    assert sorted(first + rest) == sorted(keys)
    assert not expiry.has_due(0)
    assert expiry.due(0) == []


class JournaledTable(JsonTable):
    """A JsonTable that notes each write and delete in a journal shared with its worker."""

    def __init__(self, name: str, journal: list[tuple[str, str]]) -> None:
        super().__init__()
        self.name, self.journal = name, journal

    def __setitem__(self, key: str, value: Any) -> None:
        self.journal.append((self.name, key))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.journal.append(("tombstone", f"{self.name}:{key}"))
        super().__delitem__(key)


class JournaledWorker(Worker):
    """A Worker whose outputs, flushes and table writes (seen and state, two changelog topics
    in a real worker) go into one journal, in order."""

    def __init__(self, processor: Processor) -> None:
        self.journal: list[tuple[str, str]] = []
        super().__init__(processor)
        self.states = JournaledTable("state", self.journal)
        self.seen = JournaledTable("seen", self.journal)
        self.restart()

    def publish(self, key: str, record: Any, newest_input_ms: int) -> None:
        self.journal.append(("output", key))
        super().publish(key, record, newest_input_ms)

    async def flush(self) -> None:
        self.journal.append(("flush", ""))
        await super().flush()


def test_forgetting_flushes_between_the_outputs_the_clock_and_the_tombstones() -> None:
    """Outputs, then the clock, then tombstones (seen and state: in a worker, two topics that
    nothing orders), each step reaching Kafka before the next is sent."""
    rng = random.Random(21)
    worker = JournaledWorker(revenue_retained(retain_ms=0))
    feed(worker, steady_orders(rng, minutes=10), batch=30)
    journal = worker.journal

    def flushed_between(start: int, end: int) -> bool:
        return any(kind == "flush" for kind, _ in journal[start:end])

    clocks = [i for i, (kind, key) in enumerate(journal) if kind == "state" and "clock" in key]
    tombstones = [i for i, (kind, _) in enumerate(journal) if kind == "tombstone"]
    assert len(clocks) > 3
    assert {key.split(":")[0] for kind, key in journal if kind == "tombstone"} == {"seen", "state"}
    for clock in clocks:
        last_output = max(i for i in range(clock) if journal[i][0] == "output")
        assert flushed_between(last_output, clock), journal[last_output : clock + 1]
    for tombstone in tombstones:
        clock = max(i for i in clocks if i < tombstone)
        assert flushed_between(clock, tombstone), journal[clock : tombstone + 1]


def test_no_window_is_forgotten_when_kafka_refused_a_record() -> None:
    """A flush returns whether or not Kafka took every record: the confirmed flush raises if
    one was refused, and the batch then forgets nothing (the worker stops)."""

    class Refusing(Worker):
        async def flush(self) -> None:
            raise RuntimeError("Kafka refused a record")

    rng = random.Random(22)
    records = steady_orders(rng, minutes=6)
    worker = Refusing(revenue_retained(retain_ms=0))
    with pytest.raises(RuntimeError, match="refused"):
        feed(worker, records, batch=30)
    assert worker.aggregation.forgotten == 0
    assert not any(clock_key(p) in worker.states.data for p in range(INTERNAL_PARTITIONS))


def test_the_confirmed_flush_raises_once_kafka_refused_a_record() -> None:
    flushed: list[bool] = []

    class Producer:
        async def flush(self) -> None:
            flushed.append(True)

    class Stage:
        async def crash(self, exc: BaseException) -> None:
            del exc

    class Outputs:
        def flush(self) -> None:
            flushed.append(False)

    app: Any = types.SimpleNamespace(producer=Producer())

    async def scenario() -> None:
        refusals = StopOnSendError("analytics.revenue", cast(Any, Stage()))
        flush = confirmed_flush(app, refusals, cast(Any, Outputs()))
        await flush()  # nothing refused: it returns
        refusals.on_send_error(None, ValueError("MESSAGE_TOO_LARGE"), None)
        with pytest.raises(DeliveryError, match=r"Kafka refused a record of analytics\.revenue"):
            await flush()

    asyncio.run(scenario())
    assert flushed == [False, True, False, True]  # the outputs first, then faust's producer


@pytest.mark.parametrize(("choice", "loop_module"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_the_worker_s_event_loop_is_uvloop_unless_asked_otherwise(
    choice: str, loop_module: str
) -> None:
    """In a process of its own: the policy is process-wide, as it is in a worker."""
    probe = (
        "import asyncio\n"
        "from mesh_stream.processing.engine import use_event_loop\n"
        f"used = use_event_loop({choice!r})\n"
        "loop = asyncio.new_event_loop()\n"
        "print(used, type(loop).__module__.split('.')[0])\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout.split() == [loop_module, loop_module]


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert engine_module.use_event_loop("auto") == "asyncio"
    with pytest.raises(ConfigurationError, match="MESH_PROCESSOR_EVENT_LOOP=uvloop, but uvloop"):
        engine_module.use_event_loop("uvloop")


def test_a_crashed_worker_that_cannot_stop_exits_with_status_1() -> None:
    """What a crashed stage arms: faust's stop may wait for ever on an interrupted agent."""
    hung = (
        "import logging, time\n"
        "from mesh_stream.processing.engine import exit_if_still_running\n"
        "logging.basicConfig()\n"
        "exit_if_still_running(1.0, 'mesh-x crashed: ValueError()')\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", hung], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 1
    assert "mesh-x crashed: ValueError(); not stopped after 1 s, exiting" in done.stderr
    assert time.monotonic() - started < 15


def test_faust_lines_about_a_reported_crash_lose_their_tracebacks_only() -> None:
    """After the one crash line, faust logged `Crashed reason=_ReportedError(...)` and its
    agents' CancelledError, each with the same chain of five tracebacks (processor campaign:
    2 to 10 tracebacks after every crash line). Other tracebacks stay."""
    reported = engine_module._ReportedError("emit returned a record for key 'eu': ...")

    def logged(exc: BaseException) -> logging.LogRecord:
        record = logging.LogRecord("faust", logging.ERROR, __file__, 1, "Crashed", None, None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
        engine_module._without_reported_tracebacks(record)
        return record

    cancelled = asyncio.CancelledError()
    cancelled.__context__ = reported  # raised while the agent handled the crash
    assert logged(reported).exc_info is None
    assert logged(cancelled).exc_info is None
    assert logged(FatalKafkaStop("re-key stage of x stops: ...")).exc_info is None
    other = ValueError("a bug of faust's own")
    assert logged(other).exc_info == (ValueError, other, None)

    # mode's "Error while stopping child" once the loop is closed: noise after a crash only
    closed = RuntimeError("Event loop is closed")
    assert logged(closed).exc_info == (RuntimeError, closed, None)
    engine_module._STOPPING_AFTER_CRASH.set()
    try:
        assert logged(closed).exc_info is None
        assert logged(other).exc_info == (ValueError, other, None)
        # one crash is one error in the log: the lines about it are INFO (h45: four a crash)
        assert (logged(closed).levelno, logged(closed).levelname) == (logging.INFO, "INFO")
        assert logged(reported).levelname == "INFO"
        assert logged(other).levelname == "ERROR"  # another failure stays an error
        reraising = logging.LogRecord(
            "mode",
            logging.CRITICAL,
            __file__,
            1,
            "[^Worker]: We experienced a crash! Reraising original exception...",
            None,
            None,
        )
        engine_module._without_reported_tracebacks(reraising)
        assert reraising.levelname == "INFO"
    finally:
        engine_module._STOPPING_AFTER_CRASH.clear()
    before_any_crash = logging.LogRecord(
        "mode", logging.CRITICAL, __file__, 1, "We experienced a crash! Reraising", None, None
    )
    engine_module._without_reported_tracebacks(before_any_crash)
    assert before_any_crash.levelname == "CRITICAL"  # not ours: it stays as mode said it


def test_an_event_arriving_after_its_windows_closed_is_counted_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events past the grace were left out with no log line and no metric, so a team
    tuning grace_ms could not see them (a processor team's campaign)."""
    worker = Worker(revenue.PROCESSOR)
    grace = revenue.PROCESSOR.window.grace_ms  # type: ignore[union-attr]
    record = {
        "event_id": "e1",
        "region": "eu",
        "total_amount": Decimal(1),
        "currency": "EUR",
        "placed_at": BASE + 5_000,
    }
    in_time = BASE + MINUTE + grace - 1
    assert list(worker.aggregation.route(TOPIC, 0, 7, record, in_time))
    too_late = BASE + MINUTE + grace
    with caplog.at_level(logging.WARNING):
        assert list(worker.aggregation.route(TOPIC, 0, 8, record, too_late)) == []
        assert list(worker.aggregation.route(TOPIC, 0, 9, record, too_late + 1)) == []
    assert worker.aggregation.late == 2
    said = [r.getMessage() for r in caplog.records]
    assert said == [  # once: the next within DROP_WARNING_EVERY_S only counts
        f"processor analytics.revenue-by-region left out {TOPIC}[0]@8: it arrived "
        f"{too_late - BASE - 5_000} ms after its event time, after every window holding it "
        f"closed (grace_ms {grace}); 1 late event(s) left out since the worker started (said "
        f"at most every 10 s)"
    ]
