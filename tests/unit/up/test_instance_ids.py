"""The group instance ids `mesh up` gives its processors: stable for one mesh, distinct
between meshes, and valid for Kafka."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_stream.up.orchestrator import _instance_id

KAFKA_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def test_the_same_mesh_keeps_its_ids_across_restarts(tmp_path: Path) -> None:
    name = "analytics.revenue-by-region"
    first = _instance_id(name, tmp_path / "mesh")
    assert first == _instance_id(name, tmp_path / "mesh")
    assert first.startswith("analytics.revenue-by-region-")
    assert KAFKA_ID.fullmatch(first)


def test_two_meshes_on_one_broker_get_different_ids(tmp_path: Path) -> None:
    name = "analytics.revenue-by-region"
    assert _instance_id(name, tmp_path / "a") != _instance_id(name, tmp_path / "b")


def test_any_name_becomes_a_valid_id(tmp_path: Path) -> None:
    for name in ("revenue by region/é", "", "x" * 500):
        assert KAFKA_ID.fullmatch(_instance_id(name, tmp_path)), name
