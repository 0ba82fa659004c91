"""One descriptor, every standard: AsyncAPI 3, ODCS v3, OpenLineage and DataHub documents
generated from a product's descriptor and its registered schema (never hand-kept copies).

:mod:`.source` gathers what every exporter reads (:class:`ExportedProduct`, from the registry
or, for a product not registered yet, the project's own ``.avsc``); one module per standard
turns it into that standard's document. The CLI (``mesh export``) and the registry's
``/products/{name}/asyncapi|odcs`` endpoints both call these functions.
"""

from mesh_stream.exports.source import (
    ExportedProduct,
    KafkaServer,
    RegistrySource,
    local_product,
)

__all__ = ["ExportedProduct", "KafkaServer", "RegistrySource", "local_product"]
