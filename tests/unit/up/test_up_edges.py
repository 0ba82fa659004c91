"""`mesh up` edge cases: a dead stdout must not stop the shutdown; what children inherit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mesh_stream.project import MeshProject, load_project
from mesh_stream.settings import MeshSettings
from mesh_stream.up import MeshUp, UpOptions


def project(root: Path) -> MeshProject:
    (root / "mesh.yaml").write_text("domains: [shop]\n")
    return load_project(root)


class BrokenPipe(io.StringIO):
    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_lost_output_does_not_interrupt_shutdown(tmp_path: Path) -> None:
    options = UpOptions(
        rate=1, seed=1, fresh=False, view=False, duration=None, project=project(tmp_path)
    )
    up = MeshUp(MeshSettings(data_dir=tmp_path), options, out=BrokenPipe())
    up.say("stopping: processors, simulators, registry ...")
    up.note("still said, to nobody")
    up._stop_all()  # nothing was started; every message it prints goes nowhere, quietly
    assert up._run.notes == ["still said, to nobody"]
    assert not isinstance(up.out, BrokenPipe)


def test_children_enforce_this_repositorys_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESH_GOVERNANCE_ROOT", raising=False)
    options = UpOptions(
        rate=1, seed=1, fresh=False, view=False, duration=None, project=project(tmp_path)
    )
    env = MeshUp(MeshSettings(data_dir=tmp_path), options)._child_env("127.0.0.1:1")
    assert env["MESH_GOVERNANCE_ROOT"] == str(tmp_path.resolve())
    assert env["MESH_PROJECT_ROOT"] == str(tmp_path.resolve())  # processors find the project
    monkeypatch.setenv("MESH_GOVERNANCE_ROOT", "/elsewhere")
    env = MeshUp(MeshSettings(data_dir=tmp_path), options)._child_env("127.0.0.1:1")
    assert env["MESH_GOVERNANCE_ROOT"] == "/elsewhere"
