"""A subject path segment holding a percent-encoded ``/`` or a newline reaches no other route.

Routing reads the decoded path, so ``GET /subjects/S%2Fversions`` was answered as S's version
list and ``DELETE /subjects/S%2Fversions%2F1`` deleted S's version 1: every route taking a
subject (``/subjects``, ``/config``, ``/mode``, ``/compatibility``) now answers 422 (42215)
naming the segment as sent. ``{subject:path}``'s ``.*`` stopped at a newline, so
``/subjects/a%0Ab/versions`` was a 404 showing the path without it, and ``DELETE
/subjects/S%0A`` (a newline at the end, which the route pattern's ``$`` ignores) deleted S:
the HTTP edge now refuses any path holding a control character, 400 (40001), naming it
escaped, before any route.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, make_client, schema, send_raw

SUBJECT = "orders.order-placed.v1-value"


def separator_message(segment: str) -> str:
    """The 422's message for a subject segment that decodes to ``segment`` (holding '/')."""
    return (
        "the subject segment of the URL path holds a '/' (sent as %2F), which is never read "
        f"as a path separator and is not allowed in a subject name: {segment!r}"
    )


def newline_message(path: str) -> str:
    """The edge's 400 message for a URL path (decoded) holding a newline."""
    return f"the URL path {path!r} holds a newline ('\\n'); no registry name or route has one"


def _register(client: TestClient) -> None:
    registered = client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    )
    assert registered.status_code == 200, registered.text


@pytest.fixture
def orders() -> TestClient:
    """A registry holding one version of orders.order-placed.v1-value."""
    client = make_client()
    _register(client)
    return client


def _state(client: TestClient) -> list[Any]:
    """What a smuggled write could change: subjects, versions, the subject's config and mode."""
    return [
        client.get("/subjects", params={"deleted": "true"}).json(),
        client.get(f"/subjects/{SUBJECT}/versions", params={"deleted": "true"}).json(),
        client.get(f"/config/{SUBJECT}").json(),
        client.get(f"/mode/{SUBJECT}").json(),
    ]


#: (method, path, what the subject segment decodes to): each path, read decoded, is another
#: route's for SUBJECT (or names SUBJECT's config or mode).
SMUGGLED = [
    ("GET", f"/subjects/{SUBJECT}%2Fversions", f"{SUBJECT}/versions"),
    ("GET", f"/subjects/{SUBJECT}%2fversions%2F1", f"{SUBJECT}/versions/1"),
    ("GET", f"/subjects/{SUBJECT}%2Fversions/1", f"{SUBJECT}/versions"),
    (
        "GET",
        f"/subjects/{SUBJECT}%2Fversions%2Flatest%2Fschema",
        f"{SUBJECT}/versions/latest/schema",
    ),
    ("GET", f"/subjects/{SUBJECT}%2Fmetadata", f"{SUBJECT}/metadata"),
    ("POST", f"/subjects/{SUBJECT}%2Fversions", f"{SUBJECT}/versions"),
    ("DELETE", f"/subjects/{SUBJECT}%2Fversions%2F1", f"{SUBJECT}/versions/1"),
    ("GET", f"/subjects/%2F{SUBJECT}/versions", f"/{SUBJECT}"),
    ("GET", f"/subjects/{SUBJECT}%2F/versions", f"{SUBJECT}/"),
    ("GET", f"/config/{SUBJECT}%2Fx", f"{SUBJECT}/x"),
    ("PUT", f"/config/x%2F{SUBJECT}", f"x/{SUBJECT}"),
    ("DELETE", f"/mode/x%2F{SUBJECT}", f"x/{SUBJECT}"),
    ("POST", f"/compatibility/subjects/{SUBJECT}%2Fversions/latest", f"{SUBJECT}/versions"),
    (
        "POST",
        f"/compatibility/subjects/{SUBJECT}%2Fversions%2Flatest",
        f"{SUBJECT}/versions/latest",
    ),
]


