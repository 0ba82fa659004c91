"""mesh_stream.processing exports a deliberate, small surface, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys

import mesh_stream.processing


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(mesh_stream.processing.__all__) == [
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
    for name in mesh_stream.processing.__all__:
        assert getattr(mesh_stream.processing, name) is not None


def test_declaring_a_processor_does_not_import_faust() -> None:
    probe = (
        "import sys\n"
        "from mesh_stream.processing import Input, Processor\n"
        "Processor('a.b', (Input('c.d', key=lambda f: 'k', reads=('x',)),), "
        "lambda s, e: None, lambda k, s: {})\n"
        "print('faust' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
