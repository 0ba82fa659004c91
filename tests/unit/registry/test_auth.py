"""Credentials and ownership rules, and refusing to serve without credentials."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
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


def test_a_token_given_to_two_principals_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A bearer token names its principal, so a domain holding admin's token was admin (a
    campaign, h50): from a file and from the variable, the pair is named, the token not."""
    token = "CfSecretTok_1234567890abcdef"
    shared = tmp_path / "creds.yaml"
    shared.write_text(f"admin: {token}\nshop: other-token-0123456789\norders: ' {token}'\n")
    with pytest.raises(ConfigurationError) as from_file:
        Credentials.load(shared)
    assert "principals 'admin', 'orders' are given the same token" in str(from_file.value)
    with pytest.raises(ConfigurationError) as from_variable:
        Credentials.parse(f"admin:{token},shop:{token}")
    assert str(from_variable.value) == (
        "MESH_REGISTRY_CREDENTIALS: principals 'admin', 'shop' are given the same token (its "
        "value is not shown); give each principal a token of its own (`mesh registry "
        "credentials add` makes one)"
    )
    assert token not in str(from_file.value) + str(from_variable.value)


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


@pytest.mark.parametrize("service", ["monitor", "registry"])
def test_a_platform_service_s_principal_writes_nothing_not_even_under_its_name(
    service: str,
) -> None:
    only_reads = f"it is the platform's {service} service, which only reads the registry"
    with pytest.raises(PermissionDeniedError, match=re.escape(only_reads)):
        authorize_subject(service, f"{service}.probe.v1-value", "register schemas under")
    with pytest.raises(PermissionDeniedError, match=re.escape(only_reads)):
        authorize_subject(service, None, "change the global compatibility level")
    with pytest.raises(PermissionDeniedError, match=re.escape(only_reads)):
        authorize_product(service, f"{service}.probe", "write")


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


def test_an_empty_token_is_refused_when_credentials_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as inline:
        Credentials.parse("admin:s3cret,orders:")
    assert str(inline.value) == (
        "MESH_REGISTRY_CREDENTIALS: item 2: principal 'orders' has an empty token, which "
        "would let anyone act as 'orders'; give it a token or remove it"
    )
    with pytest.raises(ConfigurationError, match="principal 'orders' has an empty token"):
        Credentials.parse("admin:s3cret, orders:   ")
    for body in ('orders: ""\nadmin: s3cret\n', "admin: s3cret\norders:\n"):
        creds = tmp_path / "creds.yaml"
        creds.write_text(body)
        with pytest.raises(ConfigurationError) as from_file:
            Credentials.load(creds)
        assert str(from_file.value) == (
            f"{creds} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE): principal 'orders' has an "
            f"empty token, which would let anyone act as 'orders'; give it a token or remove it"
        )
        assert "s3cret" not in str(from_file.value)
    blank = tmp_path / "blank.json"
    blank.write_text('{"admin": "s3cret", "orders": "  "}')
    with pytest.raises(
        ConfigurationError, match=r"blank.json \(--credentials / MESH_REGISTRY_CREDENTIALS_FILE\)"
    ):
        Credentials.load(blank)
    flag = tmp_path / "flag.yaml"
    flag.write_text("orders: yes\n")
    with pytest.raises(ConfigurationError, match="the entry for 'orders' is not one"):
        Credentials.load(flag)
    with pytest.raises(ConfigurationError, match="principal 'orders' has an empty token"):
        Credentials({"admin": "a", "orders": SecretStr("")})
    settings = MeshSettings(
        registry_credentials=SecretStr("admin:s3cret,orders:"), registry_credentials_file=None
    )
    with pytest.raises(ConfigurationError, match="MESH_REGISTRY_CREDENTIALS: item 2"):
        credentials_from_settings(settings)


def test_empty_bearer_tokens_and_basic_passwords_never_authenticate() -> None:
    credentials = Credentials({"admin": "a", "orders": "o"})
    with pytest.raises(AuthenticationError, match="an empty bearer token never matches"):
        credentials.principal_for("Bearer ")
    with pytest.raises(AuthenticationError, match="an empty bearer token never matches"):
        credentials.principal_for("Bearer")
    with pytest.raises(AuthenticationError, match="empty password never match"):
        credentials.principal_for(basic("orders", ""))
    with pytest.raises(AuthenticationError, match="these have no ':', so no principal"):
        credentials.principal_for("Basic " + base64.b64encode(b"orders").decode())
    # h52: a header with bytes that are not ASCII was a 500 (base64 raised ValueError)
    with pytest.raises(AuthenticationError, match="Basic credentials are not base64"):
        credentials.principal_for("Basic \xe9")
    with pytest.raises(AuthenticationError, match="empty Authorization header"):
        credentials.principal_for("   ")
    with pytest.raises(AuthenticationError, match="unknown principal or wrong token"):
        credentials.principal_for(basic("", "o"))


