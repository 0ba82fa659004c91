"""`mesh products list|show|status|lineage|consumers|plan|apply`: discover data products in
the registry and their health, see and register the consumer groups that read them, and roll
a project's products out to it (plan shows what apply would do; apply does it)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.tree import Tree

from mesh_stream.broker import reachability
from mesh_stream.cli import product_health as health_view
from mesh_stream.cli.options import (
    FiniteFloatRange,
    checked_bootstrap_servers,
    checked_kafka_id,
    checked_product_name,
    checked_registry_url,
)
from mesh_stream.cli.signals import terminate_as_interrupt
from mesh_stream.descriptor import Classification, ProductKind
from mesh_stream.errors import (
    ConfigurationError,
    MeshError,
    PlanRefusedError,
    ProductNotFoundError,
    RegistryError,
    RegistryUnavailableError,
    SubjectNotFoundError,
)
from mesh_stream.health import ProductHealth
from mesh_stream.kafka.clients import probe
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.products_plan import (
    AclStatus,
    ProductPlan,
    ProjectPlan,
    Status,
    TopicStatus,
    apply_plan,
    plan_project,
    schema_fields,
)
from mesh_stream.project import MeshProject, find_project
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings, shown_url
from mesh_stream.terminal import NamesTable, cell, fold_cells, output_console, visible

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
url_option = click.option(
    "--registry-url",
    callback=checked_registry_url,
    help="Registry base URL. [env: MESH_REGISTRY_URL; default http://127.0.0.1:8081]",
)


def _client(settings: MeshSettings, url: str | None) -> RegistryClient:
    if url:
        settings = settings.model_copy(update={"registry_url": url})
    return RegistryClient.from_settings(settings)


name_argument = click.argument("name", callback=checked_product_name)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@contextlib.contextmanager
def _error_as_json(as_json: bool) -> Iterator[None]:
    """With --json, an error that stops the command (registry or Kafka unreachable, a
    project that does not load) is also one JSON object on stdout, ``{"error": ...}``, so a
    script reading the output tells it from a plan apply would refuse (h49: it printed text);
    the error line on stderr and the exit status stay as without --json."""
    try:
        yield
    except PlanRefusedError:
        raise  # its plan is already printed as JSON
    except MeshError as exc:
        if as_json:
            _print_json({"error": str(exc)})
        raise


LIST_HEADERS = ("name", "status", "kind", "classification", "topic", "schema", "description")


def _print_aligned(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest value; only the description is cut to the terminal
    (never when piped: a script or a file gets it whole)."""
    table = [LIST_HEADERS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(LIST_HEADERS) - 1)]
    room = shutil.get_terminal_size().columns if sys.stdout.isatty() else sys.maxsize
    for number, row in enumerate(table):
        line = "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False))
        line = f"{line}  {row[-1]}"
        if len(line) > room:
            line = line[: max(room - 1, 0)] + "…"
        click.echo(click.style(line, bold=True) if number == 0 else line)


@click.group()
def products() -> None:
    """Data products: find them (list, show, lineage), follow their health (status),
    register a project's own (plan, then apply) and who reads them (consumers)."""


