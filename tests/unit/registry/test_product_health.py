"""Product health in the registry: the book the health topic is read into, and the routes
``/products/{name}/health[/history]`` and ``/product-health`` over the in-memory store."""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest
from fastapi.testclient import TestClient

from mesh_stream.health import Figure, FigureName, ProductHealth, Status, health_key
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.product_health import (
    HealthBook,
    InMemoryHealthFeed,
    ProductHealthView,
    stale_after_ms,
)
from tests.unit.registry.conftest import ORDERS, TOKENS, descriptor, schema

PRODUCT = "orders.order-placed"
MINUTE = 60_000


def measured(
    minutes_ago: float,
    status: Status = Status.OK,
    *,
    product: str = PRODUCT,
    freshness: float = 2.0,
    now_ms: int | None = None,
) -> ProductHealth:
    at = (now_ms if now_ms is not None else int(time.time() * 1000)) - int(minutes_ago * MINUTE)
    return ProductHealth(
        product=product,
        measured_at_ms=at,
        status=status,
        reason="" if status is Status.OK else f"freshness {freshness}s over its SLO 5s",
        since_ms=at - 3 * MINUTE,
        figures=(
            Figure(
                name=FigureName.FRESHNESS_SECONDS,
                value=freshness,
                slo=5.0,
                status=status,
                reason="newest record age",
            ),
        ),
        upstream_breached=("payments.payment-settled",) if status is Status.DEGRADED else (),
        monitor="test",
    )


def push(feed: InMemoryHealthFeed, record: ProductHealth) -> None:
    feed.push(record, key=health_key(record.product, record.measured_at_ms))


@pytest.fixture
def feed() -> InMemoryHealthFeed:
    return InMemoryHealthFeed()


@pytest.fixture
def registry(feed: InMemoryHealthFeed) -> TestClient:
    """A registry holding orders.order-placed whose health comes from ``feed``."""
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), health_feed=feed)
    client = TestClient(app, raise_server_exceptions=False)
    subject = f"{PRODUCT}.v1-value"
    assert client.post(f"/subjects/{subject}/versions", json={"schema": schema()}, auth=ORDERS)
    assert client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS).status_code == 200
    return client


def test_a_registered_product_never_measured_is_no_data_not_an_error(
    registry: TestClient,
) -> None:
    answer = registry.get(f"/products/{PRODUCT}/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["product"], body["status"], body["reason"]) == (
        PRODUCT,
        "no data",
        "not measured yet",
    )
    assert body["figures"] == []
    assert registry.get(f"/products/{PRODUCT}/health/history").json() == []
    assert registry.get("/product-health").json()[PRODUCT]["status"] == "no data"


