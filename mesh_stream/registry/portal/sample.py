"""The live sample in the portal: a product's newest records as a table, PII masked.

``_sample_section.html`` (included by the product page) loads
``GET /ui/products/{name}/sample`` with htmx when it scrolls into view and again on
"Refresh"; that route answers the rows fragment (``_sample_rows.html``) to htmx and a whole
page to a browser without JavaScript. Records come from the registry's own
:class:`~mesh_stream.registry.service.sample.ProductSampler` with the viewer's principal, so
masking follows the REST API's rule: fields marked PII are shown as ``••• (PII)`` unless the
viewer's domain owns the product (or the viewer is admin). Reading Kafka runs in a worker
thread; a registry without Kafka, a broker that does not answer, or an unknown product is a
message in the page, never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mesh_stream.errors import MeshError
from mesh_stream.registry.portal.access import ViewerDep
from mesh_stream.registry.portal.web import echo, find_product, render
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.routes.products import SentProductName
from mesh_stream.registry.service.sample import (
    DEFAULT_LIMIT,
    MASK,
    MAX_LIMIT,
    Sample,
    SampledRecord,
    no_kafka_error,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

#: The record counts the section offers.
LIMIT_CHOICES = (10, 20, 50, 100)
#: Longest text a cell shows before it is cut (the rest is in the REST answer).
MAX_CELL = 400


@dataclass(frozen=True)
class Cell:
    """One table cell: its text and how to show it (masked, null, json or text)."""

    text: str
    kind: str


@dataclass(frozen=True)
class Row:
    partition: int
    offset: int
    time: str
    key: Cell
    cells: list[Cell]
    error: str | None
    #: a tombstone: its key was deleted
    deleted: bool = False


def parse_limit(raw: str | None) -> int:
    """``?limit=`` as the page takes it: anything but a whole number 1..100 is the default."""
    if raw is None or len(raw) > 4 or not raw.isdigit():
        return DEFAULT_LIMIT
    return max(1, min(int(raw), MAX_LIMIT))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def cell(value: Any) -> Cell:
    """A decoded value as a cell: the mask, null, compact JSON for records/arrays/maps."""
    if isinstance(value, str) and value == MASK:
        return Cell(MASK, "masked")
    if value is None:
        return Cell("null", "null")
    if isinstance(value, (dict, list)):
        return Cell(_cut(json.dumps(value, separators=(",", ":"), ensure_ascii=False)), "json")
    if isinstance(value, bool):
        return Cell("true" if value else "false", "text")
    return Cell(_cut(str(value)), "text")


def time_text(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "—"
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(timestamp_ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


def rows(sample: Sample) -> list[Row]:
    return [_row(record, sample.fields) for record in sample.records]


def _row(record: SampledRecord, fields: list[str]) -> Row:
    value = record.value or {}
    return Row(
        partition=record.partition,
        offset=record.offset,
        time=time_text(record.timestamp_ms),
        key=cell(record.key),
        cells=[cell(value.get(name)) for name in fields] if record.value is not None else [],
        error=record.error,
        deleted=record.deleted,
    )


@router.get("/products/{name}/sample", response_class=HTMLResponse)
async def sample_rows(
    request: Request, name: SentProductName, viewer: ViewerDep, limit: str | None = None
) -> HTMLResponse:
    """The rows fragment to htmx (always 200: htmx swaps only successes, so a problem is a
    message in place of the rows); a whole page otherwise (404 for an unknown product)."""
    services: Services = request.app.state.services
    fragment = bool(request.headers.get("hx-request"))
    context: dict[str, Any] = {
        "standalone": not fragment,
        "name": echo(name),
        "product": None,
        "sample": None,
        "rows": [],
        "problem": None,
        "limit": parse_limit(limit),
        "limit_choices": LIMIT_CHOICES,
    }
    product = find_product(services, name)
    if product is None:
        context["problem"] = f"No product named '{echo(name)}' is registered."
        return render(request, "_sample_rows.html", context, status_code=200 if fragment else 404)
    context["product"] = product
    try:
        if services.samples is None:
            raise no_kafka_error()
        sample = await services.samples.read(product.name, viewer.principal, context["limit"])
    except MeshError as exc:
        context["problem"] = getattr(exc, "message", None) or str(exc)
        return render(request, "_sample_rows.html", context, status_code=200 if fragment else 503)
    context["sample"] = sample
    context["rows"] = rows(sample)
    return render(request, "_sample_rows.html", context)
