"""`mesh init DOMAIN [DIR]`: scaffold a domain team's own repository."""

from __future__ import annotations

from pathlib import Path

import click

from mesh_stream.project import nearest_project_root
from mesh_stream.scaffold import domain_problem, scaffold


def _domain(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    problem = domain_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


def _directory(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    if value is not None and not value.strip():  # Path("") is the current folder
        raise click.BadParameter("DIR is empty; name a folder, or leave DIR out for ./DOMAIN")
    return Path(value) if value is not None else None


@click.command()
@click.argument("domain", callback=_domain)
@click.argument("directory", metavar="[DIR]", required=False, callback=_directory)
@click.option("--force", is_flag=True, help="Write into DIR even when it is not empty.")
def init(domain: str, directory: Path | None, force: bool) -> None:
    """Create a repository for DOMAIN's data products in DIR (default: ./DOMAIN).

    It holds mesh.yaml, one source-aligned product DOMAIN.example-event (descriptor and
    documented .avsc, passing `mesh lint`), a publisher service, a processor template, a test
    that runs `mesh lint` and a CI workflow running lint and `mesh products plan`. DIR must
    be new or empty unless --force, and never the project of other domains (its mesh.yaml
    would be replaced).
    """
    target = directory if directory is not None else Path(domain)
    before = _files_in(target)  # what --force writes over
    outer = nearest_project_root(target.resolve().parent)
    made = scaffold(domain, target, force=force)
    if outer is not None:  # tools run inside it now find the new, inner mesh.yaml first
        click.echo(
            f"warning: {made.root} is inside the project at {outer}; commands run in it use "
            f"its own mesh.yaml, not {outer / 'mesh.yaml'} (a domain's repository is usually "
            f"a folder of its own)",
            err=True,
        )
    for name in made.files:
        click.echo(f"  {'replaced' if name in before else 'created'} {name}")
    click.echo(f"domain {domain}: project in {made.root}")
    click.echo("next:")
    click.echo(f"  cd {target}")
    click.echo("  mesh lint")
    click.echo("  mesh products plan")
    click.echo(
        f"  # the token: a registry admin runs `mesh registry credentials add {domain}` once"
    )
    click.echo(f"  MESH_REGISTRY_PRINCIPAL={domain} MESH_REGISTRY_TOKEN=... mesh products apply")
    click.echo(f"  python domains/{domain}/publisher.py")
    click.echo(f"  mesh tail {made.product} --from-beginning --max 10")


def _files_in(folder: Path) -> set[str]:
    """The files under ``folder`` (slash-separated, relative to it), as scaffold names them."""
    try:
        if not folder.is_dir():
            return set()
        return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    except OSError:  # a folder it cannot look into: scaffold says why
        return set()
