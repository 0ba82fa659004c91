"""The CEL package is loaded only when a product has rules: the SDK import and the contract
of a product without rules leave it out; a product with rules brings in its compiled core
only, not the package's command-line tool (typer, prompt-toolkit: about 0.6 s)."""

from __future__ import annotations

import subprocess
import sys

CONTRACT = (
    "import sys\n"
    "import mesh_stream, mesh_stream.producer, mesh_stream.registration\n"
    "from mesh_stream.contracts import compile_contract\n"
    "from mesh_stream.descriptor import DataProduct\n"
    "document = {'name': 'orders.placed', 'domain': 'orders', 'kind': 'source-aligned',\n"
    "    'description': 'd', 'owner': {'team': 't', 'contact': 'c'}, 'schema': 's.avsc',\n"
    "    'slos': {'freshness_seconds': 1.0, 'availability': 99.0},\n"
    "    'classification': 'internal', 'rules': RULES}\n"
    "schema = {'type': 'record', 'name': 'P', 'fields': [{'name': 'n', 'type': 'int'}]}\n"
    "compile_contract(DataProduct.model_validate(document), schema)\n"
    "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cel', 'typer')))\n"
)


def _cel_modules(rules: str) -> str:
    code = CONTRACT.replace("RULES", rules)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_no_rules_no_cel_import() -> None:
    assert _cel_modules("[]") == "[]"


def test_a_product_with_rules_loads_the_cel_core_only() -> None:
    assert _cel_modules("[{'name': 'positive', 'expr': 'message.n > 0'}]") == "['cel.cel']"
