"""`mesh acl plan|apply`: the broker ACLs that make each domain the only writer of its topics."""

from __future__ import annotations

import json

import click

from mesh_stream.broker import reachability
from mesh_stream.cli.options import ProjectChoice, checked_bootstrap_servers, project_option
from mesh_stream.errors import ConfigurationError
from mesh_stream.governance.acl_plan import (
    MONITOR_PRINCIPAL,
    REGISTRY_PRINCIPAL,
    AclPlan,
    plan_acls,
    plan_retirement,
    principal_problem,
    refuse_domain_principals,
    refuse_planned_principals,
    refuse_planned_retirees,
)
from mesh_stream.kafka.acls import Acl, apply_acls, describe_acls
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.project import domain_name_problem
from mesh_stream.settings import MeshSettings


def _principal(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    problem = principal_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


def _domains(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for domain in value:
        problem = domain_name_problem(domain)
        if problem is not None:  # h51: a 300-character name passed the pattern
            raise click.BadParameter(problem)
    return value


registry_option = click.option(
    "--registry-principal",
    default=REGISTRY_PRINCIPAL,
    callback=_principal,
    show_default=True,
    help="Kafka principal the registry connects as (it gets the registry topic, its groups "
    "and its writer's transactional ids).",
)


monitor_option = click.option(
    "--monitor-principal",
    default=MONITOR_PRINCIPAL,
    callback=_principal,
    show_default=True,
    help="Kafka principal the product monitor connects as (it reads every product and DLQ, "
    "describes the domains' consumer groups and owns the health and alerts topics).",
)


def _plan(
    settings: MeshSettings, project: ProjectChoice, registry_principal: str, monitor_principal: str
) -> AclPlan:
    found = project.find(settings)
    return plan_acls(
        found.descriptors(),
        domains=found.domains,
        registry_principal=registry_principal,
        registry_topic=settings.registry_topic,
        registry_writer_id=settings.resolved_registry_writer_id,
        monitor_principal=monitor_principal,
        health_topic=settings.health_topic,
        alerts_topic=settings.alerts_topic,
    )


def _line(acl: Acl) -> str:
    return (
        f"  {acl.permission.value:5} {acl.operation.value:16} {acl.resource.value:16} "
        f"{acl.pattern.value:8} {acl.name}"
    )


def _warn(plan: AclPlan) -> None:
    for warning in plan.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@click.group()
def acl() -> None:
    """Kafka ACLs derived from the descriptors: each domain principal (User:<domain>) is
    the only writer of its `<domain>.` topics and reads the products it may read (a pii
    product only when its descriptor names the domain in `readers`)."""


@acl.command()
@project_option
@registry_option
@monitor_option
@click.option("--json", "as_json", is_flag=True, help="Print the bindings as one JSON document.")
@click.pass_obj
def plan(
    settings: MeshSettings,
    project: ProjectChoice,
    registry_principal: str,
    monitor_principal: str,
    as_json: bool,
) -> None:
    """Print the ACLs the project's descriptors call for, grouped by principal.

    Each line: permission, operation, resource type, pattern type, resource name. Nothing
    is sent to Kafka; `mesh acl apply` makes the cluster match.
    """
    result = _plan(settings, project, registry_principal, monitor_principal)
    _warn(result)
    if as_json:
        document = {
            "acls": [a.to_dict() for a in result.acls],
            "principals": sorted(result.principals),
            "warnings": list(result.warnings),
        }
        click.echo(json.dumps(document, indent=2))
        return
    for principal, acls in result.by_principal().items():
        click.echo(f"{principal} ({len(acls)} ACLs)")
        for binding in acls:
            click.echo(_line(binding))
    click.echo(f"{len(result.acls)} ACLs for {len(result.by_principal())} principals", err=True)


@acl.command()
@project_option
@registry_option
@monitor_option
@click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka to apply the ACLs to. [env: MESH_BOOTSTRAP_SERVERS; default local broker]",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option(
    "--retire",
    multiple=True,
    metavar="DOMAIN",
    callback=_domains,
    help="Delete every ACL the mesh granted for DOMAIN, a domain gone from the mesh (its "
    "user's, and others' on its names). Repeatable. Without it, a domain the cluster has "
    "and this project lacks is named and left alone.",
)
@click.option(
    "--retire-principal",
    multiple=True,
    metavar="User:NAME",
    help="Delete the ACLs the mesh granted a service principal you replaced with "
    "--registry-principal or --monitor-principal (on the names this project manages). "
    "Repeatable.",
)
@click.pass_obj
def apply(
    settings: MeshSettings,
    project: ProjectChoice,
    registry_principal: str,
    monitor_principal: str,
    bootstrap_servers: str | None,
    dry_run: bool,
    retire: tuple[str, ...],
    retire_principal: tuple[str, ...],
) -> None:
    """Make the cluster's ACLs match `mesh acl plan`: create the missing ones, delete the
    mesh's own ACLs no longer planned. Idempotent: a second run changes nothing.

    A project may hold only some of the mesh's domains (one repository per domain), so a
    domain the cluster has and the project lacks is named on stderr and left alone. Once a
    domain is gone from the mesh, `--retire DOMAIN` deletes every ACL the mesh granted for
    it: its user's, and others' on its names. The cluster shows such a domain by the grants
    only the mesh makes together: User:<domain> may WRITE topics prefixed `<domain>.` and
    READ `mesh-tail-` groups.

    Connects with the MESH_KAFKA_* settings, which must be a user allowed to alter ACLs
    (the local secured cluster's `admin`). Only ALLOW ACLs of the plan's principals (and of
    retired domains) on the mesh's names (`<domain>.`, `<domain>-`, `mesh-<domain>.`,
    `mesh-tail-`, `mesh-products-status-`, `mesh-registry-`, `mesh-monitor-`, the registry,
    health and alerts topics, the cluster) are ever deleted.
    """
    if bootstrap_servers is not None:
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
    result = _plan(settings, project, registry_principal, monitor_principal)
    _warn(result)
    for hint, check, asked in (
        ("--retire", refuse_planned_retirees, retire),
        ("--retire-principal", refuse_planned_principals, retire_principal),
    ):
        try:
            check(result, asked)
        except ConfigurationError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    conn = KafkaConnection.from_settings(settings, default_client_id="mesh-acl")
    existing = describe_acls(conn, connect_timeout=reachability.DEFAULT_PROBE_TIMEOUT)
    try:
        refuse_domain_principals(existing, retire_principal)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--retire-principal") from None
    retirement = plan_retirement(result, existing, retire)
    for domain in retirement.left_alone:
        click.secho(
            f"domain {domain!r} is not in this project, but the cluster still lets "
            f"User:{domain} write its topics: its ACLs are left alone (if {domain!r} is gone "
            f"from the mesh, run again with --retire {domain})",
            fg="yellow",
            err=True,
        )
    for domain in retirement.nothing_left:
        click.echo(f"domain {domain!r}: the cluster holds no ACL the mesh granted for it", err=True)
    for domain in retirement.retire:
        click.secho(
            f"domain {domain!r} is retired: {'would delete' if dry_run else 'deleting'} "
            f"every ACL the mesh granted for it",
            fg="yellow",
            err=True,
        )
    result = result.retiring(retirement.retire, retire_principal)
    held = {binding.principal for binding in existing if result.manages(binding)}
    for service in sorted(set(retire_principal)):
        if service not in held:  # h51: "is retired: would delete ...", then "no changes"
            click.echo(f"{service}: the cluster holds no ACL the mesh granted it", err=True)
            continue
        click.secho(
            f"{service} is retired: {'would delete' if dry_run else 'deleting'} the ACLs the "
            f"mesh granted it",
            fg="yellow",
            err=True,
        )
    changes = apply_acls(
        conn,
        result.acls,
        result.manages,
        dry_run=dry_run,
        existing=existing,
    )
    verb = ("would create", "would delete") if dry_run else ("created", "deleted")
    for binding in changes.create:
        click.echo(f"{verb[0]}: {binding}")
    for binding in changes.delete:
        click.echo(f"{verb[1]}: {binding}")
    if changes.empty:
        click.echo(f"no changes: the {len(result.acls)} planned ACLs are in place")
    else:
        click.echo(
            f"{verb[0]} {len(changes.create)}, {verb[1]} {len(changes.delete)} ACL(s) at "
            f"{conn.bootstrap_servers}"
        )
