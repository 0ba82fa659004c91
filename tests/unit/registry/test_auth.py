"""Credentials and ownership rules, and refusing to serve without credentials."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from mesh_stream.errors import AuthenticationError, ConfigurationError, PermissionDeniedError
from mesh_stream.registry.service.auth import (
    Credentials,
    authorize_product,
    authorize_subject,
)
from mesh_stream.registry.service.server import credentials_from_settings
from mesh_stream.settings import MeshSettings


def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def test_basic_and_bearer_prove_a_principal() -> None:
    credentials = Credentials.parse(" admin:a1 , orders:o:with:colons ")
    assert credentials.principals == ["admin", "orders"]
    assert credentials.principal_for(basic("orders", "o:with:colons")) == "orders"
    assert credentials.principal_for("Bearer a1") == "admin"
    assert credentials.principal_for("bearer   a1") == "admin"
    assert credentials.principal_for(None) is None
    with pytest.raises(AuthenticationError, match="unknown principal or wrong token"):
        credentials.principal_for(basic("orders", "nope"))
    with pytest.raises(AuthenticationError, match="unknown bearer token"):
        credentials.principal_for("Bearer o")
    with pytest.raises(AuthenticationError, match="not base64"):
        credentials.principal_for("Basic %%%")
    with pytest.raises(AuthenticationError, match="use Basic or Bearer"):
        credentials.principal_for("Digest x")


def test_bad_credential_strings_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="item 2 is not `principal:token`"):
        Credentials.parse("admin:a,orders")
    broken = tmp_path / "creds.yaml"
    broken.write_text("- admin\n- a\n")
    with pytest.raises(
        ConfigurationError, match=re.escape(f"{broken}: registry credentials must map")
    ):
        Credentials.load(broken)
    with pytest.raises(ConfigurationError, match="MESH_REGISTRY_CREDENTIALS_FILE"):
        Credentials.load(tmp_path / "missing.yaml")
    good = tmp_path / "creds.json"
    good.write_text('{"admin": "a", "payments": 1234}')
    assert Credentials.load(good).principal_for("Bearer 1234") == "payments"


def test_ownership_rules() -> None:
    assert authorize_subject("admin", "anything-value", "write") == "admin"
    assert authorize_subject("admin", None, "change the global level") == "admin"
    assert authorize_subject("orders", "orders.placed.v1-value", "write") == "orders"
    with pytest.raises(PermissionDeniedError, match=re.escape("subjects named 'orders.…'")):
        authorize_subject("orders", "ordersx.placed.v1-value", "write")
    with pytest.raises(PermissionDeniedError, match="only admin may"):
        authorize_subject("orders", None, "change the global level")
    with pytest.raises(AuthenticationError, match="needs a credential"):
        authorize_subject(None, "orders.placed.v1-value", "write")
    assert authorize_product("orders", "orders.placed", "write") == "orders"
    with pytest.raises(PermissionDeniedError, match="belongs to domain 'payments'"):
        authorize_product("orders", "payments.paid", "write")


def test_serving_without_credentials_is_refused_unless_open_writes() -> None:
    bare = MeshSettings(registry_credentials=None, registry_credentials_file=None)
    with pytest.raises(ConfigurationError, match="MESH_REGISTRY_CREDENTIALS") as refused:
        credentials_from_settings(bare)
    assert "--open-writes" in str(refused.value)
    assert credentials_from_settings(bare.model_copy(update={"registry_open_writes": True})) is None
    from_env = bare.model_copy(update={"registry_credentials": SecretStr("admin:x")})
    found = credentials_from_settings(from_env)
    assert found is not None
    assert found.principals == ["admin"]


def test_reads_can_require_a_credential() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from mesh_stream.registry.service import InMemoryStore, create_app

    app = create_app(
        InMemoryStore(), credentials=Credentials({"orders": "o"}), read_requires_auth=True
    )
    client = TestClient(app)
    anonymous = client.get("/subjects")
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == 40101
    assert "reading the registry needs a credential" in anonymous.json()["message"]
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert client.get("/subjects", headers={"Authorization": "Bearer o"}).json() == []
