"""Rendering of the live view and the log error counter (no broker needed)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import fastavro
import pytest

from mesh_stream.errors import DeserializationError, RegistryUnavailableError
from mesh_stream.health import ProductHealth, Status
from mesh_stream.liveview import (
    GroupLag,
    LogErrorCounter,
    MeshMonitor,
    MeshSnapshot,
    ProductStats,
    ViewContext,
    format_record,
    registry_decoder,
    render,
    render_text,
)
from mesh_stream.schema.wire import frame
from mesh_stream.supervisor import ChildState, ChildStatus, EventKind, SupervisorEvent


def health(name: str, status: Status, upstream: tuple[str, ...] = ()) -> ProductHealth:
    return ProductHealth(
        product=name,
        measured_at_ms=1,
        status=status,
        reason="",
        since_ms=1,
        upstream_breached=upstream,
    )


def snapshot() -> MeshSnapshot:
    return MeshSnapshot(
        taken_at=100.0,
        products=(
            ProductStats(
                "orders.order-placed",
                "source-aligned",
                "orders.order-placed.v1",
                1200,
                12.5,
                0,
                health=health("orders.order-placed", Status.OK),
            ),
            ProductStats(
                "payments.payment-failed",
                "source-aligned",
                "payments.payment-failed.v1",
                None,
                None,
                0,
            ),
            ProductStats(
                "analytics.revenue-by-region",
                "aggregate",
                "analytics.revenue-by-region.v1",
                40,
                0.5,
                7,
                latest={"region": "north", "gross_revenue": Decimal("1234.50"), "order_count": 9},
                health=health(
                    "analytics.revenue-by-region", Status.DEGRADED, ("orders.order-placed",)
                ),
            ),
        ),
        groups=(GroupLag("revenue-processor", 17, ("orders.order-placed.v1",)),),
        problems=("end offset of x[0] unknown: timeout",),
    )


def children(tmp_path: Path) -> list[ChildStatus]:
    return [
        ChildStatus(
            "registry", "registry", ChildState.RUNNING, 101, 0, None, tmp_path / "registry.log"
        ),
        ChildStatus(
            "revenue", "processor", ChildState.RESTARTING, None, 2, 1, tmp_path / "revenue.log"
        ),
    ]


def test_render_shows_products_lag_children_and_events(tmp_path: Path) -> None:
    context = ViewContext(
        "127.0.0.1:9092",
        "http://127.0.0.1:8081",
        tmp_path,
        started_at=0.0,
        notes=("skipping processors: not written yet",),
    )
    event = SupervisorEvent(
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "revenue",
        EventKind.EXITED,
        "exited with status 1 after 0.4s; restart #2 in 2.0s",
        exit_status=1,
        restart_in=2.0,
    )
    text = render_text(
        render(
            context, snapshot(), children(tmp_path), [event], log_errors={"revenue": 3}, now=125.0
        ),
        width=220,
    )
    assert "up 2m05s" in text
    assert "Kafka 127.0.0.1:9092" in text
    assert "skipping processors: not written yet" in text
    rows: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if "│" in line:
            cells = [c.strip() for c in line.split("│")]
            rows.setdefault(cells[0], []).append(cells)
    assert rows["orders.order-placed"] == [
        [
            "orders.order-placed",
            "source-aligned",
            "orders.order-placed.v1",
            "1200",
            "12.5",
            "0",
            "ok",
        ]
    ]
    assert rows["payments.payment-failed"][0][3:5] == ["no topic", "…"]
    assert rows["payments.payment-failed"][0][6] == "health unknown"
    revenue_stats, revenue_latest = rows["analytics.revenue-by-region"]
    assert revenue_stats[3:7] == ["40", "0.5", "7", "degraded · upstream breached"]
    assert revenue_latest[1] == "region=north gross_revenue=1234.50 order_count=9"
    assert rows["revenue-processor"] == [["revenue-processor", "17", "orders.order-placed.v1"]]
    assert rows["revenue"][0][:6] == ["revenue", "processor", "restarting", "-", "2", "3"]
    assert "2026-01-02 03:04:05 revenue: exited with status 1" in text
    assert "monitor: end offset of x[0] unknown: timeout" in text


def test_record_values_and_group_names_are_shown_literally(tmp_path: Path) -> None:
    """rich read `[...]` in a cell as markup: `[/x]` raised MarkupError (the whole view
    stopped) and `[cents]` vanished; an ESC in a record reached the terminal."""
    record = {"note": "amount [cents] then [/x]", "raw": "\x1b[2Jgone"}
    stats = ProductStats("a.b", "aggregate", "a.b.v1", 1, 0.1, 0, latest=record)
    view = MeshSnapshot(
        taken_at=1.0,
        products=(stats,),
        groups=(GroupLag("[group]", 3, ("a.b.v1",)),),
        problems=("bad \x1b]0;title\x07",),
    )
    text = render_text(render(ViewContext("k:1", None, tmp_path, 0.0), view, [], []), 300)
    assert "note=amount [cents] then [/x] raw=\\x1b[2Jgone" in text
    assert "[group]" in text
    assert "monitor: bad \\x1b]0;title\\x07" in text
    assert "\x1b" not in text


def test_render_before_the_first_sample(tmp_path: Path) -> None:
    context = ViewContext("k:1", None, tmp_path, started_at=10.0)
    text = render_text(render(context, None, [], [], now=12.0))
    assert "registry (none)" in text
    assert "Recent events" not in text


def test_format_record_truncates_long_values() -> None:
    record = {"id": "x" * 200}
    assert len(format_record(record, width=50)) == 50
    assert format_record(record, width=50).endswith("…")
    when = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert format_record({"at": when, "n": 1.234}) == "at=07:08:09 n=1.23"


def test_log_error_counter_counts_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    counter = LogErrorCounter()
    assert counter.count(log) == 0
    log.write_text("INFO fine\nERROR broke\nTraceback (most recent call last):\n  x\nERR")
    assert counter.count(log) == 2  # the unfinished last line is not read yet
    with log.open("a") as handle:
        handle.write("OR later\nCRITICAL down, ERROR too\nNo ERRORS here\n")
    assert counter.count(log) == 4  # one per line: "ERROR later" and the CRITICAL one
    # the CLI's own error line, which a child prints as it stops (a campaign: a simulator
    # refused on every start showed 0 errors)
    with log.open("a") as handle:
        handle.write("orders simulator: error: POST /subjects/x (HTTP 401)\nerror: no broker\n")
        handle.write("INFO retried after an error: in passing, not counted\n")
    assert counter.count(log) == 6
    # a line's own level decides: a warning quoting a library's "error:" or "ERROR" is none
    with log.open("a") as handle:
        handle.write("2026-12-06 10:00:00,000 WARNING mesh_stream.x: broker said: error: retry\n")
        handle.write("[2026-12-06 10:00:01,000] [7] [WARNING] Kafka reported ERROR 7; retrying\n")
        handle.write('{"ts": "2026-12-06T10:00:02Z", "level": "INFO", "message": "no ERROR"}\n')
        handle.write('{"ts": "2026-12-06T10:00:03Z", "level": "ERROR", "message": "broke"}\n')
        handle.write("2026-12-06 10:00:04,000 ERROR mesh_stream.x: a WARNING ignored\n")
    assert counter.count(log) == 8
    # a child's own error line stays one even when it quotes a level's name (h38)
    with log.open("a") as handle:
        handle.write("orders simulator: error: MESH_LOG_LEVEL=DEBUG is not allowed here\n")
        handle.write("WARNING mesh.x: error: retrying\n")  # its level comes first (h40)
    assert counter.count(log) == 9


def test_registry_decoder_reads_confluent_framed_avro_once_per_schema() -> None:
    schema = {
        "type": "record",
        "name": "T",
        "fields": [
            {"name": "n", "type": "long"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2},
            },
        ],
    }
    calls: list[int] = []

    def get_schema(schema_id: int) -> str:
        calls.append(schema_id)
        return json.dumps(schema)

    decode = registry_decoder(SimpleNamespace(get_schema=get_schema))
    records = [{"n": n, "amount": Decimal(n) / 4} for n in range(3)]
    for record in records:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
        assert decode(frame(77, out.getvalue())) == record
    assert calls == [77]
    with pytest.raises(DeserializationError, match="magic byte"):
        decode(b"\x01\x00\x00\x00\x4d\x02")


def test_a_processor_crash_line_reaches_the_live_view(tmp_path: Path) -> None:
    """The one line a worker logs before it stops on a record is shown, latest per process."""
    log = tmp_path / "revenue.log"
    counter = LogErrorCounter()
    first = (
        "processor analytics.revenue-by-region crashed on orders.order-placed.v1[2]@1041: "
        "KeyError 'region' (field 'region')"
    )
    log.write_text(f"[2026-12-01 10:00:00,000] [1] [ERROR] {first}\nINFO restarting\n")
    assert counter.count(log) == 1
    assert counter.crash(log) == first
    later = first.replace("@1041", "@1042")
    with log.open("a") as handle:
        handle.write(f"[2026-12-01 10:00:05,000] [1] [ERROR] {later}\nERROR other\n")
    assert counter.count(log) == 3
    assert counter.crash(log) == later  # the latest
    assert counter.crash(tmp_path / "quiet.log") is None

    context = ViewContext("k:1", None, tmp_path, started_at=10.0)
    text = render_text(render(context, None, [], [], crashes={"revenue": later}, now=12.0))
    assert "Processor crashes" in text
    assert f"revenue: {later}" in text
    assert "Processor crashes" not in render_text(render(context, None, [], [], now=12.0))


def test_the_monitor_takes_health_from_the_registry_and_survives_it_being_down() -> None:
    from mesh_stream.descriptor import DataProduct

    product = DataProduct.model_validate(
        {
            "name": "orders.order-placed",
            "domain": "orders",
            "kind": "source-aligned",
            "description": "Orders.",
            "owner": {"team": "checkout", "contact": "c@example.com"},
            "schema": "schemas/orders/order-placed.avsc",
            "slos": {"freshness_seconds": 5, "availability": 99.9},
            "classification": "internal",
        }
    )
    breached = health(product.name, Status.BREACHED)

    def registry_down() -> dict[str, ProductHealth]:
        raise RegistryUnavailableError("registry at http://127.0.0.1:1 is unreachable")

    # No broker at this address either: the snapshot still carries what the registry said.
    with MeshMonitor("127.0.0.1:1", [product], health=lambda: {product.name: breached}) as up:
        up.timeout = 0.2
        sampled = up.sample()
    assert sampled.product(product.name).health == breached
    with MeshMonitor("127.0.0.1:1", [product], health=registry_down) as down:
        down.timeout = 0.2
        sampled = down.sample()
    assert sampled.product(product.name).health is None
    assert "health unknown: registry at http://127.0.0.1:1 is unreachable" in sampled.problems


def broker_restarts(count: int) -> list[SupervisorEvent]:
    """``count`` events of the broker stopping, one a second, the newest last."""
    return [
        SupervisorEvent(
            datetime(2026, 1, 2, 3, 4, second, tzinfo=UTC),
            "kafka",
            EventKind.EXITED,
            f"Kafka stopped running; restart #{second}",
            exit_status=1,
        )
        for second in range(count)
    ]


def test_a_frame_taller_than_the_terminal_keeps_what_went_wrong(tmp_path: Path) -> None:
    """At 160x60 the sample mesh's frame was taller than the terminal, which cut the bottom:
    'Kafka stopped running' and a crash never showed (a platform operator's campaign). The
    latest values go first, then the lag table, then older events; crashes and the newest
    event stay."""
    context = ViewContext("k:1", None, tmp_path, started_at=0.0)
    events = broker_restarts(8)
    crash = "processor r crashed on t[0]@5: KeyError 'region' (field 'region')"

    def lines(size: tuple[int, int] | None) -> list[str]:
        drawn = render(
            context, snapshot(), children(tmp_path), events, crashes={"r": crash}, size=size
        )
        return render_text(drawn, width=160).rstrip("\n").splitlines()

    whole = lines(None)
    assert any("Latest value" in line for line in whole)
    assert lines((160, len(whole))) == whole  # fits: nothing left out
    short = lines((160, len(whole) - 3))
    assert len(short) <= len(whole) - 3
    assert not any("Latest value" in line for line in short)
    assert any("Processor lag" in line for line in short)
    tiny = lines((160, 20))
    assert len(tiny) <= 20
    for cut in (short, tiny):
        assert any(crash in line for line in cut)
        assert any("Kafka stopped running; restart #7" in line for line in cut)
    assert not any("Processor lag" in line for line in tiny)
    assert not any("restart #0" in line for line in tiny)  # older events went


def test_a_terminal_too_short_for_any_table_shows_what_went_wrong_first(tmp_path: Path) -> None:
    """Cut at the bottom, a frame still too tall lost its crashes and events (review h29);
    the monitor's current problems outlast older supervisor events."""
    context = ViewContext("k:1", None, tmp_path, started_at=0.0)
    events = broker_restarts(5)
    crash = "processor r crashed on t[0]@5: KeyError 'region' (field 'region')"
    drawn = render(
        context, snapshot(), children(tmp_path), events, crashes={"r": crash}, size=(160, 8)
    )
    lines = render_text(drawn, width=160).splitlines()
    assert any(crash in line for line in lines[:8])
    assert any("monitor: end offset of x[0] unknown: timeout" in line for line in lines[:8])
    assert not any("restart #0" in line for line in lines)  # older events went first