@products.command("list")
@click.option("--domain", help="Only products of this domain.")
@click.option("--tag", help="Only products with this tag.")
@click.option(
    "--classification",
    type=click.Choice([c.value for c in Classification]),
    help="Only products of this classification.",
)
@click.option(
    "--kind", type=click.Choice([k.value for k in ProductKind]), help="Only products of this kind."
)
@click.option(
    "--query", "-q", help="Free text over names, descriptions, tags, field names and field docs."
)
@json_option
@url_option
@click.pass_obj
def list_products(
    settings: MeshSettings,
    domain: str | None,
    tag: str | None,
    classification: str | None,
    kind: str | None,
    query: str | None,
    as_json: bool,
    registry_url: str | None,
) -> None:
    """List registered products (every filter given must match), with each one's health
    status as the product monitor last judged it."""
    with _client(settings, registry_url) as client:
        found = client.list_products(
            domain=domain, tag=tag, classification=classification, kind=kind, query=query
        )
        every = _health_or_none(client)
    if as_json:
        for product in found:
            known = every.get(product["name"]) if every is not None else None
            product["health"] = known.model_dump(mode="json") if known is not None else None
        _print_json(found)
        return
    rows: list[tuple[str, ...]] = [
        (
            product["name"],
            _status_word(every, product["name"]),
            product["kind"],
            product["classification"],
            product.get("registry", {}).get("topic", ""),
            f"version {product.get('registry', {}).get('schema_version')} "
            f"(id {product.get('registry', {}).get('schema_id')})",
            visible(" ".join(str(product["description"]).split())),
        )
        for product in found
    ]
    if not sys.stdout.isatty():
        # Piped or redirected: one tab-separated line per product, nothing wrapped or cut.
        for row in rows:
            click.echo("\t".join(row))
    else:
        _print_aligned(rows)
    click.echo(f"{len(found)} product(s)", err=True)


@products.command()
@name_argument
@json_option
@url_option
@click.pass_obj
def show(settings: MeshSettings, name: str, as_json: bool, registry_url: str | None) -> None:
    """Show one product's descriptor, topic, schema version and consumers, and its
    registered schema's fields (name, type, pii, doc)."""
    with _client(settings, registry_url) as client:
        product = client.get_product(name)
        fields = _registered_fields(client, product)
        health = _one_health(client, name)
    if as_json:
        known = health.model_dump(mode="json") if health is not None else None
        _print_json({**product, "fields": [asdict(f) for f in fields], "health": known})
        return
    facts = product.pop("registry", {})
    table = fold_cells(Table("field", "value", show_header=False))
    for key, value in {**product, **facts}.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        table.add_row(cell(key), cell(shown))
    console = output_console()
    console.print(table)
    version = facts.get("schema_version")
    listing = NamesTable("name", "type", "pii", "doc", title=f"schema fields (version {version})")
    for item in fields:
        listing.add_row(
            cell(item.name), cell(item.type), "pii" if item.pii else "", cell(item.doc or "")
        )
    console.print(listing)
    if health is None:
        console.print("health: unknown (this registry does not serve product health)")
    else:
        console.print(health_view.health_block(health))


def _health_or_none(client: RegistryClient) -> dict[str, ProductHealth] | None:
    """Every product's health; None when the registry cannot say (an older registry)."""
    try:
        return client.all_product_health()
    except RegistryUnavailableError:
        raise
    except RegistryError:
        return None


def _one_health(client: RegistryClient, name: str) -> ProductHealth | None:
    try:
        return client.product_health(name)
    except (RegistryUnavailableError, ProductNotFoundError):
        raise
    except RegistryError:
        return None


def _status_word(every: dict[str, ProductHealth] | None, name: str) -> str:
    known = every.get(name) if every is not None else None
    if known is None:
        return "unknown"
    return known.status.value + (" (upstream breached)" if known.upstream_breached else "")


