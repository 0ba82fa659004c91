"""Our CEL rule engine decides like confluent-kafka's serializer: the same rules on the same
records pass or fail alike (ints, doubles, strings, nulls, missing fields, nested records,
guards), checked against confluent-kafka's own AvroSerializer + CelExecutor over its mock
registry; and neither the field projection nor the flat renaming of ``message.<field>``
ever changes a verdict or its error message."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib's deprecation notice on import
    from confluent_kafka.schema_registry import Rule, RuleKind, RuleMode, RuleSet, Schema
    from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
        MockSchemaRegistryClient,
    )
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.rule_registry import RuleRegistry
    from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
    from confluent_kafka.serialization import (
        MessageField,
        SerializationContext,
        SerializationError,
    )

from mesh_stream.contracts import RuleEngine
from mesh_stream.contracts.cel import MEMO_SIZE
from mesh_stream.errors import ConfigurationError

TOPIC = "shop.order.v1"
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "quantity", "type": "int"},
        {"name": "total", "type": "long"},
        {"name": "discount", "type": "double"},
        {"name": "currency", "type": "string"},
        {"name": "coupon", "type": ["null", "string"], "default": None},
        {"name": "express", "type": "boolean"},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "city", "type": "string"},
                    {"name": "zip", "type": "int"},
                ],
            },
        },
        {"name": "lines", "type": {"type": "array", "items": "long"}},
    ],
}
EXPRESSIONS = [
    "message.quantity > 0",
    "message.total >= 0",
    "message.discount >= 0.0 && message.discount <= 1.0",
    "message.discount < 1",
    "message.currency in ['EUR', 'USD', 'GBP']",
    "size(message.currency) == 3 && message.currency.matches('^[A-Z]+$')",
    "message.coupon == null || message.coupon.startsWith('C-')",
    "has(message.coupon)",
    "message.express || message.total > 100",
    "message.address.city != '' && message.address.zip > 999",
    "message.lines.all(x, x > 0)",
    "size(message.lines) > 0",
    "message.total == message.quantity * 10",
    "message.coupon != null; message.coupon.size() > 2",
    "message.order_id.contains('-')",
    "message.total / message.quantity >= 5",
    "size(message) >= 9",
    "message['currency'] == 'EUR'",
    # the flat renaming of message.<field>: strings, comments, has(), nesting, errors
    "message.currency != 'message.currency' && message.quantity > 0 // message.total < 0",
    'message.order_id.startsWith("o-") || message.order_id == "message.order_id"',
    "message.currency + '.message.total' == 'EUR.message' + '.total'",
    "has(message.coupon) && message.quantity > 1",
    "has(message.address.city) && message.address.zip > 999",
    "message.coupon.size() > 1 || message.quantity > 3",
    "message.quantity > 3 || message.coupon.size() > 1",
    "message.quantity > 3 ? message.total > 35 : message.total > 0",
    "message.lines.exists(message, message > 15)",
    "[message.address].exists(a, a.city == 'Lyon') && message . quantity < 4",
    "{'message': message.quantity}.message > 0",
    "message.total > 0; message.express",
]


def order(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "order_id": "o-1",
        "quantity": 3,
        "total": 30,
        "discount": 0.25,
        "currency": "EUR",
        "coupon": None,
        "express": False,
        "address": {"city": "Lyon", "zip": 69001},
        "lines": [10, 20],
    }
    record.update(changes)
    return record


RECORDS = [
    order(),
    order(quantity=0),
    order(total=-5, quantity=-1),
    order(discount=1.5),
    order(discount=-0.0),
    order(currency="JPY"),
    order(currency="eur"),
    order(coupon="C-10"),
    order(coupon="X"),
    order(coupon=""),
    order(express=True, total=5),
    order(address={"city": "", "zip": 10}),
    order(lines=[]),
    order(lines=[5, -1]),
    order(order_id="o1"),
    order(quantity=4, total=40),
    {k: v for k, v in order().items() if k != "coupon"},  # a field left to its default
    {k: v for k, v in order(coupon="C-7", quantity=5).items() if k != "total"},
]


def _rule(name: str, expr: str) -> Rule:
    kind, mode = RuleKind.CONDITION, RuleMode.WRITE
    return Rule(name, None, kind, mode, "CEL", None, None, expr, None, "ERROR", False)


@pytest.fixture(scope="module")
def confluent_verdict() -> Any:
    """Whether confluent-kafka's serializer, running ``expr`` as a rule, accepts a record."""
    registry = MockSchemaRegistryClient({"url": "mock://rules"})
    rules = RuleRegistry()
    rules.register_executor(CelExecutor())
    serializers: dict[str, AvroSerializer] = {}

    def verdict(expr: str, record: dict[str, Any]) -> bool:
        serializer = serializers.get(expr)
        if serializer is None:
            subject = f"rule-{len(serializers)}-value"
            registry.register_schema(
                subject,
                Schema(json.dumps(SCHEMA), "AVRO", rule_set=RuleSet(None, [_rule("r", expr)])),
            )
            serializer = AvroSerializer(
                registry,
                conf={
                    "auto.register.schemas": False,
                    "use.latest.version": True,
                    "subject.name.strategy": lambda _ctx, _name, subject=subject: subject,
                },
                rule_registry=rules,
            )
            serializers[expr] = serializer
        try:
            serializer(dict(record), SerializationContext(TOPIC, MessageField.VALUE))
        except SerializationError:
            return False
        except ValueError as exc:  # the rules passed; then Avro refused a missing field
            if "no value and no default" not in str(exc):
                raise
        return True

    return verdict


