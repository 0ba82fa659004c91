"""Chart geometry for the product page's server-drawn SVG."""

from __future__ import annotations

import math

import pytest

from mesh_stream.registry.portal.charts import (
    line_chart,
    nice_ceiling,
    nice_step,
    number_label,
    time_label,
    time_ticks,
)

HOUR = 3_600_000
START = 1_796_140_800_000  # a whole hour (UTC)
END = START + 6 * HOUR


def _points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in text.split())]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.3, 0.3), (7, 8), (60, 60), (61, 80), (93, 100), (120, 150), (1234, 1500), (0, 1.0)],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


def test_nice_step_gives_few_ticks() -> None:
    for span in (0.7, 3, 10, 42, 99, 1000, 123_456):
        step = nice_step(span)
        assert span / step <= 5
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1, 2, 5)
    assert nice_step(0) == 1.0
    assert nice_step(float("nan")) == 1.0


def test_labels() -> None:
    assert [number_label(v) for v in (0, 2.5, 60, 1500, 2_000_000)] == [
        "0",
        "2.5",
        "60",
        "1.5k",
        "2M",
    ]
    assert time_label(START).endswith(":00")
    assert time_label(START + 90 * 60_000).endswith(":30")


def test_values_map_into_the_plot_box() -> None:
    chart = line_chart(
        [(START, 0.0), (START + 3 * HOUR, 50.0), (END, 100.0)], start_ms=START, end_ms=END
    )
    (line,) = chart.lines
    (x0, y0), (x1, y1), (x2, y2) = _points(line)
    box = chart.plot
    assert (x0, y0) == (box.left, box.bottom)
    assert (x2, y2) == (box.right, box.top)  # 100 is the top: a round maximum
    assert x1 == pytest.approx((box.left + box.right) / 2, abs=0.1)
    assert y1 == pytest.approx((box.top + box.bottom) / 2, abs=0.1)
    assert chart.y_max == 100
    assert len(chart.dots) == 3


def test_the_bound_is_drawn_and_kept_in_range() -> None:
    chart = line_chart([(START, 5.0), (END, 7.0)], start_ms=START, end_ms=END, bound=60.0)
    assert chart.y_max == 60
    assert chart.bound_y == chart.plot.top
    assert line_chart([(START, 5.0)], start_ms=START, end_ms=END).bound_y is None


def test_missing_values_break_the_line_and_bad_ones_are_left_out() -> None:
    points = [
        (START, 1.0),
        (START + HOUR, 2.0),
        (START + 2 * HOUR, None),
        (START + 3 * HOUR, 3.0),
        (START + 4 * HOUR, float("nan")),
        (START + 5 * HOUR, -1.0),
        (END + HOUR, 1e9),  # outside the window: not drawn, does not stretch the axis
    ]
    chart = line_chart(points, start_ms=START, end_ms=END)
    assert [len(_points(line)) for line in chart.lines] == [2, 1]
    assert len(chart.dots) == 3
    assert chart.y_max == 3


def test_no_values_is_an_empty_chart() -> None:
    chart = line_chart([(START, None)], start_ms=START, end_ms=END)
    assert chart.empty
    assert chart.lines == ()
    assert chart.y_max == 1.0


def test_ticks_are_ordered_inside_the_plot() -> None:
    chart = line_chart([(START, 13.0)], start_ms=START, end_ms=END, bound=60.0)
    ys = [t.position for t in chart.y_ticks]
    assert ys == sorted(ys, reverse=True)  # 0 at the bottom
    assert chart.y_ticks[0].label == "0"
    assert chart.y_ticks[-1].label == "60"
    xs = [t.position for t in chart.x_ticks]
    assert xs == sorted(xs)
    assert chart.plot.left <= xs[0]
    assert xs[-1] <= chart.plot.right
    assert 2 <= len(chart.x_ticks) <= 7
    assert [t.label for t in chart.x_ticks][:2] == [time_label(START), time_label(START + HOUR)]


def test_time_ticks_fall_on_whole_steps() -> None:
    ticks = time_ticks(START + 7 * 60_000, START + 67 * 60_000, 1.0, 0.0)
    assert [t.label[-2:] for t in ticks] == ["10", "20", "30", "40", "50", "00"]
    assert time_ticks(START, START, 1.0, 0.0) == ()
