"""`mesh registry credentials add|rotate|revoke|list` against a registry over HTTP (in-memory
store): the token on stdout alone for scripts, never in a listing, and hostile input, a
non-admin caller or a registry that is down each answered in one line."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from mesh_stream.cli.main import run
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials, token_id
from mesh_stream.registry.service.server import RegistryServer

TOKENS = {"admin": "admin-secret", "orders": "orders-secret"}


@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    running.start()
    monkeypatch.setenv("MESH_REGISTRY_URL", running.url)
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "admin")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", TOKENS["admin"])
    yield running.url
    running.stop()


def _mesh(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = run(["registry", "credentials", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_add_prints_the_token_alone_with_quiet_and_it_works(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _mesh(capsys, "add", "inventory", "--quiet")
    assert status == 0, err
    token = out.strip()
    assert out == f"{token}\n"
    assert token not in err
    assert len(err.strip().splitlines()) == 1
    assert "issued a token for 'inventory'" in err
    assert "shown only this once" in err
    registered = httpx.post(
        f"{url}/subjects/inventory.stock.v1-value/versions",
        json={"schema": '"string"'},
        auth=("inventory", token),
    )
    assert registered.status_code == 200, registered.text


def test_rotate_json_and_text_revoke_and_list(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _mesh(capsys, "add", "inventory")[0] == 0
    status, out, _err = _mesh(capsys, "rotate", "inventory", "--json")
    assert status == 0
    issued = json.loads(out)
    assert set(issued) == {"principal", "token", "token_id", "created_at", "created_by"}
    status, out, _err = _mesh(capsys, "rotate", "inventory")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "principal  inventory"
    assert lines[-1].startswith("token      ")
    token = lines[-1].split()[-1]
    assert token != issued["token"]
    status, out, _err = _mesh(capsys, "revoke", "orders")
    assert status == 0
    assert out.startswith("revoked 'orders' (its credentials-file token) at ")
    status, out, err = _mesh(capsys, "list")
    assert status == 0
    rows = [line.split("\t") for line in out.splitlines()]  # piped: tab-separated
    assert [row[:2] for row in rows] == [
        ["admin", "file"],
        ["inventory", "issued"],
        ["orders", "revoked (file token ignored)"],
    ]
    assert rows[1][3:] == ["admin", token_id(token)]
    assert err == "3 principal(s)\n"
    status, listed, _err = _mesh(capsys, "list", "--json")
    for secret in (token, issued["token"], *TOKENS.values()):
        assert secret not in out
        assert secret not in listed


def test_refusals_are_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = _mesh(capsys, "revoke", "nobody")
    assert status == 1
    assert err.startswith(
        "error: DELETE /admin/credentials/nobody: principal 'nobody' has no token to revoke"
    )
    assert "(HTTP 404, error_code 40409)" in err
    assert len(err.strip().splitlines()) == 1
    status, _out, err = _mesh(capsys, "add", "orders")
    assert (status, "(HTTP 409, error_code 40911)" in err) == (1, True)
    for bad, why in (
        ("", "a principal name is empty"),
        ("In\x07ventory", "is not a domain name"),
        ("admin", "bootstrap principal"),
        ("x" * 200, "longer than 64"),
    ):
        status, _out, err = _mesh(capsys, "add", bad)
        assert status == 2, bad
        assert why in err
        assert "Traceback" not in err


def test_a_domain_caller_is_told_only_admin_manages_credentials(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "orders")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", TOKENS["orders"])
    status, _out, err = _mesh(capsys, "list")
    assert status == 1
    assert err.startswith("error: principal 'orders' is not admin: only admin manages")
    assert "(HTTP 403, error_code 40301)" in err
    assert TOKENS["orders"] not in err
    # --token is the admin's, whatever the environment names.
    assert _mesh(capsys, "add", "inventory", "--token", TOKENS["admin"])[0] == 0


def test_a_wrong_token_option_is_named_in_the_refusal(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _out, err = _mesh(capsys, "list", "--token", "not-the-admin-token")
    assert status == 1
    assert "(HTTP 401" in err
    assert "check --token" in err
    assert "MESH_REGISTRY_TOKEN" not in err
    assert "not-the-admin-token" not in err


def test_no_token_and_a_registry_that_is_down(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.delenv("MESH_REGISTRY_TOKEN", raising=False)
    monkeypatch.delenv("MESH_REGISTRY_PRINCIPAL", raising=False)
    status, _out, err = _mesh(capsys, "list")
    assert status == 2
    assert "needs the admin token: set MESH_REGISTRY_TOKEN" in err
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", "admin-secret")
    status, _out, err = _mesh(capsys, "revoke", "inventory")
    assert status == 1
    assert err.startswith("error: registry at http://127.0.0.1:")
    assert "is unreachable" in err
    assert len(err.strip().splitlines()) == 1
    assert "admin-secret" not in err
