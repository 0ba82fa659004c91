"""`mesh up` edge cases: a dead stdout must not stop the shutdown; what children inherit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mesh_stream import registration
from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import PermissionDeniedError
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


ROOT = Path(__file__).resolve().parents[3]


def register_only_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tokens: dict[str, str],
    refused: frozenset[str] = frozenset(),
) -> tuple[int, str, list[str]]:
    """`mesh up --register-only` on the sample project with Kafka and the registry stubbed
    out: the exit status, what it printed, and the products it registered."""
    registered: list[str] = []

    def register(_client: object, product: DataProduct, *_args: object, **_kw: object) -> None:
        if product.name in refused:
            raise PermissionDeniedError(f"{product.name}: not yours (HTTP 403)")
        registered.append(product.name)

    monkeypatch.setattr(registration, "ensure_topics", lambda *_a, **_k: [])
    monkeypatch.setattr(registration, "ensure_dlq_topics", lambda *_a, **_k: [])
    monkeypatch.setattr(registration, "register_product", register)
    options = UpOptions(
        rate=1, seed=1, fresh=False, view=False, duration=None, project=load_project(ROOT),
        register_only=True,
    )  # fmt: skip
    out = io.StringIO()
    up = MeshUp(MeshSettings(data_dir=tmp_path), options, out=out)
    monkeypatch.setattr(up, "_start_broker", lambda _domains: "127.0.0.1:1")
    monkeypatch.setattr(
        up, "_start_registry", lambda _domains, _bootstrap: ("http://127.0.0.1:1", tokens)
    )
    return up.run(), out.getvalue(), registered


def test_register_only_without_a_credential_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, said, registered = register_only_run(tmp_path, monkeypatch, tokens={})
    assert status == 1
    assert registered == []
    assert "registration: skipped, no credential for the registry" in said
    assert "not every schema and descriptor was registered" in said
    assert "stopping:" not in said  # nothing was started, so nothing is said to stop


def test_register_only_with_some_refused_exits_1_and_all_registered_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = frozenset({"customers.customer-profile"})
    status, said, registered = register_only_run(
        tmp_path, monkeypatch, tokens={"orders": "t"}, refused=refused
    )
    assert status == 1
    assert "customers.customer-profile" not in registered
    assert f"registry: {len(registered)} of {len(registered) + 1} schemas" in said
    assert "registration failed: customers.customer-profile: not yours" in said
    status, said, registered = register_only_run(tmp_path, monkeypatch, tokens={"admin": "t"})
    assert status == 0
    assert f"registry: {len(registered)} of {len(registered)} schemas" in said
    assert "not every" not in said
    assert "stopping:" not in said
