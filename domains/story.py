"""One seeded story of a small shop, told as the events of four domains.

Every simulator generates the same story from the same seed and epoch and publishes only its
own domain's share, so events correlate across domains without the simulators talking to each
other: a payment refers to an order that was placed, a shipment to an order that was paid.

The story includes the awkward cases on purpose:

* late events: some orders reach Kafka long after their event time (``placed_at``);
* failed payments: some attempts fail before another succeeds, some orders are cancelled;
* out-of-order deliveries: carriers report deliveries with random delays;
* duplicates: a retrying service sends the very same event (same ``event_id``) twice.

The generator is pure and deterministic: ``Story(seed, epoch_ms, rate)`` always yields the same
events in the same order; another start (``epoch_ms``) tells the seed's story again with other
event, order, payment and shipment ids. Amounts are :class:`~decimal.Decimal` with two places,
timestamps are epoch milliseconds, ids are strings, exactly what the Avro contracts in
``schemas/`` expect.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
CURRENCY = "EUR"
CHANNELS = ("WEB", "MOBILE", "STORE")
SEGMENTS = ("NEW", "REGULAR", "VIP")
CARRIERS = ("dhl", "ups", "postnl", "fedex")
WAREHOUSES = ("ams-1", "fra-2", "nyc-1", "sfo-1", "blr-1")
ENGAGEMENT_KINDS = ("PAGE_VIEW", "SEARCH", "ADD_TO_CART", "REVIEW")
PAYMENT_METHODS = ("CARD", "WALLET", "BANK_TRANSFER")
FAILURE_REASONS = ("INSUFFICIENT_FUNDS", "CARD_DECLINED", "FRAUD_SUSPECTED", "PROVIDER_TIMEOUT")
FIRST_NAMES = ("Ada", "Bram", "Chen", "Dana", "Emeka", "Femke", "Goran", "Hana", "Ines", "Jun")
LAST_NAMES = ("Jansen", "Kowalski", "Li", "Moreau", "Nakamura", "Okafor", "Peeters", "Quinn")

DOMAINS = ("orders", "payments", "shipping", "customers")
CENT = Decimal("0.01")  # amounts carry exactly two places, as the contracts' decimals do

#: Average number of events one order brings into the story (measured over long runs of the
#: generator; tests/unit/domains/test_story.py checks the resulting rate); turns an event rate
#: into an order rate.
EVENTS_PER_ORDER = 11.0

# How often the awkward cases happen.
LATE_ORDER_SHARE = 0.06
DUPLICATE_SHARE = 0.04
PAYMENT_FAILS_THEN_SUCCEEDS = 0.10
PAYMENT_FAILS_FOR_GOOD = 0.05
PROFILE_UPDATE_SHARE = 0.05


@dataclass(frozen=True, order=True)
class StoryEvent:
    """One record a domain publishes: ``emit_at_ms`` is when it reaches Kafka."""

    emit_at_ms: int
    seq: int
    product: str = field(compare=False)
    key: str = field(compare=False)
    value: dict[str, Any] = field(compare=False)

    @property
    def domain(self) -> str:
        return self.product.split(".", 1)[0]


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    """A random amount between ``low`` and ``high`` euros, in cents precision."""
    return (Decimal(rng.randint(low * 100, high * 100)) / 100).quantize(CENT)


class Story:
    """An endless, reproducible stream of correlated events of the four source domains.

    ``rate`` is the target number of events per second over all domains together; orders
    arrive as a Poisson process at ``rate / EVENTS_PER_ORDER`` orders per second of story time,
    which starts at ``epoch_ms``.
    """

    def __init__(
        self,
        seed: int = 42,
        epoch_ms: int = 1_767_225_600_000,
        rate: float = 50.0,
        customers: int = 200,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 events per second, got {rate}")
        self.seed = seed
        self.epoch_ms = epoch_ms
        self.rate = rate
        self.customer_count = customers
        self._orders_per_ms = rate / EVENTS_PER_ORDER / 1000.0
        # Ids depend on the start too: `mesh up` starts a new story at each start, and one
        # restarted on the same topics must not send the first story's event and order ids
        # again (the processors would count those orders twice). Amounts, customers and
        # timing stay the seed's alone.
        digest = hashlib.sha256(f"{seed}/{epoch_ms}".encode()).digest()
        self._id_salt = int.from_bytes(digest[:16], "big")

    def events(self) -> Iterator[StoryEvent]:
        """Every event of the story in the order it reaches Kafka (by ``emit_at_ms``)."""
        rng = random.Random(self.seed)
        pending: list[StoryEvent] = []
        profiles: dict[str, dict[str, Any]] = {}
        seq = 0
        now = float(self.epoch_ms)
        index = 0
        while True:
            now += rng.expovariate(self._orders_per_ms)
            while pending and pending[0].emit_at_ms <= now:
                yield heapq.heappop(pending)
            order_rng = random.Random(f"{self.seed}/order/{index}")
            for product, key, value, emit_at in self._order_life(order_rng, int(now), profiles):
                seq += 1
                heapq.heappush(pending, StoryEvent(emit_at, seq, product, key, value))
            index += 1

    def _uuid(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128) ^ self._id_salt, version=4))

    def _profile(
        self, rng: random.Random, customer_id: str, at: int, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        if previous is not None:
            segment = rng.choice([s for s in SEGMENTS if s != previous["segment"]])
            return {**previous, "segment": segment, "updated_at": at}
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return {
            "customer_id": customer_id,
            "full_name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}.{customer_id[-4:]}@example.com",
            "phone": f"+31 6 {rng.randint(10_000_000, 99_999_999)}" if rng.random() < 0.7 else None,
            "region": rng.choice(REGIONS),
            "segment": rng.choice(SEGMENTS),
            "updated_at": at,
        }

    def _order_life(
        self, rng: random.Random, placed_at: int, profiles: dict[str, dict[str, Any]]
    ) -> Iterator[tuple[str, str, dict[str, Any], int]]:
        """Events caused by one order placed at ``placed_at``: (product, key, value, emit_at)."""
        customer_id = f"cust-{rng.randrange(self.customer_count):05d}"
        profile = profiles.get(customer_id)
        if profile is None or rng.random() < PROFILE_UPDATE_SHARE:
            profile = self._profile(rng, customer_id, placed_at, profile)
            profiles[customer_id] = profile
            yield "customers.customer-profile", customer_id, profile, placed_at

        session = self._uuid(rng)
        for step in range(rng.randint(1, 4)):
            at = placed_at - rng.randint(1_000, 60_000) * (step + 1)
            engagement = {
                "event_id": self._uuid(rng),
                "customer_id": customer_id,
                "kind": rng.choice(ENGAGEMENT_KINDS),
                "session_id": session,
                "occurred_at": at,
            }
            yield from self._maybe_twice(
                rng, "customers.engagement-event", customer_id, engagement, placed_at
            )

        order_id = self._uuid(rng)
        lines = [
            {"sku": f"sku-{rng.randint(1, 500):04d}", "quantity": rng.randint(1, 3)}
            | {"unit_price": _money(rng, 3, 120)}
            for _ in range(rng.randint(1, 4))
        ]
        total = sum((line["unit_price"] * line["quantity"] for line in lines), Decimal("0.00"))
        region = profile["region"]
        order = {
            "event_id": self._uuid(rng),
            "order_id": order_id,
            "customer_id": customer_id,
            "region": region,
            "channel": rng.choice(CHANNELS),
            "currency": CURRENCY,
            "total_amount": total,
            "items": lines,
            "placed_at": placed_at,
        }
        late_by = rng.randint(20_000, 150_000) if rng.random() < LATE_ORDER_SHARE else 0
        yield from self._maybe_twice(
            rng, "orders.order-placed", order_id, order, placed_at + late_by
        )
        status = "PLACED"
        yield from self._status(rng, order_id, None, status, placed_at, placed_at + late_by)

        at = placed_at
        roll = rng.random()
        failures = (
            rng.randint(1, 2) if roll < PAYMENT_FAILS_THEN_SUCCEEDS + PAYMENT_FAILS_FOR_GOOD else 0
        )
        for _ in range(failures):
            at += rng.randint(500, 8_000)
            failed = {
                "event_id": self._uuid(rng),
                "payment_id": self._uuid(rng),
                "order_id": order_id,
                "reason": rng.choice(FAILURE_REASONS),
                "currency": CURRENCY,
                "amount": total,
                "failed_at": at,
            }
            yield from self._maybe_twice(rng, "payments.payment-failed", order_id, failed, at)
        if roll >= PAYMENT_FAILS_THEN_SUCCEEDS and failures:
            at += rng.randint(1_000, 30_000)
            yield from self._status(rng, order_id, status, "CANCELLED", at, at)
            return

        payment_id = self._uuid(rng)
        at += rng.randint(300, 5_000)
        authorized = {
            "event_id": self._uuid(rng),
            "payment_id": payment_id,
            "order_id": order_id,
            "method": rng.choice(PAYMENT_METHODS),
            "currency": CURRENCY,
            "amount": total,
            "authorized_at": at,
        }
        yield "payments.payment-authorized", order_id, authorized, at
        at += rng.randint(200, 10_000)
        captured = {
            "event_id": self._uuid(rng),
            "payment_id": payment_id,
            "order_id": order_id,
            "currency": CURRENCY,
            "amount": total,
            "captured_at": at,
        }
        yield from self._maybe_twice(rng, "payments.payment-captured", order_id, captured, at)
        yield from self._status(rng, order_id, status, "PAID", at, at)
        status = "PAID"

        at += rng.randint(2_000, 90_000)
        shipment_id = self._uuid(rng)
        dispatched = {
            "event_id": self._uuid(rng),
            "shipment_id": shipment_id,
            "order_id": order_id,
            "carrier": rng.choice(CARRIERS),
            "warehouse": rng.choice(WAREHOUSES),
            "dispatched_at": at,
        }
        yield from self._maybe_twice(rng, "shipping.shipment-dispatched", order_id, dispatched, at)
        yield from self._status(rng, order_id, status, "SHIPPED", at, at)

        delivered_at = at + rng.randint(10_000, 120_000)
        report_delay = rng.randint(0, 90_000)  # carriers report late and out of order
        delivered = {
            "event_id": self._uuid(rng),
            "shipment_id": shipment_id,
            "order_id": order_id,
            "delivered_at": delivered_at,
        }
        yield from self._maybe_twice(
            rng, "shipping.shipment-delivered", order_id, delivered, delivered_at + report_delay
        )
        yield from self._status(
            rng, order_id, "SHIPPED", "DELIVERED", delivered_at, delivered_at + report_delay
        )

    def _status(
        self,
        rng: random.Random,
        order_id: str,
        previous: str | None,
        status: str,
        at: int,
        emit_at: int,
    ) -> Iterator[tuple[str, str, dict[str, Any], int]]:
        changed = {
            "event_id": self._uuid(rng),
            "order_id": order_id,
            "status": status,
            "previous_status": previous,
            "changed_at": at,
        }
        yield "orders.order-status-changed", order_id, changed, emit_at

    def _maybe_twice(
        self, rng: random.Random, product: str, key: str, value: dict[str, Any], emit_at: int
    ) -> Iterator[tuple[str, str, dict[str, Any], int]]:
        """The event, and sometimes the same event again: a service retried its send."""
        yield product, key, value, emit_at
        if rng.random() < DUPLICATE_SHARE:
            yield product, key, value, emit_at + rng.randint(50, 3_000)


def domain_events(story: Story, domain: str) -> Iterator[StoryEvent]:
    """The story's events that ``domain`` publishes, in emit order."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown source domain {domain!r}; one of {', '.join(DOMAINS)}")
    return (event for event in story.events() if event.domain == domain)
