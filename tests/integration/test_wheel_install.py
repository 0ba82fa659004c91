"""The wheel a domain team installs: mesh_stream only, co-installable, its extras optional.

Built from this checkout, installed into fresh virtualenvs in a temporary folder (working
directory there too, so nothing of this repository is importable by accident).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DATA = (
    "mesh_stream/py.typed",
    "mesh_stream/bench/order_event.avsc",
    "mesh_stream/broker/resources/pom.xml",
    "mesh_stream/scaffold/templates/mesh.yaml.tmpl",
)


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # Not this process's environment's MESH_* or a virtualenv: a fresh shell's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        cwd=out,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("mesh_stream-*.whl")
    return path


def _venv(where: Path) -> Path:
    made = _run([sys.executable, "-m", "venv", str(where)], cwd=where.parent)
    assert made.returncode == 0, made.stderr
    return where / "bin"


def test_the_wheel_holds_mesh_stream_and_its_package_data_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    strangers = [n for n in names if not n.startswith(("mesh_stream/", f"{dist_info}/"))]
    assert strangers == []
    assert [n for n in PACKAGE_DATA if n not in names] == []
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Requires-Dist: pydantic<3,>=2.9" in metadata
    for extra in ("registry", "processing", "broker", "all", "dev"):
        assert f"Provides-Extra: {extra}" in metadata


def test_pip_resolves_the_wheel_next_to_quixstreams(wheel: Path, tmp_path: Path) -> None:
    """A domain service's stack (quixstreams caps confluent-kafka and pydantic) installs
    together with the SDK: pip finds one set of versions for both."""
    pip = _venv(tmp_path / "venv") / "pip"
    report = tmp_path / "report.json"
    resolved = _run(
        [
            str(pip),
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            str(wheel),
            "quixstreams",
        ],
        cwd=tmp_path,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert "mesh-stream" in chosen
    assert "quixstreams" in chosen
    assert "fastapi" not in chosen  # the core install brings no extra
    assert "faust-streaming" not in chosen


def test_the_core_install_runs_the_sdk_and_cli_and_names_missing_extras(
    wheel: Path, tmp_path: Path
) -> None:
    """Installed without extras (by uv from the lock's versions, which is fast), in a folder
    that is no project: the SDK imports, `mesh --help` works, and a command that needs an
    extra says which, in one line."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv is in the dev extra: run `make install`"
    bin_dir = _venv(tmp_path / "venv")
    installed = _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(bin_dir / "python"),
            "-c",
            str(ROOT / "requirements" / "dev.lock"),
            str(wheel),
        ],
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    sdk = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import mesh_stream, sys; from mesh_stream import open_publisher, ProductConsumer; "
            "print(mesh_stream.__file__)",
        ],
        cwd=tmp_path,
    )
    assert sdk.returncode == 0, sdk.stderr
    assert str(tmp_path / "venv") in sdk.stdout  # the installed copy, not this checkout

    helped = _run([str(bin_dir / "mesh"), "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "bench" in helped.stdout

    served = _run([str(bin_dir / "mesh"), "registry", "serve", "--port", "0"], cwd=tmp_path)
    assert served.returncode == 1
    assert served.stderr == (
        "error: mesh registry serve needs the registry extra: pip install 'mesh-stream[registry]'\n"
    )
    up = _run([str(bin_dir / "mesh"), "up"], cwd=tmp_path)
    assert up.returncode == 1
    assert up.stderr.startswith("error: mesh up needs the registry extra"), up.stderr
    bench = _run([str(bin_dir / "mesh"), "bench"], cwd=tmp_path)
    assert bench.returncode == 1
    assert bench.stderr.startswith("error: mesh bench needs the bench extra"), bench.stderr
