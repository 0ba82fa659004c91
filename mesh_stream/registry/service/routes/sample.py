"""``/products/{name}/sample``: the product's newest records, decoded, PII masked.

Read like every product route (read auth when it is on); the caller's principal decides the
masking: fields marked ``"pii": true`` come back as ``"••• (PII)"`` (and are listed under
``masked``) unless the caller owns the product's domain or is admin. An unknown product is
404 (40404); a registry without Kafka, or a broker that does not answer, 503 (50302).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mesh_stream.registry.service.context import CallerDep, ServicesDep
from mesh_stream.registry.service.routes.products import PRODUCT_SEGMENT
from mesh_stream.registry.service.sample import DEFAULT_LIMIT, MAX_LIMIT, no_kafka_error

router = APIRouter(tags=["products"], dependencies=[PRODUCT_SEGMENT])


@router.get(
    "/products/{name}/sample",
    summary="A product's newest records, decoded, PII masked unless the caller owns it",
)
async def product_sample(
    name: str,
    services: ServicesDep,
    principal: CallerDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="How many records, newest first.")
    ] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    services.products.describe(name)  # 404 before anything else
    if services.samples is None:
        raise no_kafka_error()
    sample = await services.samples.read(name, principal, limit)
    return sample.to_document()
