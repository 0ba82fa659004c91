"""Processors: data products built from other data products, declared and run by one engine.

A processor is a module that declares ``PROCESSOR = Processor(...)`` (its output, its
:class:`Input` products with the fields it reads and how records are keyed, ``apply`` and
``emit``, an optional :class:`Tumbling`, :class:`Hopping` or :class:`Session` window (a
session window with ``merge``) and :class:`Dedup`) and
calls :func:`run` under ``if __name__ == "__main__":``. The engine
(:mod:`~mesh_stream.processing.engine`) turns it into a faust worker; faust is imported only
when :func:`run` is called, so importing this package stays cheap.

Modules: :mod:`~mesh_stream.processing.spec` (the declaration),
:mod:`~mesh_stream.processing.reference` (the one-pass recomputation a worker must agree
with), :mod:`~mesh_stream.processing.engine` (the worker), and the engine's parts:
:mod:`~mesh_stream.processing.app`, :mod:`~mesh_stream.processing.rekey`,
:mod:`~mesh_stream.processing.dedup`, :mod:`~mesh_stream.processing.sessions`,
:mod:`~mesh_stream.processing.reads`,
:mod:`~mesh_stream.processing.codec`, :mod:`~mesh_stream.processing.faust_seams`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mesh_stream.processing.spec import (
    Dedup,
    Event,
    Hopping,
    Input,
    Processor,
    Session,
    Tumbling,
    WindowKey,
)

if TYPE_CHECKING:
    from mesh_stream.processing.app import ProcessorSpec

__all__ = [
    "Dedup",
    "Event",
    "Hopping",
    "Input",
    "Processor",
    "Session",
    "Tumbling",
    "WindowKey",
    "run",
]


def run(
    processor: Processor, argv: list[str] | None = None, *, spec: ProcessorSpec | None = None
) -> None:
    """Run ``processor``'s faust worker with faust's command line ``argv`` (default:
    ``sys.argv[1:]``, e.g. ``worker -l info``); see :func:`mesh_stream.processing.engine.run`."""
    try:
        from mesh_stream.processing.engine import run as run_worker  # faust only when run
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in PROCESSING_EXTRA_MODULES:
            raise
        # the worker's entry point: one line and status 1, as engine.run says its problems
        print(
            f"error: running a processor needs the processing extra: pip install "
            f"'mesh-stream[processing]' (no module named {exc.name!r})",
            file=sys.stderr,
        )
        sys.exit(1)
    run_worker(processor, argv, spec=spec)


#: What the processing extra installs (pyproject.toml), which the worker imports.
PROCESSING_EXTRA_MODULES = frozenset(
    {"faust", "mode", "aiokafka", "rocksdict", "orjson", "uvloop", "cramjam"}
)
