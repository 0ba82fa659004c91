"""The sample's revenue processor, for `mesh verify`'s own tests (the mutants build on it).

It is ``domains.analytics.processors.revenue`` itself: nothing in it depends on the order of
events from different partitions (a window's currency is the smallest seen). Run with
``python -m tests.integration.workers.verify_revenue worker -l info``.
"""

from __future__ import annotations

from domains.analytics.processors.revenue import PROCESSOR
from mesh_stream.processing import run

__all__ = ["PROCESSOR"]

if __name__ == "__main__":
    run(PROCESSOR)
