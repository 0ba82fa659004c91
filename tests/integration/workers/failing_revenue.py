"""A revenue worker whose route fails on one order, started by ``test_rekey_stage.py``.

``python -m tests.integration.workers.failing_revenue worker -l info`` runs the revenue
processor over the benchmark's private products of run ``MESH_BENCH_RUN_ID``; its route raises
on the order whose ``order_id`` is ``MESH_TEST_FAIL_ORDER`` (when that is set), the way a bug
in a processor's own code would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from domains.analytics.processors import revenue
from mesh_stream.bench.processing_bench import bench_spec
from mesh_stream.processing.app import run_worker
from mesh_stream.settings import MeshSettings


def main() -> None:
    failing = os.environ.get("MESH_TEST_FAIL_ORDER")
    original = revenue.route

    def route(topic: str, record: dict[str, Any], arrival_ms: int) -> Any:
        if record["order_id"] == failing:
            raise ValueError(f"route cannot handle order {failing}")
        return original(topic, record, arrival_ms)

    revenue.route = route  # build() looks the route up when it is called
    # Started with the repository root (the sample mesh) as its working directory.
    spec = bench_spec(MeshSettings(), os.environ["MESH_BENCH_RUN_ID"], Path.cwd())
    run_worker(revenue.build(spec))


if __name__ == "__main__":
    main()
