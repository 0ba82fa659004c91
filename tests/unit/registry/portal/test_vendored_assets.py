"""The vendored browser assets are the recorded ones, at tools/vendor's versions, and ship.

``make vendor`` copies them from npm packages pinned in tools/vendor/package.json and writes
static/vendor/VENDORED.json; a file edited by hand, a half-done update or a version bumped
in one place only fails here. The wheel ships them through pyproject's package-data globs,
checked against every file under templates/ and static/.
"""

from __future__ import annotations

import glob
import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
PACKAGE = ROOT / "mesh_stream"
PORTAL = PACKAGE / "registry" / "portal"
VENDOR = PORTAL / "static" / "vendor"


def _manifest() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(
        (VENDOR / "VENDORED.json").read_text(encoding="utf-8")
    )
    return loaded


def test_every_vendored_file_is_the_recorded_one() -> None:
    manifest = _manifest()
    assert set(manifest) >= {
        "htmx.min.js",
        "cytoscape.min.js",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    for name, entry in manifest.items():
        path = VENDOR / name
        assert path.is_file(), f"static/vendor/{name} is missing: run `make vendor`"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == entry["sha256"], (
            f"static/vendor/{name} is not the file VENDORED.json records (edited by hand?); "
            f"run `make vendor`"
        )
        assert entry["source"].startswith(f"{entry['package']}/")
        assert entry["license"], name
        assert (VENDOR / f"{entry['package']}.LICENSE.txt").is_file(), entry["package"]


def test_nothing_unrecorded_sits_in_the_vendor_folder() -> None:
    manifest = _manifest()
    licences = {f"{entry['package']}.LICENSE.txt" for entry in manifest.values()}
    present = {p.name for p in VENDOR.iterdir()}
    assert present == set(manifest) | licences | {"VENDORED.json"}


def test_versions_are_those_tools_vendor_pins() -> None:
    pinned = json.loads((ROOT / "tools" / "vendor" / "package.json").read_text())["dependencies"]
    locked = json.loads((ROOT / "tools" / "vendor" / "package-lock.json").read_text())
    for name, entry in _manifest().items():
        assert entry["version"] == pinned[entry["package"]], (
            f"static/vendor/{name} is {entry['package']} {entry['version']}, tools/vendor "
            f"pins {pinned[entry['package']]}: run `make vendor`"
        )
    for package, version in pinned.items():
        assert version[0].isdigit(), f"{package}: pin an exact version, not {version!r}"
        assert locked["packages"][f"node_modules/{package}"]["version"] == version, package


def test_the_base_template_loads_the_vendored_htmx_version() -> None:
    """Other docs name the versions (htmx 2.0.11, cytoscape 3.35.0); keep them honest."""
    manifest = _manifest()
    assert manifest["htmx.min.js"]["version"] == "2.0.11"
    assert manifest["cytoscape.min.js"]["version"] == "3.35.0"
    base = (PORTAL / "templates" / "base.html").read_text(encoding="utf-8")
    assert 'src="/ui/static/vendor/htmx.min.js"' in base


def test_the_wheel_ships_every_template_and_static_file() -> None:
    """pyproject's package-data globs (expanded as setuptools does, relative to the package)
    cover every file under templates/ and static/; importlib.resources finds them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["mesh_stream"]
    shipped = {
        match
        for pattern in patterns
        for match in glob.glob(pattern, root_dir=PACKAGE)
        if (PACKAGE / match).is_file()
    }
    wanted = {
        str(path.relative_to(PACKAGE))
        for folder in ("templates", "static")
        for path in (PORTAL / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert len(wanted) > 10
    assert wanted - shipped == set(), "add a package-data glob in pyproject.toml for these"
    packaged = resources.files("mesh_stream.registry.portal")
    for relative in wanted:
        inner = Path(relative).relative_to("registry/portal")
        found = packaged.joinpath(*inner.parts)
        assert found.is_file(), relative
