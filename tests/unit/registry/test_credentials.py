"""Tokens issued at run time over the in-memory store: add, rotate, revoke, list; hashed in
the log, replayed after a restart, the file's admin untouchable, a revocation through one
instance refused at once by another whose view trails the log."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.errors import ConfigurationError, ProductNotFoundError, RegistryUnavailableError
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials, token_id
from mesh_stream.registry.service.credentials import principal_problem
from mesh_stream.registry.service.store import CatchingUpStore
from tests.unit.registry.conftest import (
    ADMIN,
    ORDERS,
    TOKENS,
    SharedLog,
    TrailingStore,
    make_client,
    schema,
)

SUBJECT = "inventory.stock-level.v1-value"


def _register(client: TestClient, auth: Any, subject: str = SUBJECT) -> Any:
    headers = {"Authorization": f"Bearer {auth}"} if isinstance(auth, str) else None
    return client.post(
        f"/subjects/{subject}/versions",
        json={"schema": schema()},
        auth=None if isinstance(auth, str) else auth,
        headers=headers,
    )


def test_an_added_token_writes_its_own_domain_and_is_stored_only_hashed(
    client: TestClient, store: InMemoryStore
) -> None:
    added = client.post("/admin/credentials/inventory", auth=ADMIN)
    assert added.status_code == 201, added.text
    assert added.headers["cache-control"] == "no-store"
    body = added.json()
    token = body["token"]
    assert set(body) == {"principal", "token", "token_id", "created_at", "created_by"}
    assert (body["principal"], body["created_by"]) == ("inventory", "admin")
    assert len(token) >= 43
    assert body["token_id"] == token_id(token)
    # Basic (what Confluent clients send) and Bearer both prove the new principal.
    assert _register(client, ("inventory", token)).status_code == 200
    assert _register(client, token, "inventory.other.v1-value").status_code == 200
    foreign = _register(client, ("inventory", token), "orders.order-placed.v1-value")
    assert (foreign.status_code, foreign.json()["error_code"]) == (403, 40301)
    # The log holds a salted SHA-256 of the token and never the token itself.
    (record,) = [r for r in store.records if r.key[0] == "credential"]
    assert record.key == ("credential", "inventory")
    assert record.value is not None
    salt = bytes.fromhex(record.value["salt"])
    assert record.value["token_hash"] == hashlib.sha256(salt + token.encode()).hexdigest()
    assert all(token not in json.dumps(r.value) for r in store.records)


def test_one_active_token_per_principal_and_rotate_replaces_it(client: TestClient) -> None:
    first = client.post("/admin/credentials/inventory", auth=ADMIN).json()["token"]
    again = client.post("/admin/credentials/inventory", auth=ADMIN)
    assert (again.status_code, again.json()["error_code"]) == (409, 40911)
    assert "already has a token" in again.json()["message"]
    assert "rotate it" in again.json()["message"]
    rotated = client.post("/admin/credentials/inventory/rotate", auth=ADMIN)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()["token"]
    assert second != first
    old = _register(client, ("inventory", first))
    assert (old.status_code, old.json()["error_code"]) == (401, 40101)
    assert old.json()["message"] == (
        f"the token of 'inventory' (id {token_id(first)}) was rotated at "
        f"{rotated.json()['created_at']} by admin; use the new one"
    )
    assert _register(client, first).status_code == 401  # as Bearer too
    assert _register(client, ("inventory", second)).status_code == 200
    assert first not in old.text
    assert second not in old.text


def test_revoke_refuses_the_token_until_the_principal_is_added_again(client: TestClient) -> None:
    token = client.post("/admin/credentials/inventory", auth=ADMIN).json()["token"]
    revoked = client.delete("/admin/credentials/inventory", auth=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["source"] == "issued"
    assert revoked.json()["token_id"] == token_id(token)
    for auth in (("inventory", token), token):
        refused = _register(client, auth)
        assert (refused.status_code, refused.json()["error_code"]) == (401, 40101)
        assert "was revoked at" in refused.json()["message"]
        assert "mesh registry credentials add inventory" in refused.json()["message"]
    guessed = _register(client, ("inventory", "not-its-token-at-all-0123456789"))
    assert (guessed.status_code, guessed.json()["error_code"]) == (401, 40101)
    assert "revoked" not in guessed.json()["message"]  # a wrong token learns nothing (h32)
    twice = client.delete("/admin/credentials/inventory", auth=ADMIN)
    assert (twice.status_code, twice.json()["error_code"]) == (404, 40409)
    assert "already revoked" in twice.json()["message"]
    rotate = client.post("/admin/credentials/inventory/rotate", auth=ADMIN)
    assert (rotate.status_code, rotate.json()["error_code"]) == (404, 40409)
    readded = client.post("/admin/credentials/inventory", auth=ADMIN)
    assert readded.status_code == 201
    assert _register(client, ("inventory", readded.json()["token"])).status_code == 200
    assert _register(client, ("inventory", token)).status_code == 401


def test_unknown_principals_bad_names_and_admin_are_refused(client: TestClient) -> None:
    unknown = client.delete("/admin/credentials/nobody", auth=ADMIN)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, 40409)
    assert "has no token to revoke" in unknown.json()["message"]
    assert client.post("/admin/credentials/nobody/rotate", auth=ADMIN).status_code == 404
    for bad in (
        "Inventory",
        "in_ventory",
        "-x",
        "x" * 65,
        "inv%20entory",
        "inv%00",
        "%C3%A9t%C3%A9",
    ):
        for method, path in (("POST", ""), ("POST", "/rotate"), ("DELETE", "")):
            answer = client.request(method, f"/admin/credentials/{bad}{path}", auth=ADMIN)
            assert (answer.status_code, answer.json()["error_code"]) == (422, 42217), bad
    # Decoded before routing, "orders%2Frotate" would otherwise rotate orders.
    for bad in ("orders%2Frotate", "orders%2frotate", "orders%5Crotate"):
        answer = client.post(f"/admin/credentials/{bad}", auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42217), bad
        assert "path separator" in answer.json()["message"]
    assert _register(client, ORDERS, "orders.x.v1-value").status_code == 200  # not rotated
    for method, path in (("POST", ""), ("POST", "/rotate"), ("DELETE", "")):
        answer = client.request(method, f"/admin/credentials/admin{path}", auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42217)
        assert "bootstrap principal" in answer.json()["message"]
    assert client.get("/subjects", auth=ADMIN).status_code == 200  # admin untouched


def test_only_admin_manages_credentials(client: TestClient) -> None:
    for method, path in (
        ("GET", ""),
        ("POST", "/inventory"),
        ("POST", "/inventory/rotate"),
        ("DELETE", "/orders"),
    ):
        anonymous = client.request(method, f"/admin/credentials{path}")
        assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101)
        domain = client.request(method, f"/admin/credentials{path}", auth=ORDERS)
        assert (domain.status_code, domain.json()["error_code"]) == (403, 40301), path
        assert "only admin manages credentials" in domain.json()["message"]


def test_the_file_is_the_bootstrap_and_the_log_decides_once_it_names_a_principal(
    client: TestClient,
) -> None:
    exists = client.post("/admin/credentials/orders", auth=ADMIN)
    assert (exists.status_code, exists.json()["error_code"]) == (409, 40911)
    assert "credentials file" in exists.json()["message"]
    # Rotating a file principal: the issued token counts, the file's no longer does.
    issued = client.post("/admin/credentials/orders/rotate", auth=ADMIN).json()["token"]
    old = _register(client, ORDERS, "orders.x.v1-value")
    assert old.status_code == 401
    assert "the credentials file's token of 'orders' no longer counts" in old.json()["message"]
    assert _register(client, f"{TOKENS['orders']}", "orders.x.v1-value").status_code == 401
    assert _register(client, ("orders", issued), "orders.x.v1-value").status_code == 200
    # Revoking a file principal blocks its file token too.
    payments = ("payments", TOKENS["payments"])
    assert client.delete("/admin/credentials/payments", auth=ADMIN).json()["source"] == "file"
    refused = _register(client, payments, "payments.x.v1-value")
    assert refused.status_code == 401
    assert "also blocks its token in the credentials file" in refused.json()["message"]
    assert _register(client, TOKENS["payments"], "payments.x.v1-value").status_code == 401


def test_the_list_shows_sources_and_ids_never_a_secret(client: TestClient) -> None:
    token = client.post("/admin/credentials/inventory", auth=ADMIN).json()["token"]
    client.delete("/admin/credentials/payments", auth=ADMIN)
    listed = client.get("/admin/credentials", auth=ADMIN)
    assert listed.status_code == 200
    rows = {row["principal"]: row for row in listed.json()}
    assert list(rows) == ["admin", "inventory", "orders", "payments"]
    assert rows["admin"] == {
        "principal": "admin",
        "source": "file",
        "in_file": True,
        "token_id": None,
    }
    assert rows["inventory"]["source"] == "issued"
    assert rows["inventory"]["token_id"] == token_id(token)
    assert rows["inventory"]["created_by"] == "admin"
    assert rows["payments"]["source"] == "revoked"
    assert rows["payments"]["in_file"] is True
    for secret in (token, *TOKENS.values()):
        assert secret not in listed.text
    assert "hash" not in listed.text
    assert "salt" not in listed.text


def test_issued_tokens_survive_a_restart(store: InMemoryStore) -> None:
    first = make_client(store)
    kept = first.post("/admin/credentials/inventory", auth=ADMIN).json()["token"]
    gone = first.post("/admin/credentials/shipping", auth=ADMIN).json()["token"]
    first.delete("/admin/credentials/shipping", auth=ADMIN)
    restarted = make_client(InMemoryStore(store.records))
    assert _register(restarted, ("inventory", kept)).status_code == 200
    assert _register(restarted, ("shipping", gone), "shipping.x.v1-value").status_code == 401
    sources = {
        r["principal"]: r["source"] for r in restarted.get("/admin/credentials", auth=ADMIN).json()
    }
    assert (sources["inventory"], sources["shipping"]) == ("issued", "revoked")


def test_a_registry_without_authentication_issues_nothing() -> None:
    open_registry = TestClient(create_app(InMemoryStore()), raise_server_exceptions=False)
    refused = open_registry.post("/admin/credentials/inventory")
    assert (refused.status_code, refused.json()["error_code"]) == (409, 40912)
    assert "--open-writes" in refused.json()["message"]


def test_a_revocation_through_one_instance_is_refused_at_once_by_another() -> None:
    log = SharedLog()
    a_store, b_store = TrailingStore(log), TrailingStore(log)
    assert isinstance(b_store, CatchingUpStore)
    a = TestClient(
        create_app(a_store, credentials=Credentials(TOKENS)), raise_server_exceptions=False
    )
    b = TestClient(
        create_app(b_store, credentials=Credentials(TOKENS)), raise_server_exceptions=False
    )
    token = a.post("/admin/credentials/inventory", auth=ADMIN).json()["token"]
    assert b_store.seen < len(log.records)  # B has not read the new token yet...
    assert _register(b, ("inventory", token)).status_code == 200  # ...and catches up to it
    assert a.delete("/admin/credentials/inventory", auth=ADMIN).status_code == 200
    assert b_store.seen < len(log.records)  # B has not read the revocation either
    refused = _register(b, ("inventory", token), "inventory.y.v1-value")
    assert (refused.status_code, refused.json()["error_code"]) == (401, 40101)
    # The bootstrap admin and anonymous reads never wait for the log; the list does.
    asked = b_store.catch_ups
    assert b.get("/subjects", auth=ADMIN).status_code == 200
    assert b.get("/subjects").status_code == 200
    assert b_store.catch_ups == asked
    assert b.get("/admin/credentials", auth=ADMIN).status_code == 200
    assert b_store.catch_ups == asked + 1


def test_the_principal_rule() -> None:
    assert principal_problem("inventory") is None
    assert principal_problem("click-stream2") is None
    assert principal_problem("") == "a principal name is empty"
    assert "bootstrap principal" in (principal_problem("admin") or "")
    assert "not a domain name" in (principal_problem("a\x00b") or "")
    assert "longer than 64" in (principal_problem("a" * 65) or "")


class KafkaGone(InMemoryStore):
    """A store whose log end cannot be asked (Kafka unreachable, a leader moving)."""

    def catch_up_view(self, timeout: float) -> None:  # noqa: ARG002
        raise RegistryUnavailableError("Kafka did not answer", status=503, error_code=50302)


@pytest.mark.parametrize("read_requires_auth", [False, True])
def test_when_kafka_cannot_confirm_a_credential_only_open_reads_are_served(
    read_requires_auth: bool,
) -> None:
    app = create_app(
        KafkaGone(), credentials=Credentials(TOKENS), read_requires_auth=read_requires_auth
    )
    client = TestClient(app, raise_server_exceptions=False)
    read = client.get("/subjects", auth=ORDERS)
    write = _register(client, ORDERS, "orders.x.v1-value")
    assert (write.status_code, write.json()["error_code"]) == (503, 50302)
    assert write.headers["retry-after"] == "1"  # clients retry: a leader moves in seconds
    if read_requires_auth:  # a read that needs the principal cannot trust it: 503
        assert (read.status_code, read.json()["error_code"]) == (503, 50302)
        assert read.headers["retry-after"] == "1"
    else:  # an open read needs no principal: served as to an anonymous caller
        assert read.status_code == 200
    assert client.get("/subjects", auth=ADMIN).status_code == 200  # the bootstrap admin
    assert _register(client, ADMIN, "orders.x.v1-value").status_code == 200


# -- the client's side of a credential: what a copied secret carries, and never echoed ----


def _running_registry() -> Any:
    from mesh_stream.registry.service.server import RegistryServer

    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))
    running = RegistryServer(app)
    running.start()
    return running


@pytest.mark.parametrize("principal", [None, "admin"], ids=["bearer", "basic"])
def test_a_token_read_from_a_file_with_its_newline_still_works(principal: str | None) -> None:
    from mesh_stream.registry.client import RegistryClient

    running = _running_registry()
    try:
        with RegistryClient(
            running.url, principal=principal, token=f"  {TOKENS['admin']}\n"
        ) as admin:
            issued = admin.add_credential("inventory")
            assert [r["principal"] for r in admin.list_credentials()][:2] == [
                "admin",
                "inventory",
            ]
        with RegistryClient(running.url, token=issued["token"] + "\r\n") as inventory:
            assert inventory.register_schema(SUBJECT, schema()) == 1  # a write: it proved who
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("principal", "token", "setting", "problem"),
    [
        (None, "", "MESH_REGISTRY_TOKEN", "is set but empty"),
        (None, " \n\t", "MESH_REGISTRY_TOKEN", "is set but empty"),
        (None, "s3cret inner", "MESH_REGISTRY_TOKEN", "whitespace or control characters"),
        (None, "s3cret\ninjected: x", "MESH_REGISTRY_TOKEN", "whitespace or control"),
        (None, "s3cret\x00", "MESH_REGISTRY_TOKEN", "whitespace or control characters"),
        (None, "s3cret€", "MESH_REGISTRY_TOKEN", "non-ASCII characters"),
        ("orders", "s3cret\x1b[2J", "MESH_REGISTRY_TOKEN", "whitespace or control characters"),
        ("ord ers", "s3cret", "MESH_REGISTRY_PRINCIPAL", "whitespace or control characters"),
        ("", "s3cret", "MESH_REGISTRY_PRINCIPAL", "is set but empty"),
    ],
)
def test_a_credential_no_header_can_carry_is_one_line_that_never_shows_it(
    principal: str | None, token: str, setting: str, problem: str
) -> None:
    from mesh_stream.errors import ConfigurationError
    from mesh_stream.registry.client import RegistryClient

    with pytest.raises(ConfigurationError) as caught:
        RegistryClient("http://127.0.0.1:9", principal=principal, token=token)
    message = str(caught.value)
    assert message.startswith(setting)
    assert problem in message
    assert "\n" not in message
    assert "s3cret" not in message
    assert caught.value.__cause__ is None


def test_basic_accepts_a_non_ascii_token_that_bearer_cannot_carry() -> None:
    from mesh_stream.registry.client import RegistryClient

    with RegistryClient("http://127.0.0.1:9", principal="orders", token="pässwörd") as made:
        assert made.principal == "orders"


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (TOKENS["orders"], ""),  # a bare token pasted without its scheme
        (f"{TOKENS['orders']} extra", ""),  # not a scheme word either
        ("Digest abc", " 'Digest'"),
        ("Token abc", " 'Token'"),
    ],
)
def test_an_unsupported_scheme_never_echoes_a_bare_token(
    client: TestClient, header: str, named: str
) -> None:
    answer = client.get("/subjects", headers={"Authorization": header})
    assert (answer.status_code, answer.json()["error_code"]) == (401, 40101)
    assert answer.json()["message"] == (
        f"unsupported Authorization scheme{named}; use Basic or Bearer "
        f"(`Authorization: Bearer <token>`)"
    )
    assert TOKENS["orders"][:6] not in answer.text


# -- the bootstrap credentials file and MESH_REGISTRY_CREDENTIALS, written carelessly ------


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("dup.yaml", "admin: a-secret\norders: o\nadmin: b-secret\n", r"dup\.yaml:3: principal "),
        ("dup.json", '{"admin": "a-secret", "admin": "b-secret"}', r"dup\.json: principal 'admin"),
        ("deep.yaml", "a: " + "[" * 50_000 + "]" * 50_000, r"deep\.yaml: .* nested too deeply"),
        ("big.yaml", "admin: s3cret\n#" + "a" * 2_000_000, r"big\.yaml: .* larger than 1024 KiB"),
        ("esc.yaml", 'admin: s3cret\n"x\\e[2J": t\n', r"principal 'x\\x1b\[2J' holds whitespace"),
        ("space.yaml", "admin: s3cret\n'in ventory': t\n", r"'in ventory' holds whitespace"),
    ],
)
def test_a_careless_credentials_file_is_one_line_without_its_secrets(
    tmp_path: Any, name: str, body: str, expected: str
) -> None:
    import re

    from mesh_stream.errors import ConfigurationError

    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(ConfigurationError) as caught:
        Credentials.load(path)
    message = str(caught.value)
    assert re.search(expected, message), message
    assert "\n" not in message
    assert "secret" not in message.replace(str(tmp_path), "")


@pytest.mark.parametrize(
    ("written", "token"),
    [("0123", "0123"), ("1_000", "1_000"), ("0x1F", "0x1F"), ("1234", "1234"), ("1:20", "1:20")],
)
def test_a_yaml_number_token_is_the_token_as_written(
    tmp_path: Any, written: str, token: str
) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text(f"admin: s3cret\norders: {written}\n")
    credentials = Credentials.load(path)
    assert credentials.verify("orders", token)  # YAML 1.1 would have made 0123 into 83


def test_the_credentials_string_trims_each_item_and_refuses_a_principal_twice() -> None:
    from mesh_stream.errors import ConfigurationError

    spaced = Credentials.parse(" admin : s3cret , orders:o-tok ")
    assert spaced.principals == ["admin", "orders"]
    assert spaced.verify("admin", "s3cret")
    with pytest.raises(ConfigurationError) as caught:
        Credentials.parse("admin:first-s3cret,admin:second-s3cret")
    assert str(caught.value) == (
        "MESH_REGISTRY_CREDENTIALS: item 2 names principal 'admin' again; give each "
        "principal one token"
    )


@pytest.mark.parametrize("text", ["", " , ", ","])
def test_a_credentials_string_naming_no_principal_is_refused(text: str) -> None:
    """It started a registry nobody could write to, saying nothing (a settings campaign)."""
    from mesh_stream.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        Credentials.parse(text)
    assert str(caught.value) == (
        "MESH_REGISTRY_CREDENTIALS names no principal: give `principal:token,...` (e.g. "
        "`admin:s3cret,orders:t0ken`), or unset it"
    )


def test_a_token_no_client_could_send_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A credentials file took `admin: "SECRETX 1234567890abc"`, which every client then
    refused to send (an export campaign)."""
    from mesh_stream.errors import ConfigurationError

    path = tmp_path / "credentials.yaml"
    path.write_text('admin: "SECRETX 1234567890abc"\n')
    with pytest.raises(ConfigurationError) as caught:
        Credentials.load(path)
    assert "the token of principal 'admin' holds whitespace or control characters" in str(
        caught.value
    )
    assert "SECRETX" not in str(caught.value)


