"""What a domain service pays for ``import mesh_stream``: the SDK, not the platform.

Each check runs in a fresh interpreter, since this test process has loaded everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules the SDK import must not load: the platform team's layers and their libraries.
FORBIDDEN = (
    "mesh_stream.governance",
    "mesh_stream.registry.service",
    "mesh_stream.broker",
    "mesh_stream.up",
    "mesh_stream.liveview",
    "mesh_stream.supervisor",
    "mesh_stream.processing",
    "mesh_stream.bench",
    "mesh_stream.cli",
    "fastapi",
    "starlette",
    "uvicorn",
    "faust",
    "mode",
    "aiokafka",
    "rocksdict",
    "cryptography",
    "prometheus_client",
)
#: Today about 550 (most of them pydantic, httpx, fastavro, confluent-kafka and the
#: standard library); the budget catches a new heavy import, not a small one.
MODULE_BUDGET = 650

SDK_IMPORTS = (
    "import mesh_stream",
    "from mesh_stream import open_publisher, ProductConsumer, MeshSettings, RegistryClient",
)


def _modules_after(statement: str, before: str = "") -> dict[str, list[str]]:
    """``sys.modules`` of a fresh interpreter after ``before`` and then ``statement``."""
    code = (
        "import json, sys\n"
        f"{before}\n"
        "first = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps({'all': sorted(sys.modules), "
        "'new': sorted(set(sys.modules) - first)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: dict[str, list[str]] = json.loads(done.stdout)
    return loaded


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.mark.parametrize("statement", SDK_IMPORTS)
def test_the_sdk_import_loads_no_platform_module(statement: str) -> None:
    modules = _modules_after(statement)["all"]
    assert _forbidden(modules) == []
    print(f"{statement}: {len(modules)} modules")  # shown with -s / -rP
    assert len(modules) < MODULE_BUDGET, f"{statement} loads {len(modules)} modules"


def test_the_sdk_itself_does_not_load_rich() -> None:
    """rich is in sys.modules after the SDK import only because httpx imports its own CLI
    (httpx._main: click, rich, pygments) when they are installed; mesh_stream adds none."""
    new = _modules_after(SDK_IMPORTS[1], before="import httpx")["new"]
    assert [m for m in new if m.split(".")[0] in {"rich", "pygments", "click"}] == []
    assert "mesh_stream.producer" in new  # the import did run


def test_the_check_sees_a_forbidden_module() -> None:
    modules = _modules_after("import mesh_stream.governance")["all"]
    assert "mesh_stream.governance" in _forbidden(modules)