def test_the_latest_measurement_is_served_whatever_order_it_was_read_in(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    push(feed, measured(1, Status.BREACHED, freshness=9.0))
    push(feed, measured(3))  # older, read later (another partition)
    body = registry.get(f"/products/{PRODUCT}/health").json()
    assert body["status"] == "breached"
    assert body["reason"] == "freshness 9.0s over its SLO 5s"
    (figure,) = body["figures"]
    assert (figure["name"], figure["value"], figure["slo"], figure["status"]) == (
        "freshness_seconds",
        9.0,
        5.0,
        "breached",
    )
    assert body["since_ms"] == body["measured_at_ms"] - 3 * MINUTE


def test_history_is_oldest_first_and_filtered_by_minutes(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    now = int(time.time() * 1000)
    for minutes_ago in (2, 90, 30, 0.5, 200):
        push(feed, measured(minutes_ago, now_ms=now))
    default = registry.get(f"/products/{PRODUCT}/health/history").json()
    assert [r["measured_at_ms"] for r in default] == [
        now - 30 * MINUTE,
        now - 2 * MINUTE,
        now - MINUTE // 2,
    ]
    wider = registry.get(f"/products/{PRODUCT}/health/history", params={"minutes": 120}).json()
    assert [r["measured_at_ms"] for r in wider] == [now - int(m * MINUTE) for m in (90, 30, 2, 0.5)]
    one = registry.get(f"/products/{PRODUCT}/health/history", params={"minutes": 1}).json()
    assert [r["measured_at_ms"] for r in one] == [now - MINUTE // 2]


def test_the_same_key_read_twice_keeps_the_last_as_compaction_does(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    first = measured(1)
    second = first.model_copy(update={"status": Status.DEGRADED, "monitor": "other"})
    key = health_key(PRODUCT, first.measured_at_ms)
    feed.push(first, key=key)
    feed.push(second, key=key)
    history = registry.get(f"/products/{PRODUCT}/health/history").json()
    assert [(r["status"], r["monitor"]) for r in history] == [("degraded", "other")]
    feed.push(None, key=key)  # a tombstone
    assert registry.get(f"/products/{PRODUCT}/health/history").json() == []


def test_an_unknown_product_is_404_with_the_product_code(registry: TestClient) -> None:
    for path in ("/products/orders.nope/health", "/products/orders.nope/health/history"):
        answer = registry.get(path)
        assert answer.status_code == 404, path
        assert answer.json() == {
            "error_code": 40404,
            "message": "Product 'orders.nope' not found.",
        }


@pytest.mark.parametrize("minutes", ["0", "-5", "10081", "many", "1.5"])
def test_bad_minutes_are_422_naming_the_parameter(registry: TestClient, minutes: str) -> None:
    answer = registry.get(f"/products/{PRODUCT}/health/history", params={"minutes": minutes})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error_code"] == 422
    assert "query.minutes" in body["message"]


def test_product_health_lists_every_registered_product_only(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    other = "orders.order-shipped"
    assert registry.post(
        f"/subjects/{other}.v1-value/versions", json={"schema": schema(name="Shipped")}, auth=ORDERS
    )
    assert (
        registry.put(f"/products/{other}", json=descriptor(other), auth=ORDERS).status_code == 200
    )
    push(feed, measured(1, Status.DEGRADED))
    push(feed, measured(1, product="orders.deleted-long-ago"))
    every = registry.get("/product-health").json()
    assert sorted(every) == [PRODUCT, other]
    assert every[PRODUCT]["status"] == "degraded"
    assert every[PRODUCT]["upstream_breached"] == ["payments.payment-settled"]
    assert every[other]["status"] == "no data"


def test_a_measurement_gone_stale_is_no_data_saying_when_it_was_last_measured(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    push(feed, measured(42))
    body = registry.get(f"/products/{PRODUCT}/health").json()
    assert body["status"] == "no data"
    assert body["reason"].startswith("last measured 42 min ago (then ok)")
    assert "mesh monitor" in body["reason"]
    assert body["figures"][0]["value"] == 2.0  # what was measured is still shown


def test_a_stale_measurement_claims_no_upstream_breach_either(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    """`no data (upstream breached)` paired a stale status with a stale upstream verdict."""
    push(feed, measured(42, Status.DEGRADED))
    body = registry.get(f"/products/{PRODUCT}/health").json()
    assert body["status"] == "no data"
    assert body["upstream_breached"] == []
    assert body["reason"].startswith("last measured 42 min ago (then degraded")


def test_health_reads_need_a_credential_when_reads_are_guarded(feed: InMemoryHealthFeed) -> None:
    app = create_app(
        InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True, health_feed=feed
    )
    client = TestClient(app, raise_server_exceptions=False)
    for path in (
        f"/products/{PRODUCT}/health",
        f"/products/{PRODUCT}/health/history",
        "/product-health",
    ):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error_code"] == 40101
    assert client.get("/product-health", auth=ORDERS).json() == {}


def test_records_that_do_not_parse_are_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book = HealthBook()
    good = measured(1)
    with caplog.at_level(logging.WARNING):
        book.receive(b"k", b"not json", "health[0]@7")
        book.receive(b"k2", b'{"product": "orders.order-placed"}', "health[1]@3")
        book.receive(None, good.model_dump_json().encode(), "health[0]@8")
    assert book.skipped == 2
    assert book.latest(PRODUCT) == good
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("health[0]@7: not a product health record, skipped")
    assert "Traceback" not in caplog.text


def test_history_older_than_the_book_keeps_is_dropped_but_latest_stays() -> None:
    now = time.time()
    book = HealthBook(history_minutes=10, clock=lambda: now)
    now_ms = int(now * 1000)
    for minutes_ago in range(200, 0, -1):
        book.add(measured(minutes_ago, now_ms=now_ms))
    assert len(book._history[PRODUCT]) <= 64 + 10
    assert [r.measured_at_ms for r in book.history(PRODUCT, 60)] == [
        now_ms - m * MINUTE for m in range(10, 0, -1)
    ]
    old = HealthBook(history_minutes=10, clock=lambda: now)
    old.add(measured(500, now_ms=now_ms))
    assert old.history(PRODUCT, 10_080) == []
    assert old.latest(PRODUCT) is not None


def test_the_view_starts_its_feed_and_answers_from_it() -> None:
    feed = InMemoryHealthFeed()
    push(feed, measured(1))  # pushed before the view started: delivered on start
    app = create_app(InMemoryStore(), health_feed=feed)
    view: ProductHealthView = app.state.services.health
    assert view.book.latest(PRODUCT) is not None
    view.close()


def test_a_long_monitor_interval_lengthens_how_long_a_measurement_stays_fresh() -> None:
    assert stale_after_ms(60) == 5 * MINUTE
    assert stale_after_ms(600) == 30 * MINUTE


def test_a_record_is_judged_stale_by_the_interval_of_the_monitor_that_wrote_it(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    """A monitor run with `--interval 400` against a registry left at the default: its
    record of 6 minutes ago is its latest, not `no data` (a platform operator's campaign)."""
    slow = measured(6).model_copy(update={"interval_ms": 400_000})
    push(feed, slow)
    answer = registry.get(f"/products/{PRODUCT}/health").json()
    assert answer["status"] == "ok"
    assert answer["interval_ms"] == 400_000
    view: ProductHealthView = registry.app.state.services.health  # type: ignore[attr-defined]
    assert view.stale_ms(slow) == 20 * MINUTE  # 3 of its intervals
    # a fast monitor's record still gets the 5 minutes; one without an interval: the registry's
    assert view.stale_ms(slow.model_copy(update={"interval_ms": 5_000})) == 5 * MINUTE
    assert view.stale_ms(slow.model_copy(update={"interval_ms": None})) == view.stale_after_ms


def test_a_record_older_than_three_of_its_monitor_s_intervals_is_no_data(
    registry: TestClient, feed: InMemoryHealthFeed
) -> None:
    push(feed, measured(21).model_copy(update={"interval_ms": 400_000}))
    answer = registry.get(f"/products/{PRODUCT}/health").json()
    assert answer["status"] == "no data"
    assert answer["reason"].startswith("last measured 21 min ago (then ok")


def test_a_day_of_history_is_kept_as_its_json_compactly_and_served_the_same() -> None:
    """A parsed measurement with five figures took ~7 KB: a day of minutes for a thousand
    products would have been 10 GB of registry memory. The book keeps the JSON instead."""
    now = time.time()
    now_ms = int(now * 1000)
    book = HealthBook(clock=lambda: now)
    five = tuple(
        Figure(name=name, value=1.5, slo=5.0, status=Status.OK, reason=f"{name.value} within 5")
        for name in list(FigureName)[:5]
    )
    sent = [
        measured(minutes_ago, now_ms=now_ms).model_copy(update={"figures": five})
        for minutes_ago in range(1440, 0, -1)
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for record in sent:
        book.receive(
            health_key(record.product, record.measured_at_ms).encode(),
            record.model_dump_json().encode(),
            "test",
        )
    per_record = (tracemalloc.get_traced_memory()[0] - before) / len(sent)
    tracemalloc.stop()
    assert per_record < 2_000, f"{per_record:.0f} bytes per measurement"
    assert book.history(PRODUCT, 1440) == sent  # oldest first, equal to what was sent
    assert book.latest(PRODUCT) == sent[-1]
