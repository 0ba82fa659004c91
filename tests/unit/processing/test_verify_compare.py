"""`mesh verify`'s judgement: expected against actual, field by field, and order dependence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError, ProductNotFoundError
from mesh_stream.processing.reference import InputRecord
from mesh_stream.processing.spec import Event, Input, Processor
from mesh_stream.project import load_project
from mesh_stream.verify.compare import as_written, compare, render
from mesh_stream.verify.harness import (
    VerifyOptions,
    _input_sources,
    _slices,
    expected_records,
    load_processor,
    order_dependence,
)

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Total",
        "fields": [
            {"name": "key", "type": "string"},
            {"name": "count", "type": "long"},
            {"name": "share", "type": "float"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {"name": "first", "type": "string"},
        ],
    }
)


def record(key: str, count: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "key": key,
        "count": count,
        "share": 0.1,
        "amount": Decimal("1.50"),
        "first": "a",
    } | changes


def test_equal_outputs_pass_with_a_summary() -> None:
    expected = {"a": record("a"), "b": record("b", 2)}
    result = compare(expected, {"b": record("b", 2), "a": record("a")})
    assert result.equal
    assert render(result) == [
        "2 keys expected, 2 in the output: every key's final record equals the recomputation"
    ]


def test_each_wrong_key_is_listed_with_its_fields_expected_and_got() -> None:
    expected = {"a": record("a", 2), "b": record("b"), "c": record("c")}
    got = {"a": record("a", 4, amount=Decimal("3.00")), "c": record("c"), "z": record("z")}
    result = compare(expected, got)
    assert not result.equal
    assert [d.key for d in result.differing] == ["a"]
    assert result.missing == ["b"]
    assert result.unexpected == ["z"]
    lines = render(result)
    assert lines[:3] == [
        "key a: differs",
        "    count: expected 2, got 4",
        "    amount: expected Decimal('1.50'), got Decimal('3.00')",
    ]
    assert lines[3].startswith("key b: missing (expected {'key': 'b'")
    assert lines[4].startswith("key z: unexpected (got {'key': 'z'")
    assert lines[-1] == "3 keys expected, 3 in the output: 1 differ, 1 missing, 1 unexpected"


def test_nested_fields_are_named_by_their_path_and_bools_are_not_numbers() -> None:
    result = compare(
        {"k": {"outer": {"inner": 1, "flag": True}}},
        {"k": {"outer": {"inner": 1.0, "flag": 1}}},
    )
    assert [(f.path, f.expected, f.got) for f in result.differing[0].fields] == [
        ("outer.flag", True, 1)
    ]


def test_the_listing_stops_at_the_limit_and_says_how_many_more() -> None:
    expected = {f"k{i:02d}": record(f"k{i:02d}") for i in range(30)}
    got = {key: record(key, 9) for key in expected}
    lines = render(compare(expected, got), limit=4)
    assert sum(line.startswith("key ") for line in lines) == 4
    assert lines[-2] == "... and 26 more keys (--show N lists more)"


def test_expected_records_are_compared_as_the_output_schema_writes_them() -> None:
    written = as_written(SCHEMA, {"k": record("k", share=0.1, amount=Decimal("1.5"))})
    assert written["k"]["share"] != 0.1  # a 32-bit float, as the worker's record holds it
    assert written["k"]["share"] == pytest.approx(0.1)
    assert compare(written, {"k": dict(written["k"])}).equal


def test_a_record_the_schema_cannot_write_is_kept_as_emitted() -> None:
    written = as_written(SCHEMA, {"k": {"key": "k"}})
    assert written == {"k": {"key": "k"}}


def keep_first(state: dict[str, Any], event: Event) -> None:
    state.setdefault("first", event.fields["name"])
    state["count"] = state.get("count", 0) + 1


def total(key: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    return record(str(key), state["count"], first=state["first"])


def keep_least(state: dict[str, Any], event: Event) -> None:
    state["first"] = min(state.get("first", event.fields["name"]), event.fields["name"])
    state["count"] = state.get("count", 0) + 1


def processor(apply: Any) -> Processor:
    return Processor(
        output="analytics.totals",
        inputs=(Input("things", key=lambda _fields: "k", reads=("name",)),),
        apply=apply,
        emit=total,
    )


INPUTS = [
    InputRecord("things", {"name": "b"}, 10, "things.v1[0]@0"),
    InputRecord("things", {"name": "a"}, 20, "things.v1[1]@0"),
    InputRecord("things", {"name": "c"}, 30, "things.v1[0]@1"),
]


def test_a_processor_keeping_the_first_event_seen_is_order_dependent() -> None:
    expected, dependent = expected_records(processor(keep_first), INPUTS, SCHEMA)
    assert expected["k"]["first"] == "b"
    assert expected["k"]["count"] == 3
    assert not dependent.equal
    lines = order_dependence(dependent)
    assert lines[0].startswith("ORDER-DEPENDENT: 1 keys get other records")
    assert lines[1] == "    e.g. key k: first is 'b' in one order, 'a' in the other"


def test_a_processor_taking_the_least_value_is_not() -> None:
    expected, dependent = expected_records(processor(keep_least), INPUTS, SCHEMA)
    assert expected["k"]["first"] == "a"
    assert dependent.equal


def test_the_input_is_cut_into_kills_plus_one_slices() -> None:
    assert [len(s) for s in _slices(list(range(10)), 3)] == [4, 4, 2]
    assert _slices([], 3) == [[]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workers": 3}, "--workers must be 1 or 2, got 3"),
        ({"kills": -1}, "--kills must be 0 to 100, got -1"),
        ({"kills": 10**20}, "--kills must be 0 to 100, got 100000000000000000000"),
        ({"from_live": 0}, "--from-live must be 1 to 1000000, got 0"),
        ({"records": 1_000_001}, "--records must be 1 to 1000000, got 1000001"),
    ],
)
def test_options_out_of_range_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        VerifyOptions(module="m", **changes)


def test_a_module_without_a_processor_declaration_is_named() -> None:
    with pytest.raises(ConfigurationError, match="json has no PROCESSOR = Processor"):
        load_processor("json")
    with pytest.raises(ConfigurationError, match="no module 'no_such_module_here'"):
        load_processor("no_such_module_here")


class LiveRegistry:
    """The live registry's answers for a product the project does not hold."""

    url = "http://live-registry:8081"

    def __init__(self, product: Any, schema: str) -> None:
        self.product = product
        self.schema = schema

    def get_product(self, name: str) -> dict[str, Any]:
        if name != self.product.name:
            raise ProductNotFoundError(f"no product {name}", status=404, error_code=40404)
        document: dict[str, Any] = self.product.model_dump(mode="json", by_alias=True)
        return document

    def get_latest(self, subject: str) -> Any:
        assert subject == self.product.value_subject
        return type("Latest", (), {"schema": self.schema})()


