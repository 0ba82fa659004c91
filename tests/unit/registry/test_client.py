"""RegistryClient over real HTTP to an in-process registry: caching, registry-down fallback,
and the translation of every error code back into its mesh_stream.errors class."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import (
    IncompatibleSchemaError,
    MeshError,
    PermissionDeniedError,
    ProductNotFoundError,
    ProductRejectedError,
    RegistryError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SubjectNotFoundError,
)
from mesh_stream.registry.client import RegisteredSchema, RegistryClient
from mesh_stream.registry.error_codes import ERROR_TABLE, error_for, status_and_code
from mesh_stream.registry.problems import CatalogView, DescriptorProblem
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from tests.unit.registry.conftest import TOKENS, descriptor, schema

SUBJECT = "orders.order-placed.v1-value"
AUTH = ("orders", TOKENS["orders"])


def _refuse_untagged(
    product: DataProduct, latest: Mapping[str, Any], catalog: CatalogView
) -> list[DescriptorProblem]:
    if product.tags:
        return []
    return [DescriptorProblem("tags", "error", "at least one tag", "tags")]


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    app = create_app(
        InMemoryStore(), credentials=Credentials(TOKENS), validators=(_refuse_untagged,)
    )
    running = RegistryServer(app)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.url, principal="orders", token=TOKENS["orders"]) as made:
        yield made


def test_schema_calls_are_cached(client: RegistryClient) -> None:
    schema_id = client.register_schema(SUBJECT, schema())
    calls = client.http_calls
    pretty = json.dumps(json.loads(schema()), indent=2, sort_keys=True)
    assert client.register_schema(SUBJECT, pretty) == schema_id
    assert client.register_schema(SUBJECT, json.loads(schema())) == schema_id
    assert client.lookup(SUBJECT, schema()) == RegisteredSchema(
        SUBJECT, 1, schema_id, client.get_schema(schema_id)
    )
    assert client.get_version(SUBJECT, 1).schema_id == schema_id
    assert client.http_calls == calls  # all answered from the caches
    fresh = RegistryClient(client.url)
    assert json.loads(fresh.get_schema(schema_id)) == json.loads(schema())
    fresh.get_schema(schema_id)
    assert fresh.http_calls == 1


def test_registry_down_keeps_seen_schemas_working(server: RegistryServer) -> None:
    client = RegistryClient(server.url, principal="orders", token=TOKENS["orders"])
    schema_id = client.register_schema(SUBJECT, schema())
    latest = client.get_latest(SUBJECT)
    server.stop()
    assert client.get_schema(schema_id) == latest.schema
    assert client.get_latest(SUBJECT) == latest
    assert client.register_schema(SUBJECT, schema()) == schema_id
    with pytest.raises(RegistryUnavailableError) as down:
        client.get_schema(schema_id + 1)
    assert server.url in str(down.value)
    assert "MESH_REGISTRY_URL" in str(down.value)
    assert isinstance(down.value.__cause__, httpx.TransportError)


def test_errors_come_back_as_their_classes(client: RegistryClient) -> None:
    with pytest.raises(SubjectNotFoundError) as missing:
        client.get_latest("orders.none.v1-value")
    assert (missing.value.status, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaNotFoundError):
        client.get_schema(999)
    client.register_schema(SUBJECT, schema())
    breaking = {"type": "record", "name": "Placed", "fields": [{"name": "x", "type": "int"}]}
    with pytest.raises(IncompatibleSchemaError, match="x"):
        client.register_schema(SUBJECT, breaking)
    with pytest.raises(PermissionDeniedError):
        client.register_schema("payments.paid.v1-value", schema())
    with pytest.raises(ProductNotFoundError):
        client.get_product("orders.none")
    with pytest.raises(ProductRejectedError) as rejected:
        client.put_product(descriptor(tags=[]))
    assert rejected.value.violations == [
        {"policy": "tags", "severity": "error", "message": "at least one tag", "field": "tags"}
    ]
    client.set_compatibility("NONE", SUBJECT)
    assert client.get_compatibility(SUBJECT) == "NONE"
    assert client.register_schema(SUBJECT, breaking) > 0


def test_products_round_trip(client: RegistryClient) -> None:
    client.register_schema(SUBJECT, schema())
    stored = client.put_product(descriptor())
    assert stored["registry"]["topic"] == "orders.order-placed.v1"
    assert client.get_product("orders.order-placed")["name"] == "orders.order-placed"
    assert [p["name"] for p in client.list_products(domain="orders")] == ["orders.order-placed"]
    assert client.list_products(domain="payments") == []
    assert client.lineage("orders.order-placed")["upstream"] == []
    assert [h["version"] for h in client.product_schemas("orders.order-placed")] == [1]
    client.delete_product("orders.order-placed")
    assert client.list_products() == []


@pytest.mark.parametrize("cls", list(ERROR_TABLE))
def test_every_error_in_the_table_maps_both_ways(cls: type[Exception]) -> None:
    status, code = ERROR_TABLE[cls]
    rebuilt = error_for(status, code, "m")
    assert isinstance(rebuilt, RegistryError)
    assert (rebuilt.status, rebuilt.error_code) == (status, code)
    assert status_and_code(rebuilt) == (status, code)
    assert issubclass(cls, MeshError)


def test_every_registry_error_class_is_in_the_table() -> None:
    from mesh_stream import errors

    registry_errors = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, RegistryError) and obj is not RegistryError
    }
    assert registry_errors - set(ERROR_TABLE) == set()


def test_a_token_without_principal_is_sent_as_bearer(server: RegistryServer) -> None:
    with RegistryClient(server.url, token=TOKENS["orders"]) as bearer:
        assert bearer.register_schema(SUBJECT, schema()) == 1
        with pytest.raises(PermissionDeniedError, match="principal 'orders'"):
            bearer.register_schema("payments.paid.v1-value", schema())


@contextmanager
def slow_first(method: str, seconds: float) -> Iterator[tuple[RegistryClient, str, list[str]]]:
    """A registry that delays the first ``method`` request by ``seconds`` (it still completes
    on the server), a client that gives up after 0.5 s, the registry's URL, and the paths of
    every ``method`` request the registry received."""
    seen: list[str] = []
    app = create_app(InMemoryStore(), credentials=Credentials(TOKENS))

    @app.middleware("http")
    async def slow(request: Any, call_next: Any) -> Any:
        if request.method == method:
            seen.append(request.url.path)
            if len(seen) == 1:
                await asyncio.sleep(seconds)
        return await call_next(request)

    running = RegistryServer(app)
    running.start()
    try:
        with RegistryClient(
            running.url, principal="orders", token=TOKENS["orders"], timeout=0.5
        ) as client:
            yield client, running.url, seen
    finally:
        running.stop()


def test_a_registration_not_answered_in_time_is_asked_again_and_keeps_one_id() -> None:
    with slow_first("POST", 1.5) as (client, url, seen):
        schema_id = client.register_schema(SUBJECT, schema())
        # the first timed out and was asked again (on a loaded machine a repeat may time
        # out too: the client keeps asking within its retry window)
        assert len(seen) >= 2
        assert set(seen) == {f"/subjects/{SUBJECT}/versions"}
        versions = httpx.get(f"{url}/subjects/{SUBJECT}/versions", auth=AUTH).json()
        assert versions == [1]  # registered once, though the server ran it twice
        latest = httpx.get(f"{url}/subjects/{SUBJECT}/versions/latest", auth=AUTH)
        assert latest.json()["id"] == schema_id


def test_a_delete_not_answered_in_time_is_not_repeated() -> None:
    with slow_first("DELETE", 1.5) as (client, _url, seen):
        client.register_schema(SUBJECT, schema())
        client.put_product(descriptor())
        with pytest.raises(RegistryUnavailableError, match="did not answer DELETE") as raised:
            client.delete_product("orders.order-placed")
        assert seen == ["/products/orders.order-placed"]  # asked once only
        # the server finishes the delete after the client stopped waiting: "no answer" says so
        assert "may still apply it" in str(raised.value)
        assert "look before asking again" in str(raised.value)
