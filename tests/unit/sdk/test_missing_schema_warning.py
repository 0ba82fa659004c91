"""A product of the project whose `.avsc` is missing publishes with the registry's latest
schema, and says so (h34: a service image that forgot its schema published silently)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mesh_stream.producer import local_product, warn_if_schema_missing
from mesh_stream.project import load_project
from mesh_stream.scaffold import scaffold


def test_a_missing_schema_of_a_local_product_is_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scaffold("shipping", tmp_path)
    project = load_project(tmp_path)
    local = local_product("shipping.example-event", project)
    with caplog.at_level(logging.WARNING, logger="mesh_stream.producer"):
        warn_if_schema_missing(local, project)
        assert caplog.records == []  # the schema is there: nothing to say
        (tmp_path / "schemas/shipping/example-event.avsc").unlink()
        warn_if_schema_missing(local, project)
    [record] = caplog.records
    assert record.getMessage() == (
        "shipping.example-event: its schema schemas/shipping/example-event.avsc is not in the "
        f"project ({tmp_path / 'schemas/shipping/example-event.avsc'}); publishing with the "
        "latest schema registered for shipping.example-event.v1-value"
    )
