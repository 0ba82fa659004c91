"""The all-at-once path of the rule engine (one CEL call for every rule of a record) never
accepts a record the rule-by-rule path refuses, and never changes which rule is named or
why: random records (hypothesis) through both, and through confluent-kafka's own executor."""

from __future__ import annotations

import json
import string
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

TOPIC = "shop.order.v1"
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "amount", "type": "long"},
        {"name": "currency", "type": "string"},
        {"name": "rate", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "express", "type": "boolean"},
    ],
}
#: Rules of the kinds the all-at-once path joins: one field, several, a guard, a null.
RULES = [
    ("amount-not-negative", "message.amount >= 0", "ERROR"),
    ("known-currency", "message.currency in ['EUR', 'USD', 'GBP']", "ERROR"),
    ("rate-is-a-rate", "message.rate >= 0.0 && message.rate <= 1.0", "DLQ"),
    ("express-is-big", "message.express; message.amount > 100", "DLQ"),
    ("note-is-short", "message.note == null || size(message.note) < 8", "ERROR"),
    ("soft", "message.amount < 50", "NONE"),
    ("per-unit", "1.0 / message.rate > 1.0 || message.currency == 'EUR'", "ERROR"),
]

records = st.fixed_dictionaries(
    {
        "amount": st.one_of(st.integers(-5, 200), st.sampled_from([0, 1, -1, 2**62])),
        "currency": st.sampled_from(["EUR", "USD", "GBP", "JPY", "eur", ""]),
        "rate": st.one_of(
            st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, -0.25]),
            st.floats(-2, 2, allow_nan=False),
        ),
        "note": st.one_of(st.none(), st.text(max_size=12)),
        "express": st.booleans(),
    }
)
# Values of the wrong type or missing fields: evaluation errors, never a pass by mistake.
odd_records = st.builds(
    lambda record, drop, amount: {
        **{key: value for key, value in record.items() if key != drop},
        **({"amount": amount} if amount is not None else {}),
    },
    records,
    st.sampled_from([None, "amount", "currency", "rate", "note"]),
    st.one_of(st.none(), st.sampled_from([True, False, 1.0, "7", None, [1]])),
)


def _rule_set(rules: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "domainRules": [
            {"name": name, "kind": "CONDITION", "mode": "WRITE", "type": "CEL",
             "expr": expr, "onFailure": action}
            for name, expr, action in rules
        ]
    }  # fmt: skip


def _engines(rules: list[tuple[str, str, str]]) -> tuple[RuleEngine, RuleEngine]:
    both = [
        RuleEngine.from_rule_set(
            _rule_set(rules), owner="shop.order", dlq_topic=f"{TOPIC}.dlq", all_at_once=switch
        )
        for switch in (True, False)
    ]
    combined, one_by_one = both
    assert combined is not None
    assert one_by_one is not None
    assert combined.all_at_once
    assert not one_by_one.all_at_once
    return combined, one_by_one


def _outcome(engine: RuleEngine, record: dict[str, Any]) -> tuple[str, str] | None:
    breach = engine.first_breach(record)
    return None if breach is None else (breach.rule.name, breach.reason)


COMBINED, ONE_BY_ONE = _engines(RULES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(records, odd_records), min_size=1, max_size=30))
def test_all_at_once_names_the_same_rule_and_reason_as_rule_by_rule(
    batch: list[dict[str, Any]],
) -> None:
    # the same engines across examples, so remembered passes are exercised too
    for record in batch:
        assert _outcome(COMBINED, record) == _outcome(ONE_BY_ONE, record)
        if COMBINED.all_pass(record):
            assert ONE_BY_ONE.first_breach(record) is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(RULES), min_size=1, max_size=4, unique=True),
    st.lists(st.one_of(records, odd_records), min_size=1, max_size=10),
)
def test_any_set_of_rules_in_any_order_decides_alike(
    rules: list[tuple[str, str, str]], batch: list[dict[str, Any]]
) -> None:
    combined, one_by_one = _engines(rules)
    for record in batch + batch:  # the second time from the memos
        assert _outcome(combined, record) == _outcome(one_by_one, record)


