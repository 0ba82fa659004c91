"""The bounds of `mesh verify`'s flags, apart from the harness so that the CLI can show them
in ``--help`` without importing it (the harness imports the sandbox, the registry server and
the processing engine's codec: too heavy for every command's start-up)."""

from __future__ import annotations

__all__ = ["MAX_KILLS", "MAX_RECORDS"]

#: Most kills of one run: each costs a worker restart and its recovery, seconds apiece.
MAX_KILLS = 100
#: Most records per input (generated or taken live): the run keeps them all in memory for the
#: recomputation, about a kilobyte each.
MAX_RECORDS = 1_000_000
