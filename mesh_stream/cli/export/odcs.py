"""`mesh export odcs`: one ODCS v3 data contract per product (``<product>.odcs.yaml``)."""

from __future__ import annotations

from pathlib import Path

import click

from mesh_stream.cli.export.common import (
    open_source,
    product_selection,
    selected,
    write_documents,
)
from mesh_stream.exports.odcs import odcs_contract
from mesh_stream.exports.source import KafkaServer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.settings import MeshSettings


@click.command()
@product_selection
@click.pass_obj
def odcs(
    settings: MeshSettings,
    names: tuple[str, ...],
    export_all: bool,
    output: Path | None,
    registry_url: str | None,
) -> None:
    """Write each product as an Open Data Contract Standard v3 contract: schema properties
    with docs, types and PII marks, quality rules, SLAs, owner and the Kafka server.

    The contract's version is the registered schema version (`<version>.0.0`); a product
    whose schema is not registered yet is exported from the project's .avsc as version
    0.0.0, status draft. Validate a contract with `datacontract lint <file>`."""
    source = open_source(settings, registry_url)
    products = selected(source, names, export_all)
    server = KafkaServer.from_connection(KafkaConnection.from_settings(settings))
    for item in products:
        if not item.registered:
            click.echo(
                f"warning: {item.product.name}: contract version 0.0.0 (draft): no registered "
                f"schema version to take it from",
                err=True,
            )
    write_documents(
        ((f"{item.product.name}.odcs.yaml", odcs_contract(item, server)) for item in products),
        output,
    )
