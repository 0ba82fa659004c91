"""`mesh verify`'s judgement: expected against actual, field by field, records the engine
would refuse, and a recomputation that is not deterministic or depends on the order."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import ConfigurationError, ProcessorError, ProductNotFoundError
from mesh_stream.processing.reference import InputRecord, recompute
from mesh_stream.processing.spec import Event, Input, Processor
from mesh_stream.project import load_project
from mesh_stream.verify.compare import as_written, compare, render
from mesh_stream.verify.harness import (
    VerifyOptions,
    _input_sources,
    _prepare_work_dir,
    _slices,
    expected_records,
    fresh_processor,
    load_processor,
    nondeterminism,
    order_dependence,
)
from tests.fixtures.processing import raised_at_line

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


def _at(code: str) -> str:
    return raised_at_line(code, __file__)


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


def output_product(key_field: str | None = "key") -> DataProduct:
    sample = load_project(REPO).descriptor("analytics.revenue-by-region")
    assert sample is not None
    return sample.model_copy(update={"name": "analytics.totals", "key_field": key_field})


def test_a_record_the_schema_cannot_write_is_the_processors_error_naming_the_field() -> None:
    with pytest.raises(ProcessorError) as refused:
        as_written(SCHEMA, {"k": record("k") | {"count": "7"}}, output_product())
    assert str(refused.value).startswith(
        "processor analytics.totals: emit's record of key 'k' does not fit the output's schema "
        "(Total): count: expected long, got str '7'; the engine cannot publish it (record: "
    )


def test_a_record_whose_key_field_is_not_its_key_is_the_processors_error() -> None:
    with pytest.raises(ProcessorError) as refused:
        as_written(SCHEMA, {"k": record("K")}, output_product())
    assert str(refused.value) == (
        "processor analytics.totals: emit's record of key 'k' has key = 'K'; the record is "
        "published under its key and its 'key' (the output's key_field) must equal it, so the "
        "engine refuses it"
    )
    # without a key_field (or with one the record does not carry) the key is not checked
    assert as_written(SCHEMA, {"k": record("K")}, output_product(None))["k"]["key"] == "K"


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
        inputs=(Input("shop.things", key=lambda _fields: "k", reads=("name",)),),
        apply=apply,
        emit=total,
    )


INPUTS = [
    InputRecord("shop.things", {"name": "b"}, 10, "shop.things.v1[0]@0"),
    InputRecord("shop.things", {"name": "a"}, 20, "shop.things.v1[1]@0"),
    InputRecord("shop.things", {"name": "c"}, 30, "shop.things.v1[0]@1"),
]


def test_a_processor_keeping_the_first_event_seen_is_order_dependent() -> None:
    recomputed = expected_records(lambda: processor(keep_first), INPUTS, SCHEMA, pause_s=0)
    assert recomputed.expected["k"]["first"] == "b"
    assert recomputed.expected["k"]["count"] == 3
    assert recomputed.repeated.equal  # the same order gives the same result
    assert not recomputed.reordered.equal
    lines = order_dependence(recomputed.reordered)
    assert lines[0].startswith("ORDER-DEPENDENT: 1 keys get other records")
    assert lines[1] == "    e.g. key k: first is 'b' in one order, 'a' in the other"


def test_order_dependence_is_found_when_the_merged_order_is_the_descending_one() -> None:
    """The merged order here begins with partition 1, as the descending pass does: with one
    reordering, an apply keeping the first event seen passed (a campaign, at 100 records)."""
    merged_like_descending = [
        InputRecord("shop.things", {"name": "a"}, 10, "shop.things.v1[1]@0"),
        InputRecord("shop.things", {"name": "b"}, 20, "shop.things.v1[0]@0"),
    ]
    recomputed = expected_records(
        lambda: processor(keep_first), merged_like_descending, SCHEMA, pause_s=0
    )
    assert recomputed.expected["k"]["first"] == "a"
    assert not recomputed.reordered.equal
    assert order_dependence(recomputed.reordered)[1] == (
        "    e.g. key k: first is 'a' in one order, 'b' in the other"
    )


def test_a_processor_taking_the_least_value_is_not() -> None:
    recomputed = expected_records(lambda: processor(keep_least), INPUTS, SCHEMA, pause_s=0)
    assert recomputed.expected["k"]["first"] == "a"
    assert recomputed.repeated.equal
    assert recomputed.reordered.equal


#: A processor module keeping its running counts in a module global, as a cache would.
GLOBAL_COUNTS = """
from decimal import Decimal

