"""Fixture trees for governance tests.

``fixtures/good`` is a small, lint-clean mesh of three domains (shop, people with a PII
product, insights with a consumer-aligned product declaring field lineage). Every other
folder under ``fixtures/`` holds only the files that differ from ``good``: the tree of a
case is ``good`` with the case's files copied over it, so each case shows exactly what is
deliberately wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.registry_stubs import answering, silent

FIXTURES = Path(__file__).parent / "fixtures"


def build_tree(case: str, destination: Path) -> Path:
    """``fixtures/good`` overlaid with ``fixtures/<case>``, copied to ``destination``."""
    root = destination / case
    shutil.copytree(FIXTURES / "good", root)
    if case != "good":
        shutil.copytree(FIXTURES / case, root, dirs_exist_ok=True)
    return root


def line_containing(path: Path, text: str) -> int:
    """1-based number of the only line of ``path`` that contains ``text``."""
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, f"{text!r} occurs on lines {lines} of {path}"
    return lines[0]


@pytest.fixture
def mesh_tree(tmp_path: Path) -> Callable[[str], Path]:
    """Build the tree of a fixture case in a temporary folder and return its root."""
    return lambda case: build_tree(case, tmp_path)


# -- registries that answer badly (tests/registry_stubs.py) ---------------------------------


@contextmanager
def silent_registry() -> Iterator[str]:
    """The URL of a socket that accepts connections and never answers (a read timeout)."""
    with silent() as (url, _accepted):
        yield url


answering_registry = answering
