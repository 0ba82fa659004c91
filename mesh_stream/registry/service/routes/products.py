"""``/products``: data product descriptors, search, lineage and schema history (mesh API)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Response

from mesh_stream.registry.service.auth import authorize_product
from mesh_stream.registry.service.context import CallerDep, HeavyDep, ServicesDep
from mesh_stream.registry.service.products import validate_descriptor

router = APIRouter(prefix="/products", tags=["products"])

DescriptorBody = Body(
    description="The descriptor document (YAML field names of DataProduct; `schema` is the "
    "path of the .avsc in the repository)."
)


@router.get("", summary="List and search products (all filters must match)")
async def list_products(
    services: ServicesDep,
    domain: str | None = None,
    tag: str | None = None,
    classification: str | None = None,
    kind: str | None = None,
    q: str | None = None,
) -> list[dict[str, Any]]:
    return services.products.search(
        domain=domain, tag=tag, classification=classification, kind=kind, query=q
    )


@router.post("", summary="Create or update a product from its descriptor", status_code=200)
async def post_product(
    services: ServicesDep,
    principal: CallerDep,
    work: HeavyDep,
    document: dict[str, Any] = DescriptorBody,
) -> dict[str, Any]:
    product = validate_descriptor(document)
    who = authorize_product(principal, product.name, "write")
    return await work.run(services.products.put, document, principal=who)


@router.get("/{name}", summary="A product's descriptor and registry facts")
async def get_product(name: str, services: ServicesDep) -> dict[str, Any]:
    found = services.products.describe(name)
    found["registry"]["schema_warnings"] = services.products.schema_warnings(name)
    return found


@router.put("/{name}", summary="Create or update a product; the body's name must match")
async def put_product(
    name: str,
    services: ServicesDep,
    principal: CallerDep,
    work: HeavyDep,
    document: dict[str, Any] = DescriptorBody,
) -> dict[str, Any]:
    who = authorize_product(principal, name, "write")
    return await work.run(services.products.put, document, principal=who, path_name=name)


@router.delete("/{name}", summary="Delete a product nobody is built from", status_code=204)
def delete_product(name: str, services: ServicesDep, principal: CallerDep) -> Response:
    authorize_product(principal, name, "delete")
    services.products.delete(name)
    return Response(status_code=204)


@router.get("/{name}/lineage", summary="Products upstream and/or downstream, recursively")
async def lineage(
    name: str,
    services: ServicesDep,
    direction: Literal["upstream", "downstream", "both"] = "both",
) -> dict[str, Any]:
    return services.products.lineage(name, direction)


@router.get("/{name}/schemas", summary="The product's value schema history, oldest first")
async def schemas(name: str, services: ServicesDep) -> list[dict[str, Any]]:
    return services.products.schema_history(name)