def test_a_token_in_the_registry_url_is_sent_as_basic_and_never_shown() -> None:
    from mesh_stream.errors import RegistryUnavailableError
    from mesh_stream.registry.client import RegistryClient

    running = _running_registry()
    try:
        host = running.url.removeprefix("http://")
        with RegistryClient(f"http://admin:{TOKENS['admin']}@{host}") as admin:
            assert admin.url == running.url
            assert admin.principal == "admin"
            assert admin.add_credential("inventory")["principal"] == "inventory"
    finally:
        running.stop()
    gone = RegistryClient(f"http://admin:{TOKENS['admin']}@127.0.0.1:9", retry_seconds=0)
    with gone, pytest.raises(RegistryUnavailableError) as caught:
        gone.list_credentials()
    assert "registry at http://127.0.0.1:9 is unreachable" in str(caught.value)
    assert TOKENS["admin"] not in str(caught.value)


def test_a_registry_url_with_a_query_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli.main import run

    monkeypatch.setenv("MESH_REGISTRY_URL", "http://127.0.0.1:8081/?token=s3cr3t-tok")
    assert run(["products", "list"]) == 2
    err = capsys.readouterr().err
    assert "MESH_REGISTRY_URL='http://127.0.0.1:8081/?token=<hidden>': " in err
    assert "has a query string" in err
    assert "s3cr3t-tok" not in err
    from mesh_stream.registry.client import RegistryClient

    with pytest.raises(ConfigurationError) as caught:
        RegistryClient("http://127.0.0.1:8081/?token=s3cr3t-tok")
    assert "s3cr3t-tok" not in str(caught.value)


