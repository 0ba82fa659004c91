"""Revenue per region and *session* of orders, for `mesh verify`'s own tests.

The sample's revenue processor with a Session window instead of its tumbling minute: a
region's orders at most 60 s apart (event time) share a session, and an order bridging two
sessions merges them (``merge_windows``). It builds the same product
(``analytics.revenue-by-region``, keyed ``<region>@<session start>``), so the verify run
needs nothing the sample does not have. Run with
``python -m tests.integration.workers.verify_revenue_sessions worker -l info``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from domains.analytics.processors.revenue import PROCESSOR as TUMBLING
from mesh_stream.processing import Session, run

__all__ = ["PROCESSOR", "merge_windows"]


def merge_windows(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Fold one session's window state into another's, as add_order would have."""
    into["order_count"] += other["order_count"]
    into["gross_cents"] += other["gross_cents"]
    into["currency"] = min(into["currency"], other["currency"])
    into["updated_at"] = max(into["updated_at"], other["updated_at"])


PROCESSOR = dataclasses.replace(
    TUMBLING,
    window=Session(gap_ms=60_000, grace_ms=30_000),
    merge=merge_windows,
    description="orders and revenue per region and session of placed_at (60 s gap)",
)

if __name__ == "__main__":
    run(PROCESSOR)
