"""A schema id the writer registered a moment ago is found on a follower whose view trails.

A consumer reading through a follower instance dead-letters a record whose schema id the
registry answers "not found" (40403): an instance that does not know an id or guid catches
its view up with the log once before it says so.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mesh_stream.registry.service import create_app
from mesh_stream.registry.service.auth import Credentials
from tests.unit.registry.conftest import ORDERS, TOKENS, SharedLog, TrailingStore, schema

SUBJECT = "orders.order-placed.v1-value"


def _instances() -> tuple[TestClient, TestClient, TrailingStore]:
    """A writer and a follower on one log; the follower reads it only when it catches up."""
    log = SharedLog()
    follower_store = TrailingStore(log)
    writer = TestClient(create_app(TrailingStore(log), credentials=Credentials(TOKENS)))
    follower = TestClient(create_app(follower_store, credentials=Credentials(TOKENS)))
    return writer, follower, follower_store


@pytest.mark.parametrize(
    "path",
    [
        "/schemas/ids/{id}",
        "/schemas/ids/{id}/schema",
        "/schemas/ids/{id}/subjects",
        "/schemas/ids/{id}/versions",
        "/schemas/guids/{guid}",
    ],
)
def test_a_trailing_instance_finds_a_schema_registered_through_another(path: str) -> None:
    writer, follower, follower_store = _instances()
    registered = writer.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    )
    assert registered.status_code == 200, registered.text
    asked = path.format(id=registered.json()["id"], guid=registered.json()["guid"])
    assert follower_store.catch_ups == 0
    found = follower.get(asked)
    assert found.status_code == 200, found.text
    assert follower_store.catch_ups == 1
    # Known now: answered from the view, without asking the log again.
    assert follower.get(asked).status_code == 200
    assert follower_store.catch_ups == 1


def test_an_id_the_log_does_not_hold_is_not_found_after_one_catch_up() -> None:
    _writer, follower, follower_store = _instances()
    missing = follower.get("/schemas/ids/999")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert follower_store.catch_ups == 1
