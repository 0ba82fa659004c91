"""What the registry client, and the commands on it, say when the registry answers JSON of
another shape than a mesh registry's, never answers, or refuses a credential header too long:
one line naming the URL and what is wrong, exit 1, never a traceback (hostile-input campaign).

The servers are real sockets on 127.0.0.1: a small ``http.server`` answering fixed JSON per
path, a socket that accepts and never answers, and the registry's own HTTP stack (uvicorn
with h11, as `mesh registry serve` runs it) over the in-memory store.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mesh_stream.cli.main import cli, run
from mesh_stream.errors import ConfigurationError, RegistryError, RegistryUnavailableError
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.registry_stubs import answering, silent
from tests.unit.registry.conftest import TOKENS, descriptor, schema

REPO = Path(__file__).resolve().parents[3]
PRODUCT = "orders.order-placed"
SUBJECT = f"{PRODUCT}.v1-value"
TAIL = "; is MESH_REGISTRY_URL (or --registry-url) a mesh registry?"


def _error_line(err: str) -> str:
    """The one `error:` line of a command's stderr (and no traceback)."""
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


# -- every client call that reads an answer ------------------------------------------------

ISSUED = {"principal": "orders", "token_id": "t1", "created_at": "now", "created_by": "admin"}
VERSIONS = f"/subjects/{SUBJECT}/versions"

