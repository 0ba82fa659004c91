"""Tumbling windows: assignment by event time, closing by arrival time plus grace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_stream.processing.windows import TumblingWindows

WINDOWS = TumblingWindows(size_ms=60_000, grace_ms=30_000)


def test_event_lands_in_the_window_that_holds_its_time() -> None:
    assert WINDOWS.start_of(120_000) == 120_000
    assert WINDOWS.start_of(179_999) == 120_000
    assert WINDOWS.end_of(179_999) == 180_000
    assert WINDOWS.start_of(180_000) == 180_000


def test_late_event_within_grace_counts_and_after_grace_does_not() -> None:
    event = 125_000  # window [120 000, 180 000), closes at 210 000
    assert WINDOWS.closes_at(event) == 210_000
    assert WINDOWS.accepts(event, arrival_ms=209_999)
    assert not WINDOWS.accepts(event, arrival_ms=210_000)


@given(st.integers(min_value=0, max_value=2**45), st.integers(min_value=1, max_value=10**7))
def test_every_time_is_inside_exactly_its_window(event: int, size: int) -> None:
    windows = TumblingWindows(size_ms=size)
    assert windows.start_of(event) <= event < windows.end_of(event)
    assert windows.start_of(event) % size == 0


@pytest.mark.parametrize(("size", "grace", "message"), [(0, 0, "size"), (10, -1, "grace")])
def test_bad_window_settings_are_refused(size: int, grace: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TumblingWindows(size_ms=size, grace_ms=grace)
