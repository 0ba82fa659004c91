"""``/products/{name}/asyncapi`` and ``/products/{name}/odcs``: a product's AsyncAPI 3.0
document and ODCS v3 contract, generated on request from the registry's own state.

The registry builds the :class:`~mesh_stream.exports.ExportedProduct` itself (the catalog's
descriptor, the subject's latest live version with its contract, the effective
compatibility level, the products built from it), so these answers always match what
consumers decode. JSON by default; ``?format=yaml`` answers YAML (``application/yaml``).
An unknown product is 404 (40404, as every ``/products/{name}`` route); a product with no
live schema version is 404 (40401, its subject).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Query, Request, Response

from mesh_stream.descriptor import DataProduct
from mesh_stream.errors import SubjectNotFoundError
from mesh_stream.exports.asyncapi import asyncapi_document, product_version
from mesh_stream.exports.odcs import odcs_contract
from mesh_stream.exports.source import ExportedProduct, KafkaServer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service.context import Services, ServicesDep
from mesh_stream.registry.service.routes.products import PRODUCT_SEGMENT

router = APIRouter(tags=["products"], dependencies=[PRODUCT_SEGMENT])

Format = Annotated[
    Literal["json", "yaml"],
    Query(alias="format", description="`json` (default) or `yaml` (application/yaml)."),
]
YAML_MEDIA_TYPE = "application/yaml"


def exported_product(services: Services, name: str) -> ExportedProduct:
    """``name`` as exporters see it, from this registry's state (404 when unknown)."""
    document = services.products.describe(name)  # ProductNotFoundError: 404 40404
    facts = document.pop("registry")
    product = DataProduct.model_validate(document)
    live = services.schemas.live_versions(product.value_subject)
    if not live:
        raise SubjectNotFoundError(
            f"product '{name}' has no registered schema under subject "
            f"'{product.value_subject}'; register it (`mesh products register`) to export it"
        )
    latest = live[-1]
    return ExportedProduct(
        product=product,
        schema=json.loads(latest.schema),
        schema_id=latest.schema_id,
        schema_version=latest.version,
        compatibility=services.schemas.effective_level(product.value_subject).value,
        downstream=tuple(facts.get("downstream", ())),
        metadata=latest.contract.metadata or None,
        rule_set=latest.contract.rule_set or None,
    )


def kafka_server(services: Services) -> KafkaServer | None:
    """The cluster this registry keeps its log on, when it runs on Kafka (else None)."""
    connection = getattr(services.schemas.store, "connection", None)
    if isinstance(connection, KafkaConnection):
        return KafkaServer.from_connection(connection)
    return None


def answer(document: dict[str, Any], output: str) -> Any:
    """``document`` as JSON (the API's content type) or as YAML."""
    if output == "yaml":
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return Response(text, media_type=YAML_MEDIA_TYPE)
    return document


@router.get("/products/{name}/asyncapi", summary="The product's AsyncAPI 3.0 document")
async def product_asyncapi(
    name: str, request: Request, services: ServicesDep, output: Format = "json"
) -> Any:
    item = exported_product(services, name)
    document = asyncapi_document(
        [item],
        kafka_server(services),
        title=item.product.name,
        version=product_version(item),
        registry_url=str(request.base_url).rstrip("/"),
    )
    return answer(document, output)


@router.get("/products/{name}/odcs", summary="The product's ODCS v3 data contract")
async def product_odcs(name: str, services: ServicesDep, output: Format = "json") -> Any:
    item = exported_product(services, name)
    return answer(odcs_contract(item, kafka_server(services)), output)
