"""The seeded story: reproducible, valid against the contracts, correlated, and awkward."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path

import fastavro
import pytest
from fastavro.validation import validate

from domains.story import DOMAINS, Story, StoryEvent, domain_events
from mesh_stream.descriptor import load_descriptors

REPO = Path(__file__).resolve().parents[3]
SAMPLE = 30_000


@pytest.fixture(scope="module")
def story_events() -> list[StoryEvent]:
    """The sample, plus 200 s more story so that late orders of the sample are included."""
    return list(
        itertools.islice(Story(seed=7, epoch_ms=1_000_000, rate=100).events(), SAMPLE + 20_000)
    )


@pytest.fixture(scope="module")
def events(story_events: list[StoryEvent]) -> list[StoryEvent]:
    return story_events[:SAMPLE]


def test_same_seed_same_story_and_another_seed_another(events: list[StoryEvent]) -> None:
    again = list(itertools.islice(Story(seed=7, epoch_ms=1_000_000, rate=100).events(), 500))
    other = list(itertools.islice(Story(seed=8, epoch_ms=1_000_000, rate=100).events(), 500))
    assert again == events[:500]
    assert [e.value for e in again] == [e.value for e in events[:500]]
    assert [e.value for e in other] != [e.value for e in again]


def test_another_start_tells_the_story_with_other_ids(events: list[StoryEvent]) -> None:
    """`mesh up` starts the story again at each start on the same topics: a restart must not
    send the first run's event and order ids again (processors would count them twice)."""
    later = list(itertools.islice(Story(seed=7, epoch_ms=9_000_000, rate=100).events(), 500))
    id_fields = ("event_id", "order_id", "payment_id", "shipment_id", "session_id")

    def ids(sample: list[StoryEvent]) -> set[str]:
        return {str(e.value[f]) for e in sample for f in id_fields if f in e.value}

    first = ids(events[:500])
    assert first
    assert ids(later)
    assert not first & ids(later)
    # the same shop: the same customers, amounts and gaps, only shifted in time
    assert [e.value.get("customer_id") for e in later] == [
        e.value.get("customer_id") for e in events[:500]
    ]
    assert [e.emit_at_ms - 9_000_000 for e in later] == [
        e.emit_at_ms - 1_000_000 for e in events[:500]
    ]


def test_events_come_in_emit_order_at_about_the_asked_rate(events: list[StoryEvent]) -> None:
    assert all(a.emit_at_ms <= b.emit_at_ms for a, b in itertools.pairwise(events))
    seconds = (events[-1].emit_at_ms - events[0].emit_at_ms) / 1000
    assert 90 <= len(events) / seconds <= 110  # rate=100 and EVENTS_PER_ORDER hold


def test_every_event_fits_the_contract_of_its_product(events: list[StoryEvent]) -> None:
    products = {p.name: p for p in load_descriptors(REPO / "domains")}
    schemas = {
        name: fastavro.parse_schema(json.loads((REPO / p.schema_file).read_text()))
        for name, p in products.items()
    }
    for event in events:
        assert validate(event.value, schemas[event.product], raise_errors=True)
        key_field = products[event.product].key_field
        assert key_field is not None
        assert event.key == event.value[key_field]
    assert {e.product for e in events} == {
        name for name, p in products.items() if p.domain in DOMAINS
    }


def test_events_correlate_across_domains(
    events: list[StoryEvent], story_events: list[StoryEvent]
) -> None:
    """Payments and shipments refer to real orders (a late order may arrive after them)."""
    placed = {
        e.value["order_id"]: e.value for e in story_events if e.product == "orders.order-placed"
    }
    customers = {
        e.value["customer_id"] for e in story_events if e.product == "customers.customer-profile"
    }
    captured: dict[str, int] = {}
    for event in events:
        value = event.value
        if event.domain in ("payments", "shipping"):
            assert value["order_id"] in placed, event
        if event.product == "payments.payment-captured":
            captured[value["order_id"]] = value["captured_at"]
        if event.product == "shipping.shipment-dispatched":
            assert captured[value["order_id"]] <= value["dispatched_at"]  # only paid orders ship
    assert {order["customer_id"] for order in placed.values()} <= customers
    for order in placed.values():
        assert order["total_amount"].as_tuple().exponent == -2  # exactly cents, as Avro writes
        assert order["total_amount"] == sum(
            line["unit_price"] * line["quantity"] for line in order["items"]
        )


def test_the_awkward_cases_are_all_there(events: list[StoryEvent]) -> None:
    placed = [e for e in events if e.product == "orders.order-placed"]
    late = [e for e in placed if e.emit_at_ms - e.value["placed_at"] >= 20_000]
    assert 0.03 < len(late) / len(placed) < 0.10
    copies = Counter(e.value["event_id"] for e in events if "event_id" in e.value)
    duplicates = [event_id for event_id, n in copies.items() if n > 1]
    assert len(duplicates) > 0.02 * len(copies)
    assert all(n <= 2 for n in copies.values())
    failed_orders = {e.value["order_id"] for e in events if e.product == "payments.payment-failed"}
    assert len(failed_orders) > 0.08 * len(placed)
    statuses: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.product == "orders.order-status-changed":
            statuses[event.value["order_id"]].append(event.value["status"])
    cancelled = {order for order, seen in statuses.items() if "CANCELLED" in seen}
    assert cancelled
    assert cancelled <= failed_orders
    delivered = [
        e.value["delivered_at"] for e in events if e.product == "shipping.shipment-delivered"
    ]
    assert delivered != sorted(delivered)  # carriers report out of order


def test_each_domain_gets_only_its_own_products() -> None:
    story = Story(seed=3, epoch_ms=0, rate=50)
    for domain in DOMAINS:
        mine = list(itertools.islice(domain_events(story, domain), 200))
        assert {e.domain for e in mine} == {domain}
    with pytest.raises(ValueError, match="unknown source domain 'billing'"):
        domain_events(story, "billing")
