"""Product health: what the product monitor measures, how a figure is judged, what it publishes.

One home for the shapes every part shares: the monitor (:mod:`mesh_stream.monitor`) writes
:class:`ProductHealth` records to the compacted health topic and :class:`Alert` records to the
alerts topic; the registry serves them (``GET /products/{name}/health``); the CLI and the
live view show them. Nothing here talks to Kafka or HTTP.

A status is the worst of the product's figures:

* ``ok`` -- every judged figure within its SLO;
* ``degraded`` -- a figure within its SLO but past :data:`DEGRADED_AT` of it (a warning), or
  an upstream product is breached (the product itself may be fine, its inputs are not);
* ``breached`` -- a figure past its SLO;
* ``no data`` -- nothing to judge yet (no record ever written, or no SLO figure measurable).

Health records are keyed ``<product>@<minute start, epoch ms>``: several monitor instances
measuring the same minute write the same key, and compaction keeps one; the topic's
retention (``HEALTH_RETENTION_MS``) bounds the history.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALERT_RETENTION_MS",
    "DEGRADED_AT",
    "HEALTH_RETENTION_MS",
    "NEWEST_INPUT_HEADER",
    "NOT_MEASURED",
    "Alert",
    "Figure",
    "FigureName",
    "ProductHealth",
    "Status",
    "health_key",
    "judge",
    "worst",
]

#: Header of a processor's output record: the timestamp (epoch ms, ASCII digits) of the newest
#: input record the output reflects. The monitor's end-to-end figure is an output's own
#: timestamp minus this one.
NEWEST_INPUT_HEADER = "mesh.input.newest-ms"
#: The reason the registry gives for a product no monitor has measured (no times to show).
NOT_MEASURED = "not measured yet"
#: A figure past this share of its SLO bound (and not past the bound) is ``degraded``.
DEGRADED_AT = 0.8
#: How long measurements stay in the health topic (compact + delete): 7 days.
HEALTH_RETENTION_MS = 7 * 24 * 3_600_000
#: How long alerts stay in the alerts topic: 30 days.
ALERT_RETENTION_MS = 30 * 24 * 3_600_000


class Status(StrEnum):
    """A product's (or a figure's) health, best first."""

    OK = "ok"
    DEGRADED = "degraded"
    BREACHED = "breached"
    NO_DATA = "no data"


#: Severity order used by :func:`worst` (``no data`` says nothing, so it ranks lowest).
_SEVERITY = {Status.NO_DATA: 0, Status.OK: 1, Status.DEGRADED: 2, Status.BREACHED: 3}


class FigureName(StrEnum):
    """What the monitor measures, and the descriptor SLO (``slos.<name>``) each is judged by."""

    FRESHNESS_SECONDS = "freshness_seconds"  # now - newest record timestamp; slos.freshness_seconds
    RECORDS_PER_MINUTE = "records_per_minute"  # slos.min_records_per_minute
    DLQ_RECORDS_PER_MINUTE = "dlq_records_per_minute"  # not judged alone
    DLQ_RATIO = "dlq_ratio"  # dead letters / records read; slos.max_dlq_ratio
    LAG_RECORDS = "lag_records"  # per group; not judged alone
    LAG_SECONDS = "lag_seconds"  # per group; slos.max_lag_seconds
    END_TO_END_SECONDS = "end_to_end_seconds"  # derived products; slos.freshness_seconds
    PROCESSOR_STOPPED = "processor_stopped"  # 1: its processor crashed on a record; no SLO


class Figure(BaseModel):
    """One measured figure, its SLO bound when it has one, and its verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A name this release does not know (a newer monitor's figure) is kept as text, so a
    #: registry reads the records of a monitor upgraded before it.
    name: FigureName | str = Field(union_mode="left_to_right")
    value: float | None = Field(description="The measurement; None when it could not be made.")
    slo: float | None = Field(default=None, description="The bound it is judged against.")
    status: Status = Status.NO_DATA
    reason: str = Field(default="", description="Why this status, in words.")
    subject: str | None = Field(
        default=None,
        description="What the figure is about beyond the product: `partition 2`, a consumer "
        "group, an input product; None for the product as a whole.",
    )


class ProductHealth(BaseModel):
    """One product's measurement of one minute, as written to the health topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str
    measured_at_ms: int = Field(description="When the monitor measured (epoch ms).")
    status: Status
    reason: str = Field(description="The worst figure's reason, or why there is no data.")
    since_ms: int = Field(description="Since when the product has had this status (epoch ms).")
    figures: tuple[Figure, ...] = ()
    upstream_breached: tuple[str, ...] = Field(
        default=(), description="Input products (transitively) whose status is `breached`."
    )
    monitor: str = Field(default="", description="The monitor instance that measured.")
    interval_ms: int | None = Field(
        default=None,
        ge=1,
        le=604_800_000,  # the monitor's own limit (a week): no record stays fresh for longer
        description="The measuring monitor's interval (ms): the registry serves a record "
        "older than 3 of them (at least 5 minutes) as `no data`.",
    )


class Alert(BaseModel):
    """A breach or a recovery of one figure, as published to the alerts topic and webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["breach", "recovery"]
    product: str
    figure: FigureName | str = Field(union_mode="left_to_right")  # see Figure.name
    subject: str | None = None
    slo: float | None
    value: float | None
    status: Status
    since_ms: int = Field(description="When the breach began (for a recovery: when it ended).")
    reason: str


def health_key(product: str, measured_at_ms: int, interval_ms: int = 60_000) -> str:
    """The health topic key of ``product``'s measurement in the interval holding the instant."""
    return f"{product}@{measured_at_ms - measured_at_ms % interval_ms}"


def judge(value: float | None, slo: float | None, *, at_most: bool = True) -> Status:
    """The status of ``value`` against ``slo`` (an upper bound, or a lower one with
    ``at_most=False``); ``no data`` without a value, ``ok`` without an SLO."""
    if value is None:
        return Status.NO_DATA
    if slo is None:
        return Status.OK
    if at_most:
        if value > slo:
            return Status.BREACHED
        return Status.DEGRADED if slo > 0 and value > slo * DEGRADED_AT else Status.OK
    if value < slo:
        return Status.BREACHED
    return Status.DEGRADED if value < slo / DEGRADED_AT else Status.OK


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe of ``statuses`` (``no data`` when empty)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.NO_DATA)