@pytest.mark.parametrize(("method", "path", "segment"), SMUGGLED)
def test_an_encoded_slash_in_the_subject_segment_is_a_422_naming_it(
    orders: TestClient, method: str, path: str, segment: str
) -> None:
    before = _state(orders)
    body = {"schema": schema(), "compatibility": "NONE", "mode": "READONLY"}
    answer = orders.request(
        method, path, json=body if method in ("POST", "PUT") else None, auth=ADMIN
    )
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"error_code": 42215, "message": separator_message(segment)}
    assert _state(orders) == before


def test_an_encoded_slash_is_refused_before_authorization(orders: TestClient) -> None:
    """A domain's write to another subject behind a ``%2F`` is the subject's 422, not a 403
    naming a subject the client never sent."""
    answer = orders.put(
        f"/config/payments.x%2F{SUBJECT}", json={"compatibility": "NONE"}, auth=ORDERS
    )
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error_code": 42215,
        "message": separator_message(f"payments.x/{SUBJECT}"),
    }


def test_a_separator_hidden_before_the_subject_segment_is_refused_too(
    orders: TestClient,
) -> None:
    answer = orders.get(f"/%73ubjects%2F{SUBJECT}/versions", auth=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error_code": 42215,
        "message": separator_message(f"subjects/{SUBJECT}"),
    }


def test_a_double_encoded_slash_routed_twice_decoded_is_refused(orders: TestClient) -> None:
    """Starlette's TestClient decodes the path twice (like a proxy that decodes once more):
    routing then reads ``S/versions`` where the server was sent ``S%2Fversions``."""
    answer = orders.get(f"/subjects/{SUBJECT}%252Fversions", auth=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error_code": 42215,
        "message": f"the subject segment of the URL path is '{SUBJECT}%2Fversions' as sent, "
        f"but routing read the subject as '{SUBJECT}'; send the subject name percent-encoded "
        "once",
    }


#: (method, path, the path decoded): a newline matched no route (404), or the wrong one.
NEWLINES = [
    ("GET", "/subjects/a%0Ab/versions", "/subjects/a\nb/versions"),
    ("GET", "/subjects/%0A/versions", "/subjects/\n/versions"),
    ("GET", "/subjects/a%0D%0Ab/versions/1", "/subjects/a\r\nb/versions/1"),
    ("POST", "/subjects/a%0Ab/versions", "/subjects/a\nb/versions"),
    ("POST", "/subjects/a%0Ab", "/subjects/a\nb"),
    ("GET", "/config/a%0Ab", "/config/a\nb"),
    ("PUT", "/config/a%0Ab", "/config/a\nb"),
    ("GET", "/mode/a%0Ab", "/mode/a\nb"),
    ("DELETE", "/mode/a%0Ab", "/mode/a\nb"),
    ("POST", "/compatibility/subjects/a%0Ab/versions", "/compatibility/subjects/a\nb/versions"),
    (
        "POST",
        "/compatibility/subjects/a%0Ab/versions/latest",
        "/compatibility/subjects/a\nb/versions/latest",
    ),
]


@pytest.mark.parametrize(("method", "path", "decoded"), NEWLINES)
def test_a_newline_in_the_path_is_a_400_naming_it_escaped(
    orders: TestClient, method: str, path: str, decoded: str
) -> None:
    body = {"schema": schema(), "compatibility": "NONE", "mode": "READONLY"}
    answer = orders.request(
        method, path, json=body if method in ("POST", "PUT") else None, auth=ADMIN
    )
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error_code": 40001, "message": newline_message(decoded)}
    assert "\n" not in answer.json()["message"]


