"""Tumbling windows of event time, with a grace period measured in arrival time.

A window ``[start, start + size)`` holds the events whose *event time* falls in it. It accepts
them until ``start + size + grace`` in *arrival time* (the Kafka record timestamp: when the
event reached the mesh). An event arriving later than that is too late and is dropped.

Deciding lateness by the record's own arrival time, rather than by the largest event time seen
so far, makes the decision a property of each record alone: it does not depend on how records
of different partitions interleave, and a replay after a crash decides exactly as the first
run did. That is what lets a restarted processor converge to the same exact values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TumblingWindows:
    """Fixed, non-overlapping windows of ``size_ms`` with ``grace_ms`` for late events."""

    size_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0:
            raise ValueError(f"window size must be > 0 ms, got {self.size_ms}")
        if self.grace_ms < 0:
            raise ValueError(f"grace must be >= 0 ms, got {self.grace_ms}")

    def start_of(self, event_ms: int) -> int:
        """Start of the window holding ``event_ms``."""
        return event_ms - event_ms % self.size_ms

    def end_of(self, event_ms: int) -> int:
        """Exclusive end of the window holding ``event_ms``."""
        return self.start_of(event_ms) + self.size_ms

    def closes_at(self, event_ms: int) -> int:
        """Arrival time from which the window of ``event_ms`` accepts nothing more."""
        return self.end_of(event_ms) + self.grace_ms

    def accepts(self, event_ms: int, arrival_ms: int) -> bool:
        """Whether an event of time ``event_ms`` arriving at ``arrival_ms`` still counts."""
        return arrival_ms < self.closes_at(event_ms)
