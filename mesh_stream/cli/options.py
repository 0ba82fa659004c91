"""Option types the commands share."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from mesh_stream.descriptor import (
    MAX_PRODUCT_NAME,
    PRODUCT_NAME,
    product_name_problem,
    topic_name_hint,
)
from mesh_stream.project import MeshProject, find_project, load_project, locate_project
from mesh_stream.settings import (
    KAFKA_MAX_NAME_LENGTH,
    MeshSettings,
    bootstrap_servers_problem,
    client_name_problem,
    kafka_topic_problem,
    quoted_name,
    registry_url_problem,
    shown_url,
)

_R = TypeVar("_R")


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


class WholeNumberRange(click.IntRange):
    """``click.IntRange`` whose refusal of text that is no number says "is not a valid
    integer", where click says "is not a valid integer range" (h50)."""

    name = "integer"


#: What leaving out ``--data-dir`` means, for :class:`NonEmptyPath`'s message.
DATA_DIR_DEFAULT = "use MESH_DATA_DIR (default ~/.local/share/mesh-stream)"


class NonEmptyPath(click.Path):
    """``click.Path`` that refuses an empty value (an unset shell variable, say) instead of
    taking it as the current folder; ``hint`` says what leaving the option out means."""

    def __init__(self, *, hint: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"is empty; give a path, or leave the option out to {self.hint}", param, ctx)
        return super().convert(value, param, ctx)


def _checked(
    value: str | None, param: click.Parameter, problem: str | None, rule: str
) -> str | None:
    if problem is not None:
        raise click.BadParameter(f"{quoted_name(value or '')} {problem} ({rule})", param=param)
    return value


def checked_product_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Refuse what cannot be a product name before asking the registry about it."""
    if len(value) > MAX_PRODUCT_NAME:
        raise click.BadParameter(f"product name {product_name_problem(value)}")
    if not PRODUCT_NAME.match(value):
        raise click.BadParameter(
            f"{value!r} is not a product name `<domain>.<product>` (lowercase, e.g. "
            f"orders.order-placed){topic_name_hint(value)}; `mesh products list` shows "
            f"the registered ones"
        )
    return value


def checked_product_names(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """:func:`checked_product_name` for each of several names."""
    return tuple(checked_product_name(ctx, param, value) for value in values)


def checked_kafka_id(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A callback for a consumer group id or ``transactional.id`` option: refused before
    anything connects (a NUL in one aborts the process inside librdkafka)."""
    problem = None if value is None else client_name_problem(value)
    rule = f"non-empty printable text, at most {KAFKA_MAX_NAME_LENGTH} characters"
    return _checked(value, param, problem, rule)


def checked_registry_url(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """A callback for ``--registry-url``: an empty value (an unset shell variable, say) is
    refused instead of quietly meaning MESH_REGISTRY_URL or the default, and any other by the
    registry URL's rule (:func:`~mesh_stream.settings.registry_url_problem`) before anything
    runs, so ``ftp://x`` is named even by a command that would not ask the registry."""
    if value is not None and not value.strip():
        raise click.BadParameter(
            "is empty; give the registry's URL, or leave the option out to use "
            "MESH_REGISTRY_URL (default http://127.0.0.1:8081)",
            param=param,
        )
    if value is not None and (problem := registry_url_problem(value)) is not None:
        raise click.BadParameter(
            f"{shown_url(value)!r} {problem} (e.g. http://127.0.0.1:8081)", param=param
        )
    return value


def checked_bootstrap_servers(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    """A callback for ``--bootstrap-servers``: an empty value (an unset shell variable, say)
    is refused, as ``--registry-url ''`` is, instead of quietly meaning the local broker
    (and ignoring MESH_BOOTSTRAP_SERVERS); a malformed list is refused before anything
    connects."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter(
            "is empty; give host:port[,host:port...], or leave the option out to use "
            "MESH_BOOTSTRAP_SERVERS (default: the local broker, 127.0.0.1:9092)",
            param=param,
        )
    problem = bootstrap_servers_problem(value)
    if problem is not None:
        raise click.BadParameter(
            f"{quoted_name(value)} {problem} (host:port[,host:port...], e.g. 127.0.0.1:9092)",
            param=param,
        )
    return value


def checked_topic(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A callback for a Kafka topic name given on the command line."""
    problem = None if value is None else kafka_topic_problem(value)
    rule = f"letters, digits, '.', '_' and '-', at most {KAFKA_MAX_NAME_LENGTH} characters"
    return _checked(value, param, problem, rule)


@dataclass(frozen=True)
class ProjectChoice:
    """What the command line said about the project: ``--project`` or the old ``--root``.

    ``--root`` (hidden, kept so scripts keep working) also accepts a folder without
    ``mesh.yaml``: it is read with mesh.yaml's defaults (descriptors under ``domains/``).
    """

    project: Path | None = None
    legacy_root: Path | None = None

    def find(self, settings: MeshSettings) -> MeshProject:
        """The project, or :class:`ProjectNotFoundError` (for commands that need one)."""
        if self.project is None and self.legacy_root is not None:
            return load_project(self.legacy_root, defaults_without_file=True)
        return find_project(self.project, settings)

    def locate(self, settings: MeshSettings) -> MeshProject | None:
        """The project, or None when no ``mesh.yaml`` is around and none was named (commands
        such as `mesh tail` then find products in the registry only)."""
        if self.project is None and self.legacy_root is None:
            return locate_project(None, settings)
        return self.find(settings)


def project_option(command: Callable[..., _R]) -> Callable[..., _R]:
    """Add ``--project DIR`` (and the hidden ``--root`` alias); the command gets
    ``project: ProjectChoice``."""

    @functools.wraps(command)
    def with_project(*args: Any, **kwargs: Any) -> _R:
        kwargs["project"] = ProjectChoice(kwargs.pop("project"), kwargs.pop("legacy_root"))
        return command(*args, **kwargs)

    with_root = click.option(
        "--root",
        "legacy_root",
        hidden=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Old name of --project; a folder without mesh.yaml is read with its defaults.",
    )(with_project)
    return click.option(
        "--project",
        "project",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Project folder, the one holding mesh.yaml. [env: MESH_PROJECT_ROOT; default: the "
        "nearest folder upwards holding mesh.yaml]",
    )(with_root)


def checked_host(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A callback for a listen address (``--host``, ``--metrics-host``): a host name or IP
    address, refused before anything starts (an empty one said "unknown host", h51)."""
    printable = all(c.isascii() and c.isprintable() and not c.isspace() for c in value)
    if not value or len(value) > 253 or not printable or any(c in "/@?#" for c in value):
        raise click.BadParameter(
            f"{quoted_name(value)} is not a host name or IP address (e.g. 0.0.0.0 or 127.0.0.1)",
            param=param,
        )
    return value
