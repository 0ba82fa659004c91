"""Hostile declarations: each bad parameter of a processor's spec is refused where it is
declared, with one ConfigurationError naming the class, the parameter and the value."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.spec import (
    MAX_WINDOW_MS,
    MAX_WINDOWS_PER_EVENT,
    Dedup,
    Event,
    Hopping,
    Input,
    Processor,
    Tumbling,
)

NAN = float("nan")
INF = float("inf")


def by_region(fields: Mapping[str, Any]) -> str | None:
    return str(fields["region"])


def count(state: dict[str, Any], event: Event) -> None:
    state["n"] = state.get("n", 0) + 1


def emit(key: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    return {"key": str(key), "n": state["n"]}


ORDERS = Input(
    "orders.order-placed",
    key=by_region,
    reads=("event_id", "region", "placed_at"),
    event_time="placed_at",
)


def processor(**changes: Any) -> Processor:
    declared: dict[str, Any] = {
        "output": "analytics.totals",
        "inputs": (ORDERS,),
        "apply": count,
        "emit": emit,
    }
    return Processor(**{**declared, **changes})


def orders_input(**changes: Any) -> Input:
    declared: dict[str, Any] = {
        "product": "orders.order-placed",
        "key": by_region,
        "reads": ("event_id", "region", "placed_at"),
    }
    return Input(**{**declared, **changes})


WHOLE_MS = "must be a whole number of milliseconds"


async def apply_awaiting(state: dict[str, Any], event: Any) -> None:  # as faust agents are
    del state, event


class AwaitingEmit:
    """A callable object whose __call__ is async: refused as an async function is."""

    async def __call__(self, key: Any, state: dict[str, Any]) -> dict[str, Any]:
        return {"key": key, **state}


def apply_with_a_clock(state: dict[str, Any], event: Event, now: int) -> None:
    """A mistake a team makes: an extra parameter the engine never passes."""


def case(make: Callable[..., object], changes: dict[str, Any], message: str, id: str) -> Any:
    """``make(**changes)`` must raise a ConfigurationError holding ``message``."""
    return pytest.param(make, changes, message, id=id)


BAD = [
    # windows: at most a hundred years (2**62 made window keys past 2**64, stored nowhere)
    case(
        Tumbling,
        {"size_ms": 2**62},
        f"Tumbling size_ms must be at most {MAX_WINDOW_MS} (100 years), got {2**62}",
        "size-2**62",
    ),
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": 60_000, "grace_ms": 10**30},
        f"Hopping grace_ms must be at most {MAX_WINDOW_MS} (100 years), got {10**30}",
        "grace-10**30",
    ),
    case(
        Tumbling,
        {"size_ms": 60_000, "retain_ms": 2**63},
        f"Tumbling retain_ms must be at most {MAX_WINDOW_MS} (100 years)",
        "retain-2**63",
    ),
    # reads: each field once (a repeated one broke every internal record the worker wrote)
    case(
        orders_input,
        {"reads": ("event_id", "region", "region")},
        "Input orders.order-placed: reads names 'region' more than once",
        "reads-repeated",
    ),
    # windows: only ints (no bool, float or str), in their ranges
    case(Tumbling, {"size_ms": NAN}, f"Tumbling size_ms {WHOLE_MS} > 0, got nan", "size-nan"),
    case(Tumbling, {"size_ms": INF}, f"Tumbling size_ms {WHOLE_MS} > 0, got inf", "size-inf"),
    case(
        Tumbling,
        {"size_ms": 1.5},
        f"Tumbling size_ms {WHOLE_MS} > 0, got the float 1.5",
        "size-1.5",
    ),
    case(Tumbling, {"size_ms": 60_000.0}, "got the float 60000.0", "size-whole-float"),
    case(Tumbling, {"size_ms": True}, f"size_ms {WHOLE_MS} > 0, got the bool True", "size-bool"),
    case(Tumbling, {"size_ms": "60"}, f"size_ms {WHOLE_MS} > 0, got the str '60'", "size-str"),
    case(Tumbling, {"size_ms": None}, f"Tumbling size_ms {WHOLE_MS} > 0, got None", "size-none"),
    case(
        Tumbling,
        {"size_ms": 60_000, "grace_ms": NAN},
        f"Tumbling grace_ms {WHOLE_MS} >= 0, got nan",
        "grace-nan",
    ),
    case(
        Tumbling,
        {"size_ms": 60_000, "grace_ms": None},
        f"Tumbling grace_ms {WHOLE_MS} >= 0, got None",
        "grace-none",
    ),
    case(
        Tumbling,
        {"size_ms": 60_000, "retain_ms": "1d"},
        f"Tumbling retain_ms {WHOLE_MS} >= 0, got the str '1d'",
        "retain-str",
    ),
    case(
        Tumbling,
        {"size_ms": 60_000, "retain_ms": INF},
        f"Tumbling retain_ms {WHOLE_MS} >= 0, got inf",
        "retain-inf",
    ),
    case(
        Hopping,
        {"size_ms": NAN, "advance_ms": 1_000},
        f"Hopping size_ms {WHOLE_MS} > 0, got nan",
        "hop-size-nan",
    ),
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": 1.5},
        f"Hopping advance_ms {WHOLE_MS} in 1..size_ms (60000), got the float 1.5",
        "advance-1.5",
    ),
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": True},
        f"Hopping advance_ms {WHOLE_MS}",
        "advance-bool",
    ),
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": "10"},
        f"Hopping advance_ms {WHOLE_MS}",
        "advance-str",
    ),
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": 10_000, "grace_ms": 0.5},
        f"Hopping grace_ms {WHOLE_MS} >= 0, got the float 0.5",
        "hop-grace-0.5",
    ),
    # an advance above the size leaves gaps no window holds: events there would be dropped
    case(
        Hopping,
        {"size_ms": 60_000, "advance_ms": 120_000},
        "Hopping advance_ms must be in 1..size_ms (60000), got 120000",
        "advance-above-size",
    ),
    # an event falls in size/advance windows: a hop of 1 ms over 11 days would never end
    case(
        Hopping,
        {"size_ms": 10**9, "advance_ms": 1},
        "Hopping(size_ms=1000000000, advance_ms=1) puts every event in 1000000000 windows, more "
        "than MAX_WINDOWS_PER_EVENT (1000); raise advance_ms to at least 1000000",
        "hop-1ms-over-11-days",
    ),
    case(
        Hopping,
        {"size_ms": MAX_WINDOWS_PER_EVENT * 10 + 1, "advance_ms": 10},
        "puts every event in 1001 windows",
        "one-window-too-many",
    ),
    # dedup
    case(
        Dedup,
        {"horizon_ms": NAN},
        f"Dedup horizon_ms {WHOLE_MS} > 0, or None, got nan",
        "horizon-nan",
    ),
    case(
        Dedup,
        {"horizon_ms": "1h"},
        f"Dedup horizon_ms {WHOLE_MS} > 0, or None, got the str '1h'",
        "horizon-str",
    ),
    case(
        Dedup,
        {"horizon_ms": True},
        f"Dedup horizon_ms {WHOLE_MS} > 0, or None, got the bool True",
        "horizon-bool",
    ),
    case(Dedup, {"horizon_ms": 0}, "Dedup horizon_ms must be > 0, or None, got 0", "horizon-zero"),
    case(
        Dedup,
        {"field": ""},
        "Dedup field must be a field name (a non-empty str), got the str ''",
        "field-empty",
    ),
    case(
        Dedup,
        {"field": None},
        "Dedup field must be a field name (a non-empty str), got None",
        "field-none",
    ),
    case(
        Dedup,
        {"field": ("event_id",)},
        "Dedup field must be a field name (a non-empty str), got the tuple ('event_id',)",
        "field-tuple",
    ),
    # processor
    case(
        processor,
        {"output": 5},
        "Processor output must be a product name (a str `<domain>.<product>`), got 5",
        "output-int",
    ),
    case(
        processor,
        {"output": "totals"},
        "Processor output 'totals' is not `<domain>.<product>`",
        "output-one-word",
    ),
    case(
        processor,
        {"output": "Analytics.Totals"},
        "Processor output 'Analytics.Totals' is not `<domain>.<product>`",
        "output-uppercase",
    ),
    case(
        processor,
        {"output": "analytics.totals-rekey"},
        "Processor output 'analytics.totals-rekey' may not end in '-rekey': its worker's "
        "consumer group, mesh-analytics.totals-rekey, is the one the re-key stage of a "
        "processor of analytics.totals commits as; name the product otherwise (e.g. "
        "analytics.totals-rekeyed)",
        "output-named-like-a-rekey-group",
    ),
    case(
        processor,
        {"inputs": ORDERS},
        "Processor of analytics.totals: inputs must be a tuple of Input(...), got one Input "
        "(orders.order-placed); write inputs=(Input(...),) with the trailing comma",
        "inputs-bare-input",
    ),
    case(
        processor,
        {"inputs": "orders.order-placed"},
        "Processor of analytics.totals: inputs must be a tuple of Input(...), got the str "
        "'orders.order-placed'",
        "inputs-str",
    ),
    case(
        processor,
        {"inputs": (ORDERS, "payments.payment-failed")},
        "inputs must be a tuple of Input(...), got the str 'payments.payment-failed' in it",
        "inputs-holding-a-str",
    ),
    case(
        processor,
        {"apply": None},
        "Processor of analytics.totals: apply must be a function (callable), got None",
        "apply-none",
    ),
    case(
        processor,
        {"emit": "emit"},
        "Processor of analytics.totals: emit must be a function (callable), got the str 'emit'",
        "emit-str",
    ),
    case(
        processor,
        {"apply": lambda _state: None},
        "Processor of analytics.totals: apply must be callable as apply(state, event); "
        "<lambda>(_state) cannot be: too many positional arguments",
        "apply-one-parameter",
    ),
    case(
        processor,
        {"apply": apply_with_a_clock},
        "apply must be callable as apply(state, event); apply_with_a_clock(state, event, now) "
        "cannot be: missing a required argument: 'now'",
        "apply-three-parameters",
    ),
    case(
        processor,
        {"apply": apply_awaiting},
        "Processor of analytics.totals: apply must be a plain function, not async: "
        "apply_awaiting is declared with `async def`, and the engine calls it for each record "
        "without awaiting; write `def apply_awaiting(...)` (it runs between the engine's own "
        "awaits)",
        "apply-async",
    ),
    case(
        processor,
        {"emit": AwaitingEmit()},
        "Processor of analytics.totals: emit must be a plain function, not async: emit is "
        "declared with `async def`",
        "emit-async-callable-object",
    ),
    case(
        processor,
        {"emit": lambda _state: {}},
        "Processor of analytics.totals: emit must be callable as emit(key, state); "
        "<lambda>(_state) cannot be: too many positional arguments",
        "emit-one-parameter",
    ),
    case(
        processor,
        {"dedup": "event_id"},
        "Processor of analytics.totals: dedup must be Dedup(...) or None, got the str 'event_id'",
        "dedup-str",
    ),
    case(
        processor,
        {"description": 3},
        "Processor of analytics.totals: description must be a str, got 3",
        "description-int",
    ),
    # input
    case(
        orders_input,
        {"product": None},
        "Input product must be a product name (a str `<domain>.<product>`), got None",
        "product-none",
    ),
    case(
        orders_input,
        {"product": "orders"},
        "Input product 'orders' is not `<domain>.<product>`",
        "product-one-word",
    ),
    case(
        orders_input,
        {"key": "region"},
        "Input orders.order-placed: key must be a function (callable), got the str 'region'",
        "key-str",
    ),
    case(
        orders_input,
        {"key": lambda: "eu"},
        "Input orders.order-placed: key must be callable as key(record); <lambda>() cannot be: "
        "too many positional arguments",
        "key-no-parameter",
    ),
    case(
        orders_input,
        {"reads": "item_id"},
        "Input orders.order-placed: reads must be a tuple of field names, got the str 'item_id'; "
        "write reads=('item_id',)",
        "reads-str",
    ),
    case(
        orders_input,
        {"reads": 5},
        "Input orders.order-placed: reads must be a tuple of field names, got 5",
        "reads-int",
    ),
    case(
        orders_input,
        {"reads": ("region", "")},
        "reads must be a tuple of field names (non-empty strs), got the str '' in it",
        "reads-empty-name",
    ),
    case(
        orders_input,
        {"reads": ("region", None)},
        "reads must be a tuple of field names (non-empty strs), got None in it",
        "reads-none-name",
    ),
    # a str `reads` let event_time pass as a substring of it
    case(
        orders_input,
        {"reads": "occurred_at", "event_time": "at"},
        "reads must be a tuple of field names, got the str 'occurred_at'",
        "event-time-substring",
    ),
    case(
        orders_input,
        {"event_time": 5},
        "Input orders.order-placed: event_time must be the name of one of `reads` (a str) or "
        "None, got 5",
        "event-time-int",
    ),
]


@pytest.mark.parametrize(("make", "changes", "message"), BAD)
def test_a_bad_declaration_is_refused_naming_class_parameter_and_value(
    make: Callable[..., object], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        make(**changes)


def test_the_most_windows_per_event_is_allowed_and_each_event_lands_in_all_of_them() -> None:
    window = Hopping(MAX_WINDOWS_PER_EVENT * 10, 10)
    assert len(list(window.windows("k", 123_456, 123_456))) == MAX_WINDOWS_PER_EVENT


def test_lists_are_taken_for_tuples_and_kept_as_tuples() -> None:
    declared = orders_input(reads=["event_id", "region"])
    assert declared.reads == ("event_id", "region")
    built = processor(inputs=[declared], dedup=Dedup("event_id", horizon_ms=1_000))
    assert built.inputs == (declared,)
    records = [InputRecord("orders.order-placed", {"event_id": "a", "region": "eu"}, 5)] * 2
    assert recompute(built, records) == {"eu": {"key": "eu", "n": 1}}