def test_a_bad_registry_url_setting_hides_its_user_and_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli.main import run

    monkeypatch.setenv("MESH_REGISTRY_URL", "http://admin:p@ss-s3cret@127.0.0.1:99999/x")
    assert run(["products", "list"]) == 2
    err = capsys.readouterr().err
    assert "MESH_REGISTRY_URL='http://<hidden>@127.0.0.1:99999/x': " in err
    assert "s3cret" not in err


@pytest.mark.parametrize(
    ("method", "path", "shown"),
    [
        ("POST", "a/b", "principal 'a/b' is not a domain name"),
        ("DELETE", "a/b/c", "principal 'a/b/c' is not a domain name"),
        ("POST", "inventory/", "principal 'inventory/' is not a domain name"),
        ("POST", "a%2Fb", "holds a path separator"),
        ("POST", "%2E%2E", "principal '..' is not a domain name"),
        ("POST", "inventory/revoke", "principal 'inventory/revoke' is not a domain name"),
    ],
)
def test_a_principal_with_a_slash_is_a_422_naming_it(
    client: TestClient, method: str, path: str, shown: str
) -> None:
    answer = client.request(method, f"/admin/credentials/{path}", auth=ADMIN)
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42217), answer.text
    assert shown in answer.json()["message"]
    assert client.get("/admin/credentials", auth=ADMIN).json() == [
        {"principal": p, "source": "file", "in_file": True, "token_id": None}
        for p in sorted(TOKENS)
    ]
    refused = client.request(method, f"/admin/credentials/{path}", auth=ORDERS)
    # A non-admin is refused too: 403, or 422 where the encoded separator is refused first.
    assert refused.status_code == (422 if "%2F" in path else 403)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../../subjects"])
