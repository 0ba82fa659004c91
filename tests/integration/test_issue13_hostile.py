"""Issue 13's credentials surfaces tried as an adversary would, against a real `mesh registry
serve` process on the test broker: `mesh products apply` with a revoked token (one line,
nothing written), twenty concurrent adds and rotations of one principal (exactly one token
counts afterwards), hostile principal names, and no secret in any log line, message, list or
--help."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from mesh_stream.cli.main import run
from tests.conftest import KafkaAddress
from tests.integration.registry_process import TOKENS, RegistryProcess

ADMIN = ("admin", TOKENS["admin"])


@pytest.fixture(scope="module")
def registry(kafka: KafkaAddress) -> Iterator[RegistryProcess]:
    """A real registry process of its own; the auth-failure limit is raised so the twenty
    refused tokens this module presents on purpose are answered 401, not 429."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE", "1000")
        with RegistryProcess(kafka) as process:
            yield process


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def _mesh(args: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """`mesh ARGS` in ``cwd`` with ``env`` (an empty value unsets), through the CLI's own
    error boundary; os.environ and the working directory are restored afterwards."""
    out, err = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in env}
    old = Path.cwd()
    try:
        for name, value in env.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(args)
    finally:
        os.chdir(old)
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before
    return Outcome(code, out.getvalue(), err.getvalue())


def _env(
    kafka: KafkaAddress, registry: RegistryProcess, principal: str, token: str
) -> dict[str, str]:
    return {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": principal if principal != "admin" else "",
        "MESH_REGISTRY_TOKEN": token,
        "MESH_PROJECT_ROOT": "",
    }


def _schema(name: str = "Hostile") -> str:
    fields = [{"name": "id", "type": "string", "doc": "Id."}]
    return json.dumps({"type": "record", "name": name, "doc": "A probe.", "fields": fields})


def _write(registry: RegistryProcess, auth: tuple[str, str] | str, subject: str) -> int:
    """Register a schema as ``auth`` (Basic pair, or a Bearer token): the HTTP status."""
    answer = httpx.post(
        f"{registry.url}/subjects/{subject}/versions",
        json={"schema": _schema()},
        auth=auth if isinstance(auth, tuple) else None,
        headers={"Authorization": f"Bearer {auth}"} if isinstance(auth, str) else None,
        timeout=30,
    )
    return answer.status_code


def _read(registry: RegistryProcess, auth: tuple[str, str] | str) -> httpx.Response:
    return httpx.get(
        f"{registry.url}/subjects",
        auth=auth if isinstance(auth, tuple) else None,
        headers={"Authorization": f"Bearer {auth}"} if isinstance(auth, str) else None,
        timeout=30,
    )