@products.command()
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw every few seconds and print each breach and recovery as it is published "
    "(Ctrl-C stops).",
)
@click.option(
    "--interval",
    type=FiniteFloatRange(min=0.5, max=86_400),
    default=health_view.WATCH_SECONDS,
    show_default=True,
    help="With --watch: seconds between redraws.",
)
@json_option
@url_option
@click.pass_obj
def status(
    settings: MeshSettings, watch: bool, interval: float, as_json: bool, registry_url: str | None
) -> None:
    """Every product's health: status, since when, the worst figure against its SLO and the
    reason, as the product monitor (`mesh monitor`) last measured them.

    With --watch the table is redrawn every few seconds and each alert record published to
    the alerts topic (MESH_ALERTS_TOPIC) from now on is printed as one line: a breach or a
    recovery, the product, the figure, its value against its SLO, since when.
    """
    source = click.get_current_context().get_parameter_source("interval")
    if not watch and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--interval sets how often --watch redraws; add --watch")
    if watch and as_json:  # before asking the registry anything (h51: its error came first)
        raise click.UsageError("--watch draws a table; drop --json (or --watch)")
    with _client(settings, registry_url) as client:
        every = client.all_product_health()
        if not watch:
            if as_json:
                _print_json(health_view.health_json(every))
            elif sys.stdout.isatty():
                output_console().print(health_view.status_table(every))
            else:
                for line in health_view.status_lines(every):
                    click.echo(line)
            click.echo(f"{len(every)} product(s)", err=True)
            return
        conn = KafkaConnection.from_settings(settings, default_client_id="mesh-products-status")
        alerts = health_view.KafkaAlerts(conn, settings.alerts_topic)
        try:
            # SIGTERM ends the watch as Ctrl-C does, so the last table and every alert line
            # reach a redirected stdout (it killed the process with them still buffered)
            with terminate_as_interrupt():
                health_view.watch(
                    client.all_product_health, alerts, output_console(), interval=interval
                )
        except KeyboardInterrupt:
            click.echo("stopped watching", err=True)
            interrupted = True
        else:
            interrupted = False
        finally:
            alerts.close()
        if interrupted:  # as `mesh tail`: 130 for Ctrl-C and SIGTERM, as the reference says
            raise SystemExit(130)


@products.command()
@name_argument
@click.option(
    "--direction",
    type=click.Choice(["upstream", "downstream", "both"]),
    default="both",
    show_default=True,
    help="Inputs (recursively), products built from it, or both.",
)
@json_option
@url_option
@click.pass_obj
def lineage(
    settings: MeshSettings, name: str, direction: str, as_json: bool, registry_url: str | None
) -> None:
    """Show what a product is built from and what is built from it."""
    with _client(settings, registry_url) as client:
        graph = client.lineage(name, direction)
    if as_json:
        _print_json(graph)
        return
    edges = [(e["from"], e["to"]) for e in graph["edges"]]
    root = Tree(cell(name, style="bold"))
    if direction in ("upstream", "both"):
        branch = root.add("upstream (built from)")
        if not _grow(branch, name, edges, upstream=True, seen=set()):
            branch.add("(none: a source product)")
    if direction in ("downstream", "both"):
        branch = root.add("downstream (feeds)")
        if not _grow(branch, name, edges, upstream=False, seen=set()):
            branch.add("(none yet)")
    output_console().print(root)


def _field_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    """``a,b`` as ``["a", "b"]`` (blanks around names dropped, empty items refused)."""
    if value is None:
        return []
    names = [item.strip() for item in value.split(",")]
    if not all(names):
        raise click.BadParameter(
            f"{value!r} holds an empty field name; give top-level field names separated by "
            f"commas, e.g. --reads order_id,total_amount"
        )
    return names


