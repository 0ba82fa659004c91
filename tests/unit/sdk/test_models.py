"""pydantic models generated from an .avsc, and hand-written ones checked against it."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
import warnings
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from mesh_stream.errors import SchemaError
from mesh_stream.schema.codec import RecordDecoder, RecordEncoder
from mesh_stream.schema.models import check_model, model_from_schema, source_schema
from tests.unit.sdk.conftest import MemorySchemas, make_order


def test_generated_model_has_every_field_with_its_doc(order_v1: dict[str, Any]) -> None:
    model = model_from_schema(order_v1)
    assert model.__name__ == "OrderPlaced"
    assert list(model.model_fields) == [field["name"] for field in order_v1["fields"]]
    for field in order_v1["fields"]:
        assert model.model_fields[field["name"]].description == field["doc"]
    assert model.model_fields["customer_email"].json_schema_extra == {"pii": True}
    assert model.model_fields["order_id"].json_schema_extra is None


def test_generated_model_round_trips_through_the_encoder(order_v1: dict[str, Any]) -> None:
    model = model_from_schema(order_v1)
    record = make_order(7)
    typed = model.model_validate(record)
    encoded = RecordEncoder(order_v1, 1).encode(typed.model_dump())
    decoded = RecordDecoder(MemorySchemas({1: order_v1})).decode(encoded)
    assert model.model_validate(decoded) == typed


def test_generated_model_applies_schema_defaults(order_v1: dict[str, Any]) -> None:
    model = model_from_schema(order_v1)
    record = make_order(1)
    del record["note"], record["lines"]
    typed = model.model_validate(record)
    assert typed.note is None  # type: ignore[attr-defined]
    assert typed.lines == []  # type: ignore[attr-defined]
    assert model.model_validate(record).lines is not typed.lines  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"quantity": 1.5}, "quantity"),
        ({"status": "SHIPPED"}, "status"),
        ({"total": decimal.Decimal("1.001")}, "total"),
        ({"lines": [{"sku": "a", "count": "x"}]}, "lines.0.count"),
        ({"unknown": 1}, "unknown"),
        ({"quantity": 2**31}, "quantity"),
    ],
)
def test_generated_model_rejects_what_the_schema_rejects(
    order_v1: dict[str, Any], change: dict[str, Any], location: str
) -> None:
    model = model_from_schema(order_v1)
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**make_order(1), **change})
    assert [".".join(map(str, error["loc"])) for error in caught.value.errors()] == [location]


class Line(BaseModel):
    sku: str
    count: int


class GoodOrder(BaseModel):
    order_id: uuid.UUID
    customer_email: str
    placed_at: dt.datetime
    status: Literal["PLACED", "PAID", "CANCELLED"]
    total: decimal.Decimal
    quantity: int
    express: bool
    lines: list[Line] = []
    note: str | None = None


def test_matching_hand_written_model_passes(order_v1: dict[str, Any]) -> None:
    check_model(GoodOrder, order_v1)


def test_mismatching_model_names_every_field(order_v1: dict[str, Any]) -> None:
    class BadLine(BaseModel):
        sku: str
        count: str

    class BadOrder(BaseModel):
        order_id: uuid.UUID
        placed_at: dt.datetime
        status: str
        total: float
        quantity: int
        express: bool
        lines: list[BadLine] = []
        note: str
        coupon: str | None = None

    with pytest.raises(SchemaError) as caught:
        check_model(BadOrder, order_v1)
    assert str(caught.value) == (
        "model BadOrder does not match schema sdktest.orders.OrderPlaced: "
        "total: schema expects decimal, the model declares float; "
        "lines.count: schema expects int, the model declares str; "
        "note: schema allows null, the model field is not Optional; "
        "coupon: the model has it, schema sdktest.orders.OrderPlaced does not; "
        "customer_email: required by schema sdktest.orders.OrderPlaced, not in the model"
    )


def test_only_records_become_models() -> None:
    with pytest.raises(SchemaError, match="a product schema must be an Avro record"):
        model_from_schema('"string"')


def test_a_generated_model_remembers_its_schema_as_given_then() -> None:
    """The consumer reads with it (a later version's added fields are dropped, not refused);
    a subclass adding methods only keeps it; one adding fields does not fit it; the caller
    changing its mapping afterwards changes nothing."""
    schema: dict[str, Any] = {
        "type": "record",
        "name": "z",
        "fields": [{"name": "a", "type": "int"}],
    }
    model = model_from_schema(schema)
    schema["fields"].append({"name": "b", "type": "int"})
    assert source_schema(model) == {
        "type": "record",
        "name": "z",
        "fields": [{"name": "a", "type": "int"}],
    }

    class WithMethods(model):  # type: ignore[misc,valid-type]
        def doubled(self) -> int:
            return 2 * int(self.a)

    class WithFields(model):  # type: ignore[misc,valid-type]
        extra_field: int = 0

    assert source_schema(WithMethods) == source_schema(model)
    assert source_schema(WithFields) is None

    class HandWritten(BaseModel):
        a: int

    assert source_schema(HandWritten) is None


def test_schemas_pydantic_cannot_model_are_named_not_a_traceback_of_its_own() -> None:
    """h53: a record holding itself was a RecursionError, a field ``_private`` pydantic's
    PydanticUserError, ``model_dump`` a ValueError; each is a SchemaError naming it. A name
    pydantic only warns about (``schema``) still makes a model."""
    node = {
        "type": "record",
        "name": "Node",
        "namespace": "io.x",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    with pytest.raises(SchemaError, match=r"^io\.x\.Node: a record that holds itself \(Node "):
        model_from_schema(node)
    for field in ("_private", "model_dump", "model_fields"):
        bad = {"type": "record", "name": "P", "fields": [{"name": field, "type": "int"}]}
        with pytest.raises(SchemaError, match=rf"^P\.{field}: the field name '{field}' is "):
            model_from_schema(bad)
    fine = {"type": "record", "name": "P", "fields": [{"name": "model_name", "type": "int"}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model_from_schema(fine)(model_name=1).model_name == 1  # type: ignore[attr-defined]
