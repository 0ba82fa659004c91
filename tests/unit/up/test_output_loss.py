"""`mesh up | tee log` then Ctrl-C: the pipe dies first, and shutdown must still run to the end."""

from __future__ import annotations

import io
from pathlib import Path

from mesh_stream.cli.up import MeshUp, UpOptions
from mesh_stream.settings import MeshSettings


class BrokenPipe(io.StringIO):
    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_lost_output_does_not_interrupt_shutdown(tmp_path: Path) -> None:
    options = UpOptions(rate=1, seed=1, fresh=False, view=False, duration=None, root=tmp_path)
    up = MeshUp(MeshSettings(data_dir=tmp_path), options, out=BrokenPipe())
    up.say("stopping: processors, simulators, registry ...")
    up.note("still said, to nobody")
    up._stop_all()  # nothing was started; every message it prints goes nowhere, quietly
    assert up._run.notes == ["still said, to nobody"]
    assert not isinstance(up.out, BrokenPipe)
