"""Auth on the running registry: a domain writes only its own subjects and products, empty
secrets never authenticate nor load, and read auth covers every route."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from mesh_stream.registry.service.app import is_public
from mesh_stream.registry.service.server import RegistryServer, build_registry
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress, RegistryAddress

SCHEMA = {
    "type": "record",
    "name": "Paid",
    "namespace": "payments",
    "doc": "A settled payment.",
    "fields": [{"name": "amount", "type": "double", "doc": "Amount paid in EUR."}],
}


def _descriptor(name: str) -> dict[str, object]:
    return {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": "Payments settled",
        "owner": {"team": "payments-core", "contact": "pay@example.com"},
        "schema": "schemas/payments/paid.avsc",
        "slos": {"freshness_seconds": 10, "availability": 99.5},
        "classification": "confidential",
        "tags": ["money"],
    }


def test_domain_credential_is_refused_on_another_domains_subject_and_product(
    registry: RegistryAddress,
) -> None:
    name = f"payments.paid-{uuid.uuid4().hex[:6]}"
    subject = f"{name}.v1-value"
    payments = ("payments", registry.tokens["payments"])
    orders = ("orders", registry.tokens["orders"])
    body = {"schema": json.dumps(SCHEMA)}

    refused = httpx.post(f"{registry.url}/subjects/{subject}/versions", json=body, auth=orders)
    assert refused.status_code == 403
    assert refused.json() == {
        "error_code": 40301,
        "message": f"principal 'orders' may not register schemas under subject '{subject}': "
        f"a domain writes only subjects named 'orders.…'",
    }
    anonymous = httpx.post(f"{registry.url}/subjects/{subject}/versions", json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error_code"] == 40101
    wrong = httpx.post(
        f"{registry.url}/subjects/{subject}/versions", json=body, auth=("payments", "nope")
    )
    assert wrong.status_code == 401

    owned = httpx.post(
        f"{registry.url}/subjects/{subject}/versions",
        json=body,
        headers={"Authorization": f"Bearer {registry.tokens['payments']}"},
    )
    assert owned.status_code == 200, owned.text

    product = httpx.put(f"{registry.url}/products/{name}", json=_descriptor(name), auth=orders)
    assert product.status_code == 403
    assert product.json()["error_code"] == 40301
    assert f"product '{name}': it belongs to domain 'payments'" in product.json()["message"]
    assert httpx.get(f"{registry.url}/products/{name}").json()["error_code"] == 40404

    created = httpx.put(f"{registry.url}/products/{name}", json=_descriptor(name), auth=payments)
    assert created.status_code == 200, created.text
    assert created.json()["registry"]["schema_id"] == owned.json()["id"]
    assert httpx.delete(f"{registry.url}/products/{name}", auth=orders).status_code == 403
    config = httpx.put(
        f"{registry.url}/config/{subject}", json={"compatibility": "NONE"}, auth=orders
    )
    assert config.status_code == 403
    assert (
        httpx.put(
            f"{registry.url}/config", json={"compatibility": "NONE"}, auth=payments
        ).status_code
        == 403
    )
    # Reads are open by default; admin may write anything.
    assert httpx.get(f"{registry.url}/products/{name}").status_code == 200
    admin = ("admin", registry.admin_token)
    assert httpx.delete(f"{registry.url}/products/{name}", auth=admin).status_code == 204


def test_empty_bearer_tokens_and_basic_passwords_are_refused(registry: RegistryAddress) -> None:
    subject = f"orders.empty-{uuid.uuid4().hex[:6]}.v1-value"
    body = {"schema": json.dumps(SCHEMA)}
    for headers in (
        {"Authorization": "Bearer"},  # "Bearer " arrives the same: HTTP drops trailing blanks
        {"Authorization": "Basic " + base64.b64encode(b"orders:").decode()},
        {"Authorization": ""},
    ):
        answer = httpx.post(
            f"{registry.url}/subjects/{subject}/versions", json=body, headers=headers
        )
        assert (answer.status_code, answer.json()["error_code"]) == (401, 40101), headers
    assert httpx.get(f"{registry.url}/subjects/{subject}/versions").status_code == 404


def test_an_empty_token_stops_serve_at_start_naming_principal_and_source(tmp_path: Path) -> None:
    creds = tmp_path / "creds.yaml"
    creds.write_text("admin: s3cret-admin\norders: ''\n")
    mesh = str(Path(sys.executable).with_name("mesh"))
    cases = [
        (
            [mesh, "registry", "serve", "--port", "0", "--credentials", str(creds)],
            {},
            f"{creds} (--credentials / MESH_REGISTRY_CREDENTIALS_FILE): principal 'orders' has "
            f"an empty token",
            1,
        ),
        (  # a bad MESH_* value: exit 2, as for every setting
            [mesh, "registry", "serve", "--port", "0"],
            {"MESH_REGISTRY_CREDENTIALS": "admin:s3cret-admin,orders:"},
            "MESH_REGISTRY_CREDENTIALS: item 2: principal 'orders' has an empty token",
            2,
        ),
    ]
    for argv, extra, expected, status in cases:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
        done = subprocess.run(
            argv,
            check=False,
            env={**env, **extra, "MESH_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == status, done.stderr
        assert expected in done.stderr
        assert "s3cret-admin" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


@dataclass(frozen=True)
class ReadAuth:
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def read_auth(kafka: KafkaAddress) -> Iterator[ReadAuth]:
    tag = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(
            "admin:admin-secret,orders:orders-secret,monitor:monitor-secret"
        ),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-readauth-{tag}",
        registry_writer_id=f"readauth-{tag}",
        registry_read_requires_auth=True,
    )
    app, store = build_registry(settings, validators=())
    server = RegistryServer(app)
    try:
        yield ReadAuth(server.start(), app)
    finally:
        server.stop()
        store.close()


def _call(url: str, route: Any, **kwargs: Any) -> httpx.Response:
    path = route.path
    for name in route.param_convertors:
        path = path.replace(f"{{{name}:path}}", "orders.read.v1-value").replace(f"{{{name}}}", "1")
    method = sorted(route.methods)[0]
    body = {"schema": json.dumps(SCHEMA)} if method in ("POST", "PUT") else None
    return httpx.request(method, url + path, json=body, **kwargs)


def test_with_read_auth_every_route_but_health_needs_a_credential(read_auth: ReadAuth) -> None:
    url = read_auth.url
    admin = {"auth": ("admin", "admin-secret")}
    subject = "orders.read.v1-value"
    registered = httpx.post(
        f"{url}/subjects/{subject}/versions", json={"schema": json.dumps(SCHEMA)}, **admin
    )
    assert registered.status_code == 200, registered.text
    # The portal's pages send anonymous readers to its sign-in form instead (tested in
    # tests/unit/registry/portal/test_access.py and tests/browser/test_access.py).
    routes = [r for r in iter_route_contexts(read_auth.app.routes) if not r.path.startswith("/ui")]
    guarded = [r for r in routes if not is_public(r)]
    assert len(guarded) == 54  # 39 schema, mode, context and product routes, 3 consumer
    # registration routes, 6 credential routes, 3 product health routes, the live sample, the
    # AsyncAPI and ODCS exports
    for route in guarded:
        anonymous = _call(url, route)
        assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101), (
            route.path,
            route.methods,
        )
        assert "needs a credential" in anonymous.json()["message"]
        assert anonymous.headers["www-authenticate"] == 'Basic realm="mesh-registry"'
    assert httpx.get(f"{url}/health").status_code == 200
    # With a credential the reads that POST answer as usual.
    lookup = httpx.post(f"{url}/subjects/{subject}", json={"schema": json.dumps(SCHEMA)}, **admin)
    assert (lookup.status_code, lookup.json()["version"]) == (200, 1)
    compat = httpx.post(
        f"{url}/compatibility/subjects/{subject}/versions/latest",
        json={"schema": json.dumps(SCHEMA)},
        headers={"Authorization": "Bearer orders-secret"},
    )
    assert compat.json() == {"is_compatible": True}
    anonymous_lookup = httpx.post(f"{url}/subjects/{subject}", json={"schema": json.dumps(SCHEMA)})
    assert anonymous_lookup.json() == {
        "error_code": 40101,
        "message": f"POST /subjects/{subject} needs a credential: HTTP Basic (user = principal, "
        f"password = token) or `Authorization: Bearer <token>`",
    }


def test_the_monitor_s_principal_reads_with_read_auth_and_writes_nothing(
    read_auth: ReadAuth,
) -> None:
    """`mesh up` gives the product monitor the `monitor` principal, not admin's: it lists
    products, and every route that writes refuses it."""
    url = read_auth.url
    monitor = {"auth": ("monitor", "monitor-secret")}
    assert httpx.get(f"{url}/products", **monitor).status_code == 200
    assert httpx.get(f"{url}/subjects", **monitor).status_code == 200
    # not even under its own name, as a domain could (no domain may be named monitor)
    own = httpx.post(
        f"{url}/subjects/monitor.probe.v1-value/versions",
        json={"schema": json.dumps(SCHEMA)},
        **monitor,
    )
    assert own.status_code == 403, own.text
    routes = [r for r in iter_route_contexts(read_auth.app.routes) if not r.path.startswith("/ui")]
    writes = [
        route
        for route in routes
        if not is_public(route)
        and sorted(route.methods)[0] in ("POST", "PUT", "DELETE")
        and not route.path.startswith(("/compatibility", "/exports"))
        and not route.path.endswith("/check")  # a product check stores nothing
        and not (route.path == "/subjects/{subject:path}" and "POST" in route.methods)
    ]
    refused = {}
    for route in writes:
        method = sorted(route.methods)[0]
        if route.path.startswith("/products"):  # a valid descriptor and consumer registration
            path = route.path.replace("{name}", "orders.read")
            path = path.replace("{group:path}", "orders-reader")
            body = _descriptor("orders.read") if method in ("POST", "PUT") else None
            answer = httpx.request(method, url + path, json=body, **monitor)
        else:
            answer = _call(url, route, **monitor)
        refused[(route.path, method)] = (answer.status_code, answer.json().get("message", ""))
    assert len(refused) == 20  # schemas, config, modes, products, consumers, credentials
    for where, (status, message) in refused.items():
        assert status == 403, (where, status, message)
        reason = (
            "only admin manages credentials"
            if where[0].startswith("/admin/credentials")
            else "it is the platform's monitor service, which only reads the registry"
        )
        assert message.startswith("principal 'monitor' may not"), where
        assert reason in message, where
