"""Entry point of the `mesh` console script.

Configuration comes from flags, then ``MESH_*`` environment variables, then defaults that
work on a fresh machine. The settings are read once here and handed to each command.
"""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from mesh_stream.cli.bench import bench
from mesh_stream.cli.broker import broker
from mesh_stream.cli.lint import lint
from mesh_stream.cli.products import products
from mesh_stream.cli.publish import publish
from mesh_stream.cli.registry import registry
from mesh_stream.cli.tail import tail
from mesh_stream.cli.up import up
from mesh_stream.errors import MeshError
from mesh_stream.settings import MeshSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mesh-stream", prog_name="mesh")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """mesh-stream: Avro data products on real Kafka, with a registry, governance and
    stream processors.

    Every setting can also be given as a MESH_* environment variable (for example
    MESH_BOOTSTRAP_SERVERS, MESH_REGISTRY_URL, MESH_DATA_DIR); flags win over the
    environment, and the defaults run everything locally.
    """
    try:
        ctx.obj = MeshSettings()
    except ValidationError as exc:
        raise click.UsageError(_environment_problems(exc)) from exc


def _environment_problems(exc: ValidationError) -> str:
    """One line per bad ``MESH_*`` variable: its name, the value given and what is expected."""
    lines = ["invalid MESH_* environment setting:"]
    for problem in exc.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        secret = any(word in field for word in ("token", "credentials"))
        given = "<hidden>" if secret else repr(problem.get("input"))
        lines.append(f"  MESH_{field.upper()}={given}: {problem['msg']}")
    return "\n".join(lines)


cli.add_command(broker)
cli.add_command(lint)
cli.add_command(products)
cli.add_command(registry)
cli.add_command(publish)
cli.add_command(tail)
cli.add_command(bench)
cli.add_command(up)


def main() -> None:
    """Run the CLI, turning mesh-stream errors into a one-line message and exit status 1."""
    try:
        status = cli.main(standalone_mode=False, prog_name="mesh")
        if isinstance(status, int) and status:
            sys.exit(status)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MeshError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
