"""Story-like input for the processing benchmark: orders as a real shop would send them.

One partition of orders all stamped with the same millisecond measures a processor at its
easiest: one window, no duplicates, nothing late. A story spreads orders over many one-minute
windows, several regions and the input's partitions, and mixes in what really happens:

* **duplicates**: a publisher retries, so the same order (same ``event_id``, same key, so the
  same partition) reaches Kafka again a little later; it must count once;
* **late orders**: an order placed in a window that had already closed (end + grace) when the
  order reached Kafka; it must not count.

Every record carries its arrival time (the Kafka record timestamp the bench publishes it
with), so what each window must end with is known before any processor runs:
:func:`expected_windows` applies the revenue rules to the story in one pass, independently of
any engine's code, and the benchmark compares each engine's last output per window with it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from mesh_stream.kafka.partitions import key_partition

__all__ = [
    "REGIONS",
    "Story",
    "StoryRecord",
    "WindowTotal",
    "expected_windows",
    "make_story",
    "partition_of",
    "story_order",
    "totals",
]

#: Regions, with how often each sells: windows of unequal size, as in a real shop.
REGIONS: tuple[tuple[str, int], ...] = (
    ("eu-west", 30),
    ("eu-central", 25),
    ("us-east", 20),
    ("us-west", 15),
    ("ap-south", 10),
)
_REGION_NAMES = [name for name, _ in REGIONS]
_REGION_WEIGHTS = [weight for _, weight in REGIONS]
CHANNELS = ("WEB", "MOBILE", "STORE")

#: How long after it was placed an on-time order reaches Kafka (publisher delay), ms.
DELAY_MS = (5, 2_000)
#: How long after the first copy a retried duplicate reaches Kafka, ms.
RETRY_MS = (200, 5_000)

Kind = Literal["order", "duplicate", "late"]


@dataclass(frozen=True, slots=True)
class StoryRecord:
    """One record to publish: the order, when it reaches Kafka, and what it is in the story."""

    record: dict[str, Any]
    #: The Kafka record timestamp to publish it with (its arrival), epoch ms.
    arrival_ms: int
    kind: Kind
    #: The input partition the record lands in (see :func:`partition_of`).
    partition: int


@dataclass(frozen=True)
class Story:
    """The records in publish order (arrival time, ascending) and what the story holds."""

    records: tuple[StoryRecord, ...]
    partitions: int
    window_ms: int
    grace_ms: int

    def count(self, kind: Kind) -> int:
        return sum(1 for item in self.records if item.kind == kind)

    def per_partition(self) -> list[int]:
        found = Counter(item.partition for item in self.records)
        return [found[p] for p in range(self.partitions)]

    def summary(self) -> dict[str, Any]:
        """What the benchmark report says about its input."""
        windows = {
            item.record["placed_at"] - item.record["placed_at"] % self.window_ms
            for item in self.records
        }
        return {
            "records": len(self.records),
            "duplicates": self.count("duplicate"),
            "late": self.count("late"),
            "partitions": self.per_partition(),
            "regions": len({item.record["region"] for item in self.records}),
            "event_time_windows": len(windows),
            "event_time_span_s": round(
                (
                    max(item.record["placed_at"] for item in self.records)
                    - min(item.record["placed_at"] for item in self.records)
                )
                / 1000
            ),
        }


@dataclass(frozen=True, slots=True)
class WindowTotal:
    """What one region's window must end with."""

    order_count: int
    gross_cents: int


def partition_of(key: str, partitions: int) -> int:
    """The partition the SDK publisher gives a record keyed ``key`` (the mesh's partitioner,
    :func:`mesh_stream.kafka.partitions.key_partition`); it keys orders by ``order_id``."""
    return key_partition(key, partitions)


