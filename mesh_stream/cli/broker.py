"""`mesh broker ...`: run a real Apache Kafka (KRaft) on this machine without Docker."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mesh_stream.broker import local_cluster
from mesh_stream.broker.cluster import MAX_BROKERS, port_range_problem
from mesh_stream.broker.security import (
    ADMIN,
    MECHANISM,
    PLAINTEXT,
    SECURITY_MODES,
    find_domains,
    protocol_of,
)
from mesh_stream.cli.options import (
    DATA_DIR_DEFAULT,
    FiniteFloatRange,
    NonEmptyPath,
    WholeNumberRange,
)
from mesh_stream.project import domain_name_problem
from mesh_stream.settings import MeshSettings


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _with_overrides(settings: MeshSettings, **overrides: object) -> MeshSettings:
    given = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=given)


data_dir_option = click.option(
    "--data-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path, hint=DATA_DIR_DEFAULT),
    help="State folder; the broker lives in DATA_DIR/broker. [env: MESH_DATA_DIR; "
    "default ~/.local/share/mesh-stream]",
)


@click.group()
def broker() -> None:
    """Run Apache Kafka locally from its published jars (no Docker needed).

    The jars of org.apache.kafka:kafka_2.13 are fetched once with Maven into
    MESH_CACHE_DIR (default ~/.cache/mesh-stream); the broker runs in KRaft mode
    (combined broker + controller) in the background and keeps its data in
    MESH_DATA_DIR/broker.
    """


@broker.command()
@click.option(
    "--brokers",
    type=WholeNumberRange(1, MAX_BROKERS),
    default=1,
    show_default=True,
    help="Number of nodes.",
)
@click.option(
    "--port",
    type=WholeNumberRange(0, 65535),
    help="Client port of node 1 (node N takes PORT+N-1); 0 picks free ports. Each node's "
    "KRaft controller listener takes a free port of its own, kept with the cluster's state. "
    "[env: MESH_BROKER_PORT; default 9092]",
)
@data_dir_option
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=1),
    help="Seconds to wait for the cluster to answer. [env: MESH_BROKER_START_TIMEOUT; default 90]",
)
@click.option("--fresh", is_flag=True, help="Erase existing broker data and start a new cluster.")
@click.option(
    "--security",
    type=click.Choice(SECURITY_MODES),
    default=PLAINTEXT,
    show_default=True,
    help="plaintext: open listener. sasl: SASL_PLAINTEXT with SCRAM-SHA-512 users and ACLs "
    "enforced. sasl_ssl: the same over TLS with a CA the launcher makes.",
)
@click.option(
    "--domains",
    help="Comma-separated SCRAM users to make besides admin (secured modes). "
    "[default: the domains of the project's mesh.yaml (MESH_PROJECT_ROOT, else the nearest "
    "mesh.yaml upwards); none outside a project]",
)
@click.pass_obj
def start(
    settings: MeshSettings,
    brokers: int,
    port: int | None,
    data_dir: Path | None,
    timeout: float | None,
    fresh: bool,
    security: str,
    domains: str | None,
) -> None:
    """Start Kafka in the background and wait until it answers.

    Prints the bootstrap address and the log files. With --brokers 3 the nodes form one
    KRaft quorum and new topics get replication factor 3 (min.insync.replicas 2).
    Refuses to start a second broker from the same data directory.

    With --security sasl or sasl_ssl every client must authenticate (SCRAM-SHA-512) and
    the broker enforces ACLs; `admin` is the super user and each domain gets a user of its
    own. Passwords are generated once into DATA_DIR/broker/credentials.json (mode 0600)
    and never printed.
    """
    settings = _with_overrides(
        settings, broker_port=port, data_dir=data_dir, broker_start_timeout=timeout
    )
    problem = port_range_problem(
        settings.broker_port,
        brokers,
        port_setting="--port" if port is not None else "MESH_BROKER_PORT",
    )
    if problem is not None:
        raise click.UsageError(problem)
    given = None if domains is None else [n.strip() for n in domains.split(",") if n.strip()]
    for name in given or ():  # the flag's own values: a usage error, exit 2 (h42)
        named = domain_name_problem(name)
        if named is not None:
            raise click.BadParameter(named, param_hint="'--domains'")
    cluster = local_cluster(settings, progress=_progress)
    users = (
        given if given is not None else find_domains(Path.cwd(), project_root=settings.project_root)
    )
    state = cluster.start(
        brokers=brokers,
        port=settings.broker_port,
        timeout=settings.broker_start_timeout,
        fresh=fresh,
        security=security,
        users=users if security != PLAINTEXT else (),
        port_chosen=port is not None or "broker_port" in settings.model_fields_set,
    )
    click.echo(f"bootstrap servers: {state.bootstrap_servers}")
    for node in state.nodes:
        click.echo(f"node {node.node_id}: pid {node.pid}, log {cluster.log_file(node.node_id)}")
    if state.bootstrap_servers != settings.resolved_bootstrap_servers():
        click.echo(f"export MESH_BOOTSTRAP_SERVERS={state.bootstrap_servers}")
    credentials = cluster.credentials()
    if credentials is not None:
        click.echo(
            f"security: {security} ({protocol_of(security).value}, {MECHANISM.value}); "
            f"users {', '.join(credentials.users)}; passwords in {credentials.path}"
        )
        click.echo(f"export MESH_KAFKA_SECURITY_PROTOCOL={protocol_of(security).value}")
        click.echo(f"export MESH_KAFKA_SASL_MECHANISM={MECHANISM.value}")
        click.echo(f"export MESH_KAFKA_SASL_USERNAME={ADMIN}")
        click.echo(
            "export MESH_KAFKA_SASL_PASSWORD=$(python3 -c 'import json,sys; "
            f'print(json.load(open(sys.argv[1]))["users"][sys.argv[2]])\' '
            f"{credentials.path} {ADMIN})"
        )
        if credentials.ca_file is not None:
            click.echo(f"export MESH_KAFKA_SSL_CA_LOCATION={credentials.ca_file}")


@broker.command()
@data_dir_option
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=1),
    default=30,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
@click.pass_obj
def stop(settings: MeshSettings, data_dir: Path | None, timeout: float) -> None:
    """Stop the local broker cleanly (SIGTERM, wait, then SIGKILL). Data is kept."""
    settings = _with_overrides(settings, data_dir=data_dir)
    cluster = local_cluster(settings, progress=_progress)
    stopped = cluster.stop(timeout=timeout)
    if stopped:
        click.echo(f"stopped Kafka (pid {', '.join(map(str, stopped))})")
    else:
        click.echo(f"no broker running from {cluster.data_dir}")


@broker.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: MeshSettings, data_dir: Path | None, as_json: bool) -> None:
    """Say whether the local broker runs, with its pids and address.

    Exit status 0 when every node runs, 3 when it is stopped or partly down.
    """
    settings = _with_overrides(settings, data_dir=data_dir)
    report = local_cluster(settings).status()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "running": report.running,
                    "bootstrap_servers": report.bootstrap_servers,
                    "data_dir": str(report.data_dir),
                    "security": report.security,
                    "credentials_file": (
                        str(report.credentials_file) if report.credentials_file else None
                    ),
                    "nodes": [
                        {
                            "node_id": n.node_id,
                            "address": n.address,
                            "pid": n.pid,
                            "running": n.running,
                            "log_file": str(n.log_file),
                        }
                        for n in report.nodes
                    ],
                }
            )
        )
    elif not report.nodes:
        click.echo(f"not running (no broker was ever started from {report.data_dir})")
    else:
        up = sum(1 for n in report.nodes if n.running)
        word = (
            "running"
            if report.running
            else f"partly running ({up} of {len(report.nodes)} nodes)"
            if up
            else "not running"
        )
        click.echo(f"{word}: {report.bootstrap_servers} (data {report.data_dir})")
        if report.credentials_file is not None:
            click.echo(f"  security {report.security}; credentials in {report.credentials_file}")
        for n in report.nodes:
            state = f"pid {n.pid}" if n.running else "stopped"
            click.echo(f"  node {n.node_id} {n.address}: {state}; log {n.log_file}")
    if not report.running:
        raise click.exceptions.Exit(3)


@broker.command()
@click.option("--force", is_flag=True, help="Fetch again even when the jars are cached.")
@click.pass_obj
def fetch(settings: MeshSettings, force: bool) -> None:
    """Download Kafka's jars from Maven Central into the cache (start does this too)."""
    cluster = local_cluster(settings, progress=_progress)
    cluster.distribution.fetch(_progress, force=force)
