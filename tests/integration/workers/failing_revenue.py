"""A revenue worker whose key function fails on one order, started by ``test_rekey_stage.py``.

``python -m tests.integration.workers.failing_revenue worker -l info`` runs the revenue
processor over the benchmark's private products of run ``MESH_BENCH_RUN_ID``; its ``key``
raises on the order whose ``order_id`` is ``MESH_TEST_FAIL_ORDER`` (when that is set), the way
a bug in a processor's own code would.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domains.analytics.processors import revenue
from mesh_stream.bench.processing_bench import bench_spec
from mesh_stream.processing.engine import retarget, run
from mesh_stream.settings import MeshSettings


def main() -> None:
    failing = os.environ.get("MESH_TEST_FAIL_ORDER")
    [orders] = revenue.PROCESSOR.inputs

    def key(order: Mapping[str, Any]) -> str | None:
        if order["order_id"] == failing:
            raise ValueError(f"route cannot handle order {failing}")
        return orders.key(order)

    buggy = dataclasses.replace(
        revenue.PROCESSOR,
        inputs=(dataclasses.replace(orders, key=key, reads=(*orders.reads, "order_id")),),
    )
    # Started with the repository root (the sample mesh) as its working directory.
    spec = bench_spec(MeshSettings(), os.environ["MESH_BENCH_RUN_ID"], Path.cwd())
    run(retarget(buggy, spec), spec=spec)


if __name__ == "__main__":
    main()