CALLS: list[tuple[str, Callable[[RegistryClient], Any], Mapping[str, Any], str]] = [
    (
        "list_credentials",
        lambda c: c.list_credentials(),
        {"/admin/credentials": {"x": 1}},
        "GET /admin/credentials with an object, not a list",
    ),
    (
        "list_credentials item",
        lambda c: c.list_credentials(),
        {"/admin/credentials": [{"principal": "a"}]},
        "GET /admin/credentials with an object at [0] without 'source'",
    ),
    (
        "add_credential",
        lambda c: c.add_credential("orders"),
        {"/admin/credentials/orders": []},
        "POST /admin/credentials/orders with a list, not an object",
    ),
    (
        "rotate_credential",
        lambda c: c.rotate_credential("orders"),
        {"/admin/credentials/orders/rotate": {**ISSUED, "token": 5}},
        "POST /admin/credentials/orders/rotate with a number at token, not a string",
    ),
    (
        "revoke_credential",
        lambda c: c.revoke_credential("orders"),
        {"/admin/credentials/orders": "hello"},
        "DELETE /admin/credentials/orders with a string, not an object",
    ),
    (
        "revoke_credential empty",
        lambda c: c.revoke_credential("orders"),
        {"/admin/credentials/orders": b""},
        "DELETE /admin/credentials/orders with no content",
    ),
    (
        "product_schemas",
        lambda c: c.product_schemas(PRODUCT),
        {f"/products/{PRODUCT}/schemas": [{"version": "1", "schema": "{}"}]},
        f"GET /products/{PRODUCT}/schemas with a string at [0].version, not a whole number",
    ),
    (
        "consumers",
        lambda c: c.consumers(PRODUCT),
        {f"/products/{PRODUCT}/consumers": [{"group": 5}]},
        f"GET /products/{PRODUCT}/consumers with a number at [0].group, not a string",
    ),
    (
        "get_compatibility",
        lambda c: c.get_compatibility(SUBJECT),
        {f"/config/{SUBJECT}": []},
        f"GET /config/{SUBJECT} with a list, not an object",
    ),
    (
        "get_compatibility level",
        lambda c: c.get_compatibility(),
        {"/config": {"compatibilityLevel": "SOMETIMES"}},
        "GET /config with compatibilityLevel 'SOMETIMES', not one of NONE, BACKWARD, "
        "BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE",
    ),
    (
        "get_latest",
        lambda c: c.get_latest(SUBJECT),
        {f"{VERSIONS}/latest": {"version": 1, "id": 1}},
        f"GET {VERSIONS}/latest with an object without 'schema'",
    ),
    (
        "get_latest id beyond 4 bytes",
        lambda c: c.get_latest(SUBJECT),
        {f"{VERSIONS}/latest": {"version": 1, "id": 2**32, "schema": '"string"'}},
        f"GET {VERSIONS}/latest with 4294967296 at id, not a schema id (a whole number from "
        f"0 to 4294967295)",
    ),
    (
        "get_schema",
        lambda c: c.get_schema(1),
        {"/schemas/ids/1": 42},
        "GET /schemas/ids/1 with a number, not an object",
    ),
    (
        "subjects",
        lambda c: c.subjects(),
        {"/subjects": [1, "a"]},
        "GET /subjects with a number at [0], not a string",
    ),
    (
        "get_schema_subjects",
        lambda c: c.get_schema_subjects(1),
        {"/schemas/ids/1/versions": ["a"]},
        "GET /schemas/ids/1/versions with a string at [0], not an object",
    ),
    (
        "register_schema",
        lambda c: c.register_schema(SUBJECT, schema()),
        {VERSIONS: {"version": 1}},
        f"POST {VERSIONS} with an object without 'id'",
    ),
    (
        "check_compatibility",
        lambda c: c.check_compatibility(SUBJECT, schema()),
        {f"/compatibility/subjects/{SUBJECT}/versions/latest": {"is_compatible": "no"}},
        f"POST /compatibility/subjects/{SUBJECT}/versions/latest with a string at "
        f"is_compatible, not true or false",
    ),
    (
        "lineage",
        lambda c: c.lineage(PRODUCT),
        {f"/products/{PRODUCT}/lineage": {"edges": [{"from": "a"}]}},
        f"GET /products/{PRODUCT}/lineage with an object at edges[0] without 'to'",
    ),
    (
        "list_products",
        lambda c: c.list_products(),
        {"/products": [{"name": PRODUCT, "registry": {"consumers": "g"}}]},
        "GET /products with a string at [0].registry.consumers, not a list",
    ),
    (
        "get_product",
        lambda c: c.get_product(PRODUCT),
        {f"/products/{PRODUCT}": {"name": PRODUCT, "registry": {"downstream": [1]}}},
        f"GET /products/{PRODUCT} with a number at registry.downstream[0], not a string",
    ),
    (  # what `mesh products show` printed as the product, exit status 0 (a campaign)
        "get_product-unnamed",
        lambda c: c.get_product(PRODUCT),
        {f"/products/{PRODUCT}": {"products": "nope", "name": 5, "version": -1}},
        f"GET /products/{PRODUCT} with a number at name, not a string",
    ),
    (
        "get_product-another",
        lambda c: c.get_product(PRODUCT),
        {f"/products/{PRODUCT}": {"name": "orders.other"}},
        f"GET /products/{PRODUCT} with product 'orders.other'",
    ),
    (
        "put_product",
        lambda c: c.put_product(descriptor()),
        {f"/products/{PRODUCT}": {"registry": []}},
        f"PUT /products/{PRODUCT} with a list at registry, not an object",
    ),
    (
        "product_health_history",
        lambda c: c.product_health_history(PRODUCT),
        {f"/products/{PRODUCT}/health/history": {"x": 1}},
        f"GET /products/{PRODUCT}/health/history with an object, not a list",
    ),
    (
        "all_product_health",
        lambda c: c.all_product_health(),
        {"/product-health": []},
        "GET /product-health with a list, not an object",
    ),
    (
        "register_consumer",
        lambda c: c.register_consumer(PRODUCT, "billing"),
        {f"/products/{PRODUCT}/consumers/billing": []},
        f"PUT /products/{PRODUCT}/consumers/billing with a list, not an object",
    ),
]


