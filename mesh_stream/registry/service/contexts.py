"""Confluent schema contexts: ``:.<context>:<subject>`` names a subject in another context.

The default context is ``.``: ``:.:orders.x-value`` and ``orders.x-value`` are one subject,
stored under the short name. A subject in another context is stored under its qualified
name, so its versions, config and mode are its own. Unlike Confluent, schema ids stay one
space for every context (an id names one schema everywhere), so imports into a context
keep ids only where they are free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mesh_stream.errors import InvalidSubjectNameError

DEFAULT_CONTEXT = "."
#: Confluent's wildcard "every context" prefix, e.g. ``GET /subjects?subjectPrefix=:*:``.
ANY_CONTEXT = ":*:"
_QUALIFIED = re.compile(r":(\.[A-Za-z0-9_.\-]*):(.+)", re.S)


def split_context(subject: str) -> tuple[str, str]:
    """``(context, name)`` of a subject; ``(".", subject)`` for an unqualified one.

    A name starting with ``:`` that is not ``:.<context>:<subject>`` is a 42215.
    """
    if not subject.startswith(":"):
        return DEFAULT_CONTEXT, subject
    found = _QUALIFIED.fullmatch(subject)
    if found is None:
        raise InvalidSubjectNameError(
            f"subject name {subject!r} starts with ':' but is not a qualified name; write "
            f"':.<context>:<subject>' (e.g. ':.staging:orders.order-placed.v1-value') with a "
            f"context of letters, digits, '.', '_' or '-'"
        )
    context = found.group(1)
    return (DEFAULT_CONTEXT if context == DEFAULT_CONTEXT else context), found.group(2)


def canonical_subject(subject: str) -> str:
    """The name a subject is stored under: the default context's prefix dropped."""
    context, name = split_context(subject)
    return name if context == DEFAULT_CONTEXT else subject


def owned_name(subject: str) -> str:
    """The part of a (possibly qualified) subject that names its domain, for authorization."""
    try:
        return canonical_subject(subject)
    except InvalidSubjectNameError:
        return subject


def contexts_in_use(subjects: Iterable[str]) -> list[str]:
    """``"."`` and every other context some subject is in, sorted."""
    found = {DEFAULT_CONTEXT}
    for subject in subjects:
        if subject.startswith(":"):
            found.add(split_context(subject)[0])
    return sorted(found)
