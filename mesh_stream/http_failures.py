"""A failed HTTP call said in words: what happened to the connection, not httpx's class name
(``ConnectError: [Errno 111] ...`` tells someone who did not write the code nothing they can
act on). One home for every place that reports one: the registry client, the command line, a
registry instance forwarding a write, `mesh up`'s look at a registry, the monitor's webhook.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator

import httpx

#: What a socket error number means to the one who reads the message.
_BY_ERRNO = {
    errno.ECONNREFUSED: "connection refused: nothing listens at that address",
    errno.EHOSTUNREACH: "no route to the host",
    errno.ENETUNREACH: "the network is unreachable",
    errno.ECONNRESET: "the connection was reset",
    errno.ECONNABORTED: "the connection was aborted",
    errno.EPIPE: "the connection was closed while sending",
    errno.ETIMEDOUT: "the connection timed out",
}
_ERRNO_TEXT = re.compile(r"\[Errno (-?\d+)\]")
_UNKNOWN_HOST = "the host name is not known (DNS)"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, in turn (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def failure_words(exc: BaseException, *, own_text: bool = True) -> str:
    """Why an HTTP call failed, in words: ``connection refused: nothing listens at that
    address``, ``the host name is not known (DNS)``, ``no answer in time``. Else the error's
    own first line, or with ``own_text=False`` (a URL that may hold a token: httpx puts the
    URL in some of its messages) only that the request failed."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection was not accepted in time"
    if isinstance(exc, httpx.ReadTimeout):
        return "no answer in time"
    if isinstance(exc, httpx.WriteTimeout):
        return "the request could not be sent in time"
    if isinstance(exc, httpx.PoolTimeout):
        return "no free connection in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        said = str(exc).strip().rstrip(".")
        if "without sending a response" in said or not said:
            return "the server closed the connection without an HTTP answer"
        return f"the answer is not HTTP ({said[:120]})"
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return _UNKNOWN_HOST
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, OSError) and cause.errno in _BY_ERRNO:
            return _BY_ERRNO[cause.errno]
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    number = _ERRNO_TEXT.search(text)
    if number is not None:  # only the text survived (anyio and httpcore re-raise as text)
        code = int(number.group(1))
        if code < 0:  # getaddrinfo's codes are negative
            return _UNKNOWN_HOST
        if code in _BY_ERRNO:
            return _BY_ERRNO[code]
    if not own_text:
        return "the request failed"
    return text or "the connection failed"
