"""A product path segment holding a percent-encoded ``/`` reaches no other route.

Routing reads the decoded path, so ``GET /products/X%2Fschemas`` was answered as X's schema
history and ``PUT /products/X%2Fconsumers%2Fg`` registered group g on X. Every route taking
a product name now answers 422 (42210) naming the segment as sent; the portal's product
pages answer their "not found". A malformed name without a hidden separator stays the 404
(40404) of an unknown product (tests/unit/registry/test_export_routes.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import ADMIN, ORDERS, TOKENS, descriptor, schema, send_raw

PRODUCT = "orders.order-placed"
SUBJECT = f"{PRODUCT}.v1-value"
RULES = (
    "is not `<domain>.<product>` (lowercase letters and digits, `-` inside words), "
    "e.g. `orders.order-placed`"
)


def separator_message(segment: str) -> str:
    """The 422's message for a product segment that decodes to ``segment`` (holding '/')."""
    return (
        "the product segment of the URL path holds a '/' (sent as %2F), which is never read "
        f"as a path separator: {segment!r} {RULES}"
    )


def _put_product(client: TestClient) -> None:
    registered = client.post(
        f"/subjects/{SUBJECT}/versions", json={"schema": schema()}, auth=ORDERS
    )
    assert registered.status_code == 200, registered.text
    stored = client.put(f"/products/{PRODUCT}", json=descriptor(), auth=ORDERS)
    assert stored.status_code == 200, stored.text


@pytest.fixture
def orders(client: TestClient) -> TestClient:
    """A registry holding orders.order-placed (no consumer groups)."""
    _put_product(client)
    return client


#: (method, what follows /products/, what the product segment decodes to): each URL, read
#: decoded, is another route's for orders.order-placed.
SMUGGLED = [
    ("GET", f"{PRODUCT}%2Fschemas", f"{PRODUCT}/schemas"),
    ("GET", f"{PRODUCT}%2flineage", f"{PRODUCT}/lineage"),
    ("GET", f"{PRODUCT}%2Fconsumers", f"{PRODUCT}/consumers"),
    ("GET", f"{PRODUCT}%2Fhealth", f"{PRODUCT}/health"),
    ("GET", f"{PRODUCT}%2Fhealth%2Fhistory", f"{PRODUCT}/health/history"),
    ("GET", f"{PRODUCT}%2Fhealth/history", f"{PRODUCT}/health"),
    ("GET", f"{PRODUCT}%2Fasyncapi", f"{PRODUCT}/asyncapi"),
    ("GET", f"{PRODUCT}%2Fodcs", f"{PRODUCT}/odcs"),
    ("GET", f"{PRODUCT}%2Fsample", f"{PRODUCT}/sample"),
    ("PUT", f"{PRODUCT}%2Fconsumers%2Fbilling-app", f"{PRODUCT}/consumers/billing-app"),
    ("PUT", f"{PRODUCT}%2Fconsumers/billing-app", f"{PRODUCT}/consumers"),
    ("DELETE", f"{PRODUCT}%2Fconsumers%2Fbilling-app", f"{PRODUCT}/consumers/billing-app"),
]


@pytest.mark.parametrize(("method", "rest", "segment"), SMUGGLED)
def test_an_encoded_slash_in_the_product_segment_is_a_422_naming_it(
    orders: TestClient, method: str, rest: str, segment: str
) -> None:
    answer = orders.request(method, f"/products/{rest}", auth=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"error_code": 42210, "message": separator_message(segment)}


def test_a_smuggled_consumer_registration_changes_nothing(orders: TestClient) -> None:
    """The write that reached the consumers route registered a group on the product."""
    smuggled = orders.put(f"/products/{PRODUCT}%2Fconsumers%2Fbilling-app", auth=ORDERS)
    assert (smuggled.status_code, smuggled.json()["error_code"]) == (422, 42210)
    assert orders.get(f"/products/{PRODUCT}/consumers").json() == []
    assert orders.get(f"/products/{PRODUCT}").json()["registry"]["consumers"] == []


def test_a_separator_hidden_before_the_product_segment_is_refused_too(
    orders: TestClient,
) -> None:
    answer = orders.get(f"/%70roducts%2F{PRODUCT}/schemas", auth=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error_code": 42210,
        "message": separator_message(f"products/{PRODUCT}"),
    }


