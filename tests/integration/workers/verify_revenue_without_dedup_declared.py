"""For `mesh verify`'s test: the sample's revenue processor declared without ``dedup``.

Without a dedup field, only the engine's replay guard keeps each event counted once when
the re-key stage forwards its input again after a kill (same input records, new internal
positions); ``recompute`` counts every input record once, copies included.
"""

from __future__ import annotations

import dataclasses

from mesh_stream.processing import run
from tests.integration.workers.verify_revenue import PROCESSOR as WITH_DEDUP

PROCESSOR = dataclasses.replace(WITH_DEDUP, dedup=None)

if __name__ == "__main__":
    run(PROCESSOR)
