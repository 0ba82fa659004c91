"""How the platform's processes write log lines: text for people, JSON for log collectors.

``MESH_LOG_FORMAT=json`` gives one JSON object per line (``ts`` in ISO-8601 UTC, ``level``,
``logger``, ``message``, ``exc_info`` when there is a traceback, and every field passed with
``extra=``, e.g. the registry's access log: ``method``, ``path``, ``status``,
``duration_ms``, ``client``), so Loki, Elasticsearch or CloudWatch index fields instead of
parsing text. Only entry points (``mesh registry serve``, a processor's :func:`run`) call
:func:`configure_logging`; library code never configures logging.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = ["TEXT_FORMAT", "JsonFormatter", "LogFormat", "configure_logging", "json_or_text"]

LogFormat = Literal["text", "json"]

#: The text layout: time, level, logger, message (extra fields are not shown).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Libraries that log routine work at INFO (httpx: every request): shown from WARNING, unless
#: the level asked for is DEBUG, so `mesh monitor --once` prints no "HTTP Request: GET ..."
#: line.
CHATTY_LIBRARIES = ("httpx", "httpcore")

#: Attributes every ``LogRecord`` has; whatever else a record carries came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


def _plain(value: Any) -> Any:
    """``value`` if JSON can hold it as is, else its text (a log line never fails to print)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name not in line:
                line[name] = _plain(value)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    level: int | str, log_format: LogFormat, stream: TextIO | None = None
) -> Callable[[], None]:
    """Give the root logger one handler on ``stream`` (stderr) in ``log_format``, at ``level``.

    For entry points only. Libraries in :data:`CHATTY_LIBRARIES` log from WARNING unless
    ``level`` is DEBUG. Handlers the root logger had are replaced, so calling it twice
    does not print every line twice. Returns what undoes it (the root logger's handlers and
    level as they were), for a command run inside another process, such as a test's.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_or_text(log_format))
    for old in saved_handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    libraries = [logging.getLogger(name) for name in CHATTY_LIBRARIES]
    saved_library_levels = [library.level for library in libraries]
    if root.getEffectiveLevel() > logging.DEBUG:
        for library in libraries:
            library.setLevel(logging.WARNING)

    def undo() -> None:
        root.removeHandler(handler)
        for old in saved_handlers:
            root.addHandler(old)
        root.setLevel(saved_level)
        for library, library_level in zip(libraries, saved_library_levels, strict=True):
            library.setLevel(library_level)

    return undo


def json_or_text(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``: :class:`JsonFormatter` or :data:`TEXT_FORMAT`."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
