"""`mesh monitor --once` prints one product a line, worst first, with its main figures."""

from __future__ import annotations

from mesh_stream.cli.monitor import table
from mesh_stream.health import Figure, FigureName, ProductHealth, Status

NOW = 1_800_000_000_000  # 2027-01-15 08:00:00 UTC


def _health(product: str, status: Status, reason: str, *figures: Figure) -> ProductHealth:
    return ProductHealth(
        product=product,
        measured_at_ms=NOW,
        status=status,
        reason=reason,
        since_ms=NOW - 90_000,
        figures=figures,
    )


def test_the_table_puts_breached_first_and_shows_the_worst_lag() -> None:
    fresh = Figure(name=FigureName.FRESHNESS_SECONDS, value=312.44, slo=60.0)
    lag_a = Figure(name=FigureName.LAG_SECONDS, value=3.0, subject="a")
    lag_b = Figure(name=FigureName.LAG_SECONDS, value=7.25, subject="b")
    ratio = Figure(name=FigureName.DLQ_RATIO, value=0.0123)
    lines = table(
        (
            _health("b.ok", Status.OK, "every figure within its SLO", ratio, lag_a, lag_b),
            _health("a.late", Status.BREACHED, "freshness_seconds: old", fresh),
        )
    ).splitlines()
    assert lines[0].split() == [
        "PRODUCT", "STATUS", "SINCE", "FRESH", "S", "REC/MIN", "DLQ", "RATIO", "LAG", "S", "REASON",
    ]  # fmt: skip
    assert lines[1].split()[:7] == ["a.late", "breached", "07:58:30", "312.4", "-", "-", "-"]
    assert lines[2].split()[:7] == ["b.ok", "ok", "07:58:30", "-", "-", "0.0123", "7.2"]
    # The reasons line up under their heading.
    assert lines[1].index("freshness_seconds: old") == lines[0].index("REASON")
    assert lines[2].index("every figure within its SLO") == lines[0].index("REASON")
