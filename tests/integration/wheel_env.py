"""mesh-stream as a domain team gets it: the wheel of this checkout in a fresh virtualenv.

The virtualenv lives in a temporary folder and its commands run there with an environment
of their own (the virtualenv's ``bin`` first on PATH, no PYTHONPATH, no MESH_* of the test
process), so nothing of this repository is importable by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
LOCK = REPOSITORY / "requirements" / "dev.lock"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def _checked(args: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(
        args,
        cwd=cwd,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def outside_env(**extra: str) -> dict[str, str]:
    """This process's environment less MESH_*, PYTHON* and any virtualenv, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MESH_", "PYTHON", "VIRTUAL_ENV", "PIP_", "UV_"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout, built into ``out`` (dependencies are not built)."""
    _checked(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(out),
            str(REPOSITORY),
        ],
        out,
        "pip wheel",
    )
    (wheel,) = out.glob("mesh_stream-*.whl")
    return wheel


@dataclass(frozen=True)
class InstalledMesh:
    """A virtualenv holding the wheel: where it is and how to run its commands."""

    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A fresh shell's environment in this virtualenv (as `activate` makes it), with
        ``home`` as HOME so no state of this machine's user is read or left behind."""
        return outside_env(
            PATH=f"{self.bin}:{SYSTEM_PATH}", VIRTUAL_ENV=str(self.venv), HOME=str(home), **extra
        )


def install(wheel: Path, venv: Path, extras: str = "") -> InstalledMesh:
    """A new virtualenv at ``venv`` with ``wheel[extras]`` and its dependencies at the
    versions of requirements/dev.lock (uv from the dev extra: from its cache in about a
    second, where pip takes twenty)."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv is in the dev extra: run `make install`"
    _checked([sys.executable, "-m", "venv", str(venv)], venv.parent, "python -m venv")
    requirement = f"{wheel}[{extras}]" if extras else str(wheel)
    python = str(venv / "bin" / "python")
    _checked(
        [uv, "pip", "install", "--quiet", "--python", python, "-c", str(LOCK), requirement],
        venv.parent,
        f"uv pip install {requirement}",
    )
    return InstalledMesh(venv)
