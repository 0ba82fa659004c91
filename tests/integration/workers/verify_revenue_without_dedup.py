"""A mutant for `mesh verify`'s test: declares ``Dedup(event_id)`` but runs without it.

``PROCESSOR`` (what verify recomputes with) is the correct one; the worker this module
starts runs a copy whose dedup is removed, the bug of an engine that lost its dedup, so
every copy of an order counts twice in the worker's output.
"""

from __future__ import annotations

import dataclasses

from mesh_stream.processing import run
from tests.integration.workers.verify_revenue import PROCESSOR

if __name__ == "__main__":
    run(dataclasses.replace(PROCESSOR, dedup=None))
