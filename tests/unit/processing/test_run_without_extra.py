"""A processor run where the processing extra is not installed says so in one line."""

from __future__ import annotations

import subprocess
import sys

WORKER = """
import sys
sys.modules["faust"] = None  # as if `pip install mesh-stream` had no [processing]
from mesh_stream.processing import Input, Processor, run
PROCESSOR = Processor(
    output="shop.totals",
    inputs=(Input("shop.orders", key=lambda fields: "all", reads=("total",)),),
    apply=lambda state, event: None,
    emit=lambda key, state: {},
)
run(PROCESSOR, ["worker"])
"""


def test_a_worker_without_the_processing_extra_names_it_in_one_line() -> None:
    """It ended in a ModuleNotFoundError traceback from the engine (a new team's campaign)."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: running a processor needs the processing extra: pip install "
        "'mesh-stream[processing]' (no module named 'faust')\n"
    )