@products.command()
@name_argument
@click.option(
    "--register",
    "register_group",
    metavar="GROUP",
    callback=checked_kafka_id,
    help="Register this consumer group on the product (again: replace its registration).",
)
@click.option(
    "--reads",
    callback=_field_list,
    metavar="FIELD,...",
    help="With --register: the top-level fields the group reads (the registry then refuses "
    "schema versions that remove or retype them).",
)
@click.option("--contact", help="With --register: who runs the consumer.")
@click.option("--description", help="With --register: what the consumer does.")
@click.option("--unregister", "unregister_group", metavar="GROUP", help="Remove a registration.")
@json_option
@url_option
@click.pass_obj
def consumers(
    settings: MeshSettings,
    name: str,
    register_group: str | None,
    reads: list[str],
    contact: str | None,
    description: str | None,
    unregister_group: str | None,
    as_json: bool,
    registry_url: str | None,
) -> None:
    """List the consumer groups registered on a product (applications that read it, with
    the fields they read), or register / unregister one."""
    if register_group and unregister_group:
        raise click.UsageError("give --register or --unregister, not both")
    if not register_group and (reads or contact or description):
        raise click.UsageError("--reads, --contact and --description go with --register GROUP")
    with _client(settings, registry_url) as client:
        if register_group:
            done = client.register_consumer(
                name, register_group, reads=reads, contact=contact, description=description
            )
            click.echo(
                f"registered consumer group {register_group} on {name} (owner {done['owner']}, "
                f"reads {', '.join(done['reads']) or 'no field named'})",
                err=True,
            )
        if unregister_group:
            client.unregister_consumer(name, unregister_group)
            click.echo(f"unregistered consumer group {unregister_group} from {name}", err=True)
        found = client.consumers(name)
    if as_json:
        _print_json(found)
        return
    table = NamesTable(
        "group", "owner", "reads", "contact", "registered", title=f"consumers of {name}"
    )
    for item in found:
        table.add_row(
            cell(item["group"]),
            cell(item.get("owner") or ""),
            cell(", ".join(item.get("reads") or []) or "(no field named)"),
            cell(item.get("contact") or ""),
            cell(f"{item.get('registered_at') or ''} by {item.get('registered_by') or '?'}"),
        )
    output_console().print(table)
    click.echo(f"{len(found)} consumer group(s)", err=True)


def _grow(
    node: Tree, name: str, edges: list[tuple[str, str]], *, upstream: bool, seen: set[str]
) -> bool:
    """Add ``name``'s neighbours (recursively) under ``node``; False when it has none."""
    nexts = (
        sorted(a for a, b in edges if b == name)
        if upstream
        else sorted(b for a, b in edges if a == name)
    )
    for item in nexts:
        child = node.add(cell(item))
        if item not in seen:
            seen.add(item)
            _grow(child, item, edges, upstream=upstream, seen=seen)
    return bool(nexts)


def _registered_fields(client: RegistryClient, product: dict[str, Any]) -> list[Any]:
    """The fields of the product's latest registered value schema (none when it has none)."""
    subject = product.get("registry", {}).get("value_subject")
    if not subject:
        return []
    try:
        registered = client.get_latest(str(subject))
    except SubjectNotFoundError:
        return []
    document = json.loads(registered.schema)
    return schema_fields(document) if isinstance(document, dict) else []


# -- plan and apply ---------------------------------------------------------------------------

project_argument = click.argument(
    "path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
bootstrap_option = click.option(
    "--bootstrap-servers",
    callback=checked_bootstrap_servers,
    help="Kafka whose topics and ACLs are compared. [env: MESH_BOOTSTRAP_SERVERS; default "
    "the local broker]",
)


def _plan(
    settings: MeshSettings,
    path: Path | None,
    registry_url: str | None,
    bootstrap_servers: str | None,
) -> tuple[ProjectPlan, MeshProject, RegistryClient, KafkaConnection]:
    if bootstrap_servers:
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap_servers})
    project = find_project(path, settings, named_by="PATH", explicit_as="PATH")
    conn = KafkaConnection.from_settings(settings, default_client_id="mesh-products")
    try:
        probe(conn, timeout=reachability.DEFAULT_PROBE_TIMEOUT)
    except MeshError:
        project.descriptors()  # a descriptor that does not load is the first thing to fix
        raise
    client = _client(settings, registry_url)
    try:
        plan = plan_project(project, client, conn, principal=settings.registry_principal)
    except BaseException:
        client.close()
        raise
    return plan, project, client, conn


