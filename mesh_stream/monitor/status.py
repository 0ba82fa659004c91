"""From measured figures to a product's health: each figure judged against its SLO, the
product's status the worst of them, upstream breaches, since when, and alert transitions.

Pure functions over :class:`~mesh_stream.monitor.measure.Reading` values: nothing here
talks to Kafka, so every rule is tested on plain numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence

from mesh_stream.descriptor import DataProduct, ProductKind
from mesh_stream.health import Alert, Figure, FigureName, ProductHealth, Status, judge, worst
from mesh_stream.monitor.measure import GroupLag, Reading

#: Figures judged against an upper bound of the descriptor's SLOs (the rest: a lower bound).
_LOWER_BOUND = frozenset({FigureName.RECORDS_PER_MINUTE})
#: Figures whose reason is a whole sentence naming what it is about: not prefixed by the name.
_SAID_IN_FULL = frozenset({FigureName.PROCESSOR_STOPPED})
OK_REASON = "every figure within its SLO"
#: What a crashed processor's output says after the crash line.
NOT_GONE_PAST = "(its worker has not gone past that record)"


def figure(
    name: FigureName,
    value: float | None,
    slo: float | None,
    said: str,
    *,
    subject: str | None = None,
    judged: bool = True,
) -> Figure:
    """A figure with its verdict (:func:`mesh_stream.health.judge`) and a reason saying it."""
    status = judge(value, slo if judged else None, at_most=name not in _LOWER_BOUND)
    bound = ">=" if name in _LOWER_BOUND else "<="
    if value is not None and judged and slo is not None:
        said = f"{said} (SLO {bound} {slo:g})"
    return Figure(
        name=name,
        value=value,
        slo=slo if judged else None,
        status=status,
        reason=said,
        subject=subject,
    )


def _age(now_ms: int, stamp: int | None) -> float | None:
    return None if stamp is None else max(0.0, (now_ms - stamp) / 1000)


def assess(
    product: DataProduct,
    reading: Reading,
    *,
    inputs_newest_ms: int | None = None,
    history: Sequence[float] = (),
) -> tuple[Figure, ...]:
    """Every figure of ``product`` from its ``reading``, judged against its SLOs.

    ``inputs_newest_ms`` is the newest record time over the product's inputs (derived
    products: end-to-end latency); ``history`` its recent records-per-minute figures (the
    volume's reason compares with their median).
    """
    slos = product.slos
    now = reading.measured_at_ms
    topic = reading.topic
    if not topic.exists:
        return (
            figure(
                FigureName.FRESHNESS_SECONDS,
                None,
                slos.freshness_seconds,
                f"topic {topic.topic} does not exist (or the monitor's Kafka user may not "
                f"describe it: `mesh acl plan` lists what the monitor's user needs)",
            ),
        )
    if topic.end_offsets == 0:
        never = figure(
            FigureName.FRESHNESS_SECONDS,
            None,
            slos.freshness_seconds,
            f"no record ever written to {topic.topic}",
        )
        dead = reading.dlq.records_last_minute
        if not dead:
            return (never,)
        # every record written went to the dead-letter topic: the one thing worth seeing
        return (
            never,
            _dlq_count(dead, reading.dlq.topic),
            figure(  # 1: every record a producer sent was dead-lettered, none written
                FigureName.DLQ_RATIO,
                1.0,
                slos.max_dlq_ratio,
                f"{dead} dead letters in the last minute and no record ever written to "
                f"{topic.topic}: every record was dead-lettered",
            ),
        )
    newest = topic.newest
    age = _age(now, newest)
    figures = [
        figure(
            FigureName.FRESHNESS_SECONDS,
            age,
            slos.freshness_seconds,
            f"no record left on {topic.topic} (retention removed them)"
            if age is None
            else f"newest record {age:.1f} s old",
        )
    ]
    for partition, stamp in sorted(topic.newest_ms.items()):
        part_age = _age(now, stamp)
        figures.append(
            figure(
                FigureName.FRESHNESS_SECONDS,
                part_age,
                None,
                "no record" if part_age is None else f"newest record {part_age:.1f} s old",
                subject=f"partition {partition}",
                judged=False,  # a keyed product may leave a partition idle
            )
        )
    records = float(topic.records_last_minute)
    volume = f"{topic.records_last_minute} records in the last minute"
    if history:
        volume += f", recent median {statistics.median(history):g} over {len(history)}"
    figures.append(
        figure(FigureName.RECORDS_PER_MINUTE, records, slos.min_records_per_minute, volume)
    )
    dead = reading.dlq.records_last_minute
    figures.append(_dlq_count(dead, reading.dlq.topic))
    figures.append(dlq_ratio(dead, topic.records_last_minute, slos.max_dlq_ratio))
    for lag in reading.lags:
        figures.extend(_lag_figures(lag, topic.topic, slos.max_lag_seconds))
    if product.kind != ProductKind.SOURCE_ALIGNED and product.inputs:
        figures.append(
            end_to_end(
                newest, inputs_newest_ms, slos.freshness_seconds, own_ms=topic.newest_latency_ms
            )
        )
    return tuple(figures)


def _dlq_count(dead: int, dlq_topic: str) -> Figure:
    return figure(
        FigureName.DLQ_RECORDS_PER_MINUTE,
        float(dead),
        None,
        f"{dead} dead letters in the last minute on {dlq_topic}",
        judged=False,
    )


def _lag_figures(lag: GroupLag, topic: str, slo: float | None) -> tuple[Figure, Figure]:
    """A consumer group's lag in records (not judged) and in seconds (``max_lag_seconds``)."""
    if lag.records is None:
        said = f"group {lag.group} has committed no offset on {topic}"
        age = said
    else:
        said = f"{lag.records} records behind"
        if lag.uncommitted:
            said += f" ({lag.uncommitted} partitions without a committed offset left out)"
        age = (
            "oldest unconsumed record could not be read"
            if lag.seconds is None
            else f"oldest unconsumed record {lag.seconds:.1f} s old"
        )
    records = None if lag.records is None else float(lag.records)
    return (
        figure(FigureName.LAG_RECORDS, records, None, said, subject=lag.group, judged=False),
        figure(FigureName.LAG_SECONDS, lag.seconds, slo, age, subject=lag.group),
    )


def dlq_ratio(dead: int, records: int, slo: float | None) -> Figure:
    """Dead letters per record of the minute; 0 without either, unknown when dead letters
    came in a minute without records (a reader catching up on older ones)."""
    if records == 0:
        if dead == 0:
            return figure(FigureName.DLQ_RATIO, 0.0, slo, "no record and no dead letter")
        return figure(
            FigureName.DLQ_RATIO,
            None,
            slo,
            f"{dead} dead letters but no record in the last minute (a reader catching up)",
        )
    ratio = dead / records
    return figure(FigureName.DLQ_RATIO, ratio, slo, f"{dead} dead letters / {records} records")


def end_to_end(
    newest_ms: int | None, inputs_newest_ms: int | None, slo: float, *, own_ms: int | None = None
) -> Figure:
    """A derived product's end-to-end latency, judged against ``slos.freshness_seconds``.

    ``own_ms`` is the newest output's own latency (its timestamp minus the newest input record
    it reflects, from the ``mesh.input.newest-ms`` header processors set): how long the
    pipeline took. The inputs' newest record being ahead of the output's newest (a processor
    stopped or behind) counts too: the figure is the larger of the two.
    """
    behind = (
        None
        if newest_ms is None or inputs_newest_ms is None
        else max(0.0, (inputs_newest_ms - newest_ms) / 1000)
    )
    own = None if own_ms is None else own_ms / 1000
    if behind is None and own is None:
        missing = "the product" if newest_ms is None else "its inputs"
        return figure(FigureName.END_TO_END_SECONDS, None, slo, f"no record on {missing} yet")
    if own is not None and (behind is None or own >= behind):
        reason = f"newest record {own:.1f} s after the newest input record it reflects"
        return figure(FigureName.END_TO_END_SECONDS, own, slo, reason)
    assert behind is not None
    return figure(
        FigureName.END_TO_END_SECONDS,
        behind,
        slo,
        f"newest record {behind:.1f} s behind the newest input record",
    )


def processor_stopped(crash_line: str | None, previous: ProductHealth | None) -> Figure | None:
    """The ``processor_stopped`` figure of a processor's output: ``breached`` (value 1), its
    reason the line the processor crashed with, while the worker has not gone past that
    record; ``ok`` (value 0) in the first round after one that was breached, which raises
    the recovery alert; otherwise None. (Always present, an ``ok`` figure would make an
    output with nothing else measured ``ok`` rather than ``no data``.)"""
    if crash_line is not None:
        return Figure(
            name=FigureName.PROCESSOR_STOPPED,
            value=1.0,
            status=Status.BREACHED,
            reason=f"{crash_line} {NOT_GONE_PAST}",
        )
    was = previous.figures if previous is not None else ()
    if any(f.name == FigureName.PROCESSOR_STOPPED and f.status == Status.BREACHED for f in was):
        return Figure(
            name=FigureName.PROCESSOR_STOPPED,
            value=0.0,
            status=Status.OK,
            reason="its processor has published past the record it crashed on",
        )
    return None


def health(
    product: str,
    figures: Sequence[Figure],
    *,
    measured_at_ms: int,
    previous: ProductHealth | None = None,
    upstream_breached: Sequence[str] = (),
    monitor: str = "",
    interval_ms: int | None = None,
) -> ProductHealth:
    """The product's health: the worst figure (a product without any judged record is ``no
    data``), at least ``degraded`` while an input is breached, since when. The reason is the
    first worst figure's (a processor's crash line first: :func:`processor_stopped`)."""
    status = worst([f.status for f in figures])
    culprit = next((f for f in figures if f.status == status), None)
    if status == Status.OK:
        reason = OK_REASON
    else:
        reason = culprit.reason if culprit is not None else "nothing measured"
        if culprit is not None and culprit.name not in _SAID_IN_FULL:
            about = f" of {culprit.subject}" if culprit.subject else ""
            reason = f"{culprit.name}{about}: {reason}"
    if upstream_breached:
        upstream = f"upstream breached: {', '.join(upstream_breached)}"
        if status in (Status.OK, Status.NO_DATA):
            status, reason = Status.DEGRADED, upstream
        else:
            reason = f"{reason}; {upstream}"
    since = measured_at_ms
    if previous is not None and previous.status == status:
        since = min(previous.since_ms, measured_at_ms)
    return ProductHealth(
        product=product,
        measured_at_ms=measured_at_ms,
        status=status,
        reason=reason,
        since_ms=since,
        figures=tuple(figures),
        upstream_breached=tuple(upstream_breached),
        monitor=monitor,
        interval_ms=interval_ms,
    )


def ancestors(name: str, inputs: Mapping[str, Iterable[str]]) -> list[str]:
    """Every product ``name`` is built from, transitively (lineage), nearest first."""
    seen: list[str] = []
    queue = list(inputs.get(name, ()))
    while queue:
        current = queue.pop(0)
        if current in seen or current == name:
            continue
        seen.append(current)
        queue.extend(inputs.get(current, ()))
    return seen


def breached_upstream(
    name: str, inputs: Mapping[str, Iterable[str]], statuses: Mapping[str, Status]
) -> list[str]:
    """The inputs of ``name`` (transitively) whose own status is ``breached``, sorted."""
    return sorted(p for p in ancestors(name, inputs) if statuses.get(p) == Status.BREACHED)


def transitions(previous: ProductHealth | None, current: ProductHealth) -> list[Alert]:
    """The alerts ``current`` raises after ``previous``: a figure that became ``breached``
    (breach) and one that went from ``breached`` back to ``ok``/``degraded`` (recovery).

    A figure that can no longer be measured (``no data``) raises nothing: that is not a
    recovery.
    """
    before = {
        (f.name, f.subject): f.status for f in (previous.figures if previous is not None else ())
    }
    alerts: list[Alert] = []
    for item in current.figures:
        was = before.get((item.name, item.subject))
        if item.status == Status.BREACHED and was != Status.BREACHED:
            kind = "breach"
        elif was == Status.BREACHED and item.status in (Status.OK, Status.DEGRADED):
            kind = "recovery"
        else:
            continue
        alerts.append(
            Alert(
                kind=kind,
                product=current.product,
                figure=item.name,
                subject=item.subject,
                slo=item.slo,
                value=item.value,
                status=item.status,
                since_ms=current.measured_at_ms,
                reason=item.reason,
            )
        )
    return alerts
