"""Confluent's registry modes: who may write now, and when explicit ids may be imported.

* ``READWRITE`` (the default): normal registration, ids handed out by the registry.
* ``READONLY``: schema writes (register, delete) on the subject are refused (42205); a
  subject-level mode other than READONLY still wins over a global READONLY.
* ``READONLY_OVERRIDE``: like READONLY, and set globally it overrides every subject's mode.
* ``IMPORT``: registration keeps the ``id`` (and ``version``) the request names, without a
  compatibility check, so another registry's subjects can be copied with their ids; an id
  already naming another schema, or a version holding another one, is refused (42205).
  Switching a registry (or a subject) that already has schemas to IMPORT needs ``force``.

Modes live in the log as ``["mode", subject | null] -> {"mode": ...}`` (null = global; a
tombstone removes a subject's own mode), so they survive restarts and compaction.
"""

from __future__ import annotations

from enum import StrEnum

from mesh_stream.errors import InvalidModeError


class Mode(StrEnum):
    READWRITE = "READWRITE"
    READONLY = "READONLY"
    READONLY_OVERRIDE = "READONLY_OVERRIDE"
    IMPORT = "IMPORT"

    @property
    def writable(self) -> bool:
        return self not in (Mode.READONLY, Mode.READONLY_OVERRIDE)


DEFAULT_MODE = Mode.READWRITE


def parse_mode(value: object) -> Mode:
    """A mode from a request body; anything else is Confluent 42204."""
    if value is None:
        allowed = ", ".join(m.value for m in Mode)
        raise InvalidModeError(
            f'the body has no mode; send one of {allowed} (body {{"mode": "READONLY"}})'
        )
    try:
        return Mode(str(value).strip().upper())
    except ValueError:
        allowed = ", ".join(m.value for m in Mode)
        raise InvalidModeError(
            f'Invalid mode {str(value)[:40]!r}; use one of {allowed} (body {{"mode": "READONLY"}})'
        ) from None


def effective_mode(own: Mode | None, global_mode: Mode | None) -> Mode:
    """The mode a subject is in: a global READONLY_OVERRIDE, else its own, else the global."""
    if global_mode is Mode.READONLY_OVERRIDE:
        return global_mode
    return own or global_mode or DEFAULT_MODE