class OnlyOutputProject:
    """A team's project holding its own output only (inputs are other domains')."""

    root = REPO

    def descriptor(self, name: str) -> None:
        del name


def test_inputs_the_project_lacks_come_from_the_live_registry_with_several_partitions() -> None:
    sample = load_project(REPO)
    orders = sample.descriptor("orders.order-placed")
    assert orders is not None
    schema = (REPO / orders.schema_file).read_text()
    live = LiveRegistry(orders.model_copy(update={"partitions": 1}), schema)
    declared = Processor(
        output="analytics.totals",
        inputs=(Input("orders.order-placed", key=lambda _fields: "k", reads=("region",)),),
        apply=keep_least,
        emit=total,
    )
    sources = _input_sources(declared, OnlyOutputProject(), lambda: live)  # type: ignore[arg-type]
    assert [(s.product.name, s.product.partitions, s.schema) for s in sources] == [
        ("orders.order-placed", 3, schema)
    ]


def test_an_input_neither_the_project_nor_the_registry_knows_is_named() -> None:
    sample = load_project(REPO)
    orders = sample.descriptor("orders.order-placed")
    live = LiveRegistry(orders, "{}")
    declared = Processor(
        output="analytics.totals",
        inputs=(Input("payments.payment-failed", key=lambda _fields: "k", reads=("reason",)),),
        apply=keep_least,
        emit=total,
    )
    with pytest.raises(
        ConfigurationError,
        match=r"input payments.payment-failed is not in the project at .*, and the registry "
        r"at http://live-registry:8081 cannot give it: product payments.payment-failed not found",
    ):
        _input_sources(declared, OnlyOutputProject(), lambda: live)  # type: ignore[arg-type]
