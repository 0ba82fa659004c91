"""A mutant for `mesh verify`'s test: the engine's replay guard switched off in the worker.

``PROCESSOR`` is the correct one; the worker this module starts replaces the engine's
``apply_once`` with one that always applies, so events a killed worker had applied (and
stored) but not committed are applied again when they are replayed: a non-idempotent
``apply`` under replay, which `mesh verify` must report.

It also commits every 10 s instead of every second. `mesh verify` kills a worker a moment
after its first new output record; on a loaded machine that moment could come after the
commit, leaving nothing to replay (a clean clone once saw both kills land so). With rare
commits, each kill finds applied events that are not committed. (faust's first commit comes
about two intervals after a start, some 17 s after the kill; at 20 s the run's drain waited
some 40 s for the last start's commit.)
"""

from __future__ import annotations

from typing import Any

from mesh_stream.processing import run
from tests.integration.workers.verify_revenue import PROCESSOR


def apply_always(
    state: dict[str, Any],
    partition: int,
    offset: int,
    index: int = 0,
    source: tuple[str, int, int] | None = None,
) -> bool:
    del state, partition, offset, index, source
    return True


if __name__ == "__main__":
    from mesh_stream.processing import app, engine

    engine.apply_once = apply_always  # type: ignore[assignment]
    app.COMMIT_INTERVAL_S = 10.0
    run(PROCESSOR)