from mesh_stream.processing.spec import Input, Processor

_COUNTS = {}


def count(state, event):
    _COUNTS["k"] = _COUNTS.get("k", 0) + 1  # outside `state`: a restart loses it
    state["count"] = _COUNTS["k"]
    state["first"] = min(state.get("first", event.fields["name"]), event.fields["name"])


PROCESSOR = Processor(
    output="analytics.totals",
    inputs=(Input("shop.things", key=lambda fields: "k", reads=("name",)),),
    apply=count,
    emit=lambda key, state: {
        "key": key,
        "count": state["count"],
        "share": 0.5,
        "amount": Decimal("1.00"),
        "first": state["first"],
    },
)
"""


@pytest.fixture
def module_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Processor]]:
    """Writes a processor module and imports it (removed from ``sys.modules`` afterwards)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(name: str, text: str) -> Processor:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
        names.append(name)
        return load_processor(name)

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_state_kept_in_module_globals_is_not_deterministic_not_order_dependent(
    module_named: Callable[[str, str], Processor],
) -> None:
    loaded = module_named("verify_global_counts", GLOBAL_COUNTS)
    recompute(loaded, INPUTS)  # verify's own check before the run uses the module once
    recomputed = expected_records(
        lambda: fresh_processor("verify_global_counts", loaded), INPUTS, SCHEMA, pause_s=0
    )
    # a freshly imported module: what a newly started worker would compute, not 6
    assert recomputed.expected["k"]["count"] == 3
    assert [(d.key, d.fields[0].expected, d.fields[0].got) for d in recomputed.repeated.differing]
    assert recomputed.repeated.differing[0].fields[0].got == 6  # the module kept counting
    assert recomputed.reordered.equal  # again a fresh module: the order is not the problem
    lines = nondeterminism(recomputed.repeated)
    assert lines[0].startswith(
        "NOT DETERMINISTIC: 1 keys get other records when the same input is recomputed a "
        "second time in the same order, so no worker can be expected to match: apply is not "
        "deterministic or keeps state outside `state`"
    )
    assert lines[1] == ("    e.g. key k: count is 3 in the first recomputation, 6 in the second")


def stamp_wall_clock(state: dict[str, Any], event: Event) -> None:
    keep_least(state, event)
    state["count"] = time.time_ns()  # when it was applied, not when it happened


def test_a_wall_clock_in_apply_is_not_deterministic() -> None:
    recomputed = expected_records(lambda: processor(stamp_wall_clock), INPUTS, SCHEMA, pause_s=0.01)
    assert [d.key for d in recomputed.repeated.differing] == ["k"]
    assert recomputed.repeated.differing[0].fields[0].path == "count"


def test_a_module_that_cannot_be_imported_again_falls_back_to_the_loaded_one(
    module_named: Callable[[str, str], Processor],
) -> None:
    loaded = module_named(
        "verify_import_once",
        GLOBAL_COUNTS + "\nimport builtins\n"
        "assert not hasattr(builtins, '_verify_once'), 'imported twice'\n"
        "builtins._verify_once = True\n",
    )
    try:
        assert fresh_processor("verify_import_once", loaded) is loaded
        assert sys.modules["verify_import_once"].PROCESSOR is loaded
    finally:
        import builtins

        del builtins._verify_once  # type: ignore[attr-defined]


def test_the_processors_own_error_in_the_recomputation_names_the_record() -> None:
    def refuse(state: dict[str, Any], event: Event) -> None:
        raise ValueError(f"no {event.fields['name']}")

    with pytest.raises(ProcessorError) as failed:
        expected_records(lambda: processor(refuse), INPUTS, SCHEMA, pause_s=0)
    assert str(failed.value) == (
        "processor analytics.totals on shop.things.v1[0]@0: apply raised ValueError no b"
        + _at("raise ValueError(f\"no {event.fields['name']}\")")
    )