def test_failed_authentications_drain_a_bucket_per_address() -> None:
    from mesh_stream.errors import TooManyAuthFailuresError
    from mesh_stream.registry.service.edge import FailureLimiter

    now = [1000.0]
    limiter = FailureLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("client 10.0.0.1")
        limiter.failed("client 10.0.0.1")
    with pytest.raises(TooManyAuthFailuresError) as refused:
        limiter.check("client 10.0.0.1")
    assert refused.value.retry_after == 20
    assert (refused.value.status, refused.value.error_code) == (429, 42901)
    assert refused.value.message == (
        "too many failed authentications from client 10.0.0.1 (more than 3 a minute); retry "
        "after 20 s (the limit is MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE)"
    )
    limiter.check("client 10.0.0.2")  # another address is not affected
    now[0] += 19.0
    with pytest.raises(TooManyAuthFailuresError) as still:
        limiter.check("client 10.0.0.1")
    assert still.value.retry_after == 1
    now[0] += 1.0
    limiter.check("client 10.0.0.1")  # one failure refilled
    limiter.failed("client 10.0.0.1")
    with pytest.raises(TooManyAuthFailuresError):
        limiter.check("client 10.0.0.1")


def test_the_failure_table_stays_bounded() -> None:
    from mesh_stream.registry.service.edge import FailureLimiter

    limiter = FailureLimiter(1, clock=lambda: 0.0, max_addresses=100)
    for n in range(1000):
        limiter.failed(f"client 10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets) == 100


def _anonymous_request(client: Any, route: Any) -> Any:
    """Call ``route`` with its path parameters filled in and a well-formed body."""
    path = route.path
    for name in route.param_convertors:
        path = path.replace(f"{{{name}:path}}", "orders.x.v1-value").replace(f"{{{name}}}", "1")
    method = sorted(route.methods)[0]
    body = {"schema": '"string"'} if method in ("POST", "PUT") else None
    return client.request(method, path, json=body)


def test_every_route_but_health_needs_a_credential_when_reads_do() -> None:
    """Structural: ``caller`` is a dependency of every non-public route, and over HTTP each
    one answers 401 to an anonymous call (a new route cannot forget read auth)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from mesh_stream.registry.service import InMemoryStore, create_app
    from mesh_stream.registry.service.app import is_public
    from mesh_stream.registry.service.context import caller

    app = create_app(
        InMemoryStore(), credentials=Credentials({"orders": "o"}), read_requires_auth=True
    )
    client = TestClient(app, raise_server_exceptions=False)
    every_route = list(iter_route_contexts(app.routes))
    # The portal's pages answer read auth with a redirect to its sign-in form instead
    # (tests/unit/registry/portal/test_access.py checks each of them).
    routes = [r for r in every_route if not r.path.startswith("/ui")]
    public = {r.path for r in routes if is_public(r)}
    assert public == {
        "/",
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    guarded = [r for r in routes if not is_public(r)]
    assert len(guarded) == 54  # 39 schema, mode, context and product routes, 3 consumer
    # registration routes, 6 credential routes, 3 product health routes, 1 live sample route,
    # 2 export routes (asyncapi, odcs)
    for route in guarded:
        assert caller in {d.call for d in route.dependant.dependencies}, route.path
        answer = _anonymous_request(client, route)
        assert answer.status_code == 401, (route.path, route.methods, answer.text)
        assert answer.json()["error_code"] == 40101
        assert "needs a credential" in answer.json()["message"]
    lookup = client.post("/subjects/orders.x.v1-value", json={"schema": '"string"'})
    assert lookup.json()["message"].startswith(
        "POST /subjects/orders.x.v1-value needs a credential: HTTP Basic"
    )
    for route in routes:
        if is_public(route) and route.path != "/health/ready":  # ready: 200 or 503
            assert _anonymous_request(client, route).status_code == 200, route.path


def test_a_failed_authentication_counts_once_per_request_on_every_kind_of_route() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from mesh_stream.registry.service import InMemoryStore, create_app
    from mesh_stream.registry.service.edge import EdgeLimits

    app = create_app(
        InMemoryStore(),
        credentials=Credentials({"admin": "a"}),
        limits=EdgeLimits(auth_failures_per_minute=3),
    )
    client = TestClient(app, raise_server_exceptions=False)
    wrong = ("admin", "b")
    # register depends on the caller three ways (router, route, heavy pool): still one failure
    statuses = [
        client.post("/subjects/orders.x-value/versions", json={"schema": '"int"'}, auth=wrong),
        client.get("/subjects", auth=wrong),
        client.put("/products/orders.x", json={}, auth=wrong),
        client.get("/subjects", auth=("admin", "a")),
    ]
    assert [s.status_code for s in statuses] == [401, 401, 401, 429]
    assert statuses[-1].json()["error_code"] == 42901
    assert client.get("/subjects").status_code == 200  # no credential: nothing to refuse


@pytest.mark.parametrize("principal", ["anonymous", "registry", "mesh-x", "Orders"])
def test_the_bootstrap_credentials_give_no_token_to_a_name_no_domain_may_have(
    principal: str,
) -> None:
    """`mesh registry credentials add` refused these names; the credentials file and
    MESH_REGISTRY_CREDENTIALS handed them out (h32): a token for `anonymous` takes over what
    was registered without authentication."""
    with pytest.raises(ConfigurationError, match=f"no token is given to principal '{principal}'"):
        Credentials.parse(f"admin:{'a' * 32},{principal}:{'b' * 32}")
    assert Credentials.parse(f"admin:{'a' * 32},monitor:{'c' * 32}").principals == [
        "admin",
        "monitor",
    ]
