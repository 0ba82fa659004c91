"""A request no route takes is told which route it asked for, not a bare "HTTP 404 Not
Found": a hand-written URL (a `/` typed inside a name, a method the route lacks) says what the
registry read. The body keeps ``error_code`` 404 (or 405), by which the registry client tells
"no such route" (a wrong URL) from "no such product" (40404)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_path_no_route_takes_is_named_with_its_method(client: TestClient) -> None:
    answer = client.get("/products/orders/order-placed")
    assert answer.status_code == 404
    assert answer.json() == {
        "error_code": 404,
        "message": "HTTP 404 Not Found: no route for GET '/products/orders/order-placed'; "
        "the API is described at /docs",
    }


def test_a_method_the_route_lacks_is_named_and_allow_kept(client: TestClient) -> None:
    answer = client.post("/products/orders.order-placed/schemas", json={})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.json()["error_code"] == 405
    assert answer.json()["message"] == (
        "HTTP 405 Method Not Allowed: no route for POST '/products/orders.order-placed/schemas'"
        "; the API is described at /docs"
    )


def test_allow_names_every_method_some_route_takes_at_the_path(client: TestClient) -> None:
    """h39: Starlette's Allow named only its first matching route's method."""
    for path, allowed in [
        ("/config", "DELETE, GET, PUT"),
        ("/products", "GET, POST"),
        ("/products/orders.customers", "DELETE, GET, PUT"),
    ]:
        answer = client.patch(path, json={})
        assert (answer.status_code, answer.headers["allow"]) == (405, allowed), path
    # a mounted app's own Allow (the portal's static files) is kept (h40)
    static = client.post("/ui/static/lineage.js")
    assert (static.status_code, static.headers["allow"]) == (405, "GET, HEAD")


def test_a_long_path_is_not_echoed_whole(client: TestClient) -> None:
    answer = client.get("/nowhere/" + "x" * 5_000)
    assert answer.status_code == 404
    message = answer.json()["message"]
    assert "... (5009 characters)" in message
    assert len(message) < 200


def test_a_decoded_control_character_in_an_unrouted_path_is_shown(client: TestClient) -> None:
    """The URL object drops some decoded characters; the message names the path as routed."""
    answer = client.get("/nowhere/a%0Db")
    assert answer.status_code == 404
    assert "no route for GET '/nowhere/a\\rb'" in answer.json()["message"]
