"""`mesh export asyncapi|odcs|datahub|openlineage`: the standards' documents of products,
generated from their descriptors and registered schemas (see :mod:`mesh_stream.exports`)."""

from __future__ import annotations

import click

from mesh_stream.cli.export.asyncapi import asyncapi
from mesh_stream.cli.export.datahub import datahub
from mesh_stream.cli.export.odcs import odcs
from mesh_stream.cli.export.openlineage import openlineage


@click.group()
def export() -> None:
    """Write products as AsyncAPI 3, ODCS v3, DataHub or OpenLineage documents, generated
    from their descriptors and the schemas registered in the registry (a product whose
    schema is not registered yet is exported from the project's .avsc, with a warning)."""


for command in (asyncapi, odcs, datahub, openlineage):
    export.add_command(command)