def _topics(kafka: KafkaAddress) -> set[str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    return set(admin.list_topics(timeout=15).topics)


def test_apply_with_a_revoked_token_is_one_line_and_writes_nothing(
    kafka: KafkaAddress, registry: RegistryProcess, tmp_path: Path
) -> None:
    domain = f"hostile{uuid.uuid4().hex[:6]}"
    product, subject = f"{domain}.example-event", f"{domain}.example-event.v1-value"
    as_admin = _env(kafka, registry, "admin", TOKENS["admin"])
    assert _mesh(["init", domain, str(tmp_path / domain)], tmp_path, as_admin).exit_code == 0
    project = tmp_path / domain

    added = _mesh(["registry", "credentials", "add", "--quiet", domain], project, as_admin)
    assert added.exit_code == 0, added.stderr
    revoked_token = added.stdout.strip()
    revoked = _mesh(["registry", "credentials", "revoke", domain], project, as_admin)
    assert revoked.exit_code == 0, revoked.stderr

    refused = _mesh(["products", "apply"], project, _env(kafka, registry, domain, revoked_token))
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: ")
    assert f"the token of '{domain}'" in line
    assert "was revoked at" in line
    assert f"mesh registry credentials add {domain}" in line
    assert revoked_token not in refused.stderr + refused.stdout
    # Nothing written: no schema, no descriptor, no topic.
    assert httpx.get(f"{registry.url}/subjects/{subject}/versions").status_code == 404
    assert httpx.get(f"{registry.url}/products/{product}").status_code == 404
    assert f"{domain}.example-event.v1" not in _topics(kafka)

    # Added again after the revocation: the new token applies, the revoked one stays refused.
    again = _mesh(["registry", "credentials", "add", "--quiet", domain], project, as_admin)
    assert again.exit_code == 0, again.stderr
    new_token = again.stdout.strip()
    assert new_token != revoked_token
    applied = _mesh(["products", "apply"], project, _env(kafka, registry, domain, new_token))
    assert applied.exit_code == 0, applied.stderr
    assert httpx.get(f"{registry.url}/products/{product}").status_code == 200
    assert f"{domain}.example-event.v1" in _topics(kafka)
    for auth in ((domain, revoked_token), revoked_token):
        assert _write(registry, auth, f"{domain}.other.v1-value") == 401
        assert _read(registry, auth).status_code == 401


def test_twenty_concurrent_adds_and_rotations_leave_exactly_one_token(
    registry: RegistryProcess,
) -> None:
    principal = f"race{uuid.uuid4().hex[:6]}"
    url = f"{registry.url}/admin/credentials/{principal}"

    def add(_: int) -> httpx.Response:
        return httpx.post(url, auth=ADMIN, timeout=60)

    def rotate(_: int) -> httpx.Response:
        return httpx.post(f"{url}/rotate", auth=ADMIN, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        adds = list(pool.map(add, range(20)))
    assert sorted(a.status_code for a in adds) == [201] + [409] * 19
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        rotations = list(pool.map(rotate, range(20)))
    assert [r.status_code for r in rotations] == [200] * 20
    issued = [a.json()["token"] for a in adds if a.status_code == 201]
    issued += [r.json()["token"] for r in rotations]
    assert len(set(issued)) == 21

    [row] = [
        r
        for r in httpx.get(registry.url + "/admin/credentials", auth=ADMIN).json()
        if r["principal"] == principal
    ]
    assert row["source"] == "issued"
    [last] = [r.json()["token"] for r in rotations if r.json()["token_id"] == row["token_id"]]
    subject = f"{principal}.probe.v1-value"
    for token in issued:
        expected = 200 if token == last else 401
        assert _write(registry, (principal, token), subject) == expected
        assert _write(registry, token, subject) == expected
        assert _read(registry, token).status_code == expected


@pytest.mark.parametrize(
    "raw",
    ["a%2Fb", "a/b", "..", "%2E%2E", "a%00b", "caf%C3%A9", "A" * 70, "a" * 10_000, "x%2Frotate"],
)
def test_hostile_principal_names_never_reach_the_log(registry: RegistryProcess, raw: str) -> None:
    before = httpx.get(registry.url + "/admin/credentials", auth=ADMIN).json()
    for method, path in (("POST", raw), ("POST", f"{raw}/rotate"), ("DELETE", raw)):
        answer = httpx.request(
            method, f"{registry.url}/admin/credentials/{path}", auth=ADMIN, timeout=30
        )
        # A bare `..` is resolved away by the HTTP client (the request goes to /admin), so
        # the registry never sees a principal; every other name is judged and refused.
        expected = (404, 404) if raw == ".." else (422, 42217)
        assert (answer.status_code, answer.json()["error_code"]) == expected, answer.text[:200]
        assert "token" not in answer.text
    assert httpx.get(registry.url + "/admin/credentials", auth=ADMIN).json() == before


def test_no_secret_in_logs_list_or_help(
    kafka: KafkaAddress, registry: RegistryProcess, tmp_path: Path
) -> None:
    principal = f"quiet{uuid.uuid4().hex[:6]}"
    as_admin = _env(kafka, registry, "admin", TOKENS["admin"])
    added = _mesh(["registry", "credentials", "add", "--json", principal], tmp_path, as_admin)
    assert added.exit_code == 0, added.stderr
    token = httpx.post(
        f"{registry.url}/admin/credentials/{principal}/rotate", auth=ADMIN, timeout=30
    ).json()["token"]
    assert _write(registry, (principal, token + " "), f"{principal}.x.v1-value") == 401
    shown = [
        _mesh(["registry", "credentials", "list"], tmp_path, as_admin),
        _mesh(["registry", "credentials", "list", "--json"], tmp_path, as_admin),
        _mesh(["registry", "credentials", "rotate", "--help"], tmp_path, as_admin),
        _mesh(["registry", "serve", "--help"], tmp_path, as_admin),
        _mesh(["products", "apply", "--help"], tmp_path, as_admin),
    ]
    assert all(result.exit_code == 0 for result in shown)
    assert principal in shown[0].stdout
    secrets = [token, *TOKENS.values()]
    text = "".join(r.stdout + r.stderr for r in shown) + "".join(registry.log)
    assert [s for s in secrets if s in text] == []
