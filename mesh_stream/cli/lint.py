"""`mesh lint [PATH]`: run every governance policy over a repository's domains and schemas."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import click

from mesh_stream.errors import ConfigurationError, ProjectNotFoundError
from mesh_stream.governance.config import GLOBAL_POLICIES_FILE, load_governance
from mesh_stream.governance.model import Severity, Violation
from mesh_stream.governance.registered import RegistryLookup, lint_against_registry
from mesh_stream.governance.repository import lint_project, project_policies
from mesh_stream.products_plan.plan import RegistryCatalog
from mesh_stream.project import MeshProject, find_project, load_project
from mesh_stream.registry.client import RegistryClient
from mesh_stream.settings import MeshSettings

_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow"}
LOOKUP_TIMEOUT = 5.0
"""Seconds to wait for the registry when looking up inputs from other repositories."""


#: What `mesh lint` says it could not check when the registry cannot be asked: inputs from
#: other repositories, and who reads the project's products (downstream products, consumer
#: groups), which a project wholly its own also asks about (h58: "inputs from other
#: repositories" for a project that had none).
NOT_VERIFIED = (
    "not verified against the registry (inputs from other repositories, who reads this "
    "project's products)"
)


def _registry(settings: MeshSettings) -> RegistryClient:
    """A client asking the registry once per product (no retries): lint must not hang in a
    CI job that has no registry, it reports such inputs as unverifiable instead."""
    token = settings.registry_token.get_secret_value() if settings.registry_token else None
    return RegistryClient(
        settings.registry_url,
        principal=settings.registry_principal,
        token=token,
        timeout=LOOKUP_TIMEOUT,
        retry_seconds=0,
    )


def _show(violation: Violation) -> None:
    head = click.style(violation.severity.value, fg=_COLOURS.get(violation.severity), bold=True)
    field = f" {violation.field}" if violation.field else ""
    click.echo(f"{violation.location}: {head} [{violation.policy}]{field}")
    click.echo(f"    {violation.message}")
    click.echo(f"    why: {violation.why}")
    click.echo(f"    fix: {violation.fix}")


def _list_policies(
    project: MeshProject, policies_file: Path | None, *, as_json: bool, domain: str | None
) -> None:
    """The policies in force (for ``domain``: with its overrides): a table, or with --json
    the same rows as data for scripts."""
    config = load_governance(project.root, policies_file, domains_dir=project.descriptors_dir)
    source = config.source or "built-in defaults"
    rules = config.global_rules
    overridden: dict[str, str] = {}
    if domain is not None:
        if domain not in project.domains and domain not in config.domains:
            raise click.BadParameter(
                f"domain {domain!r} is not one of the project's domains "
                f"({', '.join(project.domains) or 'none'}, mesh.yaml `domains`)",
                param_hint="'--domain'",
            )
        rules = config.rules_for(domain)
        overrides = config.domains.get(domain)
        if overrides is not None:
            overridden = dict.fromkeys(overrides.rules, overrides.source)
            for problem in overrides.problems:  # what is not applied, and why
                click.echo(f"{problem.location}: {problem.message} (not applied)", err=True)
    rows = [
        {
            "name": name,
            "severity": rule.severity.value if rule.policy.configurable else "error",
            "overridable": rule.overridable,
            "configurable": rule.policy.configurable,
            "summary": rule.policy.summary,
            "params": {
                # strict JSON: a bound of .inf ("no maximum") is null
                key: None if isinstance(value, float) and not math.isfinite(value) else value
                for key, value in rule.params.model_dump(mode="json").items()
            },
            **({"overridden_in": overridden.get(name)} if domain is not None else {}),
        }
        for name, rule in rules.items()
    ]
    if as_json:
        scope = {"domain": domain} if domain is not None else {}
        click.echo(json.dumps({"policies_source": source, **scope, "policies": rows}, indent=2))
        return
    for_domain = f" with the overrides of domain {domain}" if domain is not None else ""
    click.echo(f"policies from {source}{for_domain}:")
    for row in rows:
        overridable = "overridable" if row["overridable"] else "fixed"
        click.echo(f"  {row['name']:30} {row['severity']:8} {overridable:12} {row['summary']}")
        if row["params"]:
            click.echo(f"  {'':30} params: {json.dumps(row['params'])}")
        if row.get("overridden_in"):
            click.echo(f"  {'':30} overridden in {row['overridden_in']}")


@click.command()
@click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON report instead of text (with --list-policies: the policies as JSON).",
)
@click.option(
    "--policies",
    "policies_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Global policy set to apply. [default: PATH/{GLOBAL_POLICIES_FILE}, else the "
    "built-in defaults]",
)
@click.option(
    "--list-policies",
    is_flag=True,
    help="List the policies in force (severity, overridable, what each demands, parameters) "
    "and exit, linting nothing (so not with --against-registry).",
)
@click.option(
    "--domain",
    metavar="DOMAIN",
    help="With --list-policies: the policies as they hold for DOMAIN, its own overrides "
    "(<products>/<domain>/policies.yaml) applied and named.",
)
@click.option(
    "--against-registry",
    is_flag=True,
    help="Also compare each local .avsc with the registered versions of its product's value "
    "subject (MESH_REGISTRY_URL), at the level the registry enforces: the subject's level "
    "and, for products other products or registered consumer groups read, consumer "
    "protection. A registry that is unreachable, does not answer or is no registry (a "
    "wrong URL), or a refused credential, is an error.",
)
@click.pass_context
def lint(
    ctx: click.Context,
    path: Path | None,
    as_json: bool,
    policies_file: Path | None,
    list_policies: bool,
    domain: str | None,
    against_registry: bool,
) -> None:
    """Check every data product descriptor of the project at PATH and its Avro schema
    against the mesh's governance policies.

    PATH is the project root (default: MESH_PROJECT_ROOT, else the nearest folder upwards
    holding mesh.yaml); its mesh.yaml says where descriptors (`products`, default domains/)
    and schemas (`schemas`, default schemas/) live, and the global policy file (`policies`,
    default PATH/mesh-policies.yaml). Each domain may override, in
    <products>/<domain>/policies.yaml, what the global set marks overridable. Inputs that
    live in other domains' repositories are looked up in the registry (MESH_REGISTRY_URL);
    when it cannot be reached, does not answer, or what answers is no registry, they are
    reported as unverified warnings (and the reason once on stderr). Every
    violation is printed with file:line, field, policy, why the policy exists and how to fix
    it. With --against-registry each local schema is also judged as the registry would
    judge it as the next version (every change that breaks the subject's level or a
    product reading it, and each PII mark of the latest version it drops, with the field,
    why and the fix). Exit status 1 when there is an
    error-level violation, else 0.
    """
    if list_policies and against_registry:
        # Listing lints nothing: a flag that would be ignored must not look obeyed.
        raise click.UsageError(
            "--list-policies lists the policies and exits, it compares no schema: drop "
            "--against-registry (or --list-policies to lint against the registry)",
            ctx=ctx,
        )
    if domain is not None and not list_policies:
        raise click.UsageError(
            "--domain only chooses whose overrides --list-policies shows; lint checks every "
            "domain of the project (add --list-policies, or drop --domain)",
            ctx=ctx,
        )
    if path is not None:
        project = load_project(path, defaults_without_file=True)  # a bare folder: the defaults
    else:
        try:
            project = find_project(None, ctx.obj, named_by="`mesh lint PATH`")
        except ProjectNotFoundError:
            if not list_policies:
                raise
            # The policies in force need no project: this folder's file, else the defaults.
            project = load_project(Path.cwd(), defaults_without_file=True)
    if policies_file is None:
        policies_file = project_policies(project)
    if list_policies:
        _list_policies(project, policies_file, as_json=as_json, domain=domain)
        return
    with _registry(ctx.obj) as registry:
        catalog = RegistryLookup(RegistryCatalog(registry), registry.url)
        try:
            report = lint_project(project, policies_file, outside=catalog)
        except ConfigurationError as exc:  # a policy file it cannot read: still one report
            if as_json:
                click.echo(json.dumps({"error": str(exc), "violations": []}, indent=2))
            raise
        if against_registry:
            found = lint_against_registry(project, registry)
            ordered = sorted(
                [*report.violations, *found],
                key=lambda v: (v.file or "", v.line or 0, v.policy, v.message),
            )
            report = replace(report, violations=tuple(ordered))
    path = project.root
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for violation in report.violations:
            _show(violation)
        summary = (
            f"{report.errors} error(s), {report.warnings} warning(s) in {report.products} "
            f"product(s) under {path} (policies: {report.policies_source or 'built-in defaults'})"
        )
        click.secho(summary, fg="red" if report.errors else "green", err=True)
    unverified = catalog.unverified()
    if unverified is not None:
        click.secho(
            f"{NOT_VERIFIED}: {unverified}",
            fg="yellow",
            err=True,
        )
    if report.errors:
        ctx.exit(1)