def test_the_client_never_lets_a_principal_name_reach_another_route(name: str) -> None:
    from mesh_stream.errors import InvalidPrincipalError
    from mesh_stream.registry.client import RegistryClient

    running = _running_registry()
    try:
        with RegistryClient(running.url, principal="admin", token=TOKENS["admin"]) as admin:
            for call in (admin.add_credential, admin.rotate_credential, admin.revoke_credential):
                with pytest.raises(InvalidPrincipalError) as caught:
                    call(name)
                assert caught.value.status == 422
            assert len(admin.list_credentials()) == len(TOKENS)
    finally:
        running.stop()


def test_a_huge_name_in_a_registry_call_is_not_repeated_whole() -> None:
    from mesh_stream.errors import ProductNotFoundError
    from mesh_stream.registry.client import RegistryClient

    gone = RegistryClient("http://127.0.0.1:9", retry_seconds=0)
    with gone, pytest.raises(RegistryUnavailableError) as caught:
        gone.lineage("orders." + "x" * 5_000)
    assert "GET /products/orders.xxx" in str(caught.value)
    assert "... (5025 characters); start it" in str(caught.value)  # it never answered: no cache
    assert len(str(caught.value)) < 600
    with gone, pytest.raises(ProductNotFoundError) as refused:  # no product has such a name
        gone.get_product("orders." + "x" * 5_000)
    assert "has 5007 characters; a product name has at most 240" in str(refused.value)
    assert len(str(refused.value)) < 300


