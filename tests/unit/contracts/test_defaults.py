"""A field a record leaves out reaches the rules as it is written: its schema default.

A rule on an optional field failed every record that left the field out (`('note')`, the CEL
package's KeyError), though the encoder writes it as null and a reader reads null (h44).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from mesh_stream.contracts import RuleEngine

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Placed",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "quantity", "type": "int", "default": 1},
        {
            "name": "discount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
            "default": "\u0000",
        },
    ],
}


def engine(*expressions: str, schema: dict[str, Any] | None = SCHEMA) -> RuleEngine:
    rules = [
        {"name": f"rule-{i}", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": expr}
        for i, expr in enumerate(expressions)
    ]
    made = RuleEngine.from_rule_set(
        {"domainRules": rules}, owner="orders.x", dlq_topic="orders.x.v1.dlq", schema=schema
    )
    assert made is not None
    return made


@pytest.mark.parametrize("all_at_once", [True, False])
def test_a_field_left_out_is_its_default_to_the_rules(all_at_once: bool) -> None:
    rules = engine(
        "message.note == null || size(message.note) <= 5",
        "message.quantity >= 1",
        "message.quantity < 100",
    )
    if not all_at_once:
        rules = RuleEngine(rules.checks, all_at_once=False, defaults=rules._defaults)
    assert rules.first_breach({"order_id": "o-1"}) is None  # note null, quantity 1
    assert rules.first_breach({"order_id": "o-1", "note": None}) is None
    long_note = rules.first_breach({"order_id": "o-1", "note": "far too long"})
    assert long_note is not None
    assert long_note.rule.name == "rule-0"
    none_bought = rules.first_breach({"order_id": "o-1", "quantity": 0})
    assert none_bought is not None
    assert none_bought.rule.name == "rule-1"


def test_a_decimal_default_reaches_the_rules_as_the_value_it_is_written_as() -> None:
    rules = engine("message.discount == 0.0")
    assert rules._defaults == {"discount": Decimal("0.00")}
    assert rules.first_breach({"order_id": "o-1"}) is None
    assert rules.first_breach({"order_id": "o-1", "discount": Decimal("1.50")}) is not None


def test_a_field_without_a_default_left_out_is_named() -> None:
    """The reason said only `('note')`."""
    rules = engine("message.order_id != ''")
    breach = rules.first_breach({"note": "x"})
    assert breach is not None
    assert (
        breach.reason
        == "Rule expr failed: message.order_id != '' (the record has no field 'order_id')"
    )


def test_a_bytes_default_is_the_bytes_written_and_a_missing_map_key_is_no_field() -> None:
    """A bytes default reached the rules as the str of its code points, and a map without
    the key a rule reads was called a record without that field (h46)."""
    schema: dict[str, Any] = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "flag", "type": "bytes", "default": "\u00ff"},
            {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
        ],
    }
    flagged = engine("message.flag == b'\\xff'", schema=schema)
    assert flagged.first_breach({"order_id": "o-1"}) is None
    assert flagged.first_breach({"order_id": "o-1", "flag": b"\xff"}) is None
    tagged = engine("message.tags['owner'] != ''", schema=schema)
    breach = tagged.first_breach({"order_id": "o-1"})
    assert breach is not None
    assert breach.reason == (
        "Rule expr failed: message.tags['owner'] != '' (no key 'owner' in a map or nested record)"
    )
