"""A failed HTTP call is said in words, the same everywhere mesh reports one, never as
httpx's class name (``ConnectError: [Errno 111] ...``)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from mesh_stream.http_failures import failure_words


def _refused_url() -> str:
    with socket.socket() as probe:  # a port just freed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/subjects"


def test_a_refused_connection_is_said_so_from_the_sync_and_the_async_client() -> None:
    url = _refused_url()
    with pytest.raises(httpx.ConnectError) as sync_refusal:
        httpx.get(url, timeout=2)
    assert failure_words(sync_refusal.value) == (
        "connection refused: nothing listens at that address"
    )

    async def post() -> None:  # anyio says "All connection attempts failed"
        async with httpx.AsyncClient(timeout=2) as client:
            await client.post(url)

    with pytest.raises(httpx.ConnectError) as async_refusal:
        asyncio.run(post())
    assert str(async_refusal.value) == "All connection attempts failed"
    assert failure_words(async_refusal.value) == (
        "connection refused: nothing listens at that address"
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            httpx.ConnectError("[Errno -2] Name or service not known"),
            "the host name is not known (DNS)",
        ),
        (httpx.ConnectError("[Errno 113] No route to host"), "no route to the host"),
        (httpx.ReadTimeout("timed out"), "no answer in time"),
        (httpx.ConnectTimeout("timed out"), "the connection was not accepted in time"),
        (
            httpx.RemoteProtocolError("illegal status line"),
            "the answer is not HTTP (illegal status line)",
        ),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "the server closed the connection without an HTTP answer",
        ),
        (httpx.ConnectError("refused"), "refused"),
    ],
)
def test_each_failure_has_its_words(error: httpx.HTTPError, said: str) -> None:
    assert failure_words(error) == said


def test_a_message_that_may_hold_the_url_is_not_repeated_when_asked_not_to() -> None:
    """httpx puts the URL in some messages (a status error), and a webhook's URL may hold
    its token."""
    request = httpx.Request("POST", "https://hooks.example/t/secret-token")
    error = httpx.UnsupportedProtocol("Request URL https://hooks.example/t/secret-token ...")
    error.request = request
    assert failure_words(error, own_text=False) == "the request failed"
    assert "secret-token" in failure_words(error)
