"""Event-time windows (spec.Tumbling, spec.Hopping): assignment by event time, closing by
arrival time plus grace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing.spec import Hopping, Tumbling, WindowKey

WINDOWS = Tumbling(size_ms=60_000, grace_ms=30_000)


def windows_of(event_ms: int, arrival_ms: int | None = None) -> list[WindowKey]:
    return list(WINDOWS.windows("eu", event_ms, event_ms if arrival_ms is None else arrival_ms))


def test_event_lands_in_the_window_that_holds_its_time() -> None:
    assert windows_of(120_000) == [WindowKey("eu", 120_000, 180_000)]
    assert windows_of(179_999) == [WindowKey("eu", 120_000, 180_000)]
    assert windows_of(180_000) == [WindowKey("eu", 180_000, 240_000)]
    assert str(windows_of(179_999)[0]) == "eu@120000"


def test_late_event_within_grace_counts_and_after_grace_does_not() -> None:
    event = 125_000  # window [120 000, 180 000), closes at 210 000
    assert windows_of(event, arrival_ms=209_999) == [WindowKey("eu", 120_000, 180_000)]
    assert windows_of(event, arrival_ms=210_000) == []


@given(st.integers(min_value=0, max_value=2**45), st.integers(min_value=1, max_value=10**7))
def test_every_time_is_inside_exactly_its_window(event: int, size: int) -> None:
    [window] = Tumbling(size_ms=size).windows("k", event, event)
    assert window.start_ms <= event < window.end_ms
    assert window.start_ms % size == 0


@given(
    st.integers(min_value=0, max_value=2**45),
    st.integers(min_value=1, max_value=10**5),
    st.integers(min_value=1, max_value=8),
)
def test_hopping_windows_are_every_window_holding_the_time(
    event: int, advance: int, hops: int
) -> None:
    windows = list(Hopping(size_ms=advance * hops, advance_ms=advance).windows("k", event, event))
    assert len(windows) == hops
    assert all(w.start_ms <= event < w.end_ms and w.start_ms % advance == 0 for w in windows)


@pytest.mark.parametrize(("size", "grace", "message"), [(0, 0, "size"), (10, -1, "grace")])
def test_bad_window_settings_are_refused(size: int, grace: int, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Tumbling(size_ms=size, grace_ms=grace)
