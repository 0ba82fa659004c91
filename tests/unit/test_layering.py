"""Layers import one way down, and the SDK import pulls in no platform-team code.

The layers (DESIGN.md, "Layers and homes"), lowest first; a module may import its own
layer and those below, never one above. ``TYPE_CHECKING`` imports count too: a lower layer
that needs an upper type declares a ``Protocol`` instead (see ``descriptor.ProductSource``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mesh_stream

PACKAGE = Path(mesh_stream.__file__).parent

#: (module prefix below ``mesh_stream.``, layer). The longest matching prefix wins.
LAYERS: dict[str, int] = {
    "errors": 0,
    "settings": 0,
    "files": 0,  # reading user-named files: regular files only
    "health": 1,  # the product-health shapes the monitor, registry and CLI share
    "logformat": 0,  # the log line formats entry points install (text or JSON)
    "terminal": 0,  # other people's text made safe for a terminal (rich markup, controls)
    "tracing": 1,  # trace context on records (OpenTelemetry optional, imported lazily)
    "schema": 1,
    "kafka": 1,
    "descriptor": 1,
    "project": 1,
    "registration": 1,  # through descriptor.ProductSource-like protocols, not the client
    "contracts": 1,  # descriptor -> Confluent ruleSet/metadata, CEL rules on records
    "registry.error_codes": 1,
    "registry.problems": 1,
    "producer": 2,
    "consumer": 2,
    "registry.client": 2,
    "registry": 2,  # the package's __init__ re-exports the client and the hook only
    "registry.service": 3,
    "registry.portal": 3,  # the web portal under /ui, in the registry process, over its services
    "governance": 3,
    "processing": 3,
    "products_plan": 3,
    "monitor": 3,
    "exports": 2,  # AsyncAPI, ODCS, OpenLineage, DataHub documents: descriptor + registry client
    "broker": 4,
    "up": 4,
    "liveview": 4,
    "supervisor": 4,
    "scaffold": 4,
    "verify": 4,  # `mesh verify`: the launcher, the registry server, processing
    "bench": 4,  # `mesh bench`'s benchmarks: the SDK, the registry server, processing
    "cli": 5,
}


def layer_of(module: str) -> int | None:
    """The layer of ``mesh_stream.<...>`` (None for the package itself)."""
    rest = module.removeprefix("mesh_stream").lstrip(".")
    if not rest:
        return None
    matches = [p for p in LAYERS if rest == p or rest.startswith(p + ".")]
    assert matches, f"{module} belongs to no layer: add it to LAYERS in {__file__}"
    return LAYERS[max(matches, key=len)]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """``(imported mesh_stream module, line)`` for every absolute import in ``path``."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name.startswith("mesh_stream")]
    return found


def upward_imports(package: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = layer_of(module)
        if own is None:
            continue
        for name, line in imports_of(path):
            other = layer_of(name)
            if other is not None and other > own:
                problems.append(
                    f"{module} (layer {own}) imports {name} (layer {other}) at line {line}"
                )
    return problems


def test_nothing_imports_upward() -> None:
    assert upward_imports(PACKAGE) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "mesh_stream"
    (fake / "schema").mkdir(parents=True)
    (fake / "schema" / "codec.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from mesh_stream.errors import MeshError\n"
        "if TYPE_CHECKING:\n"
        "    from mesh_stream.consumer import ProductConsumer\n"
    )
    assert upward_imports(fake) == [
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.consumer (layer 2) at line 4"
    ]


def test_the_sdk_import_loads_no_server_governance_launcher_or_faust() -> None:
    code = (
        "import sys\n"
        "from mesh_stream import MeshSettings, ProductConsumer, open_publisher\n"
        "banned = ('mesh_stream.registry.service', 'mesh_stream.governance', "
        "'mesh_stream.broker', 'mesh_stream.processing', 'mesh_stream.up', 'faust', "
        "'fastapi', 'uvicorn')\n"
        "print(sorted({m for m in sys.modules if m.startswith(banned)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_platform_names_stay_reachable_from_the_package() -> None:
    from mesh_stream import LocalCluster, lint_repository
    from mesh_stream.broker import LocalCluster as Launcher
    from mesh_stream.governance import lint_repository as lint

    assert LocalCluster is Launcher
    assert lint_repository is lint
