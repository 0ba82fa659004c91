"""A rule nesting comprehensions past MAX_COMPREHENSION_NESTING is refused wherever rules
are checked: five `all` levels over a 100-item list were 10^10 steps per record, hung `mesh
publish`, and Ctrl-C could not stop the evaluator (a campaign)."""

from __future__ import annotations

import pytest

from mesh_stream.contracts import RuleEngine, check_expression
from mesh_stream.contracts.cel import (
    MAX_COMPREHENSION_NESTING,
    comprehension_nesting,
    field_paths_named,
)
from mesh_stream.errors import ConfigurationError

DEEP = "message.xs.all(a, message.xs.all(b, message.xs.exists(c, a + b + c > 0)))"


@pytest.mark.parametrize(
    ("expr", "depth"),
    [
        ("message.amount > 0", 0),
        ("message.xs.all(x, x > (1 + 2))", 1),
        ("message.xs.all(x, x.ys.exists(y, y > 0))", 2),
        ("size(message.xs.filter(x, x > 0)) > 0 && message.ys.map(y, y).size() > 0", 1),
        ("message.s == 'a.all(b, c.all(d, e.all(f, 1)))' // .all(.all(.all(", 0),
        (DEEP, 3),
    ],
)
def test_nesting_counts_comprehensions_not_parentheses_strings_or_comments(
    expr: str, depth: int
) -> None:
    assert comprehension_nesting(expr) == depth


def test_a_rule_nesting_past_the_limit_is_refused_where_declared_and_by_the_publisher() -> None:
    assert MAX_COMPREHENSION_NESTING == 2
    assert check_expression("message.xs.all(x, x.ys.exists(y, y > 0))") is None
    problem = check_expression(DEEP)
    assert problem == (
        "nests comprehensions (all, exists, exists_one, map, filter) 3 deep; at most 2: each "
        "level multiplies the work by a list's length, for every record"
    )
    rule_set = {
        "domainRules": [
            {"name": "costly", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": DEEP}
        ]
    }
    with pytest.raises(ConfigurationError, match=r"\(costly\): expr .*3 deep; at most 2"):
        RuleEngine.from_rule_set(rule_set, owner="shop.x", dlq_topic="shop.x.v1.dlq")


def test_a_parser_complaint_is_short_and_deep_nesting_says_so() -> None:
    """Brackets nested 3,000 deep made a 28 KB lint message, the cause buried in echoes."""
    assert check_expression("(" * 3000 + "1" + ")" * 3000) == (
        "nested too deeply for the CEL parser (its recursion limit); flatten it"
    )
    long_bad = "message.a > " + " || ".join(["message.b == 1"] * 300) + " &&"
    problem = check_expression(long_bad)
    assert problem is not None
    assert len(problem) <= 403


@pytest.mark.parametrize(
    ("expr", "paths"),
    [
        ("message.a.b.c > 1", [("a", "b", "c")]),
        ("message . a . b == 2", [("a", "b")]),
        ("message.name.startsWith('x')", [("name",)]),
        ("message.lines[0].sku == ''", [("lines",)]),
        ("has(message.a.b) && message.c.size() > 0", [("c",)]),
        ("'message.x' == message.y // message.z", [("y",)]),
        ("message.a.all(l, l.q > 0) && message.a.all(l, l.r > 0)", [("a",)]),
        # a field named `message` of a comprehension's variable is not the record (a review)
        ("message.lines.all(l, l.message.code != '')", [("lines",)]),
        ("message.lines.all(l, l . message.code != '')", [("lines",)]),
    ],
)
def test_the_field_paths_a_rule_reads(expr: str, paths: list[tuple[str, ...]]) -> None:
    """What rules-read-schema-fields checks: selections from `message`, not method calls,
    indexes, strings, comments or has() tests."""
    assert field_paths_named(expr) == paths
