"""A Ctrl-C while Python is still loading the ``mesh`` command ends it quietly, status 130,
as one during a command does: no KeyboardInterrupt traceback."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

#: A fresh interpreter that interrupts itself as the command line's modules load (when
#: click is first imported), then runs ``TARGET`` the way the console script does.
PROGRAM = """
import os, signal, sys

class InterruptOnClick:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptOnClick())
sys.argv = ["mesh", "--help"]
from {module} import main
sys.exit(main())
"""


def _interrupted_while_loading(module: str) -> subprocess.CompletedProcess[str]:
    code = PROGRAM.format(module=module)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_console_script_ends_quietly_when_interrupted_while_loading() -> None:
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "mesh"]
    assert script.value == "mesh_stream.cli.entry:main"
    done = _interrupted_while_loading("mesh_stream.cli.entry")
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")


def test_the_command_lines_module_itself_would_print_a_traceback() -> None:
    """Why the console script's target is ``cli.entry``: importing ``cli.main`` directly, as
    the script did, leaves the interrupt to Python's default report."""
    done = _interrupted_while_loading("mesh_stream.cli.main")
    assert done.returncode != 0
    assert "KeyboardInterrupt" in done.stderr


def test_a_reader_gone_from_stdout_is_exit_141_and_silent() -> None:
    """`mesh ... | head -1`: click turned the broken pipe into exit 1, which `set -o
    pipefail` reads as a failure (a campaign); 141 is what a shell gives SIGPIPE."""
    import os

    sample = Path(__file__).resolve().parents[3]  # the sample mesh: lint prints its warning
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("mesh")), "lint", str(sample)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MESH_REGISTRY_URL": "http://127.0.0.1:1"},
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
