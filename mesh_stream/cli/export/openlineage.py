"""`mesh export openlineage`: the registry's lineage graph as OpenLineage static lineage."""

from __future__ import annotations

from pathlib import Path

import click

from mesh_stream.cli.export.common import open_source, product_selection, selected, write_documents
from mesh_stream.errors import MeshError, ProductNotFoundError, SubjectNotFoundError
from mesh_stream.exports.source import ExportedProduct, KafkaServer, RegistrySource
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.settings import MeshSettings

FILE_NAME = "openlineage.jsonl"


def inputs_of(source: RegistrySource, chosen: list[ExportedProduct]) -> list[ExportedProduct]:
    """The inputs of ``chosen`` not among them, as far as the source knows them (an unknown
    input is still named in the lineage, by its topic)."""
    have = {item.product.name for item in chosen}
    wanted = sorted({name for item in chosen for name in item.product.inputs} - have)
    found = []
    for name in wanted:
        try:
            found.append(source.product(name))
        except (ProductNotFoundError, SubjectNotFoundError):
            continue
    return found


@click.command()
@product_selection
@click.pass_obj
def openlineage(
    settings: MeshSettings,
    names: tuple[str, ...],
    export_all: bool,
    output: Path | None,
    registry_url: str | None,
) -> None:
    """Write the lineage of products as OpenLineage static lineage: one JobEvent per derived
    product (its processor's job, input and output datasets with schema, documentation,
    ownership and column lineage), as JSON Lines (openlineage.jsonl). Datasets are named
    kafka://<first bootstrap server> and the topic."""
    from mesh_stream.exports.openlineage import static_lineage, to_document

    source = open_source(settings, registry_url)
    chosen = selected(source, names, export_all)
    server = KafkaServer.from_connection(KafkaConnection.from_settings(settings))
    events = static_lineage(chosen, server, known=inputs_of(source, chosen))
    if not events:
        names_shown = [item.product.name for item in chosen]
        which = ", ".join(names_shown) if len(names_shown) <= 5 else f"the {len(names_shown)}"
        raise MeshError(
            f"no lineage to export: none of {which} is built from other products (no inputs); "
            f"name an aggregate product, or see `mesh products lineage`; nothing written"
        )
    write_documents([(FILE_NAME, [to_document(event) for event in events])], output)
