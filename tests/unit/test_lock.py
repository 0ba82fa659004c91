"""requirements/dev.lock cannot drift from pyproject.toml: every requirement of the package and
of each extra is locked, at a version its range allows (`make lock` regenerates the lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "dev.lock"
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def declared(pyproject: Path) -> list[tuple[str, Requirement]]:
    """(where, requirement) for the dependencies and every extra; the package's references to
    its own extras (``mesh-stream[registry,...]``) are followed by the extras themselves."""
    project = tomllib.loads(pyproject.read_text())["project"]
    found = [("dependencies", Requirement(text)) for text in project["dependencies"]]
    for extra, texts in project["optional-dependencies"].items():
        found += [(f"[{extra}]", Requirement(text)) for text in texts]
    own = canonicalize_name(project["name"])
    return [(where, req) for where, req in found if canonicalize_name(req.name) != own]


def locked(lock: Path) -> dict[str, Version]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = PINNED.match(line.strip())
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def drift(pyproject: Path, lock: Path) -> list[str]:
    """One line per requirement the lock does not satisfy."""
    pins = locked(lock)
    problems = []
    for where, req in declared(pyproject):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{where} {req}: not in {lock.name}; run `make lock`")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{where} {req}: {lock.name} has {version}; run `make lock`")
    return problems


def test_the_lock_satisfies_every_requirement_of_pyproject() -> None:
    assert drift(PYPROJECT, LOCK) == []


def test_every_dependency_is_a_range_not_a_pin() -> None:
    pinned = [f"{where} {req}" for where, req in declared(PYPROJECT) if "==" in str(req.specifier)]
    assert pinned == []


def test_a_drifted_lock_is_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "mesh-stream"\ndependencies = ["pydantic>=2.7,<3"]\n'
        '[project.optional-dependencies]\nregistry = ["fastapi>=0.138,<1"]\n'
        'all = ["mesh-stream[registry]"]\n'
    )
    lock = tmp_path / "dev.lock"
    lock.write_text("pydantic==3.0.1\n    # via mesh-stream (pyproject.toml)\n")
    assert drift(pyproject, lock) == [
        "dependencies pydantic<3,>=2.7: dev.lock has 3.0.1; run `make lock`",
        "[registry] fastapi<1,>=0.138: not in dev.lock; run `make lock`",
    ]