def _product_lines(item: ProductPlan) -> list[str]:
    """``+`` a new product, ``~`` a changed one, ``=`` unchanged; then what changes."""
    if item.descriptor is Status.NEW:
        mark, head = "+", "new"
    elif item.unchanged:
        mark, head = "=", "unchanged"
    else:
        mark, head = "~", f"changed (descriptor {item.descriptor.value})"
    lines = [f"{mark} {item.name} ({item.descriptor_file}): {head}"]
    lines += [f"    descriptor {change.describe()}" for change in item.descriptor_changes]
    version = f", registered version {item.registered_version}" if item.registered_version else ""
    if item.local_version is not None:  # not the latest: the warning below says what follows
        version = (
            f" (the local schema is registered version {item.local_version}, older than the "
            f"latest {item.registered_version})"
        )
    lines.append(f"    schema {item.subject}: {item.schema.value}{version}")
    if item.schema is not Status.UNCHANGED:
        lines += [f"      {change.describe()}" for change in item.schema_changes]
        lines += [f"      contract: {change}" for change in item.contract_changes]
    if item.compatible is not None and item.schema is Status.CHANGED:
        accepted = item.compatible if item.level_compatible is None else item.level_compatible
        verdict = "compatible" if accepted else "INCOMPATIBLE"
        lines.append(
            f"    compatibility {item.compatibility_level} (the subject's level in force): "
            f"{verdict} (registry)"
        )
    if item.protects_consumers is not None and item.schema is Status.CHANGED:
        verdict = "compatible" if item.protects_consumers else "BREAKS THEM"
        lines.append(
            f"    read by {', '.join(item.consumers)}: {item.consumer_level} "
            f"(consumer protection): {verdict}"
        )
    if item.level_change is not None:
        lines.append(f"    compatibility level {item.level_change[0]} -> {item.level_change[1]}")
    topic = f"    topic {item.topic}: {item.topic_status.value}"
    if item.topic_status is TopicStatus.MISSING and item.topic_unseen_by is not None:
        topic += (
            f" or not visible to {item.topic_unseen_by} (a principal sees only the topics it "
            f"may DESCRIBE); apply creates it if missing ({item.topic_spec})"
        )
    elif item.topic_status is TopicStatus.MISSING:
        topic += f", apply creates it ({item.topic_spec})"
    lines.append(topic)
    lines += [f"      {drift}" for drift in item.topic_drift]
    if item.dlq_topic_missing is not None:
        lines.append(f"    dead-letter topic {item.dlq_topic_missing}: missing, apply creates it")
    if item.dlq_topic_drift:
        lines.append(
            f"    dead-letter topic {item.topic}.dlq: differs from its spec, apply sets it"
        )
        lines += [f"      {drift}" for drift in item.dlq_topic_drift]
    return lines


def _print_plan(plan: ProjectPlan) -> None:
    click.echo(
        f"project {plan.root} (domains: {', '.join(plan.domains) or 'none'}) against "
        f"{shown_url(plan.registry_url)} and Kafka at {plan.bootstrap_servers}"
    )
    for item in plan.products:
        for line in _product_lines(item):
            click.echo(line)
    acls = f"ACLs: {plan.acl_status.value}"
    if plan.acl_status is AclStatus.MISSING:
        acls += f", apply creates {len(plan.acls_missing)}"
    click.echo(acls + (f" ({plan.acl_note})" if plan.acl_note else ""))
    for acl in plan.acls_missing:
        click.echo(f"    + {acl}")
    warnings = plan.to_dict()["warnings"]
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    for refusal in plan.all_refusals:
        click.secho(f"refused: {refusal}", fg="red", err=True)
    click.echo(plan_summary(plan, len(warnings)))


def plan_summary(plan: ProjectPlan, warnings: int) -> str:
    """The plan's last line; its own ``warnings`` are counted too ("lint 0 warning(s)" under
    a printed warning read as if that one did not count, h44)."""
    counts = plan.counts()
    verdict = (
        "applicable"
        if plan.applicable
        else f"REFUSED ({len(plan.all_refusals)} refusal(s)): apply would write nothing"
    )
    said = f"; {warnings} plan warning(s)" if warnings else ""
    return (
        f"plan: {counts['new']} new, {counts['changed']} changed, {counts['unchanged']} "
        f"unchanged product(s); lint {plan.lint_errors} error(s), {plan.lint_warnings} "
        f"warning(s){said}; {verdict}"
    )


