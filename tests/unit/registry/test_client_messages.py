"""What the registry client tells a user whose settings are wrong: the setting to fix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mesh_stream.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    ProductNotFoundError,
    RegistryError,
)
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import TOKENS, schema

SUBJECT = "orders.order-placed.v1-value"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    yield running.start()
    running.stop()


def test_no_credential_names_both_settings(url: str) -> None:
    with RegistryClient(url) as anonymous, pytest.raises(AuthenticationError) as raised:
        anonymous.register_schema(SUBJECT, schema())
    assert str(raised.value) == (
        f"POST /subjects/{SUBJECT}/versions: register schemas under subject '{SUBJECT}' "
        "needs a credential: HTTP Basic (user = principal, password = token) or `Authorization: "
        "Bearer <token>`; set MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN (the owning "
        "domain's) (HTTP 401, error_code 40101)"
    )


def test_a_read_without_credential_asks_for_any_principals() -> None:
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS), read_requires_auth=True)
    running = RegistryServer(app)
    try:
        with (
            RegistryClient(running.start()) as anonymous,
            pytest.raises(AuthenticationError) as raised,
        ):
            anonymous.subjects()
    finally:
        running.stop()
    assert str(raised.value).endswith(
        "; set MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN (any principal's) "
        "(HTTP 401, error_code 40101)"
    )


def test_wrong_token_says_which_settings_to_check(url: str) -> None:
    with (
        RegistryClient(url, principal="orders", token="wrong") as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.register_schema(SUBJECT, schema())
    assert str(raised.value).endswith(
        "; check MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN (HTTP 401, error_code 40101)"
    )


def test_a_wrong_token_in_the_url_is_told_to_check_the_url(url: str) -> None:
    """Credentials given as http://principal:token@host were refused with a hint to check
    MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN, which the user never set (a campaign)."""
    with_userinfo = url.replace("http://", "http://orders:not-the-s3cret@", 1)
    with (
        RegistryClient(with_userinfo) as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.register_schema(SUBJECT, schema())
    assert str(raised.value).endswith(
        "; check the user and password in the registry URL (MESH_REGISTRY_URL or "
        "--registry-url) (HTTP 401, error_code 40101)"
    )
    assert "s3cret" not in str(raised.value)


def test_another_domains_credential_is_told_to_use_the_owners(url: str) -> None:
    token = TOKENS["payments"]
    with (
        RegistryClient(url, principal="payments", token=token) as client,
        pytest.raises(PermissionDeniedError) as raised,
    ):
        client.register_schema(SUBJECT, schema())
    assert str(raised.value).endswith(
        "; send the owning domain's credential, not that of principal payments "
        "(MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN) (HTTP 403, error_code 40301)"
    )


def test_a_consumer_group_without_credential_is_told_to_use_its_own_domains(url: str) -> None:
    """A group is registered with the credential of the domain it is named after: the
    hint said the product owner's, which then got a 403 (a campaign)."""
    with RegistryClient(url) as client, pytest.raises(AuthenticationError) as raised:
        client.register_consumer("orders.order-placed", "payments.billing-app", reads=["x"])
    assert "(the group's own domain's) (HTTP 401" in str(raised.value)


def test_principal_without_token_is_refused_up_front() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RegistryClient("http://127.0.0.1:8081", principal="orders")
    assert "registry principal 'orders' is set but no token: set MESH_REGISTRY_TOKEN" in str(
        raised.value
    )


@pytest.mark.parametrize("given", ["127.0.0.1:8081", "localhost", "ftp://x"])
def test_url_without_http_scheme_is_refused_naming_the_setting(given: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RegistryClient(given)
    assert str(raised.value) == (
        f"registry URL {given!r} must start with http:// or https:// (e.g. "
        "http://127.0.0.1:8081); fix MESH_REGISTRY_URL or --registry-url"
    )


class _NotARegistry(BaseHTTPRequestHandler):
    """An HTTP server that is not the registry: HTML for every path."""

    def do_GET(self) -> None:
        status = 200 if self.path == "/subjects" else 404
        body = b"<html><body>hello</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def other_server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _NotARegistry)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("call", "path", "status"),
    [("subjects", "/subjects", 200), ("list_products", "/products", 404)],
)
def test_a_url_that_is_not_the_registry_is_named(
    other_server: str, call: str, path: str, status: int
) -> None:
    with RegistryClient(other_server) as client, pytest.raises(RegistryError) as raised:
        getattr(client, call)()
    assert str(raised.value) == (
        f"GET {path}: {other_server} answered HTTP {status} with text/html, not a registry "
        "response; is MESH_REGISTRY_URL (or --registry-url) the URL of `mesh registry serve`?"
    )  # no second, synthetic status beside the one that answered