@pytest.mark.parametrize(
    ("call", "routes", "found"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS]
)
def test_an_answer_of_another_shape_names_the_url_the_call_and_where(
    call: Callable[[RegistryClient], Any], routes: Mapping[str, Any], found: str
) -> None:
    with (
        answering(routes) as url,
        RegistryClient(url, token="t") as client,
        pytest.raises(RegistryError) as raised,
    ):
        call(client)
    assert type(raised.value) is RegistryError  # not "unavailable": nothing to wait for
    assert str(raised.value) == f"registry at {url} answered {found}{TAIL}"


# -- the commands ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        ({"x": 1}, "an object, not a list"),
        ("hello", "a string, not a list"),
        (42, "a number, not a list"),
        ([1], "a number at [0], not an object"),
        (["a"], "a string at [0], not an object"),
        ([{"principal": "a"}], "an object at [0] without 'source'"),
    ],
)
def test_credentials_list_says_what_the_registry_answered(
    answer: Any, found: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with answering({"/admin/credentials": answer}) as url:
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        monkeypatch.setenv("MESH_REGISTRY_TOKEN", "admin-secret")
        status = run(["registry", "credentials", "list"])
    assert status == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: registry at {url} answered GET /admin/credentials with {found}{TAIL}"
    )


@pytest.mark.parametrize(
    ("verb", "method", "path"),
    [
        ("add", "POST", "/admin/credentials/orders"),
        ("rotate", "POST", "/admin/credentials/orders/rotate"),
        ("revoke", "DELETE", "/admin/credentials/orders"),
    ],
)
def test_credentials_add_rotate_revoke_say_what_the_registry_answered(
    verb: str, method: str, path: str
) -> None:
    with answering({path: []}) as url:
        result = CliRunner().invoke(
            cli,
            ["registry", "credentials", verb, "orders", "--registry-url", url],
            env={"MESH_REGISTRY_TOKEN": "admin-secret"},
        )
    assert result.exit_code == 1
    assert isinstance(result.exception, RegistryError)  # the entry point prints it, one line
    assert str(result.exception) == (
        f"registry at {url} answered {method} {path} with a list, not an object{TAIL}"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The orders domain's repository: the sample order-placed descriptor and schema."""
    products = tmp_path / "domains" / "orders" / "products"
    products.mkdir(parents=True)
    shutil.copy(REPO / "domains/orders/products/order-placed.yaml", products)
    (tmp_path / "schemas" / "orders").mkdir(parents=True)
    shutil.copy(REPO / "schemas/orders/order-placed.avsc", tmp_path / "schemas" / "orders")
    (tmp_path / "mesh.yaml").write_text("domains: [orders]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    return tmp_path


def _history() -> list[dict[str, Any]]:
    return [{"version": 1, "schema": (REPO / "schemas/orders/order-placed.avsc").read_text()}]


SCHEMAS = f"/products/{PRODUCT}/schemas"
LEVEL = {f"/config/{SUBJECT}": {"compatibilityLevel": "BACKWARD"}}


@pytest.mark.parametrize(
    ("routes", "found"),
    [
        ({SCHEMAS: {"x": 1}}, f"GET {SCHEMAS} with an object, not a list"),
        ({SCHEMAS: "hello"}, f"GET {SCHEMAS} with a string, not a list"),
        ({SCHEMAS: [1]}, f"GET {SCHEMAS} with a number at [0], not an object"),
        ({SCHEMAS: [{"x": 1}]}, f"GET {SCHEMAS} with an object at [0] without 'version'"),
        (
            {SCHEMAS: _history(), f"/config/{SUBJECT}": {"compatibilityLevel": "BOGUS"}},
            f"GET /config/{SUBJECT} with compatibilityLevel 'BOGUS', not one of NONE, "
            f"BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE",
        ),
        (
            {
                SCHEMAS: _history(),
                **LEVEL,
                f"/products/{PRODUCT}": {"name": PRODUCT, "registry": {"downstream": "x"}},
            },
            f"GET /products/{PRODUCT} with a string at registry.downstream, not a list",
        ),
        (
            {
                SCHEMAS: _history(),
                **LEVEL,
                f"/products/{PRODUCT}": {"name": PRODUCT},
                f"/products/{PRODUCT}/consumers": [{"group": 5}],
            },
            f"GET /products/{PRODUCT}/consumers with a number at [0].group, not a string",
        ),
    ],
    ids=["object", "string", "number item", "item field", "level", "downstream", "group"],
)
def test_lint_against_registry_says_what_the_registry_answered(
    project: Path,
    routes: Mapping[str, Any],
    found: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with answering(routes) as url:
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        status = run(["lint", "--against-registry"])
    assert status == 1
    assert (
        _error_line(capsys.readouterr().err) == f"error: registry at {url} answered {found}{TAIL}"
    )


class _NoKafka:
    """The monitor's Kafka side, absent: these tests are about the registry's answer, which
    `mesh monitor` asks before it reads any topic."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.latest: dict[str, Any] = {}

    def close(self) -> None: ...

    def catch_up(self) -> None: ...

    def read(self, _targets: Any, _now: int) -> dict[str, Any]:
        raise AssertionError("the registry's answer should have stopped the round")


def _sample_document(**changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "domains/orders/products/order-placed.yaml").read_text())
    assert isinstance(document, dict)
    return {**document, **changes}


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        ({"x": 1}, "an object, not a list"),
        ([1], "a number at [0], not an object"),
        ([_sample_document(registry=[1])], "a list at [0].registry, not an object"),
        (
            [_sample_document(registry={"consumers": "billing"})],
            "a string at [0].registry.consumers, not a list",
        ),
        (
            [_sample_document(registry={"consumers": [{"group": "g"}, "x"]})],
            "a string at [0].registry.consumers[1], not an object",
        ),
    ],
    ids=["object", "number item", "registry facts", "consumers", "consumer item"],
)
def test_monitor_once_says_what_the_registry_answered(
    answer: Any, found: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli import monitor as monitor_cli
    from mesh_stream.monitor import service

    monkeypatch.setattr(monitor_cli, "existing_topics", lambda _conn: None)
    monkeypatch.setattr(service, "ensure_monitor_topics", lambda *_args: None)
    for name in ("KafkaMeter", "HealthLog", "Publisher"):
        monkeypatch.setattr(service, name, _NoKafka)
    with answering({"/products": answer}) as url:
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        status = run(["monitor", "--once", "--log-level", "warning"])
    assert status == 1
    assert _error_line(capsys.readouterr().err) == (
        f"error: registry at {url} answered GET /products with {found}{TAIL}"
    )


# -- a registry that accepts the connection and never answers -------------------------------


def test_a_read_asked_again_says_how_many_times_and_how_long_in_all() -> None:
    with silent() as (url, accepted), RegistryClient(url, timeout=0.3, retry_seconds=1.0) as c:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError) as raised:
            c.subjects()
        waited = time.monotonic() - started
    found = re.fullmatch(
        rf"registry at {re.escape(url)} did not answer GET /subjects within 0\.3 s each, "
        r"(\d+) attempts over (\d+) s",  # no HTTP answer came: no status is shown
        str(raised.value),
    )
    assert found is not None, str(raised.value)
    attempts, seconds = int(found[1]), int(found[2])
    assert attempts == len(accepted) >= 2
    assert abs(seconds - waited) <= 1  # the time the caller waited, not one timeout


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda c: c.subjects(), "GET /subjects within 0.3 s"),
        (
            lambda c: c.delete_product(PRODUCT),
            f"DELETE /products/{PRODUCT} within 0.3 s; the registry may still apply it",
        ),
    ],
    ids=["not retried", "a delete"],
)
def test_a_single_attempt_says_just_the_timeout(
    call: Callable[[RegistryClient], Any], said: str
) -> None:
    with (
        silent() as (url, accepted),
        RegistryClient(url, timeout=0.3, retry_seconds=0) as client,
        pytest.raises(RegistryUnavailableError) as raised,
    ):
        call(client)
    assert len(accepted) == 1
    assert f"did not answer {said}" in str(raised.value)
    assert "attempts" not in str(raised.value)


def test_lint_against_a_registry_that_never_answers_says_so_within_its_timeout(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_stream.cli import lint as lint_cli

    monkeypatch.setattr(lint_cli, "LOOKUP_TIMEOUT", 0.3)
    with silent() as (url, accepted):
        monkeypatch.setenv("MESH_REGISTRY_URL", url)
        status = run(["lint", "--against-registry"])
    assert status == 1
    assert len(accepted) == 1  # lint asks once
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot compare with the registry at {url}:")


# -- a credential too long for an HTTP header ---------------------------------------------


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    """The registry's HTTP stack as `mesh registry serve` runs it, over the in-memory store."""
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    yield running.start()
    running.stop()


#: Longer than the registry's server reads at once (256 KB), so its HTTP parser always sees
#: an incomplete request head over its 16 KB limit and closes the connection (a 120 KB token
#: sent as Basic, 160 KB, is refused too, but not on every run: a head read whole passes).
HUGE = 200_000


def test_a_token_too_long_for_a_header_is_named_with_its_length_not_unreachable(
    registry_url: str,
) -> None:
    token = "Zq" * (HUGE // 2)
    with (
        RegistryClient(registry_url, principal="admin", token=token) as client,
        pytest.raises(ConfigurationError) as raised,
    ):
        client.list_products()
    message = str(raised.value)
    assert re.fullmatch(
        rf"GET {re.escape(registry_url)}/products: the registry refused the request "
        r"\((ReadError|WriteError|RemoteProtocolError|HTTP 400)\): its Authorization header is "
        r"266,682 bytes: MESH_REGISTRY_TOKEN \(or --token\) is 200,000 bytes long, more than "
        r"HTTP servers take in a header \(most stop at 8 KB; a registry token is far shorter\); "
        r"copy it again \(its value is not shown\)",
        message,
    ), message
    assert "ZqZq" not in message


def test_the_command_says_the_token_is_too_long(
    registry_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESH_REGISTRY_URL", registry_url)
    monkeypatch.setenv("MESH_REGISTRY_PRINCIPAL", "admin")
    monkeypatch.setenv("MESH_REGISTRY_TOKEN", "Zq" * (HUGE // 2))
    status = run(["registry", "credentials", "list"])
    assert status == 1
    err = capsys.readouterr().err
    line = _error_line(err)
    assert "unreachable" not in line
    assert "MESH_REGISTRY_TOKEN (or --token) is 200,000 bytes long" in line
    assert "ZqZq" not in err


def test_a_long_token_the_registry_read_and_refused_is_said_to_be_long(
    registry_url: str,
) -> None:
    # 9 KB: under the registry's 16 KB limit, so it reads the header and refuses the token
    with (
        RegistryClient(registry_url, token="Zq" * 4_500) as client,
        pytest.raises(RegistryError) as raised,
    ):
        client.register_schema(SUBJECT, schema())
    assert str(raised.value) == (
        f"POST /subjects/{SUBJECT}/versions: unknown bearer token; MESH_REGISTRY_TOKEN (or "
        f"--token) is 9,000 bytes long, more than HTTP servers take in a header (most stop at "
        f"8 KB; a registry token is far shorter); copy it again (its value is not shown) "
        f"(HTTP 401, error_code 40101)"
    )


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda: RegistryClient(None), "the registry URL must be a str such as"),  # type: ignore[arg-type]
        (
            lambda: RegistryClient("http://127.0.0.1:1").get_schema("7"),  # type: ignore[arg-type]
            "a schema id is a whole number (the 4 bytes after a record's magic byte), got str",
        ),
    ],
    ids=["url-none", "schema-id-str"],
)
def test_a_wrong_argument_is_a_configuration_error_naming_it(
    make: Callable[[], Any], said: str
) -> None:
    """A design audit found a raw TypeError and ValueError from inside the client."""
    with pytest.raises(ConfigurationError, match=re.escape(said)):
        make()
