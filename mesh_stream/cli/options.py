"""Option types the commands share."""

from __future__ import annotations

import math
from typing import Any

import click

from mesh_stream.settings import (
    KAFKA_MAX_NAME_LENGTH,
    client_name_problem,
    kafka_topic_problem,
    quoted_name,
)


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (and ``1e400``, which is inf).

    click's bounds compare false against nan, so a plain FloatRange lets it through: a
    ``--timeout nan`` would then never time out.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _checked(
    value: str | None, param: click.Parameter, problem: str | None, rule: str
) -> str | None:
    if problem is not None:
        raise click.BadParameter(f"{quoted_name(value or '')} {problem} ({rule})", param=param)
    return value


def checked_kafka_id(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A callback for a consumer group id or ``transactional.id`` option: refused before
    anything connects (a NUL in one aborts the process inside librdkafka)."""
    problem = None if value is None else client_name_problem(value)
    rule = f"non-empty printable text, at most {KAFKA_MAX_NAME_LENGTH} characters"
    return _checked(value, param, problem, rule)


def checked_topic(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A callback for a Kafka topic name given on the command line."""
    problem = None if value is None else kafka_topic_problem(value)
    rule = f"letters, digits, '.', '_' and '-', at most {KAFKA_MAX_NAME_LENGTH} characters"
    return _checked(value, param, problem, rule)