@products.command()
@project_argument
@json_option
@url_option
@bootstrap_option
@click.pass_context
def plan(
    ctx: click.Context,
    path: Path | None,
    as_json: bool,
    registry_url: str | None,
    bootstrap_servers: str | None,
) -> None:
    """Show what `mesh products apply` would change, without changing anything.

    For every descriptor of the project at PATH (default: MESH_PROJECT_ROOT, else the nearest
    folder upwards holding mesh.yaml): new, changed (field by field) or unchanged in the
    registry; the schema diff (fields added, removed, retyped) and the registry's
    compatibility verdict against the registered versions; the topic missing or drifted from
    the descriptor; the domain's ACLs where the cluster has an authorizer; local lint and
    ownership (MESH_REGISTRY_PRINCIPAL must be the product's domain). Exit status 0 when
    apply would go through, 1 when something would be refused or the plan could not be made
    (with --json, such an error is printed as {"error": ...} instead of a plan).
    """
    with _error_as_json(as_json):
        result, _project, client, _conn = _plan(ctx.obj, path, registry_url, bootstrap_servers)
    client.close()
    if as_json:
        _print_json(result.to_dict())
    else:
        _print_plan(result)
    if not result.applicable:
        ctx.exit(1)


@products.command()
@project_argument
@json_option
@url_option
@bootstrap_option
@click.pass_context
def apply(
    ctx: click.Context,
    path: Path | None,
    as_json: bool,
    registry_url: str | None,
    bootstrap_servers: str | None,
) -> None:
    """Register the project's schemas and descriptors, create their topics and grant the
    domain's ACLs: make the registry and Kafka match `mesh products plan`.

    Runs with the domain's credential (MESH_REGISTRY_PRINCIPAL / MESH_REGISTRY_TOKEN for the
    registry, MESH_KAFKA_* for Kafka). Everything is validated first (lint, compatibility
    against the registry, ownership); when anything is refused, each refusal is printed with
    its policy, file:line and fix, and nothing is written. Idempotent: a second apply says
    unchanged. Existing topics are checked, never altered; ACLs are only added.
    """
    settings: MeshSettings = ctx.obj
    if settings.registry_principal is None:
        # A bare token names no principal, so ownership could not be checked before writing.
        raise ConfigurationError(
            "mesh products apply writes as the products' domain and checks that it owns them "
            "before writing anything: set MESH_REGISTRY_PRINCIPAL to the domain and "
            "MESH_REGISTRY_TOKEN to its token (`mesh products plan` needs neither)"
        )
    with _error_as_json(as_json):
        _apply(settings, path, as_json, registry_url, bootstrap_servers)


def _apply(
    settings: MeshSettings,
    path: Path | None,
    as_json: bool,
    registry_url: str | None,
    bootstrap_servers: str | None,
) -> None:
    result, project, client, conn = _plan(settings, path, registry_url, bootstrap_servers)
    with client:
        if not as_json:
            for warning in result.to_dict()["warnings"]:
                click.secho(f"warning: {warning}", fg="yellow", err=True)
        if not result.applicable:
            if as_json:
                _print_json({"applied": False, "plan": result.to_dict()})
            for refusal in result.all_refusals:
                click.secho(f"refused: {refusal}", fg="red", err=True)
        try:
            done = apply_plan(
                result, project, client, conn, progress=None if as_json else click.echo
            )
        except PlanRefusedError as exc:
            raise PlanRefusedError(
                f"nothing applied: {len(exc.refusals)} refusal(s) above (policy, file:line, "
                "fix); `mesh products plan` shows the whole plan",
                refusals=exc.refusals,
            ) from None
    if as_json:
        _print_json({"applied": True, **done.to_dict(), "plan": result.to_dict()})
        return
    for name in done.unchanged:
        click.echo(f"{name}: unchanged")
    if done.changed:
        click.echo(
            f"applied: {len(done.actions)} change(s) at {client.url} and {conn.bootstrap_servers}"
        )
    else:
        click.echo(
            f"unchanged: the registry and Kafka already match the {len(result.products)} product(s)"
        )