def test_apply_looking_up_a_name_not_in_reads_is_told_which_fields_it_is_given() -> None:
    """As `key`'s failure names `reads`, so does `apply`'s (it may also have missed a key
    of its own state, so the message says both)."""

    def read_more(state: dict[str, Any], event: Event) -> None:
        state["where"] = event.fields["warehouse"]

    with pytest.raises(ProcessorError) as failed:
        expected_records(lambda: processor(read_more), INPUTS, SCHEMA, pause_s=0)
    assert str(failed.value) == (
        "processor analytics.totals on shop.things.v1[0]@0: apply raised KeyError 'warehouse': "
        "'warehouse' is not one of the fields apply is given of shop.things, its `reads` "
        "(name); if it is a field of shop.things, add it there"
        + _at('state["where"] = event.fields["warehouse"]')
    )


def test_the_input_is_cut_into_kills_plus_one_slices() -> None:
    assert [len(s) for s in _slices(list(range(10)), 3)] == [4, 3, 3]
    assert [n for part in _slices(list(range(23)), 11) for n in part] == list(range(23))
    assert [len(s) for s in _slices(list(range(23)), 11)] == [3] + [2] * 10  # 11, not 8
    assert _slices(list(range(2)), 5) == [[0], [1]]
    assert _slices([], 3) == [[]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workers": 3}, "--workers must be 1 or 2, got 3"),
        ({"kills": -1}, "--kills must be 0 to 100, got -1"),
        ({"kills": 10**20}, "--kills must be 0 to 100, got 100000000000000000000"),
        ({"from_live": 0}, "--from-live must be 1 to 1000000, got 0"),
        ({"records": 1_000_001}, "--records must be 1 to 1000000, got 1000001"),
        (
            {"records": 20, "kills": 100},
            "--kills 100 needs more records than kills: each kill follows a slice of the input "
            "(--kills + 1 slices), and --records is 20; give --records 101 or more, or fewer "
            "--kills",
        ),
        ({"from_live": 3, "kills": 3}, "and --from-live is 3; give --from-live 4 or more"),
    ],
)
def test_options_out_of_range_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
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


@pytest.mark.parametrize(
    ("kept", "said"),
    [
        (Decimal("1.50"), "Type is not JSON serializable: decimal.Decimal"),
        ({"a"}, "Type is not JSON serializable: set"),
        (float("nan"), "Out of range float values are not JSON compliant"),
        ({1: 2}, "Dict key must be str"),
    ],
)
def test_a_state_the_engine_could_not_store_fails_the_recomputation(kept: Any, said: str) -> None:
    """The engine stops a worker whose state is no JSON; the recomputation (and so mesh
    verify's check before any worker starts) does too, naming the record and the key."""

    def keep(state: dict[str, Any], event: Event) -> None:
        state["kept"] = kept

    with pytest.raises(ProcessorError) as failed:
        expected_records(lambda: processor(keep), INPUTS, SCHEMA, pause_s=0)
    assert str(failed.value).startswith(
        "processor analytics.totals on shop.things.v1[0]@0: apply raised TypeError the state "
        "of key 'k' cannot be stored: "
    )
    assert said in str(failed.value)


def test_a_key_that_hangs_on_a_duplicate_past_the_horizon_may_end_either_way() -> None:
    """h37/h38: a worker keeps dedup ids at least the horizon and forgets them later, so a
    copy past it may be dropped there while the recomputation counts it: the result with
    the copy dropped is allowed too, and nothing else."""
    expected = {"d1": record("d1", 3), "d2": record("d2", 2)}
    why = "event_id 'E1' arrived again 70,000 ms after its first copy, ..."
    allowed = {"d1": (why, record("d1", 2))}
    dropped = compare(expected, {"d1": record("d1", 2), "d2": record("d2", 2)}, allowed)
    assert dropped.equal
    assert dropped.not_judged == {"d1": why}
    assert render(dropped) == [
        f"key d1: differs, allowed: {why}",
        "2 keys expected, 2 in the output: every other key's final record equals the "
        "recomputation (1 other key(s) allowed: a duplicate that arrived past the dedup "
        "horizon, which a worker may count or drop)",
    ]
    # any other difference on that key is still a failure (an apply bug on a busy key)
    wrong = compare(expected, {"d1": record("d1", 7), "d2": record("d2", 2)}, allowed)
    assert [d.key for d in wrong.differing] == ["d1"]
    assert compare(expected, expected, allowed).not_judged == {}


