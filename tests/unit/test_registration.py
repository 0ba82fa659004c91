"""Registering a product (the one home, mesh_stream/registration.py): schema first, then
waiting for its inputs, clearly; the level when asked; nobody else registers descriptors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.descriptor import load_descriptors
from mesh_stream.errors import (
    ConfigurationError,
    ProductNotFoundError,
    ProductRejectedError,
    SchemaError,
    TooManyAuthFailuresError,
    TooManyRequestsError,
)
from mesh_stream.project import MeshProject, load_project
from mesh_stream.registration import (
    check_missing_descriptor,
    register_missing_descriptor,
    register_product,
    schema_text,
    topic_config,
)

REPO = Path(__file__).resolve().parents[2]
PRODUCTS = {p.name: p for p in load_descriptors(REPO / "domains")}


class StubRegistry:
    """In-process stand-in for the registry client's product and schema calls."""

    url = "http://registry.test"

    def __init__(self, registered: set[str]) -> None:
        self.registered = registered
        self.schemas: dict[str, str] = {}
        self.put: list[str] = []

    def register_schema(self, subject: str, schema: str, **_contract: Any) -> int:
        self.schemas[subject] = schema
        return 41

    def get_product(self, name: str) -> dict[str, Any]:
        if name not in self.registered:
            raise ProductNotFoundError(f"no product {name}", status=404, error_code=40404)
        return {"name": name}

    def put_product(self, product: Any) -> dict[str, Any]:
        self.put.append(product.name)
        return {}


def test_a_processor_product_is_registered_once_its_inputs_are() -> None:
    product = PRODUCTS["analytics.customer-360"]
    registry = StubRegistry(set(product.inputs))
    assert register_product(registry, product, REPO) == 41  # type: ignore[arg-type]
    assert registry.put == ["analytics.customer-360"]
    assert "analytics.customer-360.v1-value" in registry.schemas


class BusyRegistry(StubRegistry):
    """Answers 429 (too many heavy requests of this client in flight) to the first calls."""

    def __init__(self, registered: set[str], busy: int) -> None:
        super().__init__(registered)
        self.busy = busy

    def register_schema(self, subject: str, schema: str, **contract: Any) -> int:
        if self.busy:
            self.busy -= 1
            raise TooManyRequestsError("2 schema requests in flight", retry_after=0)
        return super().register_schema(subject, schema, **contract)


def test_a_busy_registry_is_asked_again_after_its_retry_after() -> None:
    product = PRODUCTS["analytics.customer-360"]
    registry = BusyRegistry(set(product.inputs), busy=3)
    assert register_product(registry, product, REPO) == 41  # type: ignore[arg-type]
    assert (registry.busy, registry.put) == (0, ["analytics.customer-360"])


def test_too_many_failed_authentications_are_not_retried() -> None:
    class Refusing(StubRegistry):
        def register_schema(self, subject: str, schema: str, **contract: Any) -> int:
            del subject, schema, contract
            raise TooManyAuthFailuresError("too many failed authentications", retry_after=0)

    product = PRODUCTS["analytics.customer-360"]
    with pytest.raises(TooManyAuthFailuresError):
        register_product(Refusing(set(product.inputs)), product, REPO)  # type: ignore[arg-type]


def test_missing_inputs_are_named_with_the_way_to_fix_it() -> None:
    product = PRODUCTS["analytics.order-fulfilment-sla"]
    registry = StubRegistry({"orders.order-placed"})
    with pytest.raises(ConfigurationError) as caught:
        register_product(registry, product, REPO, wait_for_inputs=0.2, poll_interval=0.05)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("analytics.order-fulfilment-sla: inputs payments.payment-captured, ")
    assert "shipping.shipment-dispatched are not registered in the registry at " in message
    assert "publish them first (`mesh products apply`" in message
    assert registry.put == []


def test_topic_config_carries_out_the_descriptor() -> None:
    assert topic_config(PRODUCTS["customers.customer-profile"]) == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
    }


def test_unreadable_schema_names_the_descriptor_field(tmp_path: Path) -> None:
    with pytest.raises(
        SchemaError, match=r"orders.order-placed: schema: cannot read .*order-placed.avsc"
    ):
        schema_text(PRODUCTS["orders.order-placed"], tmp_path)


