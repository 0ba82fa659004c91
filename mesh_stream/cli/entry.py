"""The ``mesh`` console script's target, which imports nothing before it is called.

Loading the command line takes a few hundred milliseconds (click, the SDK, pydantic). A
Ctrl-C in that time, raised while the console script was still importing its target, used to
print a KeyboardInterrupt traceback; here the import runs inside :func:`main`, where it ends
with status 130 and no output, as a Ctrl-C during a command does.
"""

from __future__ import annotations

import sys

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as `mesh_stream.cli.main`'s.
INTERRUPTED = 130


def main() -> None:
    """Import the command line, then run it (:func:`mesh_stream.cli.main.main`)."""
    try:
        from mesh_stream.cli.main import main as run_command_line
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    run_command_line()