def test_a_double_encoded_slash_routed_twice_decoded_is_refused(orders: TestClient) -> None:
    """Starlette's TestClient decodes the path twice (like a proxy that decodes once more):
    routing then reads ``X/schemas`` where the server was sent ``X%2Fschemas``."""
    answer = orders.get(f"/products/{PRODUCT}%252Fschemas", auth=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error_code": 42210,
        "message": "the product segment of the URL path is not a product name: "
        f"'{PRODUCT}%2Fschemas' {RULES}",
    }


# -- the portal -----------------------------------------------------------------------------


def test_the_portal_diff_url_with_an_encoded_slash_is_the_not_found_page(
    orders: TestClient,
) -> None:
    page = orders.get(f"/ui/products/{PRODUCT}%2fdiff")  # was X's diff
    assert page.status_code == 404, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Product not found · mesh-stream portal</title>" in page.text
    assert f"No product named &#39;{PRODUCT}/diff&#39; is registered." in page.text
    assert "Traceback" not in page.text


def test_the_portal_lineage_url_with_an_encoded_slash_is_its_not_found_page(
    orders: TestClient,
) -> None:
    page = orders.get(f"/ui/products/{PRODUCT}%2Flineage")  # was X's lineage page
    assert page.status_code == 404, page.text
    assert f"No product named '{PRODUCT}/lineage' is registered." in page.text
    assert "Traceback" not in page.text
    document = orders.get(f"/ui/api/products/{PRODUCT}%2Flineage")  # was X's graph
    assert document.status_code == 404, document.text
    assert document.json() == {"error": f"No product named '{PRODUCT}/lineage' is registered."}


def test_the_portal_sample_url_with_an_encoded_slash_names_the_segment(
    orders: TestClient,
) -> None:
    page = orders.get(f"/ui/products/{PRODUCT}%2Fsample")  # was X's live sample
    assert page.status_code == 404, page.text
    assert "<title>Live sample of orders.order-placed/sample · mesh-stream portal</title>" in (
        page.text
    )
    assert f"No product named &#39;{PRODUCT}/sample&#39; is registered." in page.text
    fragment = orders.get(f"/ui/products/{PRODUCT}%2Fsample", headers={"HX-Request": "true"})
    assert fragment.status_code == 200, fragment.text  # htmx swaps only successes
    assert f"No product named &#39;{PRODUCT}/sample&#39; is registered." in fragment.text
    assert "Traceback" not in page.text + fragment.text


# -- over real HTTP -------------------------------------------------------------------------


@pytest.fixture
def served_orders() -> Iterator[str]:
    """A registry over uvicorn holding orders.order-placed; its URL."""
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))
    _put_product(TestClient(app))
    running = RegistryServer(app)
    try:
        yield running.start()
    finally:
        running.stop()


def test_a_real_server_refuses_the_encoded_slash_and_keeps_other_names_404(
    served_orders: str,
) -> None:
    status, body = send_raw(served_orders, "GET", f"/products/{PRODUCT}%2Fschemas")
    assert (status, body) == (
        422,
        {"error_code": 42210, "message": separator_message(f"{PRODUCT}/schemas")},
    )
    status, body = send_raw(served_orders, "DELETE", f"/products/{PRODUCT}%2Fconsumers%2Fx")
    assert (status, body) == (
        422,
        {"error_code": 42210, "message": separator_message(f"{PRODUCT}/consumers/x")},
    )
    # Decoded once by the server, %252F is a name holding "%2F": no product by that name.
    status, body = send_raw(served_orders, "GET", f"/products/{PRODUCT}%252Fschemas")
    assert (status, body) == (
        404,
        {"error_code": 40404, "message": f"Product '{PRODUCT}%2Fschemas' not found."},
    )
    status, body = send_raw(served_orders, "GET", "/products/../schemas")
    assert (status, body) == (404, {"error_code": 40404, "message": "Product '..' not found."})
    status, body = send_raw(served_orders, "GET", f"/products/{PRODUCT}/schemas")
    assert status == 200
    assert [v["version"] for v in body] == [1]