def test_expected_records_allow_the_result_with_late_copies_dropped(tmp_path: Path) -> None:
    """The other result comes from the processor's own functions with ids never forgotten."""

    def key(fields: Mapping[str, Any]) -> str:
        return str(fields["key"])

    def count(state: dict[str, Any], _event: Event) -> None:
        state["count"] = state.get("count", 0) + 1

    def emit(state_key: Any, state: Mapping[str, Any]) -> dict[str, Any]:
        return record(str(state_key), state["count"])

    from mesh_stream.processing.spec import Dedup

    processor = Processor(
        "analytics.t",
        (Input("orders.order-placed", key=key, reads=("key", "event_id")),),
        count,
        emit,
        dedup=Dedup("event_id", horizon_ms=60_000),
    )
    inputs = [
        InputRecord("orders.order-placed", {"key": "d1", "event_id": "E1"}, 0, "t[0]@0"),
        InputRecord("orders.order-placed", {"key": "d1", "event_id": "E1"}, 70_000, "t[0]@1"),
        InputRecord("orders.order-placed", {"key": "d2", "event_id": "E2"}, 0, "t[1]@0"),
    ]
    recomputed = expected_records(lambda: processor, inputs, SCHEMA, pause_s=0)
    assert recomputed.expected["d1"]["count"] == 2
    [(why, other)] = recomputed.allowed.values()
    assert list(recomputed.allowed) == ["d1"]
    assert other["count"] == 1
    assert why.startswith("event_id 'E1' arrived again 70,000 ms after its first copy (t[0]@1)")
    # two late copies on one key: a worker may keep one id and forget the other (h40), so
    # any result of that key is allowed, and said so
    later = InputRecord("orders.order-placed", {"key": "d1", "event_id": "E1"}, 140_000, "t[0]@2")
    twice = expected_records(lambda: processor, [*inputs, later], SCHEMA, pause_s=0)
    [(why, other)] = twice.allowed.values()
    assert other is None
    assert why.endswith("(and 1 more such copies: not judged)")
    mixed = {**twice.expected, "d1": record("d1", 2)}  # one copy counted, one dropped
    assert compare(twice.expected, mixed, twice.allowed).equal


def test_a_work_dir_holding_an_earlier_run_is_erased_first_and_one_that_cannot_be_is_named(
    tmp_path: Path,
) -> None:
    """A second run into the same --work-dir started its sandbox from the first run's Kafka
    and worker state, so its outputs mixed both runs' inputs (a campaign, h49): what a run
    keeps there is erased first, with a line saying so; anything else is left alone."""
    work = tmp_path / "verify"
    (work / "sandbox" / "broker").mkdir(parents=True)
    (work / "sandbox" / "broker" / "meta.properties").write_text("cluster.id=old\n")
    (work / "logs").mkdir()
    (work / "logs" / "worker-1.log").write_text("old\n")
    (work / "notes.txt").write_text("mine\n")
    said: list[str] = []
    _prepare_work_dir(work, said.append)
    assert said == [
        f"--work-dir {work} held an earlier run (sandbox/, logs/): erased, this run starts anew"
    ]
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == [
        "logs",
        "notes.txt",
        "sandbox",
    ]
    said.clear()
    _prepare_work_dir(tmp_path / "new", said.append)  # nothing earlier: nothing said
    assert said == []
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "logs").write_text("a file where the run's folder goes\n")
    with pytest.raises(
        ConfigurationError,
        match=r"^--work-dir .*blocked cannot be used: .*; pick a writable folder",
    ):
        _prepare_work_dir(blocked, said.append)
