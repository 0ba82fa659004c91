"""A timestamp reaches a rule as its instant in UTC, as Avro keeps it, whatever offset the
record gave it: `getHours()` of 01:00+01:00 refused what 00:00Z passed (a campaign)."""

from __future__ import annotations

import datetime as dt

import pytest

from mesh_stream.contracts import RuleEngine

MIDNIGHT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "given",
    [
        MIDNIGHT,
        MIDNIGHT.astimezone(dt.timezone(dt.timedelta(hours=1))),  # 01:00+01:00
        MIDNIGHT.astimezone(dt.timezone(dt.timedelta(hours=-5))),  # 19:00-05:00, a day before
        MIDNIGHT.replace(tzinfo=None),  # naive: UTC, as the encoder takes it
    ],
)
def test_a_rule_on_the_hour_sees_the_same_instant_however_it_was_written(
    given: dt.datetime,
) -> None:
    rule_set = {
        "domainRules": [
            {
                "name": "midnight-utc",
                "kind": "CONDITION",
                "type": "CEL",
                "mode": "WRITE",
                "expr": "message.placed_at.getHours() == 0 && message.placed_at.getDate() == 1",
            }
        ]
    }
    engine = RuleEngine.from_rule_set(rule_set, owner="shop.x", dlq_topic="shop.x.v1.dlq")
    assert engine is not None
    assert engine.first_breach({"placed_at": given}) is None
    assert engine.first_breach({"placed_at": given + dt.timedelta(hours=1)}) is not None


def _schema(logical: str, nullable: bool = False) -> dict[str, object]:
    kind: object = {"type": "long", "logicalType": logical}
    return {
        "type": "record",
        "name": "Placed",
        "fields": [{"name": "placed_at", "type": ["null", kind] if nullable else kind}],
    }


@pytest.mark.parametrize(
    ("logical", "number", "nullable"),
    [
        ("timestamp-millis", 1_767_225_600_000, False),
        ("timestamp-micros", 1_767_225_600_000_000, False),
        ("timestamp-millis", 1_767_225_600_000, True),
        ("local-timestamp-millis", 1_767_225_600_000, False),
    ],
)
def test_a_timestamp_given_as_a_number_is_the_instant_it_stands_for(
    logical: str, number: int, nullable: bool
) -> None:
    """A valid record giving the instant as epoch milliseconds (as JSON Lines do) failed a
    timestamp rule with "No such overload" that its datetime passed (a campaign)."""
    rule_set = {
        "domainRules": [
            {
                "name": "this-year",
                "kind": "CONDITION",
                "type": "CEL",
                "mode": "WRITE",
                "expr": "message.placed_at >= timestamp('2026-01-01T00:00:00Z') && "
                "message.placed_at < timestamp('2027-01-01T00:00:00Z')",
            }
        ]
    }
    engine = RuleEngine.from_rule_set(
        rule_set, owner="shop.x", dlq_topic="shop.x.v1.dlq", schema=_schema(logical, nullable)
    )
    assert engine is not None
    assert engine.first_breach({"placed_at": number}) is None
    assert engine.first_breach({"placed_at": MIDNIGHT}) is None
    a_year_before = engine.first_breach({"placed_at": number - number // 56})
    assert a_year_before is not None
    assert a_year_before.rule.name == "this-year"


def test_only_the_timestamp_fields_a_rule_reads_are_converted() -> None:
    """Products whose rules read no timestamp pay nothing for the conversion (the
    benchmark's); a rule reading the whole `message` may read any of them."""

    def engine(expr: str) -> RuleEngine:
        rule = {"name": "r", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": expr}
        made = RuleEngine.from_rule_set(
            {"domainRules": [rule]},
            owner="shop.x",
            dlq_topic="shop.x.v1.dlq",
            schema=_schema("timestamp-millis"),
        )
        assert made is not None
        return made

    assert engine("message.quantity > 0")._instants == {}
    assert set(engine("message.placed_at > timestamp('2026-01-01T00:00:00Z')")._instants) == {
        "placed_at"
    }
    assert set(engine("size(message) > 0")._instants) == {"placed_at"}