def test_a_record_one_rule_refuses_is_never_accepted_by_the_joined_program() -> None:
    combined, _ = _engines(RULES)
    good = {"amount": 20, "currency": "EUR", "rate": 0.5, "note": None, "express": False}
    assert combined.all_pass(good)
    assert combined.first_breach(good) is None
    for change, rule in [
        ({"amount": -1}, "amount-not-negative"),
        ({"currency": "JPY"}, "known-currency"),
        ({"rate": 1.5}, "rate-is-a-rate"),
        ({"express": True}, "express-is-big"),
        ({"note": "far too long"}, "note-is-short"),
        ({"rate": 1.0, "currency": "USD"}, "per-unit"),
    ]:
        record = {**good, **change}
        assert not combined.all_pass(record)
        breach = combined.first_breach(record)
        assert breach is not None
        assert breach.rule.name == rule
    missing = {key: value for key, value in good.items() if key != "amount"}
    assert not combined.all_pass(missing)
    breach = combined.first_breach(missing)
    assert breach is not None
    assert breach.rule.name == "amount-not-negative"
    assert breach.error is not None  # the evaluation error, in the rule-by-rule words


def test_a_failing_none_rule_does_not_stop_the_joined_path() -> None:
    combined, _ = _engines(RULES)
    record = {"amount": 60, "currency": "EUR", "rate": 0.5, "note": None, "express": False}
    assert combined.all_pass(record)  # "soft" fails, and NONE never stops a record
    assert combined.first_breach(record) is None


#: Left out of the comparison with confluent-kafka: on ``rate = -0.0`` its evaluator
#: (cel-python) accepts ``1.0 / rate > 1.0`` where ours (and CEL's IEEE division, -inf)
#: refuses; both of our paths agree there (the tests above).
#: Notes are ASCII there too: ``size()`` of a string counts UTF-8 bytes in ours, code
#: points in cel-python (and in the CEL spec).
NOT_COMPARED = {"per-unit"}
COMPARED = [rule for rule in RULES if rule[0] not in NOT_COMPARED]


def _confluent_accepts() -> Any:
    registry = MockSchemaRegistryClient({"url": "mock://all-at-once"})
    executors = RuleRegistry()
    executors.register_executor(CelExecutor())
    rules = [
        Rule(name, None, RuleKind.CONDITION, RuleMode.WRITE, "CEL", None, None, expr, None,
             "ERROR", False)
        for name, expr, action in COMPARED
        if action != "NONE"
    ]  # fmt: skip
    registry.register_schema(
        f"{TOPIC}-value", Schema(json.dumps(SCHEMA), "AVRO", rule_set=RuleSet(None, rules))
    )
    serializer = AvroSerializer(
        registry,
        conf={"auto.register.schemas": False, "use.latest.version": True},
        rule_registry=executors,
    )

    def accepts(record: dict[str, Any]) -> bool:
        try:
            serializer(dict(record), SerializationContext(TOPIC, MessageField.VALUE))
        except SerializationError:
            return False
        return True

    return accepts


CONFLUENT_ACCEPTS = _confluent_accepts()
COMPARED_ENGINE = _engines(COMPARED)[0]


ascii_records = st.builds(
    lambda record, note: {**record, "note": note},
    records,
    st.one_of(st.none(), st.text(alphabet=string.printable, max_size=12)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ascii_records)
def test_the_joined_path_accepts_only_what_confluent_kafkas_executor_accepts(
    record: dict[str, Any],
) -> None:
    # well-typed records only: confluent-kafka's serializer refuses bad types after the rules
    ours = COMPARED_ENGINE.first_breach(record) is None
    assert ours == CONFLUENT_ACCEPTS(record)
    if COMPARED_ENGINE.all_pass(record):
        assert CONFLUENT_ACCEPTS(record)
