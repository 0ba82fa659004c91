"""Names in the URL path, compared with what routing read.

Routing reads the percent-decoded path, so a ``/`` sent as ``%2F`` inside a name is a path
separator there: ``GET /subjects/a%2Fversions`` is routed as subject ``a``'s version list,
``GET /products/X%2Fschemas`` as X's schema history. :func:`sent_segment` gives a name as the
client sent it (the raw path segment, decoded once), and each router taking a name checks it
against the routed one: products in :mod:`.products` (422, 42210), subjects here (422,
42215, :func:`subject_segment`, on the ``/subjects``, ``/config``, ``/mode`` and
``/compatibility`` routers).

Routing's ``{subject:path}`` (``.*``) also stops at a newline, so a subject holding one
(``%0A``) matched no route and the 404 showed the path with the newline dropped. The subject
routers build their routes with :class:`SubjectRoute`, which takes such a path too, so the
check refuses the subject by name with the newline shown escaped.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cached_property
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from mesh_stream.errors import InvalidRequestError, InvalidSubjectNameError
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


def _control_characters(text: str) -> list[str]:
    """The distinct control characters (Unicode category Cc) of ``text``, in order."""
    return list(dict.fromkeys(c for c in text if unicodedata.category(c) == "Cc"))


def check_subject_segment(request: Request, after: str) -> None:
    """Refuse a route's ``{subject}`` that routing read other than the client sent it.

    The subject segment as sent (:func:`sent_segment`) holding a ``/`` (sent as ``%2F``) or a
    control character (a newline, which routing's ``.*`` stops at, or drops at the end of the
    path) is 422 (42215) naming it, escaped; so is one that decodes to another subject than
    the routed one (a path decoded twice on its way). A newline elsewhere in the path is
    400 (40001): routing dropped it. A ``/`` sent as ``/`` is left to the subject name's own
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
    for name in (sent, routed):
        control = _control_characters(name)
        if control:
            shown = ", ".join(repr(c) for c in control[:5])
            raise InvalidSubjectNameError(
                f"the subject segment of the URL path holds a control character ({shown}), "
                f"which is not allowed in a subject name: {quoted_name(name)}"
            )
    path = str(request.scope.get("path", ""))
    if "\n" in path:
        raise InvalidRequestError(
            f"the URL path {quoted_name(path)} holds a newline ('\\n') outside the subject "
            f"name; no registry route takes one",
            status=400,
            error_code=40001,
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


class SubjectRoute(APIRoute):
    """A route whose ``{subject:path}`` takes a newline too.

    ``path``'s ``.*`` stops at a newline, so ``/subjects/a%0Ab/versions`` matched no route;
    when the usual match finds nothing for a path holding one, this matches the route's own
    pattern across lines (to the path's very end, ``\\Z``), and :func:`subject_segment` then
    refuses the subject by name. The route's path, template and count stay as declared.
    (The routers using it are included without a prefix: the route's own pattern is the
    one the app matches.)
    """

    @cached_property
    def _across_lines(self) -> re.Pattern[str]:
        pattern = self.path_regex.pattern
        return re.compile(pattern.removesuffix("$") + r"\Z", re.DOTALL)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        path = str(scope.get("path", ""))
        if match is not Match.NONE or scope["type"] != "http" or "\n" not in path:
            return match, child_scope
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root + "/"):
            path = path[len(root) :]
        found = self._across_lines.match(path)
        if found is None:
            return Match.NONE, {}
        params = dict(scope.get("path_params", {}))
        for key, value in found.groupdict().items():
            params[key] = self.param_convertors[key].convert(value)
        child_scope = {"endpoint": self.endpoint, "path_params": params, "route": self}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child_scope
        return Match.FULL, child_scope
