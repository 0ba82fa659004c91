"""Session windows: a key's sessions, how an event joins (and merges) them, and the one fold.

Which session an event belongs to depends on the key's other events, so a session processor's
re-key stage keys events by the aggregate key alone (:data:`SESSION_SUFFIX` marks its state
keys) and the aggregate agent finds the session among the key's own: :func:`place` puts an
event in the session it touches (within ``gap_ms``), starts one when it touches none, and
merges the sessions it bridges with the processor's ``merge``. The engine stores a key's
sessions as ``[[start_ms, end_ms, state], ...]``, sorted by start, each more than ``gap_ms``
from the next.

:func:`sessionize` is what the sessions must end as: the accepted events of a key, sorted by
event time and cut where two are more than ``gap_ms`` apart. The reference
(:func:`~mesh_stream.processing.reference.recompute`) folds each such session's events with
``apply`` alone, never ``merge``, so a ``merge`` that does not leave the state a single fold
would have made is found by comparing the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mesh_stream.errors import ProcessorError
from mesh_stream.processing.spec import Session, shown_key

__all__ = [
    "SESSIONS",
    "SESSION_SUFFIX",
    "merge_checked",
    "place",
    "session_state_key",
    "sessionize",
]

#: What ends the state key (and internal Kafka key) of a session processor's aggregate key:
#: never a window's ``@<start>`` nor the window clock's key, so neither is mistaken for it.
SESSION_SUFFIX = "@session"
#: The stored value's entry holding the key's sessions.
SESSIONS = "sessions"

Item = TypeVar("Item")


def session_state_key(key: str) -> str:
    """The state key of aggregate key ``key``'s sessions."""
    return key + SESSION_SUFFIX


def merge_checked(
    merge: Callable[[dict[str, Any], Mapping[str, Any]], object],
    into: dict[str, Any],
    other: Mapping[str, Any],
    key: str,
) -> None:
    """``merge(into, other)``, which changes ``into`` in place: a ProcessorError if it returns
    anything, which would be lost."""
    returned = merge(into, other)
    if returned is not None:
        raise ProcessorError(
            f"merge returned {type(returned).__name__} merging sessions of key "
            f"{shown_key(key)}, which would be lost; it must change the state it is given "
            f"first (into) in place and return None"
        )


def place(
    window: Session,
    sessions: list[list[Any]],
    event_ms: int,
    merge: Callable[[dict[str, Any], Mapping[str, Any]], object],
    key: str,
) -> list[Any]:
    """The session (``[start_ms, end_ms, state]``, in ``sessions``) an event at ``event_ms``
    joins, its bounds taking the event in: a new one with an empty state if it touches none;
    else the earliest it touches, into which ``merge`` folds the later ones it bridges (they
    leave ``sessions``). ``sessions`` stays sorted by start."""
    touching = [s for s in sessions if window.touches(s[0], s[1], event_ms)]
    if not touching:
        session: list[Any] = [event_ms, event_ms, {}]
        at = next((i for i, s in enumerate(sessions) if s[0] > event_ms), len(sessions))
        sessions.insert(at, session)
        return session
    session = touching[0]
    for other in touching[1:]:
        merge_checked(merge, session[2], other[2], key)
        session[1] = max(session[1], other[1])
        sessions.remove(other)
    session[0] = min(session[0], event_ms)
    session[1] = max(session[1], event_ms)
    return session


def sessionize(
    window: Session, events: list[tuple[int, Item]]
) -> list[tuple[int, int, list[Item]]]:
    """The sessions of one key's ``(event_ms, item)`` pairs: ``(start, end, items)``, by start,
    each session's items in the order given."""
    ordered = sorted(range(len(events)), key=lambda i: events[i][0])
    found: list[tuple[int, int, list[int]]] = []
    for index in ordered:
        event_ms = events[index][0]
        if found and event_ms - found[-1][1] <= window.gap_ms:
            start, _end, members = found[-1]
            members.append(index)
            found[-1] = (start, event_ms, members)
        else:
            found.append((event_ms, event_ms, [index]))
    return [(start, end, [events[i][1] for i in sorted(members)]) for start, end, members in found]
