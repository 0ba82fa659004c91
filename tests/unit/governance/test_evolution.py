"""Evolution that protects consumers: the policy, the verdict and the 409 wording."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mesh_stream.descriptor import Compatibility, DataProduct
from mesh_stream.governance import BUILTIN_POLICIES, Review, StaticCatalog
from mesh_stream.governance.evolution import consumer_level, judge_evolution
from mesh_stream.governance.model import Severity
from mesh_stream.schema.avro import compatibility_problems, parse_schema
from tests.unit.registry.conftest import descriptor

UPSTREAM = "orders.order-placed"


def product(name: str = UPSTREAM, **changes: Any) -> DataProduct:
    return DataProduct.model_validate(descriptor(name, **changes))


def reader(**lineage: list[str]) -> DataProduct:
    return product(
        "payments.order-totals",
        kind="aggregate",
        inputs=[UPSTREAM],
        schema="schemas/payments/order-totals.avsc",
        field_lineage=lineage,
    )


def schema(*fields: dict[str, Any], name: str = "Placed") -> Any:
    return parse_schema(json.dumps({"type": "record", "name": name, "fields": list(fields)}))


def f(name: str, type_: Any = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


V1 = schema(f("order_id"), f("total_amount", "double"), f("channel"))


def findings(upstream: DataProduct, *others: DataProduct) -> list[tuple[str, Severity | None]]:
    review = Review(upstream, None, StaticCatalog([upstream, *others]))
    check = BUILTIN_POLICIES["compatibility-with-consumers"].check
    return [(x.message, x.at_most) for x in check(review, None)]


@pytest.mark.parametrize(
    ("declared", "reason", "level"),
    [
        (None, None, Compatibility.FULL_TRANSITIVE),
        ("FULL_TRANSITIVE", None, Compatibility.FULL_TRANSITIVE),
        ("BACKWARD", None, Compatibility.FULL_TRANSITIVE),  # no reason: not honoured
        ("NONE", None, Compatibility.FULL_TRANSITIVE),
        ("BACKWARD", "retiring a field", Compatibility.BACKWARD),
        ("FULL", "lagging readers are impossible here", Compatibility.FULL),
    ],
)
def test_the_level_a_read_product_evolves_under(
    declared: str | None, reason: str | None, level: Compatibility
) -> None:
    changes: dict[str, Any] = {}
    if declared is not None:
        changes["compatibility"] = declared
    if reason is not None:
        changes["compatibility_reason"] = reason
    assert consumer_level(product(**changes)) is level


def test_the_policy_passes_an_unset_or_full_transitive_level_and_unread_products() -> None:
    assert findings(product(), reader()) == []
    assert findings(product(compatibility="FULL_TRANSITIVE"), reader()) == []
    assert findings(product(compatibility="NONE")) == []  # nobody reads it


def test_the_policy_refuses_a_weaker_level_without_a_reason() -> None:
    assert findings(product(compatibility="FULL"), reader()) == [
        (
            "compatibility FULL is weaker than FULL_TRANSITIVE but 'orders.order-placed' is "
            "read by payments.order-totals, and no compatibility_reason says why",
            None,
        )
    ]


def test_the_policy_counts_consumer_groups_registered_in_the_registry() -> None:
    """A product read only by registered consumer groups (no downstream product) must
    evolve under FULL_TRANSITIVE too, or say why."""
    from mesh_stream.governance.catalog import LayeredCatalog

    class RegistryWithGroups(StaticCatalog):
        def consumer_groups(self, name: str) -> list[str]:
            return ["billing-service (payments)"] if name == UPSTREAM else []

    upstream = product(compatibility="BACKWARD")
    catalog = LayeredCatalog(StaticCatalog([upstream]), RegistryWithGroups([]))
    check = BUILTIN_POLICIES["compatibility-with-consumers"].check
    assert [x.message for x in check(Review(upstream, None, catalog), None)] == [
        "compatibility BACKWARD is weaker than FULL_TRANSITIVE but 'orders.order-placed' is "
        "read by consumer group billing-service (payments), and no compatibility_reason "
        "says why"
    ]
    assert findings(upstream) == []  # a repository alone knows no groups


def test_the_policy_warns_and_names_the_reason_when_one_is_given() -> None:
    upstream = product(compatibility="BACKWARD", compatibility_reason="retiring channel")
    assert findings(upstream, reader()) == [
        (
            "compatibility BACKWARD is weaker than FULL_TRANSITIVE although "
            "'orders.order-placed' is read by payments.order-totals; accepted for the "
            "declared reason: 'retiring channel'",
            Severity.WARNING,
        )
    ]


def test_no_verdict_without_readers() -> None:
    assert judge_evolution(product(), [], schema(f("order_id")), [(1, V1)]) is None


def test_the_verdict_names_reader_field_level_and_fix() -> None:
    totals = reader(total=[f"{UPSTREAM}:total_amount"], id=[f"{UPSTREAM}:order_id"])
    verdict = judge_evolution(product(), [totals], schema(f("order_id"), f("channel")), [(1, V1)])
    assert verdict is not None
    assert verdict.refused
    assert verdict.broken_consumers == ("payments.order-totals",)
    assert [str(b) for b in verdict.lineage] == [
        "payments.order-totals reads field total_amount (field_lineage), which the new "
        "version removes"
    ]
    assert verdict.message() == (
        "schema for subject 'orders.order-placed.v1-value' would break payments.order-totals "
        "(downstream of 'orders.order-placed', checked at FULL_TRANSITIVE, consumer "
        "protection): payments.order-totals reads field total_amount (field_lineage), which "
        "the new version removes; fix: keep the field and its type (deprecate it in its doc), "
        "or publish a new major version orders.order-placed.v2 (`version: 2` in the "
        "descriptor) and move payments.order-totals to it | field total_amount: removed (the "
        "registered version has no default for it); old consumers (reading with version 1) "
        "cannot read new records, which lack it; fix: keep the field and deprecate it in its "
        "doc, or publish a new major version orders.order-placed.v2 (`version: 2` in the "
        "descriptor)"
    )


def test_a_break_the_history_already_has_is_not_blamed_on_the_next_version() -> None:
    """Under BACKWARD (nobody reading) versions went int -> long; then a group registered and
    the product was checked at FULL_TRANSITIVE: every next version, a doc change included,
    was refused for int -> long, which it did not change (h44)."""
    totals = reader(id=[f"{UPSTREAM}:order_id"])
    older = schema(f("order_id"), f("quantity", "int"))
    newer = schema(f("order_id"), f("quantity", "long"))
    history = [(1, older), (2, newer)]
    documented = schema(f("order_id", doc="The order."), f("quantity", "long"))
    verdict = judge_evolution(product(), [totals], documented, history)
    assert verdict is not None
    assert not verdict.refused, verdict.message()
    optional = schema(
        f("order_id"), f("quantity", "long"), f("gift", ["null", "string"], default=None)
    )
    assert not judge_evolution(product(), [totals], optional, history).refused  # type: ignore[union-attr]
    # a break of its own is still refused, and so is one the history does not have
    narrowed = schema(f("order_id"), f("quantity", "int"), f("extra", "string"))
    refused = judge_evolution(product(), [totals], narrowed, history)
    assert refused is not None
    assert refused.refused
    assert "field extra: added without a default" in refused.message()


def test_a_retyped_nested_field_that_a_reader_reads_is_a_lineage_break() -> None:
    address = {"type": "record", "name": "Address", "fields": [f("zip")]}
    old = schema(f("order_id"), f("ship_to", address))
    retyped = {"type": "record", "name": "Address", "fields": [f("zip", "int")]}
    new = schema(f("order_id"), f("ship_to", retyped))
    upstream = product(compatibility="NONE", compatibility_reason="test")
    verdict = judge_evolution(upstream, [reader(zip=[f"{UPSTREAM}:ship_to.zip"])], new, [(1, old)])
    assert verdict is not None
    assert verdict.problems == ()  # NONE, with a reason: no level check
    assert [str(b) for b in verdict.lineage] == [
        "payments.order-totals reads field ship_to.zip (field_lineage), which the new version "
        "retypes from string to int"
    ]


def test_an_unchanged_read_field_is_no_break() -> None:
    added = schema(
        f("order_id"),
        f("total_amount", "double", doc="Now documented."),
        f("channel"),
        f("coupon", ["null", "string"], default=None),
    )
    verdict = judge_evolution(
        product(), [reader(total=[f"{UPSTREAM}:total_amount"])], added, [(1, V1)]
    )
    assert verdict is not None
    assert not verdict.refused


# -- the 409 wording: field, what changed, why, the fix -------------------------------------

SUBJECT = "orders.order-placed.v3-value"
STATUS = {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}


def problems(new: Any, old: Any = None, level: str = "FULL_TRANSITIVE") -> list[str]:
    base = old or schema(f("order_id"), f("total_amount", "double"), f("status", STATUS))
    return compatibility_problems(new, [(1, base), (2, base)], level, subject=SUBJECT)


def test_a_field_added_without_a_default() -> None:
    new = schema(f("order_id"), f("total_amount", "double"), f("status", STATUS), f("n", "int"))
    assert problems(new, level="BACKWARD") == [
        "field n: added without a default; consumers reading with the new schema cannot read "
        "old records (version 2), which lack it; fix: give it a default, or make it optional: "
        '["null", "int"] with default null'
    ]


def test_a_removed_field_names_every_version_it_breaks_and_the_next_major() -> None:
    new = schema(f("order_id"), f("status", STATUS))
    assert problems(new) == [
        "field total_amount: removed (the registered version has no default for it); old "
        "consumers (reading with versions 1, 2) cannot read new records, which lack it; fix: "
        "keep the field and deprecate it in its doc, or publish a new major version "
        "orders.order-placed.v4 (`version: 4` in the descriptor)"
    ]


def test_a_retyped_field_says_both_sides_break() -> None:
    new = schema(f("order_id"), f("total_amount"), f("status", STATUS))
    [line] = problems(new, level="FULL")
    assert line.startswith("field total_amount: type changed from double to string; ")
    assert "consumers reading with the new schema cannot read old records (version 2)" in line
    assert "; and old consumers (reading with version 2) cannot read new records" in line
    assert "fix: keep the type (Avro promotes only int -> long -> float -> double" in line


def test_a_field_made_optional_breaks_old_consumers() -> None:
    new = schema(
        f("order_id", ["null", "string"], default=None),
        f("total_amount", "double"),
        f("status", STATUS),
    )
    [line] = problems(new)
    assert line.startswith(
        'field order_id: made optional: type changed from string to ["null", "string"]; old '
        "consumers (reading with versions 1, 2) cannot read new records"
    )
    assert "fix: keep it required" in line


def test_enum_symbols_removed_and_added() -> None:
    fewer = {**STATUS, "symbols": ["NEW"]}
    [removed] = problems(
        schema(f("order_id"), f("total_amount", "double"), f("status", fewer)), level="BACKWARD"
    )
    assert removed.startswith("field status: enum symbols removed: PAID; consumers reading")
    assert "give the new enum a `default` symbol" in removed
    more = {**STATUS, "symbols": ["NEW", "PAID", "REFUNDED"]}
    [added] = problems(
        schema(f("order_id"), f("total_amount", "double"), f("status", more)), level="FORWARD"
    )
    assert added.startswith("field status: enum symbols added: REFUNDED; old consumers")
    assert "the registered enum has no `default` symbol" in added


def test_a_renamed_record_and_a_subject_that_is_no_product() -> None:
    renamed = schema(f("order_id"), f("total_amount", "double"), f("status", STATUS), name="X")
    base = schema(f("order_id"), f("total_amount", "double"), f("status", STATUS))
    [line] = compatibility_problems(renamed, [(1, base)], "BACKWARD")
    assert line.startswith("the record: named type renamed from record Placed to record X")
    assert "list the old full name in the new type's `aliases`" in line
    removed = schema(f("order_id"), f("status", STATUS))
    [plain] = compatibility_problems(removed, [(1, base)], "FORWARD", subject="plain-value")
    assert plain.endswith("publish a new major version (a new topic and subject)")


def test_a_named_type_changed_inside_is_not_said_to_be_retyped_to_itself() -> None:
    """An enum a group reads gaining a symbol read "retypes from enum S to enum S" (a
    campaign)."""
    from mesh_stream.governance.evolution import _field_change

    def with_symbols(*symbols: str) -> Any:
        return parse_schema(
            json.dumps(
                {
                    "type": "record",
                    "name": "R",
                    "namespace": "shop",
                    "fields": [
                        {"name": "s", "type": {"type": "enum", "name": "S", "symbols": symbols}}
                    ],
                }
            )
        )

    assert _field_change(with_symbols("A", "B"), with_symbols("A", "B", "C"), "s") == (
        "the new version changes enum shop.S (the same name)"
    )
    assert _field_change(with_symbols("A"), with_symbols("A"), "s") is None
