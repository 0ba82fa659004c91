"""A processor's reads and event time, checked against its inputs' schemas at start-up (the
worker's `prepare` and `mesh verify` both), before any record is read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing import Input, Processor, Tumbling
from mesh_stream.processing.reads import check_reads


def _schema(placed_at: Any) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "Order",
            "fields": [
                {"name": "region", "type": "string"},
                {"name": "placed_at", "type": placed_at},
            ],
        }
    )


def _windowed() -> Processor:
    def by_region(fields: Mapping[str, Any]) -> str:
        return str(fields["region"])

    def count(state: dict[str, Any], _event: Any) -> None:
        state["n"] = state.get("n", 0) + 1

    orders = Input(
        "orders.order-placed", key=by_region, reads=("region", "placed_at"), event_time="placed_at"
    )
    return Processor(
        "analytics.counts", (orders,), count, lambda _key, s: {"n": s["n"]}, window=Tumbling(60_000)
    )


@pytest.mark.parametrize(
    "placed_at",
    [
        "long",
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
        ["null", {"type": "long", "logicalType": "timestamp-millis"}],
    ],
)
def test_an_event_time_of_epoch_milliseconds_is_taken(placed_at: Any) -> None:
    check_reads(_windowed(), {"orders.order-placed": _schema(placed_at)})


@pytest.mark.parametrize(
    ("placed_at", "shown"),
    [
        ("string", "string"),
        ("int", "int"),
        ({"type": "long", "logicalType": "timestamp-micros"}, "long (timestamp-micros)"),
        ({"type": "int", "logicalType": "date"}, "int (date)"),
        (["null", "string", "long"], 'the union ["null", "string", "long"]'),
    ],
)
def test_an_event_time_that_is_no_epoch_milliseconds_is_refused_naming_field_and_type(
    placed_at: Any, shown: str
) -> None:
    """A string event time passed the start-up check and failed on the first record
    (`event_time raised ValueError invalid literal for int()`); microseconds would have put
    every event in a window a thousand times too late."""
    with pytest.raises(ConfigurationError) as refused:
        check_reads(_windowed(), {"orders.order-placed": _schema(placed_at)})
    assert str(refused.value) == (
        f"processor analytics.counts: event_time 'placed_at' of orders.order-placed is "
        f"{shown} in its latest registered schema; windows need epoch milliseconds (a long, "
        f"or a long with logicalType timestamp-millis): name such a field, or leave "
        f"event_time out to use the arrival time"
    )


def test_an_input_that_has_the_dedup_field_and_does_not_read_it_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """h37: its records were silently not deduplicated."""
    from mesh_stream.processing import Dedup

    def key(fields: Mapping[str, Any]) -> str:
        return str(fields["item_id"])

    def fold(state: dict[str, Any], _event: Any) -> None:
        state["n"] = state.get("n", 0) + 1

    events = Input("teamx.events", key=key, reads=("item_id", "event_id"))
    prices = Input("teamx.prices", key=key, reads=("item_id",))  # has event_id, reads it not
    processor = Processor(
        "teamx.joined", (events, prices), fold, lambda _k, s: s, dedup=Dedup("event_id")
    )
    fields = [{"name": "item_id", "type": "string"}, {"name": "event_id", "type": "string"}]
    schema = json.dumps({"type": "record", "name": "E", "fields": fields})
    with caplog.at_level("WARNING"):
        check_reads(processor, {"teamx.events": schema, "teamx.prices": schema})
    assert [record.getMessage() for record in caplog.records] == [
        "processor teamx.joined: input teamx.prices has the dedup field 'event_id' but does not "
        "read it, so its records are not deduplicated (a retried copy counts twice); add "
        "'event_id' to that input's `reads`"
    ]
