"""`mesh up`: the click command; what it starts and in which order is in :mod:`mesh_stream.up`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from mesh_stream.broker.cluster import MAX_BROKERS, port_range_problem
from mesh_stream.cli.extras import require_extras
from mesh_stream.cli.options import (
    DATA_DIR_DEFAULT,
    FiniteFloatRange,
    NonEmptyPath,
    ProjectChoice,
    WholeNumberRange,
    project_option,
)
from mesh_stream.cli.signals import on_stop_signals
from mesh_stream.settings import MeshSettings
from mesh_stream.up import MeshUp, UpOptions


@click.command()
@click.option(
    "--rate",
    type=FiniteFloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Events per second of the whole simulated story (all source domains together; "
    "each simulator publishes its domain's share).",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seed of the simulated story, passed to the project's runnables(rate, seed=...). "
    "In the sample mesh the same seed gives the same customers, amounts and timing, and "
    "each start new ids, so a restart adds orders instead of sending the last run's again.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start over: erase the local broker's data (topics, registry state), the processors' "
    "state and the logs under MESH_DATA_DIR.",
)
@click.option(
    "--no-view",
    is_flag=True,
    help="No live view: print events as plain lines and a summary at the end (CI, logs).",
)
@click.option(
    "--duration",
    type=FiniteFloatRange(min=0, min_open=True),
    help="Stop by itself after S seconds of running (tests, CI); exit status 1 when a child "
    "was then down or crash-looping. Default: until Ctrl-C.",
)
@click.option(
    "--register-only",
    is_flag=True,
    help="Create every product topic and register every schema and descriptor, then exit "
    "(no simulators, processors or view; docker compose's setup step). Exit status 1 unless "
    "every one was registered (no registry credential, or some refused).",
)
@click.option(
    "--secure",
    is_flag=True,
    help="Run on a local SASL (SCRAM-SHA-512) cluster with the ACL plan applied: every "
    "simulator and processor connects as its own domain's Kafka user, so the broker "
    "enforces ownership. Passwords stay in MESH_DATA_DIR/broker/credentials.json.",
)
@click.option(
    "--brokers",
    type=WholeNumberRange(1, MAX_BROKERS),
    help="Nodes of the local cluster `mesh up` starts. [default: 3 with --secure, else 1]",
)
@project_option
@click.option(
    "--data-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path, hint=DATA_DIR_DEFAULT),
    help="State folder: broker data, processor state, logs/. [env: MESH_DATA_DIR; default "
    "~/.local/share/mesh-stream]",
)
@click.pass_obj
def up(
    settings: MeshSettings,
    rate: float,
    seed: int,
    fresh: bool,
    no_view: bool,
    duration: float | None,
    register_only: bool,
    secure: bool,
    brokers: int | None,
    project: ProjectChoice,
    data_dir: Path | None,
) -> None:
    """Run the whole mesh in the foreground: Kafka, registry, simulators, processors.

    Starts the local broker (or uses MESH_BOOTSTRAP_SERVERS), the registry (or uses the one
    answering at MESH_REGISTRY_URL), registers every schema and descriptor of the project
    (the folder holding mesh.yaml), starts every simulator and processor of its `runnables`
    module from the project root as a supervised child (restarted with back-off when it
    dies; logs in MESH_DATA_DIR/logs), and shows a live view: per product its
    topic, rate, DLQ count and latest aggregate value, each processor's lag, each child's
    state. Ctrl-C (or SIGTERM) stops everything in order and leaves no process behind; a
    second `mesh up` reuses the data of the first.
    """
    # Its children (registry, processors) would otherwise die one by one on the import.
    require_extras(
        "registry", *(() if register_only else ("processing",)), *(("broker",) if secure else ())
    )
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    nodes = brokers if brokers is not None else (3 if secure else 1)
    problem = port_range_problem(settings.broker_port, nodes, port_setting="MESH_BROKER_PORT")
    if problem is not None and not settings.bootstrap_servers:
        raise click.UsageError(problem)
    options = UpOptions(
        rate=rate,
        seed=seed,
        fresh=fresh,
        # Off a terminal (a pipe, CI, a file) a redrawn screen shows nothing useful: print lines.
        view=not no_view and Console().is_terminal,
        duration=duration,
        project=project.find(settings),
        register_only=register_only,
        secure=secure,
        brokers=nodes,
    )
    up = MeshUp(settings, options)
    with on_stop_signals(up.on_signal):
        status = up.run()
    if status:
        raise click.exceptions.Exit(status)
