"""``/products``: data product descriptors, search, lineage and schema history (mesh API).

Routing reads the percent-decoded path, so ``GET /products/X%2Fschemas`` would reach X's
schema history. Every route taking a product name (these, and those of ``exports``,
``product_health``, ``sample`` and ``consumers``) therefore depends on
:func:`check_product_segment`: a name the client sent other than routing read it (a ``/``
in it, sent as ``%2F``) is 422 (42210) naming it, as subject, principal and consumer-group
segments are refused with their own codes. Any other name that is no registered product,
malformed or not, stays the 404 (40404) of every ``/products/{name}`` route. The portal's
product pages look up :func:`sent_product_name` too, so such a name is their "not found".
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response

from mesh_stream.descriptor import Classification, ProductKind, product_name_problem
from mesh_stream.errors import InvalidProductError, InvalidRequestError
from mesh_stream.registry.service.auth import authorize_product
from mesh_stream.registry.service.context import CallerDep, HeavyDep, ServicesDep
from mesh_stream.registry.service.products import validate_descriptor
from mesh_stream.registry.service.routes.segments import sent_segment
from mesh_stream.settings import quoted_name


def sent_product_name(request: Request) -> str:
    """The route's ``{name}`` as the client sent it: the raw path segment after
    ``products``, percent-decoded once.

    Routing splits the decoded path, so for ``/products/X%2Fschemas`` it finds ``X``; this
    is ``X/schemas``. A separator hidden before that segment (``/products%2FX``) gives the
    piece that hid it. Without a raw path (a server that sends none), the routed name.
    """
    return sent_segment(request, "name", "products")


SentProductName = Annotated[str, Depends(sent_product_name)]


def check_product_segment(request: Request) -> None:
    """422 (42210) when a route's ``{name}`` is not the product segment the client sent
    (:func:`sent_product_name`), which then holds a ``/`` or percent-encoding and so is no
    product name (:func:`~mesh_stream.descriptor.product_name_problem` says why). Routes
    without ``{name}`` pass."""
    routed = request.path_params.get("name")
    if routed is None:
        return
    sent = sent_product_name(request)
    if sent == routed:
        return
    what = (
        "holds a '/' (sent as %2F), which is never read as a path separator"
        if "/" in sent
        else "is not a product name"
    )
    problem = product_name_problem(sent) or f"routing read it as {quoted_name(str(routed))}"
    raise InvalidProductError(
        f"the product segment of the URL path {what}: {problem}", status=422, error_code=42210
    )


#: The dependency of every router whose routes take a product name.
PRODUCT_SEGMENT = Depends(check_product_segment)

router = APIRouter(prefix="/products", tags=["products"], dependencies=[PRODUCT_SEGMENT])

DescriptorBody = Body(
    description="The descriptor document (YAML field names of DataProduct; `schema` is the "
    "path of the .avsc in the repository)."
)


CheckBody = Body(
    description='{"descriptor": <the descriptor document>, "schema": <the value schema as '
    "JSON text, optional: the subject's latest is judged without it>}"
)


_FILTERS = ("domain", "tag", "classification", "kind", "q")


@router.get("", summary="List and search products (all filters must match)")
async def list_products(
    services: ServicesDep,
    request: Request,
    domain: str | None = None,
    tag: str | None = None,
    classification: Classification | None = None,
    kind: ProductKind | None = None,
    q: str | None = None,
) -> list[dict[str, Any]]:
    # A repeated filter kept its last value only, and an unknown classification or kind
    # matched nothing, both without a word (a campaign): refused, naming the filter. So is
    # a filter this search does not have (?owner=, ?limit=): it answered every product.
    unknown = sorted({name for name in request.query_params if name not in _FILTERS})
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter(s) {', '.join(f'?{n}=' for n in unknown)}: products are "
            f"searched by {', '.join(f'?{n}=' for n in _FILTERS)} (every one given must "
            f"match), and every match is answered (no paging)",
            status=400,
            error_code=40001,
        )
    for name in _FILTERS:
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise InvalidRequestError(
                f"?{name}= is given {len(given)} times; every filter must match, so give each "
                f"once (one {name} per request)",
                status=400,
                error_code=40001,
            )
    return services.products.search(
        domain=domain,
        tag=tag,
        classification=classification.value if classification is not None else None,
        kind=kind.value if kind is not None else None,
        query=q,
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


@router.post(
    "/{name}/check",
    summary="What a PUT of this descriptor would meet: lineage and governance, nothing stored",
)
async def check_product(
    name: str,
    services: ServicesDep,
    work: HeavyDep,
    body: dict[str, Any] = CheckBody,
) -> dict[str, Any]:
    document = body.get("descriptor")
    schema = body.get("schema")
    if not isinstance(document, dict) or not (schema is None or isinstance(schema, str)):
        raise InvalidProductError(
            'the body must be {"descriptor": {...}, "schema": "<Avro schema JSON text>"} '
            "(schema optional: the subject's latest is judged without it)",
            status=422,
            error_code=42214,
        )
    if schema is None:
        problems = await work.run(services.products.check, document, path_name=name)
    else:  # the schema limits a registration meets (h52: 1,000 nested arrays were a 500);
        # a partial, since run_on_schema's own first argument is called schema too
        checked = partial(services.products.check, document, path_name=name, schema=schema)
        problems = await work.run_on_schema(schema, checked)
    return {"problems": [problem.to_dict() for problem in problems]}


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


@router.get(
    "/{name}/schemas",
    summary="The product's value schema history, each major in turn, oldest first",
)
async def schemas(name: str, services: ServicesDep) -> list[dict[str, Any]]:
    return services.products.schema_history(name)