def make_story(
    records: int,
    *,
    end_ms: int,
    partitions: int = 3,
    duplicate_share: float = 0.03,
    late_share: float = 0.01,
    orders_per_s: float = 20.0,
    window_ms: int = 60_000,
    grace_ms: int = 30_000,
    seed: int = 15,
) -> Story:
    """``records`` records (orders, duplicates, late orders) whose arrivals end at ``end_ms``.

    On-time orders are placed at ``orders_per_s`` (story time), so 20,000 records span about
    17 minutes of event time; the same ``seed`` gives the same story (ids included).
    """
    if records < 10:
        raise ValueError(f"a story needs at least 10 records, got {records}")
    rng = random.Random(seed)
    duplicates = round(records * duplicate_share)
    late = round(records * late_share)
    on_time = records - duplicates - late
    span_ms = max(3 * window_ms + grace_ms, int(on_time / orders_per_s * 1000))
    last_placed = end_ms - DELAY_MS[1] - RETRY_MS[1]
    first_placed = last_placed - span_ms
    step = span_ms / on_time

    def item(record: dict[str, Any], arrival_ms: int, kind: Kind) -> StoryRecord:
        return StoryRecord(record, arrival_ms, kind, partition_of(record["order_id"], partitions))

    story: list[StoryRecord] = []
    for n in range(on_time):
        placed_at = first_placed + int(n * step) + rng.randint(0, max(0, int(step) - 1))
        story.append(item(story_order(rng, placed_at), placed_at + rng.randint(*DELAY_MS), "order"))
    for original in rng.sample(story[:on_time], duplicates):
        story.append(
            item(original.record, original.arrival_ms + rng.randint(*RETRY_MS), "duplicate")
        )
    closed_after = window_ms + grace_ms  # an order placed this long before arriving is late
    for _ in range(late):
        arrival = rng.randint(first_placed + closed_after + window_ms, last_placed)
        placed_at = arrival - closed_after - rng.randint(1, 2 * window_ms)
        story.append(item(story_order(rng, placed_at), arrival, "late"))
    story.sort(key=lambda entry: entry.arrival_ms)  # stable: a copy stays after its first
    return Story(tuple(story), partitions, window_ms, grace_ms)


def story_order(rng: random.Random, placed_at: int) -> dict[str, Any]:
    """One order placed at ``placed_at``: 1-3 lines, a region drawn by its share of sales."""
    lines: list[dict[str, Any]] = []
    total = Decimal(0)
    for _ in range(rng.randint(1, 3)):
        unit_price = Decimal(rng.randint(199, 19_999)) / 100
        quantity = rng.randint(1, 3)
        sku = f"sku-{rng.randint(1, 400):04d}"
        lines.append({"sku": sku, "quantity": quantity, "unit_price": unit_price})
        total += unit_price * quantity
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_id": f"cust-{rng.randint(0, 4_999):05d}",
        "region": rng.choices(_REGION_NAMES, _REGION_WEIGHTS)[0],
        "channel": rng.choice(CHANNELS),
        "currency": "EUR",
        "total_amount": total,
        "items": lines,
        "placed_at": placed_at,
    }


def cents_of(amount: Decimal) -> int:
    """An amount with two decimals, in cents."""
    return int(amount.scaleb(2).to_integral_exact())


def expected_windows(story: Story) -> dict[str, WindowTotal]:
    """Per window (``<region>@<window start>``, the output's key): orders counted and their
    gross in cents. An order counts in the window of its ``placed_at`` when it arrives before
    the window's end plus grace, and once per ``event_id`` — the revenue processor's rules."""
    return totals(story.records, story.window_ms, story.grace_ms)


def totals(records: Iterable[StoryRecord], window_ms: int, grace_ms: int) -> dict[str, WindowTotal]:
    counts: Counter[str] = Counter()
    cents: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for item in records:
        order = item.record
        start = order["placed_at"] - order["placed_at"] % window_ms
        if item.arrival_ms >= start + window_ms + grace_ms:
            continue
        key = f"{order['region']}@{start}"
        if (key, order["event_id"]) in seen:
            continue
        seen.add((key, order["event_id"]))
        counts[key] += 1
        cents[key] += cents_of(order["total_amount"])
    return {key: WindowTotal(counts[key], cents[key]) for key in counts}