def _engine(expr: str, *, all_at_once: bool = True) -> RuleEngine:
    rule_set = {
        "domainRules": [
            {"name": "r", "kind": "CONDITION", "mode": "WRITE", "type": "CEL", "expr": expr}
        ]
    }
    engine = RuleEngine.from_rule_set(
        rule_set, owner="shop.order", dlq_topic=f"{TOPIC}.dlq", all_at_once=all_at_once
    )
    assert engine is not None
    return engine


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_each_rule_passes_and_fails_the_records_confluent_kafka_does(
    expr: str, confluent_verdict: Any
) -> None:
    engine = _engine(expr)
    ours = [engine.first_breach(record) is None for record in RECORDS]
    remembered = [engine.first_breach(record) is None for record in RECORDS]
    theirs = [confluent_verdict(expr, record) for record in RECORDS]
    assert ours == theirs
    assert remembered == theirs
    assert True in theirs or False in theirs  # the case says something


def test_the_tried_records_both_pass_and_fail_most_rules(confluent_verdict: Any) -> None:
    split = [
        expr
        for expr in EXPRESSIONS
        if len({confluent_verdict(expr, record) for record in RECORDS}) == 2
    ]
    assert len(split) >= len(EXPRESSIONS) - 3


def test_projection_hands_over_only_the_fields_read_and_never_changes_a_verdict() -> None:
    projected = _engine("message.total >= 0 && has(message.coupon)")
    assert projected.checks[0].fields == ("coupon", "total")
    whole = [_engine(expr) for expr in ("size(message) > 0", "message['total'] >= 0")]
    assert [engine.checks[0].fields for engine in whole] == [None, None]
    tricky = _engine("'message.total' != '' && message.quantity > 0 // message.express")
    assert tricky.checks[0].fields == ("quantity",)
    for record in RECORDS:
        assert (projected.first_breach(record) is None) == (
            record.get("total", -1) >= 0 and "coupon" in record
        )


