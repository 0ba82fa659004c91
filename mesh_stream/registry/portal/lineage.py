"""The lineage graph: where a product's data comes from and where it goes, down to fields.

One JSON document (:func:`lineage_graph`) feeds both the drawn graph and its text
equivalent: every product upstream and downstream of the one in focus, with its domain,
kind, classification, health and whether it holds PII, and every edge with the field-level
lineage the downstream descriptor declares (``field_lineage``) and whether PII flows along it.
``static/lineage.js`` draws it with the vendored cytoscape, left to right by depth (inputs
left, outputs right), from the ``data-graph`` attribute of ``_lineage_section.html`` or from
``GET /ui/api/products/{name}/lineage``. The section is included by the product page; the
same section has a page of its own at ``GET /ui/products/{name}/lineage``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mesh_stream.descriptor import Classification, DataProduct
from mesh_stream.errors import MeshError
from mesh_stream.health import Status
from mesh_stream.registry.portal.access import ViewerDep
from mesh_stream.registry.portal.web import TEMPLATES, echo, find_product, render
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.routes.products import SentProductName
from mesh_stream.registry.service.sample import pii_field_paths

router = APIRouter(prefix="/ui", include_in_schema=False)

#: CSS class of each health status's badge (portal.css).
HEALTH_CLASS = {
    Status.OK: "ok",
    Status.DEGRADED: "warning",
    Status.BREACHED: "breached",
    Status.NO_DATA: "unknown",
}


def _pii_within(marked: list[str], path: str) -> list[str]:
    """The PII-marked paths that travel with field ``path``: itself, a parent or a child."""
    return [m for m in marked if m == path or path.startswith(f"{m}.") or m.startswith(f"{path}.")]


def _node(services: Services, product: DataProduct, role: str, level: int) -> dict[str, Any]:
    latest = services.products.latest_schema(product.value_subject)
    marked = sorted(pii_field_paths(latest)) if latest is not None else []
    try:
        status = services.health.health(product.name).status
    except MeshError:
        status = Status.NO_DATA
    return {
        "id": product.name,
        "domain": product.domain,
        "kind": product.kind.value,
        "classification": product.classification.value,
        "health": status.value,
        "health_css": HEALTH_CLASS[status],
        "pii": product.classification is Classification.PII or bool(marked),
        "pii_fields": marked,
        "role": role,
        "level": level,
        "url": f"/ui/products/{product.name}",
    }


def _levels(focus: str, edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each product's column: minus the longest path to ``focus`` upstream, plus the longest
    path from it downstream (an input of an input stands left of the input)."""
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    for source, target in edges:
        inputs.setdefault(target, []).append(source)
        outputs.setdefault(source, []).append(target)

    def spread(start: str, step: dict[str, list[str]], sign: int) -> dict[str, int]:
        depth = {start: 0}
        frontier = [start]
        for _round in range(len(edges) + 1):  # a DAG settles within as many rounds as edges
            following: list[str] = []
            for current in frontier:
                for other in step.get(current, []):
                    if other != focus and depth.get(other, -1) < depth[current] + 1:
                        depth[other] = depth[current] + 1
                        following.append(other)
            if not following:
                break
            frontier = following
        return {name: sign * d for name, d in depth.items()}

    levels = spread(focus, inputs, -1)
    levels.update({k: v for k, v in spread(focus, outputs, 1).items() if k not in levels})
    return levels


