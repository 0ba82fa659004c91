"""What a hostile campaign found the registry answering wrongly: a compatibility check that
said yes to a body registration refuses, an unknown schema id in a sample said to be an
HTTP 500, Basic credentials that are not UTF-8 called not base64, and two Authorization
headers of which the first silently won."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from confluent_kafka import Message
from fastapi.testclient import TestClient

from mesh_stream.errors import SchemaNotFoundError
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.sample import ProductSampler
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, descriptor, schema

SUBJECT = "orders.order-placed.v1-value"
BAD_RULE_SET = {"domainRules": [{"name": "r", "kind": "CHECK", "mode": "WRITE", "type": "CEL"}]}
PAYMENTS = ("payments", TOKENS["payments"])


def _basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


# -- 4. the compatibility check validates the body as registration does ----------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ruleSet", BAD_RULE_SET),
        ("ruleSet", {"extraRules": []}),
        ("ruleSet", "rules"),
        ("metadata", {"labels": {}}),
        ("metadata", {"properties": {"owner": 3}}),
        ("metadata", []),
    ],
)
@pytest.mark.parametrize("against", ["", "/latest", "/1"])
def test_the_compatibility_check_refuses_what_registration_refuses(
    client: TestClient, field: str, value: Any, against: str
) -> None:
    first = client.post(f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS)
    assert first.status_code == 200, first.text
    body = {"schema": schema("note"), field: value}
    registered = client.post(f"/subjects/{SUBJECT}/versions", json=body, auth=ORDERS)
    assert (registered.status_code, registered.json()["error_code"]) == (422, 42201)
    checked = client.post(f"/compatibility/subjects/{SUBJECT}/versions{against}", json=body)
    assert (checked.status_code, checked.json()) == (422, registered.json()), checked.text
    # a well-formed body is checked as before
    fine = {"schema": schema("note"), "ruleSet": {"domainRules": []}, "metadata": {}}
    answer = client.post(f"/compatibility/subjects/{SUBJECT}/versions{against}", json=fine)
    assert answer.json() == {"is_compatible": True}


# -- 5a. an unknown schema id in a sample claims no HTTP status --------------------------------


def test_a_sampled_record_of_an_unknown_schema_id_says_it_is_not_registered() -> None:
    app = create_app(InMemoryStore())
    services: Services = app.state.services
    services.schemas.register(SUBJECT, schema())
    services.products.put(descriptor(), principal="admin")
    product = services.products.get_product("orders.order-placed")
    assert product is not None
    sampler = ProductSampler(KafkaConnection.create("127.0.0.1:1"), services.products)
    framed = b"\x00" + (99999).to_bytes(4, "big") + b"\x02a"
    message = Message(topic=product.topic, partition=0, offset=3, value=framed, timestamp=(1, 5))
    [record] = sampler.assemble(product, [message], "orders", limit=5).records
    assert record.error is not None
    assert "schema id 99999 is not registered (no subject version uses it)" in record.error
    assert record.error.count("99999") == 1, record.error  # h39: said twice
    assert "HTTP" not in record.error
    assert "500" not in record.error


def test_the_in_process_schema_source_raises_a_not_found_with_its_real_status() -> None:
    from mesh_stream.registry.service.sample import SchemaNotRegisteredError, _RegistrySchemas

    app = create_app(InMemoryStore())
    with pytest.raises(SchemaNotFoundError) as raised:
        _RegistrySchemas(app.state.services.schemas).get_schema(99999)
    assert isinstance(raised.value, SchemaNotRegisteredError)
    assert (raised.value.status, raised.value.error_code) == (404, 40403)
    assert str(raised.value) == "schema id 99999 is not registered (no subject version uses it)"


# -- 5b. Basic credentials that are base64 but not UTF-8 ---------------------------------------


def test_basic_credentials_that_are_not_utf8_are_called_so(client: TestClient) -> None:
    not_utf8 = client.get("/subjects", headers={"Authorization": "Basic //46/w=="})
    assert (not_utf8.status_code, not_utf8.json()["error_code"]) == (401, 40101)
    message = not_utf8.json()["message"]
    assert "not UTF-8" in message
    assert "not base64" not in message
    not_base64 = client.get("/subjects", headers={"Authorization": "Basic ***"})
    assert not_base64.status_code == 401
    assert "Basic credentials are not base64" in not_base64.json()["message"]
    # h52: bytes that are not ASCII made base64 raise ValueError, a 500 for anyone
    not_ascii = client.get("/subjects", headers=[(b"Authorization", b"Basic \xc3\xa9")])
    assert (not_ascii.status_code, not_ascii.json()["error_code"]) == (401, 40101)
    assert "Basic credentials are not base64" in not_ascii.json()["message"]


# -- 5c. one Authorization header per request -------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", _basic(*ADMIN)), ("Authorization", _basic(*ORDERS))],
        [("Authorization", _basic(*ORDERS)), ("Authorization", _basic(*ORDERS))],
        [("Authorization", f"Bearer {TOKENS['payments']}"), ("authorization", "Bearer x")],
    ],
)
def test_two_authorization_headers_are_refused_whichever_they_are(
    client: TestClient, headers: list[tuple[str, str]]
) -> None:
    for method, path, body in (
        ("GET", "/subjects", None),
        ("POST", f"/subjects/{SUBJECT}/versions", {"schema": schema()}),
        ("GET", "/admin/credentials", None),
    ):
        answer = client.request(method, path, headers=headers, json=body)
        assert (answer.status_code, answer.json()["error_code"]) == (400, 40001), answer.text
        assert answer.json()["message"] == (
            "the request has 2 Authorization headers; only one is allowed: send one "
            "credential (Basic or Bearer)"
        )
    assert client.get("/subjects").json() == []  # nothing was registered
    one = client.get("/subjects", headers=[("Authorization", _basic(*PAYMENTS))])
    assert one.status_code == 200


def test_two_content_types_or_a_compressed_body_are_refused_by_name(client: TestClient) -> None:
    """h52: with text/plain then application/json the guard read one, FastAPI the other (a
    misleading 422); a gzip body was "not valid UTF-8 at byte 1", a br one read as plain."""
    import gzip

    body = json.dumps({"schema": schema()}).encode()
    path = f"/subjects/{SUBJECT}/versions"
    two = client.post(
        path,
        content=body,
        headers=[("Content-Type", "text/plain"), ("Content-Type", "application/json"),
                 ("Authorization", _basic(*ORDERS))],
    )  # fmt: skip
    assert (two.status_code, two.json()["error_code"]) == (400, 40001)
    assert two.json()["message"] == (
        "the request has 2 Content-Type headers; only one is allowed: send one media type "
        "(application/json)"
    )
    for encoding, sent in (("gzip", gzip.compress(body)), ("br", body)):
        coded = client.post(
            path,
            content=sent,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding,
                     "Authorization": _basic(*ORDERS)},
        )  # fmt: skip
        assert (coded.status_code, coded.json()["error_code"]) == (415, 415)
        assert coded.json()["message"] == (
            f"the body is sent with Content-Encoding '{encoding}', which the registry does "
            f"not decode; send the JSON uncompressed"
        )
    assert client.get("/subjects").json() == []  # nothing was registered


def test_a_product_check_says_what_a_put_would_refuse_and_stores_nothing() -> None:
    """`mesh products plan` asks this before apply writes a topic or a schema (a new team's
    campaign: apply made both, then the registry refused the descriptor)."""
    from mesh_stream.governance import registry_validator
    from mesh_stream.registry.service import InMemoryStore
    from tests.unit.registry.conftest import ORDERS, descriptor, make_client, schema

    client = make_client(InMemoryStore(), validators=(registry_validator(),))
    long_kept = descriptor(retention={"ms": 180 * 86_400_000})
    name = long_kept["name"]
    # the subject has no schema yet: the check judges the one given with the descriptor
    checked = client.post(
        f"/products/{name}/check", json={"descriptor": long_kept, "schema": schema()}
    )
    assert checked.status_code == 200, checked.text
    errors = [p for p in checked.json()["problems"] if p["severity"] == "error"]
    assert [p["policy"] for p in errors] == ["retention-bounds"]
    assert client.get(f"/products/{name}").status_code == 404  # nothing stored
    assert client.get("/subjects").json() == []

    # what PUT then says of the same descriptor, once its schema is registered
    subject = f"{name}.v1-value"
    assert client.post(f"/subjects/{subject}/versions", json={"schema": schema()}, auth=ORDERS)
    put = client.put(f"/products/{name}", json=long_kept, auth=ORDERS)
    assert put.status_code == 422
    assert "retention-bounds" in put.json()["message"]

    fine = client.post(
        f"/products/{name}/check", json={"descriptor": descriptor(), "schema": schema()}
    )
    assert [p for p in fine.json()["problems"] if p["severity"] == "error"] == []
    bad = client.post(f"/products/{name}/check", json={"descriptor": "x"})
    assert bad.status_code == 422
    assert bad.json()["message"].startswith('the body must be {"descriptor": {...}')
    # h52: a schema nested 1,000 arrays deep was a RecursionError, a 500; it meets the limits
    # a registration meets
    deep = client.post(
        f"/products/{name}/check",
        json={"descriptor": descriptor(), "schema": "[" * 1000 + "]" * 1000},
    )
    assert (deep.status_code, deep.json()["error_code"]) == (422, 42201)
    assert "nested too deeply" in deep.json()["message"]


# -- h52's leftovers: ids read as Confluent reads them, one level, no ignored token ----------


def test_a_schema_id_is_read_as_confluent_reads_one_whole_numbers_only(
    client: TestClient,
) -> None:
    """``1.0`` and `` 1`` named schema 1 (pydantic's lax integers); Confluent answers 404 to
    both, and takes a sign or leading zeros, as here."""
    registered = client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    ).json()
    schema_id = registered["id"]
    for path in (f"{schema_id}", f"+{schema_id}", f"0{schema_id}"):
        assert client.get(f"/schemas/ids/{path}", auth=ADMIN).status_code == 200, path
    for path in (f"{schema_id}.0", f"%20{schema_id}", f"{schema_id}e0", "abc"):
        for tail in ("", "/schema", "/subjects", "/versions"):
            answer = client.get(f"/schemas/ids/{path}{tail}", auth=ADMIN)
            assert answer.status_code == 404, (path, tail)
            assert "an id is a whole number" in answer.json()["message"]


def test_two_different_levels_under_both_names_are_refused_one_level_under_both_is_taken(
    client: TestClient,
) -> None:
    both = {"compatibility": "NONE", "compatibilityLevel": "FULL"}
    answer = client.put("/config", json=both, auth=ADMIN)
    assert answer.status_code == 422
    assert answer.json() == {
        "error_code": 42203,
        "message": "compatibility 'NONE' and compatibilityLevel 'FULL' name two levels; give "
        "one of them (both are the same setting)",
    }
    assert client.get("/config", auth=ADMIN).json()["compatibilityLevel"] == "BACKWARD"
    same = {"compatibility": "full", "compatibilityLevel": "FULL"}
    assert client.put(f"/config/{SUBJECT}", json=same, auth=ORDERS).status_code == 200
    assert client.get(f"/config/{SUBJECT}", auth=ADMIN).json()["compatibilityLevel"] == "FULL"


def test_a_token_given_to_add_or_rotate_is_refused_not_ignored(client: TestClient) -> None:
    """The registry makes every token; one sent in the body was dropped without a word, and
    its sender believed it set."""
    given = {"token": "my-own-token-of-forty-characters-or-more!"}
    for path in ("/admin/credentials/shipping", "/admin/credentials/shipping/rotate"):
        answer = client.post(path, json=given, auth=ADMIN)
        assert answer.status_code == 400, path
        assert "takes no body" in answer.json()["message"]
    not_admin = client.post("/admin/credentials/shipping", json=given, auth=ORDERS)
    assert not_admin.status_code == 403  # refused as not admin first, whatever the body
    issued = client.post("/admin/credentials/shipping", auth=ADMIN)
    assert issued.status_code == 201
    assert issued.json()["token"] != given["token"]
    assert client.post("/admin/credentials/shipping/rotate", auth=ADMIN).status_code == 200


def test_a_new_subject_must_be_composed_unicode_a_stored_one_keeps_its_name(
    store: InMemoryStore,
) -> None:
    """``café`` with a combining accent was a second subject reading like the composed one;
    a new one is refused naming the composed form, while a subject stored before the rule
    (here through IMPORT mode, which keeps the source's names) still takes versions."""
    client = TestClient(create_app(store, credentials=None), raise_server_exceptions=False)
    decomposed, composed = "orders.cafe\u0301-value", "orders.caf\u00e9-value"
    answer = client.post(f"/subjects/{decomposed}/versions", json={"schema": schema()})
    assert answer.status_code == 422
    assert answer.json()["error_code"] == 42215
    assert "not in Unicode's composed form (NFC)" in answer.json()["message"]
    assert repr(composed) in answer.json()["message"]
    first = {"schema": schema()}
    assert client.post(f"/subjects/{composed}/versions", json=first).status_code == 200

    assert client.put(f"/mode/{decomposed}", json={"mode": "IMPORT"}).status_code == 200
    imported = {"schema": schema(), "id": 50, "version": 1}
    assert client.post(f"/subjects/{decomposed}/versions", json=imported).status_code == 200
    assert client.put(f"/mode/{decomposed}", json={"mode": "READWRITE"}).status_code == 200
    second = {"schema": schema("note")}
    assert client.post(f"/subjects/{decomposed}/versions", json=second).status_code == 200
    assert client.get(f"/subjects/{decomposed}/versions").json() == [1, 2]


def test_an_api_write_a_browser_sent_from_another_site_is_refused(client: TestClient) -> None:
    """h54: a browser that took Basic credentials at the registry's prompt sends them with
    any site's form post, so another site's page rotated a token. Writes marked cross-site
    or same-site by the browser are refused; clients that send no Sec-Fetch-Site (every
    non-browser client) and reads are not."""
    assert client.post("/admin/credentials/shipping", auth=ADMIN).status_code == 201
    before = client.get("/admin/credentials", auth=ADMIN).json()
    for site in ("cross-site", "same-site", "Cross-Site"):
        answer = client.post(
            "/admin/credentials/shipping/rotate", auth=ADMIN, headers={"Sec-Fetch-Site": site}
        )
        assert answer.status_code == 403, site
        assert answer.json()["error_code"] == 40301
        assert "from another site's page" in answer.json()["message"]
        deleted = client.delete(
            f"/subjects/{SUBJECT}", auth=ADMIN, headers={"Sec-Fetch-Site": site}
        )
        assert deleted.status_code == 403
    assert client.get("/admin/credentials", auth=ADMIN).json() == before  # nothing rotated
    read = client.get("/subjects", headers={"Sec-Fetch-Site": "cross-site"})
    assert read.status_code == 200
    for site in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        rotated = client.post("/admin/credentials/shipping/rotate", auth=ADMIN, headers=site)
        assert rotated.status_code == 200, site
