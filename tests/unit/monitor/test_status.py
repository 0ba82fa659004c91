"""Judging measured figures: each figure against its SLO, the product's status and reason,
no data, upstream breaches (transitively), since when, and alert transitions."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_stream.descriptor import DataProduct
from mesh_stream.health import Figure, FigureName, ProductHealth, Status
from mesh_stream.monitor.measure import GroupLag, Reading, Target, TopicReading
from mesh_stream.monitor.service import judge_round, targets_of
from mesh_stream.monitor.status import (
    OK_REASON,
    ancestors,
    assess,
    breached_upstream,
    dlq_ratio,
    end_to_end,
    health,
    transitions,
)
from mesh_stream.processing.names import (
    crash_note,
    crash_of,
    processor_app_id,
    processor_of_group,
    sources_group,
)

NOW = 1_800_000_000_000


def product(name: str = "orders.order-placed", **changes: Any) -> DataProduct:
    document: dict[str, Any] = {
        "name": name,
        "domain": name.split(".", maxsplit=1)[0],
        "kind": "source-aligned",
        "description": "A test product.",
        "owner": {"team": "t", "contact": "t@example.com"},
        "schema": "schemas/x.avsc",
        "slos": {
            "freshness_seconds": 60.0,
            "availability": 99.0,
            "max_dlq_ratio": 0.1,
            "max_lag_seconds": 30.0,
            "min_records_per_minute": 10.0,
        },
        "classification": "internal",
    }
    document.update(changes)
    return DataProduct.model_validate(document)


def reading(
    target: DataProduct,
    *,
    ages: dict[int, float | None] | None = None,
    records: int = 100,
    dead: int = 0,
    lags: tuple[GroupLag, ...] = (),
    end_offsets: int = 1000,
    exists: bool = True,
) -> Reading:
    ages = {0: 5.0, 1: 20.0} if ages is None else ages
    newest = {p: None if age is None else int(NOW - age * 1000) for p, age in ages.items()}
    return Reading(
        target.name,
        NOW,
        TopicReading(target.topic, exists, newest, records, end_offsets),
        TopicReading(target.dlq_topic, dead > 0, {}, dead, dead),
        lags,
    )


def by(
    figures: tuple[Figure, ...] | list[Figure], name: FigureName, subject: str | None = None
) -> Figure:
    [found] = [f for f in figures if f.name == name and f.subject == subject]
    return found


def test_a_healthy_product_has_every_figure_ok_with_its_slo() -> None:
    source = product()
    lag = GroupLag("billing", records=12, seconds=4.0)
    figures = assess(source, reading(source, dead=3, lags=(lag,)), history=[90.0, 110.0, 100.0])
    freshness = by(figures, FigureName.FRESHNESS_SECONDS)
    assert (freshness.value, freshness.slo, freshness.status) == (5.0, 60.0, Status.OK)
    assert freshness.reason == "newest record 5.0 s old (SLO <= 60)"
    assert by(figures, FigureName.FRESHNESS_SECONDS, "partition 1").value == 20.0
    assert by(figures, FigureName.FRESHNESS_SECONDS, "partition 1").slo is None
    volume = by(figures, FigureName.RECORDS_PER_MINUTE)
    assert (volume.value, volume.slo, volume.status) == (100.0, 10.0, Status.OK)
    assert volume.reason == "100 records in the last minute, recent median 100 over 3 (SLO >= 10)"
    assert by(figures, FigureName.DLQ_RECORDS_PER_MINUTE).value == 3.0
    ratio = by(figures, FigureName.DLQ_RATIO)
    assert (ratio.value, ratio.status) == (0.03, Status.OK)
    assert by(figures, FigureName.LAG_RECORDS, "billing").value == 12.0
    lag_seconds = by(figures, FigureName.LAG_SECONDS, "billing")
    assert (lag_seconds.value, lag_seconds.slo, lag_seconds.status) == (4.0, 30.0, Status.OK)
    assert not [f for f in figures if f.name == FigureName.END_TO_END_SECONDS]  # a source
    result = health(source.name, figures, measured_at_ms=NOW)
    assert (result.status, result.reason, result.since_ms) == (Status.OK, OK_REASON, NOW)


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        (
            {"ages": {0: 61.0}},
            Status.BREACHED,
            "freshness_seconds: newest record 61.0 s old (SLO <= 60)",
        ),
        (
            {"ages": {0: 50.0}},
            Status.DEGRADED,
            "freshness_seconds: newest record 50.0 s old (SLO <= 60)",
        ),
        (
            {"records": 9},
            Status.BREACHED,
            "records_per_minute: 9 records in the last minute (SLO >= 10)",
        ),
        (
            {"records": 12},
            Status.DEGRADED,
            "records_per_minute: 12 records in the last minute (SLO >= 10)",
        ),
        ({"dead": 11}, Status.BREACHED, "dlq_ratio: 11 dead letters / 100 records (SLO <= 0.1)"),
        (
            {"lags": (GroupLag("billing", 500, 31.5),)},
            Status.BREACHED,
            "lag_seconds of billing: oldest unconsumed record 31.5 s old (SLO <= 30)",
        ),
    ],
)
def test_the_worst_figure_decides_and_says_why(
    changes: dict[str, Any], status: Status, reason: str
) -> None:
    source = product()
    result = health(source.name, assess(source, reading(source, **changes)), measured_at_ms=NOW)
    assert (result.status, result.reason) == (status, reason)


def test_figures_without_an_slo_are_measured_but_not_judged() -> None:
    source = product(slos={"freshness_seconds": 60.0, "availability": 99.0})
    figures = assess(
        source, reading(source, records=0, dead=0, lags=(GroupLag("g", 10**6, 10**5),))
    )
    assert by(figures, FigureName.RECORDS_PER_MINUTE).status == Status.OK
    assert by(figures, FigureName.LAG_SECONDS, "g").slo is None
    assert health(source.name, figures, measured_at_ms=NOW).status == Status.OK


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        (
            {"exists": False},
            "topic orders.order-placed.v1 does not exist (or the monitor's Kafka user may "
            "not describe it: `mesh acl plan` lists what the monitor's user needs)",
        ),
        ({"end_offsets": 0, "ages": {0: None}}, "no record ever written to orders.order-placed.v1"),
    ],
)
def test_a_product_without_records_is_no_data_not_an_error(
    kwargs: dict[str, Any], reason: str
) -> None:
    source = product()
    result = health(source.name, assess(source, reading(source, **kwargs)), measured_at_ms=NOW)
    assert result.status == Status.NO_DATA
    assert result.reason == f"freshness_seconds: {reason}"


def test_a_product_whose_every_record_was_dead_lettered_shows_its_dead_letters() -> None:
    """An empty topic beside a DLQ taking records was "no record ever written" and nothing
    more: the dead letters, the one sign of what went wrong, were hidden (a campaign)."""
    source = product()
    figures = assess(source, reading(source, end_offsets=0, ages={0: None}, records=0, dead=5))
    assert [(f.name, f.value) for f in figures] == [
        (FigureName.FRESHNESS_SECONDS, None),
        (FigureName.DLQ_RECORDS_PER_MINUTE, 5.0),
        (FigureName.DLQ_RATIO, 1.0),  # every record: judged, so an alert goes out
    ]
    assert by(figures, FigureName.DLQ_RATIO).status == Status.BREACHED
    assert by(figures, FigureName.DLQ_RATIO).reason == (
        "5 dead letters in the last minute and no record ever written to "
        "orders.order-placed.v1: every record was dead-lettered (SLO <= 0.1)"
    )


def test_records_removed_by_retention_leave_freshness_unknown() -> None:
    source = product()
    figures = assess(source, reading(source, ages={0: None}, records=0))
    assert by(figures, FigureName.FRESHNESS_SECONDS).status == Status.NO_DATA
    assert by(figures, FigureName.RECORDS_PER_MINUTE).status == Status.BREACHED


def test_a_group_without_committed_offsets_is_no_data() -> None:
    source = product()
    figures = assess(source, reading(source, lags=(GroupLag("new", None, None, uncommitted=2),)))
    lag = by(figures, FigureName.LAG_SECONDS, "new")
    assert (lag.value, lag.status) == (None, Status.NO_DATA)
    assert lag.reason == "group new has committed no offset on orders.order-placed.v1"


def test_dlq_ratio_edges() -> None:
    assert dlq_ratio(0, 0, 0.1).value == 0.0
    unknown = dlq_ratio(4, 0, 0.1)
    assert (unknown.value, unknown.status) == (None, Status.NO_DATA)
    assert unknown.reason.startswith("4 dead letters but no record in the last minute")
    assert dlq_ratio(2, 10, 0.5).value == 0.2


def test_end_to_end_is_how_far_the_output_is_behind_its_inputs() -> None:
    assert end_to_end(NOW - 10_000, NOW - 2_500, 60.0).value == 7.5
    assert end_to_end(NOW, NOW - 5_000, 60.0).value == 0.0  # ahead of its inputs: 0
    assert end_to_end(NOW - 90_000, NOW, 60.0).status == Status.BREACHED
    assert end_to_end(None, NOW, 60.0).reason == "no record on the product yet"
    assert end_to_end(NOW, None, 60.0).status == Status.NO_DATA
    # a processor's output names the newest input it reflects: its own latency counts
    own = end_to_end(NOW, NOW - 5_000, 60.0, own_ms=1_250)
    assert (own.value, own.reason) == (
        1.25,
        "newest record 1.2 s after the newest input record it reflects (SLO <= 60)",
    )
    assert end_to_end(NOW - 10_000, NOW, 60.0, own_ms=1_250).value == 10.0  # stalled: larger
    assert end_to_end(NOW, None, 60.0, own_ms=400).value == 0.4


def test_a_derived_product_is_judged_against_its_inputs() -> None:
    derived = product("analytics.revenue", kind="aggregate", inputs=["orders.order-placed"])
    figures = assess(derived, reading(derived, ages={0: 30.0}), inputs_newest_ms=NOW - 1_000)
    assert by(figures, FigureName.END_TO_END_SECONDS).value == 29.0


def test_upstream_breached_makes_a_product_at_least_degraded() -> None:
    ok = [Figure(name=FigureName.FRESHNESS_SECONDS, value=1.0, slo=60.0, status=Status.OK)]
    result = health("b.x", ok, measured_at_ms=NOW, upstream_breached=["a.x"])
    assert (result.status, result.reason) == (Status.DEGRADED, "upstream breached: a.x")
    assert result.upstream_breached == ("a.x",)
    none = health("b.x", [], measured_at_ms=NOW, upstream_breached=["a.x"])
    assert none.status == Status.DEGRADED
    bad = [
        Figure(
            name=FigureName.FRESHNESS_SECONDS,
            value=99.0,
            slo=60.0,
            status=Status.BREACHED,
            reason="old",
        )
    ]
    own = health("b.x", bad, measured_at_ms=NOW, upstream_breached=["a.x"])
    assert (own.status, own.reason) == (
        Status.BREACHED,
        "freshness_seconds: old; upstream breached: a.x",
    )


def test_lineage_is_followed_transitively() -> None:
    inputs = {"c.x": ["b.x"], "b.x": ["a.x", "d.x"], "a.x": [], "d.x": ["a.x"]}
    assert ancestors("c.x", inputs) == ["b.x", "a.x", "d.x"]
    statuses = {"a.x": Status.BREACHED, "b.x": Status.DEGRADED, "d.x": Status.OK}
    assert breached_upstream("c.x", inputs, statuses) == ["a.x"]
    assert breached_upstream("a.x", inputs, statuses) == []


def test_since_is_carried_while_the_status_holds() -> None:
    ok = [Figure(name=FigureName.FRESHNESS_SECONDS, value=1.0, slo=60.0, status=Status.OK)]
    first = health("a.x", ok, measured_at_ms=NOW)
    later = health("a.x", ok, measured_at_ms=NOW + 60_000, previous=first)
    assert later.since_ms == NOW
    bad = [Figure(name=FigureName.FRESHNESS_SECONDS, value=99.0, slo=60.0, status=Status.BREACHED)]
    changed = health("a.x", bad, measured_at_ms=NOW + 120_000, previous=later)
    assert changed.since_ms == NOW + 120_000


def _health(status: Status, subject: str | None = None, at: int = NOW) -> ProductHealth:
    item = Figure(
        name=FigureName.LAG_SECONDS, value=1.0, slo=30.0, status=status, reason="r", subject=subject
    )
    return health("a.x", [item], measured_at_ms=at)


def test_alerts_on_breach_and_recovery_only() -> None:
    [breach] = transitions(_health(Status.OK), _health(Status.BREACHED, at=NOW + 1))
    assert (breach.kind, breach.figure, breach.status, breach.since_ms) == (
        "breach",
        FigureName.LAG_SECONDS,
        Status.BREACHED,
        NOW + 1,
    )
    assert transitions(None, _health(Status.BREACHED))[0].kind == "breach"  # first sight
    assert transitions(_health(Status.BREACHED), _health(Status.BREACHED)) == []  # no repeat
    [recovery] = transitions(_health(Status.BREACHED), _health(Status.DEGRADED))
    assert recovery.kind == "recovery"
    assert transitions(_health(Status.BREACHED), _health(Status.NO_DATA)) == []
    assert transitions(_health(Status.OK), _health(Status.DEGRADED)) == []
    # Figures are told apart by their subject (one group breaching is not another's).
    assert (
        transitions(_health(Status.BREACHED, "g1"), _health(Status.BREACHED, "g2"))[0].subject
        == "g2"
    )


def test_a_round_is_judged_sources_first_and_breaches_reach_downstream() -> None:
    source = product("orders.order-placed")
    middle = product("analytics.daily", kind="aggregate", inputs=[source.name])
    last = product("analytics.report", kind="consumer-aligned", inputs=[middle.name])
    targets = [Target(last), Target(middle), Target(source)]
    readings = {
        source.name: reading(source, ages={0: 120.0}),
        middle.name: reading(middle, ages={0: 1.0}),
        last.name: reading(last, ages={0: 1.0}),
    }
    healths = {h.product: h for h in judge_round(targets, readings, {}, lambda _name: [])}
    assert healths[source.name].status == Status.BREACHED
    assert healths[middle.name].upstream_breached == (source.name,)
    assert healths[last.name].upstream_breached == (source.name,)
    assert healths[last.name].status == Status.DEGRADED
    # The middle product is ahead of its breached input: end-to-end 0.
    assert by(list(healths[middle.name].figures), FigureName.END_TO_END_SECONDS).value == 0.0


def test_a_processor_s_noted_crash_breaches_its_output_with_the_crash_line() -> None:
    """The re-key group of a crashed processor notes its crash (time, line) in its committed
    offsets on the inputs: the *output*'s ``processor_stopped`` figure is breached, its reason
    the line (the product's too), while the output has no record newer than the crash, which
    raises a breach alert; the round after the worker went past it, an ok figure raises the
    recovery, and the round after that the figure is gone. The input is not concerned."""
    source = product("orders.order-placed")
    output = product("analytics.daily", kind="aggregate", inputs=[source.name])
    group = sources_group(processor_app_id(output.name))
    line = (
        "processor analytics.daily crashed on orders.order-placed.v1[0]@7: apply raised "
        "KeyError 'region' (field 'region')"
    )
    crashed_at = NOW - 30_000  # the output's newest record is 60 s old: before the crash
    older = (crashed_at - 600_000, "processor analytics.daily crashed on an older record")
    targets = [Target(output), Target(source, (group,))]

    def judged(
        *lags: GroupLag, output_age: float = 60.0, latest: dict[str, ProductHealth] | None = None
    ) -> dict[str, ProductHealth]:
        readings = {
            source.name: reading(source, ages={0: 1.0}, lags=lags),
            output.name: reading(output, ages={0: output_age}),
        }
        return {
            h.product: h for h in judge_round(targets, readings, latest or {}, lambda _name: [])
        }

    healths = judged(
        GroupLag(group, 0, 0.0, crash=older), GroupLag(group, 0, 0.0, crash=(crashed_at, line))
    )
    crashed = healths[output.name]
    assert crashed.status == Status.BREACHED
    assert crashed.reason == f"{line} (its worker has not gone past that record)"
    stopped = by(list(crashed.figures), FigureName.PROCESSOR_STOPPED)
    assert (stopped.value, stopped.status, stopped.reason) == (1.0, Status.BREACHED, crashed.reason)
    [alert] = transitions(None, crashed)
    assert (alert.kind, alert.figure, alert.reason) == ("breach", stopped.name, crashed.reason)
    assert healths[source.name].status == Status.OK
    assert FigureName.PROCESSOR_STOPPED not in {f.name for f in healths[source.name].figures}
    # still crashed the next round: no second alert
    again = judged(GroupLag(group, 0, 0.0, crash=(crashed_at, line)), latest=healths)
    assert transitions(crashed, again[output.name]) == []
    # a worker that went on has published since: the crash is over, and said so once
    healths = judged(
        GroupLag(group, 0, 0.0, crash=(crashed_at, line)), output_age=1.0, latest=healths
    )
    assert "crashed" not in healths[output.name].reason
    assert healths[output.name].status == Status.OK
    recovered = by(list(healths[output.name].figures), FigureName.PROCESSOR_STOPPED)
    assert (recovered.value, recovered.status) == (0.0, Status.OK)
    [alert] = transitions(crashed, healths[output.name])
    assert (alert.kind, alert.figure) == ("recovery", FigureName.PROCESSOR_STOPPED)
    later = judged(GroupLag(group, 0, 0.0), output_age=1.0, latest=healths)
    assert FigureName.PROCESSOR_STOPPED not in {f.name for f in later[output.name].figures}
    # another group's metadata says nothing of any product
    healths = judged(GroupLag("billing", 0, 0.0, crash=(crashed_at, line)))
    assert "crashed" not in healths[output.name].reason
    assert processor_of_group(group) == output.name
    assert processor_of_group("mesh--rekey") is None
    assert processor_of_group("billing") is None
    assert crash_of(crash_note(line, crashed_at)) == (crashed_at, line)
    assert crash_of("") is None
    assert crash_of("some other metadata") is None
    assert crash_of("mesh.crashed soon a line") is None
    assert len(crash_note("x" * 5_000, crashed_at)) < 1_100  # well under Kafka's 4,096 bytes


def test_targets_come_from_the_registry_listing_with_their_groups() -> None:
    source = product()
    document = source.to_document() | {
        "registry": {
            "topic": source.topic,
            "consumers": [{"group": "billing"}, {"group": "mesh-x-rekey"}],
        }
    }
    broken = {"name": "orders.broken", "kind": "nonsense"}
    [target] = targets_of([document, broken])
    assert target.product == source
    assert target.groups == ("billing", "mesh-x-rekey")