def test_a_registry_url_with_a_wrong_path_says_so() -> None:
    """The registry answers an unknown route 404 (error_code 404), not "no such product"."""
    from mesh_stream.errors import RegistryError
    from mesh_stream.registry.client import RegistryClient

    running = _running_registry()
    try:
        lost = RegistryClient(f"{running.url}/some/path", token=TOKENS["admin"])
        with lost, pytest.raises(RegistryError) as caught:
            lost.list_products()
        assert str(caught.value).startswith(
            f"GET /products: {running.url}/some/path has no such route (HTTP 404); is "
            "MESH_REGISTRY_URL (or --registry-url) the URL `mesh registry serve` prints"
        )
        right = RegistryClient(running.url, token=TOKENS["admin"])
        with right, pytest.raises(ProductNotFoundError):  # a real "no such product" stays one
            right.get_product("orders.nope")
    finally:
        running.stop()


def test_a_domain_whose_names_another_domains_cover_gets_no_token(client: TestClient) -> None:
    """`shipping` could register `shipping-eu-later`, a group of domain `shipping-eu`, and
    lock it out: the registry issued a token to both (h34), which the ACL plan refuses."""
    for overlapping, known in (("orders-eu", "orders"), ("payments-x", "payments")):
        answer = client.post(f"/admin/credentials/{overlapping}", auth=ADMIN)
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42217), answer.text
        assert answer.json()["message"].startswith(
            f"no token is issued to principal '{overlapping}': domain '{overlapping}' starts "
            f"with '{known}-'"
        )
    assert client.post("/admin/credentials/shipping", auth=ADMIN).status_code == 201
    shorter = client.post("/admin/credentials/ship", auth=ADMIN)
    assert shorter.status_code == 201  # `ship-` does not cover `shipping`
    covering = client.post("/admin/credentials/shipping-eu", auth=ADMIN)
    assert covering.status_code == 422
    assert client.post("/admin/credentials/orders/rotate", auth=ADMIN).status_code == 200


def test_a_credentials_file_with_overlapping_domains_is_refused_naming_the_longer() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Credentials({"admin": "a" * 24, "orders": "b" * 24, "orders-eu": "c" * 24}, "creds.yaml")
    assert str(refused.value).startswith(
        "creds.yaml: no token is given to principal 'orders-eu': domain 'orders-eu' starts "
        "with 'orders-'"
    )
