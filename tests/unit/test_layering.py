"""Layers import one way down, and the SDK import pulls in no platform-team code.

The layers (DESIGN.md, "Layers and homes"), lowest first; a module may import its own
layer and those below, never one above. ``TYPE_CHECKING`` imports count too: a lower layer
that needs an upper type declares a ``Protocol`` instead (see ``descriptor.ProductSource``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mesh_stream

PACKAGE = Path(mesh_stream.__file__).parent

#: (module prefix below ``mesh_stream.``, layer). The longest matching prefix wins.
LAYERS: dict[str, int] = {
    "errors": 0,
    "settings": 0,
    "files": 0,  # reading user-named files: regular files only
    "http_failures": 0,  # a failed HTTP call said in words (httpx, a core dependency)
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


def module_of(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(package: Path, name: str) -> bool:
    """Whether ``name`` (``mesh_stream.<...>``) is a module or package of ``package``."""
    where = package.parent.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports_of(path: Path, package: Path = PACKAGE) -> list[tuple[str, int]]:
    """``(imported mesh_stream module, line)`` for every import in ``path``: absolute and
    relative ones, a submodule named by ``from package import submodule``, a public name of
    the package imported lazily (``from mesh_stream import LocalCluster`` loads the
    launcher), ``import_module("mesh_stream....")`` with a literal name, and the packages
    above each (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too)."""
    module = module_of(path, package)
    lazy: dict[str, str] = mesh_stream._LAZY  # type: ignore[attr-defined]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            for alias in node.names:
                if _is_module(package, f"{base}.{alias.name}"):
                    names.append(f"{base}.{alias.name}")
                elif base == "mesh_stream" and alias.name in lazy:
                    names.append(lazy[alias.name])
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            if not name.startswith("mesh_stream"):
                continue
            parts = name.split(".")
            found += [(".".join(parts[:n]), node.lineno) for n in range(2, len(parts) + 1)]
    return found


def upward_imports(package: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        module = module_of(path, package)
        own = layer_of(module)
        if own is None:
            continue
        for name, line in sorted(set(imports_of(path, package)), key=lambda f: (f[1], f[0])):
            other = layer_of(name)
            if other is not None and other > own:
                problems.append(
                    f"{module} (layer {own}) imports {name} (layer {other}) at line {line}"
                )
    return problems


def test_nothing_imports_upward() -> None:
    assert upward_imports(PACKAGE) == []


def layer_groups(package: Path = PACKAGE) -> dict[int, list[str]]:
    """The package's modules by layer."""
    groups: dict[int, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        module = module_of(path, package)
        layer = layer_of(module)
        if layer is not None:
            groups.setdefault(layer, []).append(module)
    return groups


_LOADED = (
    "import importlib, json, sys\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mesh_stream'))))\n"
)


def loaded_above(own: int, modules: list[str], search: Path | None = None) -> list[str]:
    """The modules of a layer above ``own`` that importing ``modules`` (all of layer
    ``own``'s) loads in a fresh interpreter, their own packages aside (a package's
    ``__init__`` runs for its submodules; what it imports is checked as its own).
    ``search``: a folder to find ``mesh_stream`` in first."""
    first = f"import sys; sys.path.insert(0, {str(search)!r})\n" if search else ""
    done = subprocess.run(
        [sys.executable, "-c", first + _LOADED, *modules],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, f"importing layer {own}'s modules failed:\n{done.stderr}"
    return [
        f"importing layer {own}'s modules loads {name} (layer {layer_of(name)})"
        for name in json.loads(done.stdout)
        if (layer_of(name) or 0) > own and not any(m.startswith(name + ".") for m in modules)
    ]


def test_nothing_loads_an_upper_layer_at_run_time() -> None:
    """What the static check cannot see when it runs as a module loads (a name computed for
    ``import_module``, a package's lazy names, ``__import__``; h41 found eight such ways):
    each layer's modules imported in a fresh interpreter load nothing of a layer above. An
    import inside a function body runs only when called: the source check covers literal
    names there."""
    groups = layer_groups()
    with ThreadPoolExecutor(2) as pool:
        found = pool.map(lambda layer: loaded_above(layer, groups[layer]), groups)
    assert [problem for problems in found for problem in problems] == []


def test_the_run_time_check_sees_a_computed_import(tmp_path: Path) -> None:
    fake = tmp_path / "mesh_stream"
    (fake / "schema").mkdir(parents=True)
    for init in (fake / "__init__.py", fake / "schema" / "__init__.py"):
        init.write_text("")
    (fake / "broker.py").write_text("")
    (fake / "schema" / "codec.py").write_text(
        "import importlib\nimportlib.import_module('mesh_stream.' + 'broker')\n"
    )
    assert upward_imports(fake) == []  # the static check cannot see it
    assert loaded_above(1, ["mesh_stream.schema.codec"], search=tmp_path) == [
        "importing layer 1's modules loads mesh_stream.broker (layer 4)"
    ]


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


def test_the_check_sees_relative_submodule_and_literal_imports(tmp_path: Path) -> None:
    """A design audit planted five upward imports; the first check saw two."""
    fake = tmp_path / "mesh_stream"
    for folder in ("schema", "registry/service", "broker"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "consumer.py").write_text("")
    (fake / "registry" / "client.py").write_text("")
    (fake / "schema" / "codec.py").write_text(
        "from .. import consumer\n"
        "from mesh_stream.registry import service\n"
        "import importlib\n"
        "importlib.import_module('mesh_stream.broker')\n"
    )
    assert upward_imports(fake) == [
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.consumer (layer 2) at line 1",
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.registry (layer 2) at line 2",
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.registry.service (layer 3) at "
        "line 2",
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.broker (layer 4) at line 4",
    ]


def test_a_lazy_public_name_counts_as_its_module(tmp_path: Path) -> None:
    fake = tmp_path / "mesh_stream"
    (fake / "schema").mkdir(parents=True)
    (fake / "schema" / "codec.py").write_text("from mesh_stream import LocalCluster\n")
    assert upward_imports(fake) == [
        "mesh_stream.schema.codec (layer 1) imports mesh_stream.broker (layer 4) at line 1"
    ]


def test_the_sdk_import_loads_no_server_governance_launcher_or_faust() -> None:
    code = (
        "import sys\n"
        "from mesh_stream import MeshSettings, ProductConsumer, open_publisher\n"
        "from mesh_stream import DataProduct, KafkaConnection, RegistryClient, load_descriptor\n"
        "banned = ('mesh_stream.registry.service', 'mesh_stream.registry.portal', "
        "'mesh_stream.governance', 'mesh_stream.broker', 'mesh_stream.processing', "
        "'mesh_stream.up', 'mesh_stream.monitor', 'mesh_stream.liveview', "
        "'mesh_stream.supervisor', 'mesh_stream.cli', 'mesh_stream.verify', "
        "'mesh_stream.bench', 'mesh_stream.exports', 'mesh_stream.products_plan', "
        "'mesh_stream.scaffold', 'faust', 'mode', 'aiokafka', 'rocksdict', 'fastapi', "
        "'starlette', 'uvicorn', 'jinja2')\n"
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
