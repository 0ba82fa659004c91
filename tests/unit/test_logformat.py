"""Log lines: one JSON object per line with ``MESH_LOG_FORMAT=json``, extra fields kept."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from mesh_stream.logformat import JsonFormatter, configure_logging


@pytest.fixture
def restored_root() -> Iterator[None]:
    """The root logger's handlers and level as they were (pytest's capture handler too)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extra_fields(restored_root: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = logging.getLogger("mesh_stream.registry.access")
    log.info(
        "GET /subjects 200",
        extra={"method": "GET", "path": "/subjects", "status": 200, "duration_ms": 1.25},
    )
    log.debug("below the level: not written")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "INFO"
    assert line["logger"] == "mesh_stream.registry.access"
    assert line["message"] == "GET /subjects 200"
    assert (line["method"], line["path"], line["status"], line["duration_ms"]) == (
        "GET",
        "/subjects",
        200,
        1.25,
    )
    assert datetime.fromisoformat(line["ts"]).utcoffset() == timedelta(0)  # UTC
    assert "exc_info" not in line


def test_a_traceback_and_a_multiline_message_stay_on_one_line(restored_root: None) -> None:
    out = io.StringIO()
    configure_logging(logging.WARNING, "json", stream=out)
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        logging.getLogger("mesh_stream.test").exception("failed:\nwhile testing")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "ERROR"
    assert line["message"] == "failed:\nwhile testing"
    assert line["exc_info"].startswith("Traceback")
    assert "ValueError: bad value" in line["exc_info"]


def test_values_json_cannot_hold_are_written_as_text() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.client = ("127.0.0.1", 5000)
    record.where = object()
    line = json.loads(JsonFormatter().format(record))
    assert line["client"] == ["127.0.0.1", 5000]
    assert line["where"].startswith("<object object")


def test_text_format_a_second_call_replaces_the_handler_and_undo_restores(
    restored_root: None,
) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    first, second = io.StringIO(), io.StringIO()
    undo_first = configure_logging("info", "text", stream=first)
    undo_second = configure_logging("info", "text", stream=second)
    logging.getLogger("mesh_stream.test").info("hello %s", "world")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("INFO mesh_stream.test: hello world")
    assert len(root.handlers) == 1
    undo_second()
    undo_first()
    assert (root.handlers, root.level) == (before, level)
