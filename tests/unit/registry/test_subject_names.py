"""Subject names: `..`, empty segments, control characters and URLs that are not UTF-8 are
refused with 422 and the rule named; nothing is stored under a mangled name."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mesh_stream.errors import InvalidSubjectNameError
from mesh_stream.registry.error_codes import status_and_code
from mesh_stream.registry.service.schemas import check_subject_name
from tests.unit.registry.conftest import ADMIN, make_client, schema

DOTS = "subjects are dot-separated names (e.g. orders.order-placed.v1-value)"

REFUSED = [
    ("orders..x", f"subject name 'orders..x' contains `..`; {DOTS}"),
    ("..", f"subject name '..' contains `..`; {DOTS}"),
    ("orders.x.", f"subject name 'orders.x.' starts or ends with `.` (an empty segment); {DOTS}"),
    (".orders", f"subject name '.orders' starts or ends with `.` (an empty segment); {DOTS}"),
    (".", f"subject name '.' starts or ends with `.` (an empty segment); {DOTS}"),
    (
        "payments.-value",
        "subject name 'payments.-value' starts or ends with `.` (an empty segment before its "
        f"-key/-value suffix); {DOTS}",
    ),
    (
        "payments.-key",
        "subject name 'payments.-key' starts or ends with `.` (an empty segment before its "
        f"-key/-value suffix); {DOTS}",
    ),
    ("a/b", "subject name 'a/b' contains a path separator"),
    (
        "orders\x00x",
        "subject name 'orders\\x00x' contains control, separator or surrounding blank characters",
    ),
    (
        "orders\x7fx",
        "subject name 'orders\\x7fx' contains control, separator or surrounding blank characters",
    ),
    (
        "orders\ud800x",
        "subject name 'orders\\ud800x' contains control, separator or surrounding blank characters",
    ),
    ("", "subject name must be 1 to 255 characters, got 0"),
]


@pytest.mark.parametrize(("name", "message"), REFUSED)
def test_bad_subject_names_are_refused_naming_the_rule(name: str, message: str) -> None:
    with pytest.raises(InvalidSubjectNameError) as raised:
        check_subject_name(name)
    assert raised.value.message == message
    assert status_and_code(raised.value) == (422, 42215)


@pytest.mark.parametrize(
    "name",
    ["orders.order-placed.v1-value", "orders.x-key", "my-subject", "a.b_c.D-1", "com.acme.Order"],
)
def test_ordinary_subject_names_pass(name: str) -> None:
    assert check_subject_name(name) == name


@pytest.mark.parametrize("name", ["orders..x", "orders.x.", "a\x01b"])
def test_the_registry_answers_422_42215_and_stores_nothing(name: str) -> None:
    client = make_client()
    path = f"/subjects/{quote(name, safe='')}/versions"
    response = client.post(path, json={"schema": schema()}, auth=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == 42215
    assert repr(name) in response.json()["message"]
    assert client.get("/subjects").json() == []


@pytest.mark.parametrize("raw", ["orders.%FFx-value", "orders.%C3x-value", "%ED%A0%80"])
def test_a_subject_that_is_not_utf8_is_refused_not_turned_into_u_fffd(raw: str) -> None:
    client = make_client()
    response = client.post(f"/subjects/{raw}/versions", json={"schema": schema()}, auth=ADMIN)
    assert response.status_code == 422, response.text
    assert "not valid UTF-8" in response.json()["message"]
    assert client.get("/subjects").json() == []
    lookup = client.get(f"/subjects/{raw}/versions")
    assert lookup.status_code == 422