def test_rules_run_in_order_and_the_first_failing_error_or_dlq_rule_is_named() -> None:
    rule_set = {
        "domainRules": [
            {"name": "soft", "kind": "CONDITION", "mode": "WRITE", "type": "CEL",
             "expr": "message.total > 1000", "onFailure": "NONE"},
            {"name": "read-only", "kind": "CONDITION", "mode": "READ", "type": "CEL",
             "expr": "false"},
            {"name": "off", "kind": "CONDITION", "mode": "WRITE", "type": "CEL",
             "expr": "false", "disabled": True},
            {"name": "known-currency", "kind": "CONDITION", "mode": "WRITEREAD", "type": "CEL",
             "expr": "message.currency in ['EUR']", "onFailure": "DLQ,NONE",
             "doc": "Only euros for now."},
            {"name": "positive", "kind": "CONDITION", "mode": "WRITE", "type": "CEL",
             "expr": "message.total >= 0"},
        ]
    }  # fmt: skip
    engine = RuleEngine.from_rule_set(rule_set, owner="shop.order", dlq_topic="shop.order.v1.dlq")
    assert engine is not None
    assert [check.name for check in engine.checks] == ["soft", "known-currency", "positive"]
    assert engine.first_breach(order()) is None
    breach = engine.first_breach(order(currency="USD", total=-1))
    assert breach is not None
    assert (breach.rule.name, breach.rule.action, breach.rule.dlq_topic) == (
        "known-currency",
        "DLQ",
        "shop.order.v1.dlq",
    )
    assert breach.reason == "Only euros for now."
    replayed = engine.first_breach(order(currency="USD", total=-1), skip="known-currency")
    assert replayed is not None
    assert replayed.rule.name == "positive"  # a dead letter sent again skips the rule it failed
    missing = engine.first_breach({k: v for k, v in order().items() if k != "total"})
    assert missing is not None
    assert missing.rule.name == "positive"
    assert missing.error is not None
    assert "total" in missing.error
    assert missing.reason.startswith("Rule expr failed: message.total >= 0 (")


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"type": "CEL_FIELD", "kind": "CONDITION", "expr": "true"}, "CEL conditions only"),
        ({"type": "CEL", "kind": "TRANSFORM", "expr": "message"}, "CEL conditions only"),
        ({"type": "CEL", "kind": "CONDITION", "expr": "true", "onFailure": "SHOUT"}, "SHOUT"),
        ({"type": "CEL", "kind": "CONDITION", "expr": "message.x >"}, "Syntax error"),
        ({"type": "CEL", "kind": "CONDITION", "expr": "message.mail.isEmail()"}, "isEmail"),
    ],
)
def test_a_write_rule_the_publisher_cannot_run_is_refused_not_skipped(
    rule: dict[str, Any], complaint: str
) -> None:
    rule_set = {"domainRules": [{"name": "odd", "mode": "WRITE", **rule}]}
    with pytest.raises(ConfigurationError) as caught:
        RuleEngine.from_rule_set(rule_set, owner="shop.order (shop.order.v1-value)", dlq_topic="d")
    message = str(caught.value)
    assert message.startswith("shop.order (shop.order.v1-value): ruleSet.domainRules[0] (odd)")
    assert complaint in message


@pytest.mark.parametrize("all_at_once", [True, False])
def test_remembered_verdicts_are_keyed_by_exact_value_and_type(all_at_once: bool) -> None:
    engine = _engine("1.0 / message.discount > 0.0", all_at_once=all_at_once)
    verdicts = [
        engine.first_breach(order(discount=value)) is None for value in (0.0, -0.0, 0.0, -0.0)
    ]
    assert verdicts == [True, False, True, False]  # +0.0 and -0.0 never share a verdict
    zeros = engine.checks[0].memo
    assert zeros is not None
    assert len(zeros) == (1 if all_at_once else 2)  # passes are kept by the lane, not here
    typed = _engine("message.total == 1", all_at_once=all_at_once)
    assert [typed.first_breach(order(total=value)) is None for value in (1, True, 1)] == [
        True,
        False,  # a bool is not an int in CEL, though True == 1 in Python
        True,
    ]
    # the other way round: a remembered pass of True must not answer for 1 either
    flipped = _engine("message.total == true", all_at_once=all_at_once)
    assert [flipped.first_breach(order(total=value)) is None for value in (True, 1, True)] == [
        True,
        False,
        True,
    ]
    check = typed.checks[0]
    assert check.memo is not None
    assert len(check.memo) == (1 if all_at_once else 2)
    assert _engine("now > timestamp('2020-01-01T00:00:00Z')").checks[0].memo is None
    assert not _engine("now > timestamp('2020-01-01T00:00:00Z')").all_at_once


# Not comparable with confluent-kafka: on a null coupon its evaluator (cel-python) takes the
# ternary's error as true, ours as an error; the renaming must still keep our own verdict.
OWN_ONLY = ["message.coupon.size() > 1 ? message.total > 0 : message.total > 35"]


def _outcomes(engine: RuleEngine) -> list[str | None]:
    outcomes: list[str | None] = []
    for record in RECORDS:
        breach = engine.first_breach(record)
        outcomes.append(None if breach is None else breach.reason)
    return outcomes


