"""`mesh export datahub`: products as DataHub metadata change proposals."""

from __future__ import annotations

from pathlib import Path

import click

from mesh_stream.cli.export.common import open_source, product_selection, selected, write_documents
from mesh_stream.exports.datahub import gms_url_problem, post_proposals, proposals
from mesh_stream.settings import MeshSettings, shown_url

FILE_NAME = "datahub-mcps.json"


def _checked_gms_url(param: click.Parameter, value: str | None) -> str | None:
    """``--gms-url`` refused before anything is read or built: empty, or not an http(s) URL
    with a host (``http://``, ``https://:8080``, ``ftp://gms``)."""
    if value is None:
        return None
    problem = (
        "is empty; give the GMS URL, e.g. http://localhost:8080"
        if not value.strip()
        else gms_url_problem(value)
    )
    if problem is not None:
        # a URL that does not parse may still hold a token: shown only once it parses (h42)
        shown = repr(shown_url(value)) if "://" in value else "the value (not shown)"
        raise click.BadParameter(f"{shown} {problem}", param=param)
    return value


@click.command()
@product_selection
@click.option(
    "--gms-url",
    callback=lambda _ctx, param, value: _checked_gms_url(param, value),
    help="Send the proposals to this DataHub GMS (e.g. http://localhost:8080) instead of "
    "writing them; the token is MESH_DATAHUB_TOKEN.",
)
@click.pass_obj
def datahub(
    settings: MeshSettings,
    names: tuple[str, ...],
    export_all: bool,
    output: Path | None,
    registry_url: str | None,
    gms_url: str | None,
) -> None:
    """Write products as DataHub metadata change proposals (datahub-mcps.json, the file
    DataHub's file source ingests): domains, each topic as a dataset with schema, field docs,
    PII tags, owners, tags, classification, domain and upstream lineage, and a DataHub Data
    Product per product. With --gms-url they are sent to DataHub instead."""
    source = open_source(settings, registry_url)
    mcps = proposals(selected(source, names, export_all))
    if gms_url is not None:
        if output is not None:
            raise click.UsageError("give --output or --gms-url, not both")
        token = settings.datahub_token.get_secret_value() if settings.datahub_token else None
        sent = post_proposals(mcps, gms_url, token=token)
        click.echo(f"sent {sent} proposals to {shown_url(gms_url)}", err=True)
        return
    write_documents([(FILE_NAME, mcps)], output)
