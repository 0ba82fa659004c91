"""``/products/{name}/health`` and ``/product-health``: what the product monitor measured.

Read like every product route (read auth when it is on). An unknown product is 404 with
error code 40404, as on ``/products/{name}``; a registered product never measured answers
200 with status ``no data``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mesh_stream.registry.service.context import ServicesDep
from mesh_stream.registry.service.product_health import MAX_HISTORY_MINUTES
from mesh_stream.registry.service.routes.products import PRODUCT_SEGMENT

router = APIRouter(tags=["product health"], dependencies=[PRODUCT_SEGMENT])


@router.get("/products/{name}/health", summary="A product's latest health, each figure and SLO")
async def product_health(name: str, services: ServicesDep) -> dict[str, Any]:
    return services.health.health(name).model_dump(mode="json")


@router.get(
    "/products/{name}/health/history",
    summary="A product's health of the last N minutes, oldest first",
)
async def product_health_history(
    name: str,
    services: ServicesDep,
    minutes: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_MINUTES, description="How far back, in minutes.")
    ] = 60,
) -> list[dict[str, Any]]:
    return [record.model_dump(mode="json") for record in services.health.history(name, minutes)]


@router.get("/product-health", summary="The latest health of every registered product")
async def all_product_health(services: ServicesDep) -> dict[str, dict[str, Any]]:
    every = services.health.every()
    return {name: record.model_dump(mode="json") for name, record in every.items()}