@pytest.mark.parametrize("expr", EXPRESSIONS + OWN_ONLY)
def test_the_flat_renaming_keeps_every_verdict_and_error_message(expr: str) -> None:
    renamed, original = _engine(expr), _engine(expr, all_at_once=False)
    check = original.checks[0]
    check.flat_guard = check.flat_program = check.memo = check.one = None
    assert _outcomes(renamed) == _outcomes(original)


def test_only_plain_field_reads_outside_has_are_renamed() -> None:
    renamed = [expr for expr in EXPRESSIONS if _engine(expr).checks[0].flat_program is not None]
    assert renamed == [
        "message.quantity > 0",
        "message.total >= 0",
        "message.discount >= 0.0 && message.discount <= 1.0",
        "message.discount < 1",
        "message.currency in ['EUR', 'USD', 'GBP']",
        "size(message.currency) == 3 && message.currency.matches('^[A-Z]+$')",
        "message.coupon == null || message.coupon.startsWith('C-')",
        "message.express || message.total > 100",
        "message.address.city != '' && message.address.zip > 999",
        "message.lines.all(x, x > 0)",
        "size(message.lines) > 0",
        "message.total == message.quantity * 10",
        "message.coupon != null; message.coupon.size() > 2",
        "message.order_id.contains('-')",
        "message.total / message.quantity >= 5",
        "message.currency != 'message.currency' && message.quantity > 0 // message.total < 0",
        'message.order_id.startsWith("o-") || message.order_id == "message.order_id"',
        "message.currency + '.message.total' == 'EUR.message' + '.total'",
        "has(message.address.city) && message.address.zip > 999",
        "message.coupon.size() > 1 || message.quantity > 3",
        "message.quantity > 3 || message.coupon.size() > 1",
        "message.quantity > 3 ? message.total > 35 : message.total > 0",
        "[message.address].exists(a, a.city == 'Lyon') && message . quantity < 4",
        "message.total > 0; message.express",
    ]
    strings = _engine("message.currency != 'message.total' && message.quantity > 0").checks[0]
    assert strings.variables == (("currency", "__m_currency"), ("quantity", "__m_quantity"))
    assert _engine("message.x.message.y > 0").checks[0].flat_program is None


def test_a_memo_whose_values_hardly_repeat_is_dropped_and_verdicts_stay_right() -> None:
    expr = "message.total % 7 != 3"
    distinct, repeating = _engine(expr, all_at_once=False), _engine(expr, all_at_once=False)
    totals = range(MEMO_SIZE + 100)
    assert [distinct.first_breach(order(total=t)) is None for t in totals] == [
        t % 7 != 3 for t in totals
    ]
    assert distinct.checks[0].memo is None  # every lookup missed: no memo any more
    cycle = [t % 50 for t in totals]
    assert [repeating.first_breach(order(total=t)) is None for t in cycle] == [
        t % 7 != 3 for t in cycle
    ]
    assert repeating.checks[0].memo is not None
    assert len(repeating.checks[0].memo) == 50


def test_the_evaluators_known_differences_are_pinned(confluent_verdict: Any) -> None:
    """docs/how-to/quality-rules.md names these; when either evaluator changes, this fails
    and the page must change with it."""
    cases = [
        # size() of a string: UTF-8 bytes here, code points there
        ("size(message.currency) == 3", order(currency="€UR"), False, True),
        ("message.currency.size() == 5", order(currency="€UR"), True, False),
        # ... and a regular expression counts characters in both
        ("message.currency.matches('^.{3}$')", order(currency="€UR"), True, True),
        # -0.0 keeps its sign here, not there
        ("string(message.discount) == '-0'", order(discount=-0.0), True, False),
        ("1.0 / message.discount > 0.0", order(discount=-0.0), False, True),
        # NaN compared: an evaluation error here (the rule fails), false there
        ("!(message.discount < 0.0)", order(discount=float("nan")), False, True),
        # ... and the way the page gives to refuse NaN refuses it in both
        ("message.discount == message.discount", order(discount=float("nan")), False, False),
    ]
    for expr, record, ours, theirs in cases:
        assert (_engine(expr).first_breach(record) is None) == ours, expr
        assert confluent_verdict(expr, record) == theirs, expr
