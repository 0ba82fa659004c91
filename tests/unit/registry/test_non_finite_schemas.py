"""Schema text with a number JSON cannot carry (``NaN``, ``Infinity``, ``-Infinity``,
``1e999``) is refused with 422 / 42201 naming its JSON path and literal, and nothing is
stored: before, it was registered and then served as ``Infinity`` (not JSON) or ``null``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.registry.conftest import ADMIN

SUBJECT = "orders.bigdef-value"
FIX = (
    "; JSON numbers are finite 64-bit floats (NaN and infinities have no JSON form): write a "
    "finite number"
)


def _record(default: str) -> str:
    return (
        '{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":'
        + default
        + "}]}"
    )


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("1e999", "number 1e999 is out of range for a 64-bit float"),
        ("-1e400", "number -1e400 is out of range for a 64-bit float"),
        ("NaN", "NaN is not JSON"),
        ("Infinity", "Infinity is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
    ],
)
def test_a_non_finite_default_is_refused_at_its_path_and_nothing_is_stored(
    client: TestClient, literal: str, reason: str
) -> None:
    message = f"Invalid schema: invalid Avro schema: fields[0].default: {reason}{FIX}"
    for url in (
        f"/subjects/{SUBJECT}/versions",
        f"/compatibility/subjects/{SUBJECT}/versions/latest",
    ):
        answer = client.post(url, json={"schema": _record(literal)}, auth=ADMIN)
        assert (answer.status_code, answer.json()) == (
            422,
            {"error_code": 42201, "message": message},
        )
    assert client.get("/subjects", auth=ADMIN).json() == []
    assert client.get("/schemas", auth=ADMIN).json() == []


def test_a_non_finite_custom_property_is_refused_at_its_path(client: TestClient) -> None:
    schema = '{"type":"record","name":"R","x-prop":NaN,"fields":[]}'
    answer = client.post(f"/subjects/{SUBJECT}/versions", json={"schema": schema}, auth=ADMIN)
    assert (answer.status_code, answer.json()) == (
        422,
        {
            "error_code": 42201,
            "message": f"Invalid schema: invalid Avro schema: x-prop: NaN is not JSON{FIX}",
        },
    )


def test_a_finite_double_default_is_served_as_registered_json(client: TestClient) -> None:
    answer = client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": _record("1.7e308")}, auth=ADMIN
    )
    assert answer.status_code == 200
    schema_id = answer.json()["id"]
    raw = client.get(f"/schemas/ids/{schema_id}/schema", auth=ADMIN)
    assert raw.json()["fields"][0]["default"] == 1.7e308
    assert (
        '"default":1.7e+308' in client.get(f"/schemas/ids/{schema_id}", auth=ADMIN).json()["schema"]
    )
