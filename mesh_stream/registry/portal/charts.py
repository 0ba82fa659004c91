"""Chart geometry for server-rendered SVG: numbers in, coordinates and tick labels out.

The product page draws a product's freshness and volume of the last hours as inline
``<svg>`` in its template (no chart library, no script; a strict CSP allows inline SVG
elements with presentation attributes). Everything the template needs (polyline points, axis
ticks, the SLO bound's line) is computed here by pure functions, so the geometry is tested
without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

#: Candidate spacings of time ticks, shortest first (ms): 5 min ... 1 day.
TIME_STEPS_MS = tuple(m * 60_000 for m in (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440))
MAX_X_TICKS = 7
MAX_Y_TICKS = 5


@dataclass(frozen=True)
class Tick:
    """An axis mark: where (in SVG units along its axis) and what it says."""

    position: float
    label: str


@dataclass(frozen=True)
class Box:
    """The plot area inside the chart (SVG units)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class LineChart:
    """What a template draws: lines, dots, axes, and the SLO bound when there is one."""

    width: int
    height: int
    plot: Box
    #: one ``points`` attribute per unbroken run of values (a missing value breaks the line)
    lines: tuple[str, ...]
    dots: tuple[tuple[float, float], ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    #: y of the SLO bound's line, None without a bound
    bound_y: float | None
    y_max: float

    @property
    def empty(self) -> bool:
        return not self.dots


def nice_step(span: float, most: int = MAX_Y_TICKS) -> float:
    """The smallest of 1, 2, 5 x 10^k with at most ``most`` steps covering ``span`` (> 0)."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    rough = span / most
    power = 10 ** math.floor(math.log10(rough))
    for factor in (1, 2, 5, 10):
        if factor * power * most >= span:
            return float(factor * power)
    return float(10 * power)


def nice_ceiling(value: float, most: int = MAX_Y_TICKS) -> float:
    """``value`` rounded up to a whole number of :func:`nice_step` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    step = nice_step(value, most)
    return math.ceil(value / step - 1e-9) * step


def number_label(value: float) -> str:
    """A tick value as short text: ``0``, ``2.5``, ``1.2k``, ``3M``."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def time_label(at_ms: int) -> str:
    """``HH:MM`` in UTC (the page says so once)."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%H:%M")


def time_ticks(start_ms: int, end_ms: int, scale: float, left: float) -> tuple[Tick, ...]:
    """Ticks on whole multiples of the shortest step that gives at most :data:`MAX_X_TICKS`."""
    span = end_ms - start_ms
    if span <= 0:
        return ()
    step = next((s for s in TIME_STEPS_MS if span / s <= MAX_X_TICKS), TIME_STEPS_MS[-1])
    first = start_ms + (-start_ms) % step
    return tuple(
        Tick(round(left + (at - start_ms) * scale, 1), time_label(at))
        for at in range(first, end_ms + 1, step)
    )


def line_chart(
    points: Sequence[tuple[int, float | None]],
    *,
    start_ms: int,
    end_ms: int,
    bound: float | None = None,
    width: int = 480,
    height: int = 160,
) -> LineChart:
    """The geometry of ``points`` ((epoch ms, value or None), oldest first) between
    ``start_ms`` and ``end_ms``, y from 0 to a round number above the highest value and the
    ``bound``. Points outside the window, negative or non-finite values are left out; a None
    value breaks the line."""
    plot = Box(left=44.0, top=10.0, right=width - 10.0, bottom=height - 24.0)
    window = max(end_ms - start_ms, 1)
    inside = [(at, v) for at, v in points if start_ms <= at <= end_ms]
    values = [v for _, v in inside if v is not None and math.isfinite(v) and v >= 0]
    top = max([*values, *([bound] if bound is not None and bound > 0 else [])], default=0.0)
    y_max = nice_ceiling(top)
    x_scale = plot.width / window
    y_scale = plot.height / y_max

    def y_of(value: float) -> float:
        return round(plot.bottom - value * y_scale, 1)

    lines: list[str] = []
    dots: list[tuple[float, float]] = []
    run: list[str] = []
    for at, value in inside:
        if value is None or not math.isfinite(value) or value < 0:
            if run:
                lines.append(" ".join(run))
            run = []
            continue
        x, y = round(plot.left + (at - start_ms) * x_scale, 1), y_of(value)
        dots.append((x, y))
        run.append(f"{x},{y}")
    if run:
        lines.append(" ".join(run))
    step = nice_step(y_max)
    y_ticks = tuple(
        Tick(y_of(i * step), number_label(i * step)) for i in range(round(y_max / step) + 1)
    )
    return LineChart(
        width=width,
        height=height,
        plot=plot,
        lines=tuple(lines),
        dots=tuple(dots),
        x_ticks=time_ticks(start_ms, end_ms, x_scale, plot.left),
        y_ticks=y_ticks,
        bound_y=y_of(bound) if bound is not None and bound > 0 else None,
        y_max=y_max,
    )