def test_a_trailing_newline_deletes_nothing(orders: TestClient) -> None:
    """The route pattern's ``$`` matches before a final newline: ``DELETE /subjects/S%0A``
    was routed as S's delete."""
    before = _state(orders)
    answer = orders.delete(f"/subjects/{SUBJECT}%0A", auth=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error_code": 40001,
        "message": newline_message(f"/subjects/{SUBJECT}\n"),
    }
    assert orders.delete(f"/config/{SUBJECT}%0A", auth=ADMIN).status_code == 400
    assert orders.get(f"/subjects/{SUBJECT}/versions%0A", auth=ADMIN).status_code == 400
    assert _state(orders) == before


#: Hostile variants and their exact answers (status, error_code, text in the message).
HOSTILE = [
    ("/subjects/%2F/versions", 422, 42215, "in a subject name: '/'"),
    ("/subjects/%2F%2F%2F/versions", 422, 42215, "in a subject name: '///'"),
    ("/subjects/%00/versions", 422, 42215, "contains control"),
    ("/subjects/a%00%0Ab%1F/versions", 400, 40001, "'/subjects/a\\x00\\nb\\x1f/versions'"),
    ("/subjects/" + "x" * 5000 + "%2Fversions", 422, 42215, "'... (5009 characters)"),
    ("/subjects/" + "x" * 5000 + "%0A/versions", 400, 40001, "'... (5020 characters)"),
    ("/subjects/%0A" + "%2F" * 1000 + "/versions", 400, 40001, "(1020 characters)"),
    ("/config/" + "%0A" * 3000, 400, 40001, "holds a newline ('\\n')"),
]


@pytest.mark.parametrize(("path", "status", "code", "text"), HOSTILE)
def test_hostile_subject_segments_are_a_clean_4xx(
    orders: TestClient, path: str, status: int, code: int, text: str
) -> None:
    before = _state(orders)
    for method in ("GET", "DELETE"):
        answer = orders.request(method, path, auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (status, code), answer.text
        assert text in answer.json()["message"]
        assert len(answer.json()["message"]) < 300
    assert _state(orders) == before


# -- over real HTTP -------------------------------------------------------------------------


@pytest.fixture
def served_orders() -> Iterator[str]:
    """A registry over uvicorn holding orders.order-placed.v1-value; its URL."""
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))
    _register(TestClient(app))
    running = RegistryServer(app)
    try:
        yield running.start()
    finally:
        running.stop()


def test_a_real_server_refuses_the_encoded_slash_and_the_newline(served_orders: str) -> None:
    status, body = send_raw(served_orders, "GET", f"/subjects/{SUBJECT}%2Fversions")
    assert (status, body) == (
        422,
        {"error_code": 42215, "message": separator_message(f"{SUBJECT}/versions")},
    )
    status, body = send_raw(served_orders, "DELETE", f"/subjects/{SUBJECT}%2Fversions%2F1")
    assert (status, body) == (
        422,
        {"error_code": 42215, "message": separator_message(f"{SUBJECT}/versions/1")},
    )
    status, body = send_raw(served_orders, "GET", "/subjects/a%0Ab/versions")
    assert (status, body) == (
        400,
        {"error_code": 40001, "message": newline_message("/subjects/a\nb/versions")},
    )
    status, body = send_raw(served_orders, "DELETE", f"/subjects/{SUBJECT}%0A")
    assert (status, body) == (
        400,
        {"error_code": 40001, "message": newline_message(f"/subjects/{SUBJECT}\n")},
    )
    # Decoded once by the server, %252F is a subject holding "%2F": no subject by that name.
    status, body = send_raw(served_orders, "GET", f"/subjects/{SUBJECT}%252Fx/versions")
    assert (status, body) == (
        404,
        {"error_code": 40401, "message": f"Subject '{SUBJECT}%2Fx' not found."},
    )
    # A '/' sent as '/' stays the subject name's own refusal.
    status, body = send_raw(served_orders, "GET", "/subjects/a/b/versions")
    assert (status, body) == (
        422,
        {"error_code": 42215, "message": "subject name 'a/b' contains a path separator"},
    )
    status, body = send_raw(served_orders, "GET", f"/subjects/{SUBJECT}/versions")
    assert (status, body) == (200, [1])
