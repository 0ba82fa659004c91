"""Names in the URL path, compared with what routing read.

Routing reads the percent-decoded path, so a ``/`` sent as ``%2F`` inside a name is a path
separator there: ``GET /subjects/a%2Fversions`` is routed as subject ``a``'s version list,
``GET /products/X%2Fschemas`` as X's schema history. :func:`sent_segment` gives a name as the
client sent it (the raw path segment, decoded once), and each router taking a name checks it
against the routed one: products in :mod:`.products` (422, 42210), subjects here (422,
42215, :func:`subject_segment`, on the ``/subjects``, ``/config``, ``/mode`` and
``/compatibility`` routers).

A path holding a control character (a newline, at which routing stops) never reaches a
route: the HTTP edge refuses it first (:func:`~mesh_stream.registry.service.edge.check_url`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request

from mesh_stream.errors import InvalidSubjectNameError
from mesh_stream.settings import quoted_name


def sent_segment(request: Request, param: str, after: str) -> str:
    """The route's ``{param}`` as the client sent it: the raw path segment after the first
    segment ``after``, percent-decoded once.

    Routing splits the decoded path, so for ``/products/X%2Fschemas`` it finds ``X``; this
    is ``X/schemas``. A separator hidden before that segment (``/products%2FX``) gives the
    piece that hid it. Without a raw path (a server that sends none), the routed value.
    """
    routed = str(request.path_params.get(param, ""))
    raw = request.scope.get("raw_path")
    if not raw:
        return routed
    sent = [unquote_to_bytes(part).decode("utf-8", "replace") for part in raw.split(b"/")]
    if after in sent:
        at = sent.index(after) + 1
        return sent[at] if at < len(sent) else ""
    return next((part for part in sent if "/" in part), routed)


def check_subject_segment(request: Request, after: str) -> None:
    """Refuse a route's ``{subject}`` that routing read other than the client sent it.

    The subject segment as sent (:func:`sent_segment`) holding a ``/`` (sent as ``%2F``) is
    422 (42215) naming it; so is one that decodes to another subject than the routed one (a
    path decoded twice on its way). A ``/`` sent as ``/`` is left to the subject name's own
    check (:func:`~mesh_stream.registry.service.schemas.check_subject_name`, 42215). Routes
    without ``{subject}`` pass.
    """
    routed = request.path_params.get("subject")
    if routed is None:
        return
    routed = str(routed)
    sent = sent_segment(request, "subject", after)
    if "/" in sent:
        raise InvalidSubjectNameError(
            "the subject segment of the URL path holds a '/' (sent as %2F), which is never "
            f"read as a path separator and is not allowed in a subject name: {quoted_name(sent)}"
        )
    if sent != routed and not routed.startswith(sent + "/"):
        raise InvalidSubjectNameError(
            f"the subject segment of the URL path is {quoted_name(sent)} as sent, but routing "
            f"read the subject as {quoted_name(routed)}; send the subject name "
            f"percent-encoded once"
        )


def subject_segment(after: str) -> Any:
    """The dependency of a router whose routes take ``{subject}`` in the path segment right
    after the segment ``after`` (``subjects`` for ``/subjects`` and ``/compatibility``,
    ``config``, ``mode``)."""

    def check(request: Request) -> None:
        check_subject_segment(request, after)

    return Depends(check)
