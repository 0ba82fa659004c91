"""Product health from the outside, over a served in-process registry fed by an in-memory
health feed: the client's methods, `mesh products list|show|status` and the watch loop."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from rich.console import Console

from mesh_stream.cli import product_health as health_view
from mesh_stream.cli.main import cli, run
from mesh_stream.errors import ProductNotFoundError, RegistryError, RegistryUnavailableError
from mesh_stream.health import Alert, Figure, FigureName, ProductHealth, Status, health_key
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.product_health import InMemoryHealthFeed
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.terminal import PIPED_WIDTH, NamesTable, cell, output_console
from tests.unit.registry.conftest import descriptor, schema

PLACED = "orders.order-placed"
REVENUE = "orders.revenue"
NOW = int(time.time() * 1000)


def _health(product: str, status: Status, minutes_ago: int, **extra: object) -> ProductHealth:
    at = NOW - minutes_ago * 60_000
    fields: dict[str, object] = {
        "product": product,
        "measured_at_ms": at,
        "status": status,
        "reason": "",
        "since_ms": at - 600_000,
        **extra,
    }
    return ProductHealth.model_validate(fields)


FRESHNESS = Figure(
    name=FigureName.FRESHNESS_SECONDS,
    value=93.0,
    slo=60.0,
    status=Status.BREACHED,
    reason="newest record 93 s old",
)
LAG = Figure(
    name=FigureName.LAG_SECONDS,
    value=1.5,
    slo=30.0,
    status=Status.OK,
    subject="mesh-orders.revenue-rekey",
)
BREACHED = _health(
    PLACED,
    Status.BREACHED,
    1,
    reason="freshness_seconds 93 over its SLO 60",
    figures=(LAG, FRESHNESS),
)
EARLIER = _health(PLACED, Status.OK, 2, figures=(LAG,))


@dataclass
class Served:
    url: str
    feed: InMemoryHealthFeed


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    feed = InMemoryHealthFeed()
    app = create_app(InMemoryStore(), health_feed=feed)
    # The records are made when the module is collected and read minutes later when the
    # suite is long: keep them fresh (staleness is tested in tests/unit/registry).
    app.state.services.health.stale_after_ms = 24 * 3_600_000
    running = RegistryServer(app)
    address = running.start()
    with RegistryClient(address) as client:
        client.register_schema(f"{PLACED}.v1-value", schema())
        client.put_product(descriptor())
        client.register_schema(f"{REVENUE}.v1-value", schema(name="Revenue"))
        client.put_product(descriptor(REVENUE, kind="aggregate", inputs=[PLACED]))
    for record in (BREACHED, EARLIER):
        feed.push(record, key=health_key(record.product, record.measured_at_ms))
    yield Served(address, feed)
    running.stop()


def _mesh(served: Served, *args: str) -> tuple[int, str, str]:
    env = {"MESH_REGISTRY_URL": served.url, "COLUMNS": "220"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_client_reads_latest_history_and_every_product(served: Served) -> None:
    with RegistryClient(served.url) as client:
        assert client.product_health(PLACED) == BREACHED
        assert client.product_health_history(PLACED) == [EARLIER, BREACHED]
        assert client.product_health_history(PLACED, minutes=1) == []
        every = client.all_product_health()
        assert every[PLACED] == BREACHED
        assert (every[REVENUE].status, every[REVENUE].reason) == (
            Status.NO_DATA,
            "not measured yet",
        )
        with pytest.raises(ProductNotFoundError, match=r"Product .orders\.nope. not found"):
            client.product_health("orders.nope")
        with pytest.raises(RegistryError, match=r"query\.minutes") as refused:
            client.product_health_history(PLACED, minutes=0)
        assert refused.value.status == 422


def test_list_shows_the_status_column_and_json_carries_the_health(served: Served) -> None:
    code, out, _ = _mesh(served, "products", "list")
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines()}
    assert rows == {PLACED: "breached", REVENUE: "no data"}
    code, out, _ = _mesh(served, "products", "list", "--json")
    import json

    found = {p["name"]: p["health"] for p in json.loads(out)}
    assert ProductHealth.model_validate(found[PLACED]) == BREACHED
    assert found[REVENUE]["status"] == "no data"


def test_show_has_a_health_block_with_each_figure(served: Served) -> None:
    code, out, _ = _mesh(served, "products", "show", PLACED)
    assert code == 0, out
    assert f"health: breached since {health_view.when(BREACHED.since_ms)}" in out
    assert "reason: freshness_seconds 93 over its SLO 60" in out
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    assert ["freshness_seconds", "", "93", "60", "breached", "newest record 93 s old"] in rows
    assert ["lag_seconds", "mesh-orders.revenue-rekey", "1.5", "30", "ok", ""] in rows


def test_show_of_a_product_never_measured_gives_no_times(served: Served) -> None:
    """A product no monitor measured showed `no data since 20:38:21Z (measured 20:38:21Z)`: the
    times were the request's (h34)."""
    code, out, _ = _mesh(served, "products", "show", REVENUE)
    assert code == 0, out
    [line] = [line for line in out.splitlines() if line.startswith("health:")]
    assert line.rstrip() == "health: no data"
    assert "reason: not measured yet" in out


