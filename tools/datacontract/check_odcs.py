"""Check ODCS contracts with the tools `make odcs-tools` installs (run by .tools/datacontract's
Python, never by the project's venv, whose lock does not hold them).

    check_odcs.py schema FILE...   validate each YAML contract against the ODCS v3 JSON Schema
                                   shipped by the open-data-contract-standard package
    check_odcs.py lint FILE...     what `datacontract lint FILE` runs (DataContract.lint), in one
                                   process instead of one CLI start per file

Prints one line per file (`ok FILE` or `FAIL FILE: reasons`) and exits 1 when any fails.
"""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any


def schema_problems(paths: list[Path]) -> dict[Path, list[str]]:
    import jsonschema
    import yaml

    schema = json.loads(
        files("open_data_contract_standard").joinpath("schema.json").read_text("utf-8")
    )
    validator = jsonschema.Draft201909Validator(
        schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER
    )
    problems = {}
    for path in paths:
        document = yaml.safe_load(path.read_text("utf-8"))
        problems[path] = [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(document)
        ]
    return problems


def check_each_schema_once() -> None:
    """datacontract's lint checks the ODCS JSON Schema against its meta-schema for every
    contract (about 2 s of CPU each); the schema is the same file each time, so check each
    distinct schema once and let later contracts reuse that verdict."""
    from jsonschema import validators

    verdicts: set[str] = set()
    for cls in set(validators._META_SCHEMAS.values()):
        original = cls.check_schema

        def check_once(schema: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            key = json.dumps(schema, sort_keys=True)
            if key not in verdicts:
                _original(schema, *args, **kwargs)  # raises on an invalid schema
                verdicts.add(key)

        cls.check_schema = staticmethod(check_once)


def lint_problems(paths: list[Path]) -> dict[Path, list[str]]:
    from datacontract.data_contract import DataContract

    check_each_schema_once()
    problems = {}
    for path in paths:
        run = DataContract(data_contract_file=str(path)).lint()
        problems[path] = [
            f"{check.name}: {check.reason}"
            for check in run.checks
            if str(getattr(check.result, "value", check.result)) != "passed"
        ]
        if not run.has_passed():
            problems[path].append(f"lint result {run.result}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("schema", "lint"):
        print(__doc__, file=sys.stderr)
        return 2
    paths = [Path(arg) for arg in argv[1:]]
    check = schema_problems if argv[0] == "schema" else lint_problems
    failed = False
    for path, problems in check(paths).items():
        if problems:
            failed = True
            print(f"FAIL {path}: " + "; ".join(problems))
        else:
            print(f"ok {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