def lineage_graph(services: Services, product: DataProduct) -> dict[str, Any]:
    """The lineage of ``product`` as the graph and its tables draw it (see the module)."""
    found = services.products.lineage(product.name)
    pairs = [(edge["from"], edge["to"]) for edge in found["edges"]]
    levels = _levels(product.name, pairs)
    roles = dict.fromkeys(found["upstream"], "upstream")
    roles.update(dict.fromkeys(found["downstream"], "downstream"))
    roles[product.name] = "focus"
    descriptors: dict[str, DataProduct] = {product.name: product}
    for name in roles:
        if name not in descriptors and (other := services.products.get_product(name)):
            descriptors[name] = other
    nodes = [
        _node(services, descriptors[name], roles[name], levels.get(name, 0))
        for name in sorted(roles, key=lambda n: (levels.get(n, 0), n))
        if name in descriptors
    ]
    pii_of = {node["id"]: node["pii_fields"] for node in nodes}
    holds_pii = {node["id"]: node["pii"] for node in nodes}
    edges = []
    field_rows = []
    for source, target in sorted(pairs):
        downstream = descriptors.get(target)
        if downstream is None or source not in descriptors:
            continue
        fields = []
        for output, inputs in sorted(downstream.field_lineage.items()):
            for item in inputs:
                from_product, _, from_field = item.partition(":")
                if from_product != source:
                    continue
                pii = _pii_within(pii_of.get(source, []), from_field)
                if descriptors[source].classification is Classification.PII and not pii_of.get(
                    source
                ):
                    pii = [from_field]  # a pii product marking no field: any may be personal
                fields.append({"output": output, "input": from_field, "pii": bool(pii)})
                field_rows.append(
                    {
                        "product": target,
                        "output": output,
                        "input_product": source,
                        "input": from_field,
                        "pii": bool(pii),
                        "pii_fields": pii,
                    }
                )
        label = ", ".join(sorted({str(f["output"]) for f in fields}))
        edges.append(
            {
                "id": f"{source}->{target}",
                "source": source,
                "target": target,
                "fields": fields,
                "label": label if len(label) <= 60 else label[:59] + "…",
                "pii": any(f["pii"] for f in fields),
                # no field lineage declared for this input: everything it holds may flow
                "pii_undeclared": not fields and holds_pii.get(source, False),
            }
        )
    return {
        "product": product.name,
        "nodes": nodes,
        "edges": edges,
        "field_lineage": field_rows,
    }


@dataclass(frozen=True)
class LineageView:
    """What ``_lineage_section.html`` shows: the graph document and its text equivalent."""

    product: str
    graph: dict[str, Any]

    @property
    def json(self) -> str:
        return json.dumps(self.graph, separators=(",", ":"), ensure_ascii=False)

    def _with_role(self, role: str) -> list[dict[str, Any]]:
        nodes = [n for n in self.graph["nodes"] if n["role"] == role]
        return sorted(nodes, key=lambda n: (abs(n["level"]), n["id"]))

    @property
    def upstream(self) -> list[dict[str, Any]]:
        return self._with_role("upstream")

    @property
    def downstream(self) -> list[dict[str, Any]]:
        return self._with_role("downstream")

    @property
    def focus(self) -> dict[str, Any] | None:
        return next((n for n in self.graph["nodes"] if n["role"] == "focus"), None)

    @property
    def field_lineage(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.graph["field_lineage"]
        return sorted(
            rows,
            key=lambda r: (r["product"] != self.product, r["product"], r["output"], r["input"]),
        )

    @property
    def pii_edges(self) -> list[dict[str, Any]]:
        return [e for e in self.graph["edges"] if e["pii"] or e["pii_undeclared"]]

    @property
    def summary(self) -> str:
        up, down = len(self.upstream), len(self.downstream)
        return (
            f"Lineage graph of {self.product}: {up} upstream and {down} downstream "
            f"product{'s' if down != 1 else ''}; the lists beside it link the same products"
        )


def lineage_view(request: Request, product: DataProduct | Mapping[str, Any] | str) -> LineageView:
    """The section's view of ``product`` (a descriptor, its document or its name); a
    Jinja global, so the product page's template includes the section with its own context."""
    services: Services = request.app.state.services
    if isinstance(product, DataProduct):
        found: DataProduct | None = product
    else:
        name = product if isinstance(product, str) else str(product.get("name", ""))
        found = find_product(services, name)
    if found is None:
        return LineageView(
            str(product), {"product": "", "nodes": [], "edges": [], "field_lineage": []}
        )
    try:
        return LineageView(found.name, lineage_graph(services, found))
    except MeshError:  # removed between two reads
        return LineageView(
            found.name, {"product": found.name, "nodes": [], "edges": [], "field_lineage": []}
        )


TEMPLATES.env.globals["lineage_view"] = lineage_view


@router.get("/products/{name}/lineage", response_class=HTMLResponse)
async def lineage_page(
    request: Request,
    name: SentProductName,
    viewer: ViewerDep,  # noqa: ARG001 - read auth
) -> HTMLResponse:
    services: Services = request.app.state.services
    product = find_product(services, name)
    if product is None:
        return render(
            request,
            "lineage.html",
            {"product": None, "name": echo(name)},
            status_code=404,
        )
    return render(request, "lineage.html", {"product": product, "name": product.name})


@router.get("/api/products/{name}/lineage")
async def lineage_document(
    request: Request,
    name: SentProductName,
    viewer: ViewerDep,  # noqa: ARG001 - read auth
) -> JSONResponse:
    services: Services = request.app.state.services
    product = find_product(services, name)
    if product is None:
        return JSONResponse(
            {"error": f"No product named '{echo(name)}' is registered."}, status_code=404
        )
    return JSONResponse(lineage_graph(services, product))