def test_show_names_the_breached_upstream(served: Served) -> None:
    served.feed.push(
        _health(
            REVENUE,
            Status.DEGRADED,
            0,
            reason="upstream breached: orders.order-placed",
            upstream_breached=(PLACED,),
        )
    )
    code, out, _ = _mesh(served, "products", "show", REVENUE)
    assert code == 0, out
    assert "health: degraded · upstream breached" in out
    assert "upstream breached: orders.order-placed" in out
    code, out, _ = _mesh(served, "products", "status")
    lines = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert lines[REVENUE][1] == "degraded (upstream breached)"


def test_status_lists_every_product_with_its_worst_figure(served: Served) -> None:
    code, out, err = _mesh(served, "products", "status")
    assert code == 0
    lines = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    assert lines[PLACED] == [
        PLACED,
        "breached",
        health_view.when(BREACHED.since_ms),
        "freshness_seconds 93 (SLO 60) breached",
        "freshness_seconds 93 over its SLO 60",
    ]
    assert err == "2 product(s)\n"
    code, out, _ = _mesh(served, "products", "status", "--json")
    import json

    shown = json.loads(out)
    assert ProductHealth.model_validate(shown[PLACED]) == BREACHED
    assert sorted(shown) == [PLACED, REVENUE]


def test_status_with_the_registry_down_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://127.0.0.1:{port}")
    assert run(["products", "status"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ")
    assert f"127.0.0.1:{port}" in line
    assert "Traceback" not in captured.err + captured.out


class ListedAlerts:
    """Alerts handed out one poll at a time; the last poll stops the watch."""

    def __init__(self, batches: list[list[Alert | str]], stop: threading.Event) -> None:
        self.batches = batches
        self.stop = stop
        self.closed = False

    def poll(self, timeout: float) -> list[Alert | str]:
        time.sleep(timeout)
        batch = self.batches.pop(0)
        if not self.batches:
            self.stop.set()
        return batch

    def close(self) -> None:
        self.closed = True


def test_watch_prints_each_alert_as_one_line_and_redraws(served: Served) -> None:
    breach = Alert(
        kind="breach",
        product=PLACED,
        figure=FigureName.FRESHNESS_SECONDS,
        slo=60.0,
        value=93.0,
        status=Status.BREACHED,
        since_ms=BREACHED.since_ms,
        reason="newest record 93 s old",
    )
    recovery = breach.model_copy(
        update={"kind": "recovery", "value": 4.0, "status": Status.OK, "reason": ""}
    )
    stop = threading.Event()
    alerts = ListedAlerts(
        [[breach], ["alerts[0]@3: not an alert record, skipped"], [recovery]], stop
    )
    out = io.StringIO()
    fetched: list[int] = []

    def fetch() -> dict[str, ProductHealth]:
        fetched.append(1)
        if len(fetched) == 2:
            raise RegistryUnavailableError("registry at http://x:1 is unreachable")
        with RegistryClient(served.url) as client:
            return client.all_product_health()

    health_view.watch(fetch, alerts, Console(file=out, width=200), interval=0.3, stop=stop)
    text = out.getvalue()
    since = health_view.when(BREACHED.since_ms)
    assert (
        f"BREACH {PLACED} freshness_seconds 93 vs SLO 60 (breached) since {since}: newest" in text
    )
    assert f"RECOVERY {PLACED} freshness_seconds 4 within SLO 60 since {since}" in text
    assert "alerts[0]@3: not an alert record, skipped" in text
    assert "product health" in text
    assert "breached" in text
    assert "registry: registry at http://x:1 is unreachable" in text  # and the watch went on
    assert len(fetched) >= 3


def test_an_interval_without_watch_is_refused() -> None:
    """It only sets how often --watch redraws; given alone it did nothing, silently."""
    result = CliRunner().invoke(cli, ["products", "status", "--interval", "3"])
    assert result.exit_code == 2
    assert "--interval sets how often --watch redraws; add --watch" in result.stderr


def test_the_worst_figures_subject_is_shown_in_its_brackets() -> None:
    """`lag_seconds [mesh-orders.revenue-rekey] ...`: rich took the bracketed group name for
    markup and dropped it from the status table."""
    lagging = LAG.model_copy(update={"status": Status.BREACHED})
    every = {PLACED: _health(PLACED, Status.BREACHED, 1, figures=(lagging,))}
    out = io.StringIO()
    Console(file=out, width=200).print(health_view.status_table(every))
    assert "lag_seconds [mesh-orders.revenue-rekey] 1.5 (SLO 30) breached" in out.getvalue()


def test_names_are_never_cut_to_look_alike_at_80_columns() -> None:
    """At 80 columns both products showed as `orders.order-…` and a processor's three groups
    as `mesh-analytic…`, so one could not tell which lagged (a campaign)."""
    groups = [f"mesh-analytics.order-fulfilment-sla-{n}-rekey" for n in ("a", "b")]
    figures = tuple(LAG.model_copy(update={"subject": group}) for group in groups)
    names = ("orders.order-placed", "orders.order-status-changed")
    every = {name: _health(name, Status.DEGRADED, 1, figures=figures) for name in names}
    table, block = io.StringIO(), io.StringIO()
    Console(file=table, width=80).print(health_view.status_table(every))
    Console(file=block, width=80).print(health_view.health_block(every[names[0]]))
    assert _column(table.getvalue(), 0) == "".join(sorted(names))  # whole, one per row
    assert _column(block.getvalue(), 1) == "".join(groups)  # whole, a fold at most


def _column(shown: str, index: int) -> str:
    """The text of a drawn table's column ``index``, its folded lines joined again."""
    return "".join(
        line.split("│")[index + 1].strip()
        for line in shown.splitlines()
        if line.count("│") > index + 1
    )


def test_a_consumers_table_keeps_every_column_at_80_columns_and_whole_rows_piped() -> None:
    """h58: a long group name given the width it asked for made rich crop `contact` and
    `registered` off the table at 80 columns, the width a pipe gets, without a mark."""
    table = NamesTable("group", "owner", "reads", "contact", "registered")
    row = (
        "inventory.example-event-consumer-group-with-a-long-name",
        "inventory",
        "event_id, item_id, action, quantity, occurred_at",
        "team-inventory@example.com",
        "2026-12-08T03:10:00+00:00 by inventory",
    )
    table.add_row(*(cell(value) for value in row))
    for width in (40, 80, 120):
        out = io.StringIO()
        Console(file=out, width=width).print(table)
        drawn = out.getvalue()
        assert max(len(line) for line in drawn.splitlines()) <= width
        for index, value in enumerate(row):  # every cell whole, folded at most
            assert _column(drawn, index).replace(" ", "") == value.replace(" ", ""), drawn


def test_a_very_long_name_folds_whole_and_leaves_the_other_columns_room() -> None:
    """Asking for the longest name's width emptied every other column at 80 columns."""
    long_name = "orders." + "very-long-product-name-" * 3 + "x"
    every = {long_name: _health(long_name, Status.DEGRADED, 1, figures=(LAG,))}
    out = io.StringIO()
    Console(file=out, width=80).print(health_view.status_table(every))
    shown = out.getvalue()
    assert "".join(line.split("│")[1].strip() for line in shown.splitlines() if "│" in line) == (
        long_name
    )
    assert "degraded" in shown


def test_piped_tables_keep_a_width_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "132")
    assert output_console().width == 132