def test_mesh_up_also_sets_the_subjects_level_to_the_descriptors() -> None:
    class Levels(StubRegistry):
        def __init__(self) -> None:
            super().__init__(set())
            self.levels: dict[str, str] = {}

        def set_compatibility(self, level: str, subject: str | None = None) -> None:
            self.levels[str(subject)] = level

    product = PRODUCTS["orders.order-placed"]
    registry = Levels()
    register_product(registry, product, REPO, wait_for_inputs=0, set_level=True)  # type: ignore[arg-type]
    assert registry.levels == {product.value_subject: product.compatibility_level.value}
    assert registry.put == [product.name]


def test_descriptors_are_registered_only_by_the_registration_module() -> None:
    """One home: no other module of the package puts a descriptor in the registry."""
    package = REPO / "mesh_stream"
    callers = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if ".put_product(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["registration.py"]


def _sample_project() -> MeshProject:
    return load_project(REPO)


def test_a_missing_descriptor_is_registered_and_a_known_one_left_alone() -> None:
    product = PRODUCTS["orders.order-placed"]
    registry = StubRegistry(set())
    assert register_missing_descriptor(registry, product, _sample_project())  # type: ignore[arg-type]
    assert registry.put == [product.name]
    registry = StubRegistry({product.name})
    assert not register_missing_descriptor(registry, product, _sample_project())  # type: ignore[arg-type]
    assert registry.put == []


def test_a_governance_refusal_names_the_policy_and_the_descriptor_file() -> None:
    class Governed(StubRegistry):
        def put_product(self, _product: Any) -> dict[str, Any]:
            raise ProductRejectedError(
                "PUT /products/x: refused",
                violations=[
                    {"policy": "documentation", "severity": "warning", "message": "m"},
                    {
                        "policy": "ownership",
                        "severity": "error",
                        "field": "owner.contact",
                        "message": "no contact (fix: add one)",
                    },
                ],
            )

    product = PRODUCTS["orders.order-placed"]
    with pytest.raises(ProductRejectedError) as caught:
        register_missing_descriptor(Governed(set()), product, _sample_project())  # type: ignore[arg-type]
    assert str(caught.value) == (
        "domains/orders/products/order-placed.yaml: the registry refused the descriptor of "
        "orders.order-placed: [ownership] owner.contact: no contact (fix: add one); fix the "
        "descriptor or its schema as shown (`mesh lint` checks the same policies) and publish "
        "again (HTTP 422, "
        "error_code 42211)"
    )


class Checking(StubRegistry):
    """A registry with the descriptor check: answers ``problems``, or 404 when None."""

    def __init__(self, registered: set[str], problems: list[dict[str, Any]] | None) -> None:
        super().__init__(registered)
        self.problems = problems
        self.checked: list[tuple[str, str | None]] = []

    def check_product(self, product: Any, schema: str | None = None) -> list[dict[str, Any]]:
        self.checked.append((product.name, schema))
        if self.problems is None:
            raise ProductNotFoundError("POST /products/x/check: no such route", status=404)
        return self.problems


def test_a_missing_descriptor_is_checked_with_the_project_schema_before_anything_is_written() -> (
    None
):
    product = PRODUCTS["orders.order-placed"]
    project = _sample_project()
    warning = {"policy": "documentation", "severity": "warning", "message": "m"}
    fine = Checking(set(), [warning])
    assert check_missing_descriptor(fine, product, project)  # type: ignore[arg-type]
    [(name, sent)] = fine.checked
    assert name == product.name
    assert json.loads(sent or "") == json.loads(schema_text(product, project.root))
    assert fine.schemas == {}
    assert fine.put == []

    known = Checking({product.name}, [])
    assert not check_missing_descriptor(known, product, project)  # type: ignore[arg-type]
    assert known.checked == []

    older = Checking(set(), None)  # no check route: registration judges it later
    assert check_missing_descriptor(older, product, project)  # type: ignore[arg-type]

    refused = Checking(
        set(),
        [warning, {"policy": "naming", "severity": "error", "field": "name", "message": "bad"}],
    )
    with pytest.raises(ProductRejectedError) as caught:
        check_missing_descriptor(refused, product, project, {"type": "record"})  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "domains/orders/products/order-placed.yaml: the registry refused the descriptor of "
        "orders.order-placed: [naming] name: bad; fix the descriptor or its schema as shown"
    )
    assert refused.checked == [(product.name, '{"type": "record"}')]
    assert refused.schemas == {}
    assert refused.put == []
