"""Session windows: a key's sessions, how an event joins (and merges) them, and the one fold.

Which session an event belongs to depends on the key's other events, so a session processor's
re-key stage keys events by the aggregate key alone (:data:`SESSION_SUFFIX` marks its state
keys) and the aggregate agent finds the session among the key's own: :func:`place` puts an
event in the session it touches (within ``gap_ms``), starts one when it touches none, and
merges the sessions it bridges with the processor's ``merge``. The engine stores a key's
sessions as ``[[start_ms, end_ms, state, retired], ...]``, sorted by start, each more than
``gap_ms`` from the next; ``retired`` lists the starts the session had or took in by merging
(each an output key deleted with a tombstone), so a replay can send those tombstones again.

:func:`sessionize` is what the sessions must end as: the accepted events of a key, sorted by
event time and cut where two are more than ``gap_ms`` apart. The reference
(:func:`~mesh_stream.processing.reference.recompute`) folds each such session's events with
``apply`` alone, never ``merge``, so a ``merge`` that does not leave the state a single fold
would have made is found by comparing the two.
"""

from __future__ import annotations

import bisect
import copy
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
    """``merge(into, other)``, which changes ``into`` in place: a ProcessorError naming the
    key if it raises, or returns anything (which would be lost). A state ``apply`` left empty
    folded nothing, so ``merge`` is given two non-empty states: an empty ``other`` changes
    nothing, an empty ``into`` takes a copy of ``other``."""
    if not other:
        return
    if not into:
        into.update(copy.deepcopy(dict(other)))
        return
    try:
        returned = merge(into, other)
    except Exception as exc:
        raise ProcessorError(
            f"merge raised {type(exc).__name__} {exc} merging two sessions of key "
            f"{shown_key(key)} (it is given two states apply made: a KeyError names a key of "
            f"a state, not a field)"
        ) from exc
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
    """The session (``[start_ms, end_ms, state, retired]``, in ``sessions``) an event at
    ``event_ms`` joins, its bounds taking the event in: a new one with an empty state if it
    touches none; else the earliest it touches, into which ``merge`` folds the later ones it
    bridges (they leave ``sessions``, their starts going to ``retired``, as does the
    session's own start when the event moves it earlier). ``sessions`` stays sorted by start."""
    # sorted by start and more than gap_ms apart: the ones touching the event are adjacent,
    # from the first whose end is within gap_ms before it
    at = bisect.bisect_left(sessions, event_ms - window.gap_ms, key=_end)
    touching: list[list[Any]] = []
    while at + len(touching) < len(sessions):
        candidate = sessions[at + len(touching)]
        if not window.touches(candidate[0], candidate[1], event_ms):
            break
        touching.append(candidate)
    if not touching:
        session: list[Any] = [event_ms, event_ms, {}, []]
        sessions.insert(at, session)
        return session
    session = touching[0]
    retired = list(session[3])
    for other in touching[1:]:
        merge_checked(merge, session[2], other[2], key)
        session[1] = max(session[1], other[1])
        retired += [*other[3], other[0]]
    del sessions[at + 1 : at + len(touching)]
    if event_ms < session[0]:
        retired.append(session[0])
        session[0] = event_ms
    session[1] = max(session[1], event_ms)
    session[3] = retired
    return session


def _end(session: list[Any]) -> int:
    end: int = session[1]
    return end


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