def test_an_https_url_to_a_plain_http_server_says_it_speaks_http(other_server: str) -> None:
    """It was only "unreachable" (a campaign), with the TLS library's words."""
    https = other_server.replace("http://", "https://")
    with RegistryClient(https, timeout=5) as client, pytest.raises(RegistryError) as raised:
        client.list_products()
    message = str(raised.value)
    assert message.startswith(f"registry at {https} is unreachable ("), message
    assert (
        "it answered the TLS handshake with something else, so it likely speaks plain HTTP "
        "(an http:// URL)"
    ) in message


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("http://127.0.0.1:99999", "has port '99999', not a number from 1 to 65535"),
        ("http://x:abc", "has port 'abc', not a number from 1 to 65535"),
        ("http://x:0", "has port 0, not a number from 1 to 65535"),
        ("http://", "has no host name"),
        ("http://[::1", "is not a URL (Invalid IPv6 URL)"),
        ("http://a b:8081", "contains blanks or control characters"),
    ],
)
def test_a_url_with_a_bad_port_or_host_is_refused_naming_the_setting(
    given: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RegistryClient(given)
    assert str(raised.value) == (
        f"registry URL {given!r} {problem} (e.g. http://127.0.0.1:8081); fix "
        "MESH_REGISTRY_URL or --registry-url"
    )


def test_a_host_idna_refuses_is_a_configuration_error_not_a_traceback() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RegistryClient("http://xn--a.com").subjects()
    assert str(raised.value).startswith(
        "GET http://xn--a.com/subjects: the registry host name is not usable ("
    )
    assert str(raised.value).endswith("); fix MESH_REGISTRY_URL or --registry-url")


def test_a_filter_too_long_or_not_encodable_is_named_not_blamed_on_the_url() -> None:
    client = RegistryClient("http://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as raised:
        client.list_products(query="x" * 100_000)
    assert str(raised.value) == (
        "GET http://127.0.0.1:1/products: the request URL is not usable (URL component "
        "'query' too long); check the names and filters given, and MESH_REGISTRY_URL / "
        "--registry-url"
    )
    with pytest.raises(ConfigurationError) as raised:
        client.list_products(tag="a\ud800")
    assert str(raised.value) == (
        "GET http://127.0.0.1:1/products: a name or filter holds text UTF-8 cannot encode "
        "(character 2: surrogates not allowed, e.g. a lone surrogate)"
    )


@pytest.mark.parametrize("name", ["", ".", "..", "a/../b", "Orders.Placed"])
def test_a_name_that_cannot_be_a_product_is_not_found_without_asking(
    other_server: str, name: str
) -> None:
    # other_server answers every path with HTML: asking it would be a "not a registry" error
    with RegistryClient(other_server) as client, pytest.raises(ProductNotFoundError) as raised:
        client.get_product(name)
    assert str(raised.value).startswith(f"no such data product: {name!r} is not ")
    assert str(raised.value).endswith("(HTTP 404, error_code 40404)")


class _WrongShape(BaseHTTPRequestHandler):
    """A JSON server that answers every path with a list."""

    body = b"[]"

    def do_GET(self) -> None:
        body = self.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


class _ObjectsOnly(_WrongShape):
    body = b'{"products": []}'


class _Numbers(_WrongShape):
    body = b"[1, 2]"


@pytest.mark.parametrize(
    ("handler", "call", "path", "found", "wanted"),
    [
        (_WrongShape, "get_product", "/products/orders.order-placed", "a list", "an object"),
        (_WrongShape, "lineage", "/products/orders.order-placed/lineage", "a list", "an object"),
        (_ObjectsOnly, "list_products", "/products", "an object", "a list"),
        (_Numbers, "list_products", "/products", "a number at [0]", "an object"),
    ],
)
def test_an_answer_in_the_wrong_shape_is_named_not_a_crash(
    handler: type[BaseHTTPRequestHandler], call: str, path: str, found: str, wanted: str
) -> None:
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    args = () if call == "list_products" else ("orders.order-placed",)
    try:
        with RegistryClient(url) as client, pytest.raises(RegistryError) as raised:
            getattr(client, call)(*args)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert str(raised.value) == (
        f"registry at {url} answered GET {path} with {found}, not {wanted}; is "
        "MESH_REGISTRY_URL (or --registry-url) a mesh registry?"
    )


def test_a_url_credential_and_a_token_that_differ_are_refused_not_one_ignored() -> None:
    """`MESH_REGISTRY_URL=http://admin:WRONG@host` with a right MESH_REGISTRY_TOKEN worked,
    the URL's token silently ignored (h42): now the conflict is named, no token shown."""
    with pytest.raises(ConfigurationError) as caught:
        RegistryClient("http://admin:url-t0ken@127.0.0.1:1", principal="admin", token="env-t0ken")
    message = str(caught.value)
    assert message.startswith("the registry URL carries a credential (user:token@) and ")
    assert "t0ken" not in message
    for principal, token in (("admin", "t0k"), (None, "t0k"), ("admin", None)):
        same = RegistryClient("http://admin:t0k@127.0.0.1:1", principal=principal, token=token)
        same.close()  # the same credential, whole or in part, is no conflict (h43)
    with pytest.raises(ConfigurationError):
        RegistryClient("http://admin:t0k@127.0.0.1:1", principal="orders", token=None)


def test_a_closed_client_says_so_in_our_words() -> None:
    """h53: any call after close() raised httpx's RuntimeError ("Cannot send a request, as
    the client has been closed")."""
    client = RegistryClient("http://127.0.0.1:9", timeout=1)
    client.close()
    with pytest.raises(ConfigurationError) as refused:
        client.list_products()
    assert str(refused.value) == (
        "the registry client of http://127.0.0.1:9 is closed; GET /products was not sent "
        "(open a new RegistryClient)"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", -1), ("timeout", 0), ("timeout", "x"), ("timeout", float("nan")),
     ("timeout", float("inf")), ("timeout", True), ("retry_seconds", -5),
     ("retry_seconds", 10**9)],
)  # fmt: skip
def test_a_timeout_that_is_no_number_of_seconds_is_refused_when_the_client_is_made(
    name: str, value: object
) -> None:
    """h53: ``timeout=-1``, ``"x"``, NaN were taken, and the first call raised ValueError,
    TypeError or OverflowError; ``timeout=0`` was "unreachable (Operation now in progress)"."""
    with pytest.raises(ConfigurationError, match=rf"^RegistryClient {name}=.* is not a number"):
        RegistryClient("http://127.0.0.1:9", **{name: value})  # type: ignore[arg-type]
