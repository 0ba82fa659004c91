"""A rule expression long enough to make the CEL parser panic (a Rust panic on a syntax
error past column 65,535, which Python cannot catch as an ordinary exception) is refused
by length wherever rules are checked: a descriptor, lint, the publisher's rule engine. The
registry's refusal is in tests/unit/registry/test_confluent_contracts.py."""

from __future__ import annotations

import pytest

from mesh_stream.contracts import RuleEngine, check_expression
from mesh_stream.contracts.cel import MAX_EXPRESSION_CHARS
from mesh_stream.errors import ConfigurationError

PANICKING = "true" + " " * 66_000 + " &&"


def test_an_expression_over_the_limit_is_refused_before_the_parser_sees_it() -> None:
    assert check_expression(PANICKING) == (
        "is 66,007 characters long; a rule's expression is at most 10,000"
    )
    assert check_expression("true" + " " * (MAX_EXPRESSION_CHARS - 4)) is None  # at the limit


def test_the_publisher_s_rule_engine_refuses_it_naming_the_rule_without_the_whole_text() -> None:
    """A ruleSet the registry held before it checked lengths (an overrideRuleSet) crashed
    every publisher of the product with a PanicException traceback."""
    rule_set = {
        "domainRules": [
            {
                "name": "long",
                "kind": "CONDITION",
                "type": "CEL",
                "mode": "WRITE",
                "expr": PANICKING,
            }
        ]
    }
    with pytest.raises(ConfigurationError) as refused:
        RuleEngine.from_rule_set(rule_set, owner="orders.order-placed", dlq_topic="dlq")
    message = str(refused.value)
    assert "(long): expr 'true" in message
    assert message.endswith(
        "...': is 66,007 characters long; a rule's expression is at most 10,000"
    )
    assert len(message) < 500
