"""The product page: everything a would-be consumer asks before trusting a product.

``GET /ui/products/{name}`` shows the descriptor (owner, kind, classification, lineage
links, registered consumer groups), each SLO next to what the product monitor last observed
(with a freshness and volume chart of the last hours drawn as inline SVG, see
:mod:`.charts`), the registered schema as a field table and its version history with a
field-wise diff between any two versions (:mod:`.schema_view`), the topic and its config,
copy-ready consumer code, and the data-quality rules. ``GET /ui/products/{name}/diff`` answers
the diff alone to htmx, or the whole page without JavaScript. Everything comes from the
registry's in-process services; an unknown product is a friendly 404 page.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from mesh_stream.descriptor import PRODUCT_NAME, DataProduct, ProductKind
from mesh_stream.errors import MeshError, ProductNotFoundError
from mesh_stream.health import Figure, FigureName, ProductHealth, Status
from mesh_stream.registry.portal.access import Viewer, ViewerDep
from mesh_stream.registry.portal.charts import LineChart, line_chart, time_label
from mesh_stream.registry.portal.schema_view import (
    DiffLine,
    SchemaDiff,
    diff_fields,
    json_line_diff,
    schema_fields,
)
from mesh_stream.registry.portal.search import record_time
from mesh_stream.registry.portal.web import echo, find_product, render
from mesh_stream.registry.service.context import Services
from mesh_stream.registry.service.routes.products import SentProductName
from mesh_stream.registry.service.schemas import SchemaVersion

router = APIRouter(prefix="/ui", include_in_schema=False)

#: How far back the freshness and volume charts look.
CHART_HOURS = 6
#: The most characters of a user-given name or parameter a page repeats back.
#: CSS class of each status's badge (portal.css).
STATUS_CLASS = {
    Status.OK: "ok",
    Status.DEGRADED: "degraded",
    Status.BREACHED: "breached",
    Status.NO_DATA: "unknown",
}
NOT_OBSERVED = "not observed yet"
EMAIL = re.compile(r"[^@\s:/?#]+@[^@\s:/?#]+\.[^@\s:/?#]+")


# -- SLOs and what the monitor observed ------------------------------------------------------


@dataclass(frozen=True)
class SloRow:
    """One SLO of the descriptor beside the monitor's figure for it."""

    slo: str
    target: str
    observed: str
    #: the figure's status, or "" when there is nothing observed to judge
    status: str
    css: str
    detail: str


def seconds_text(value: float) -> str:
    """``value`` seconds in the unit a reader takes in at a glance; an absurd figure (a lag
    of 1e308 s written to the health topic) in three significant digits, not 300 (h54)."""
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    hours = value / 3600
    return f"{hours:.1f} h" if hours < 100_000 else f"{hours:.3g} h"


def _ratio_text(value: float) -> str:
    return f"{value * 100:.3g} %"


def _per_minute_text(value: float) -> str:
    return f"{value:g} / min"


def _figures(health: ProductHealth | None, name: FigureName) -> list[Figure]:
    if health is None:
        return []
    return [f for f in health.figures if f.name == name]


def _row(
    slo: str,
    target: str,
    figure: Figure | None,
    fmt: Callable[[float], str],
    *,
    stale: bool,
    subject: str | None = None,
) -> SloRow:
    label = f"{slo} ({subject})" if subject else slo
    if figure is None:
        return SloRow(label, target, NOT_OBSERVED, "", "unknown", "")
    observed = NOT_OBSERVED if figure.value is None else fmt(figure.value)
    status = Status.NO_DATA if stale else figure.status
    if stale and figure.value is not None:
        observed += " (last measured, now stale)"
    return SloRow(label, target, observed, status.value, STATUS_CLASS[status], figure.reason)


def slo_rows(product: DataProduct, health: ProductHealth | None) -> list[SloRow]:
    """Each SLO of ``product`` with the monitor's figure for it (see :mod:`mesh_stream.health`
    for which figure an SLO judges); "not observed yet" without one. Availability is a
    promise the monitor does not measure."""
    slos = product.slos
    stale = health is not None and health.status is Status.NO_DATA and bool(health.figures)

    def whole(name: FigureName) -> Figure | None:
        return next((f for f in _figures(health, name) if f.subject is None), None)

    rows = [
        _row(
            "Freshness",
            f"≤ {slos.freshness_seconds:g} s",
            whole(FigureName.FRESHNESS_SECONDS),
            seconds_text,
            stale=stale,
        )
    ]
    if product.kind is not ProductKind.SOURCE_ALIGNED and product.inputs:
        rows.append(
            _row(
                "End-to-end latency",
                f"≤ {slos.freshness_seconds:g} s",
                whole(FigureName.END_TO_END_SECONDS),
                seconds_text,
                stale=stale,
            )
        )
    rows.append(
        SloRow(
            "Availability",
            f"≥ {slos.availability:g} %",
            "not measured by the monitor",
            "",
            "unknown",
            "a promise of the owning team",
        )
    )
    if slos.min_records_per_minute is not None:
        rows.append(
            _row(
                "Volume",
                f"≥ {slos.min_records_per_minute:g} records / min",
                whole(FigureName.RECORDS_PER_MINUTE),
                _per_minute_text,
                stale=stale,
            )
        )
    if slos.max_dlq_ratio is not None:
        rows.append(
            _row(
                "Dead-letter ratio",
                f"≤ {_ratio_text(slos.max_dlq_ratio)}",
                whole(FigureName.DLQ_RATIO),
                _ratio_text,
                stale=stale,
            )
        )
    if slos.max_lag_seconds is not None:
        target = f"≤ {slos.max_lag_seconds:g} s"
        lags = _figures(health, FigureName.LAG_SECONDS)
        rows.extend(
            _row("Consumer lag", target, lag, seconds_text, stale=stale, subject=lag.subject)
            for lag in lags
        )
        if not lags:
            rows.append(_row("Consumer lag", target, None, seconds_text, stale=stale))
    return rows


@dataclass(frozen=True)
class Series:
    """One chart of the page, with its text alternative."""

    key: str
    title: str
    unit: str
    chart: LineChart
    #: (time label, value text) per measurement, for the table beside the chart
    table: tuple[tuple[str, str], ...]
    summary: str


def history_series(
    history: Sequence[ProductHealth],
    figure: FigureName,
    *,
    start_ms: int,
    end_ms: int,
) -> list[tuple[int, float | None]]:
    """The product-wide ``figure`` of each measurement, oldest first."""
    found = []
    for health in history:
        value = next(
            (f.value for f in health.figures if f.name == figure and f.subject is None), None
        )
        found.append((health.measured_at_ms, value))
    return [(at, v) for at, v in found if start_ms <= at <= end_ms]


def chart_series(
    product: DataProduct, history: Sequence[ProductHealth], *, end_ms: int
) -> list[Series]:
    """The freshness and volume charts of the last :data:`CHART_HOURS` hours (a chart only
    when the history holds that figure)."""
    start_ms = end_ms - CHART_HOURS * 3_600_000
    wanted = (
        (
            "freshness",
            "Freshness",
            "seconds",
            FigureName.FRESHNESS_SECONDS,
            product.slos.freshness_seconds,
            seconds_text,
        ),
        (
            "volume",
            "Volume",
            "records per minute",
            FigureName.RECORDS_PER_MINUTE,
            product.slos.min_records_per_minute,
            _per_minute_text,
        ),
    )
    charts = []
    for key, title, unit, figure, bound, fmt in wanted:
        points = history_series(history, figure, start_ms=start_ms, end_ms=end_ms)
        known = [v for _, v in points if v is not None]
        if not known:
            continue
        chart = line_chart(points, start_ms=start_ms, end_ms=end_ms, bound=bound)
        summary = (
            f"{title} over the last {CHART_HOURS} hours: {len(known)} measurements, "
            f"lowest {fmt(min(known))}, highest {fmt(max(known))}, latest {fmt(known[-1])}"
        )
        if bound is not None:
            summary += f"; SLO bound {fmt(bound)}"
        table = tuple((time_label(at), "no value" if v is None else fmt(v)) for at, v in points)
        charts.append(Series(key, title, unit, chart, table, summary))
    return charts


# -- versions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    version: int
    schema_id: int
    fields: int
    rules: int


def version_rows(versions: Sequence[SchemaVersion]) -> list[VersionRow]:
    rows = []
    for item in versions:
        rule_set = item.contract.rule_set or {}
        rules = sum(len(v) for v in rule_set.values() if isinstance(v, list))
        rows.append(
            VersionRow(item.version, item.schema_id, len(schema_fields(_schema_of(item))), rules)
        )
    return rows


def _schema_of(version: SchemaVersion) -> Any:
    try:
        return json.loads(version.schema)
    except ValueError:
        return None


@dataclass(frozen=True)
class CompatibilityInfo:
    level: str
    #: "subject" (set on the product's value subject) or "global" (the registry's default)
    scope: str
    #: the level evolution must also meet because others read the product, when stricter
    protected: str | None
    readers: int


def compatibility_info(
    services: Services, product: DataProduct, downstream: Sequence[str], groups: int
) -> CompatibilityInfo:
    subject = product.value_subject
    schemas = services.schemas
    level = schemas.effective_level(subject).value
    scope = "subject" if subject in schemas.state.configs else "global"
    readers = len(downstream) + groups
    required = product.required_compatibility(has_consumers=readers > 0).value
    return CompatibilityInfo(level, scope, required if required != level else None, readers)


# -- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffView:
    """What ``_diff.html`` shows: a message, or the two versions' differences."""

    error: str | None = None
    old: int | None = None
    new: int | None = None
    fields: SchemaDiff | None = None
    lines: tuple[DiffLine, ...] = ()


def _version_number(raw: str | None, which: str, known: Sequence[int]) -> int | str:
    """The live version ``raw`` names, or a message saying what is wrong with it."""
    listed = ", ".join(str(v) for v in known)
    if raw is None or not raw.strip():
        return f"Choose a '{which}' version (one of {listed})."
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return f"'{which}' must be a version number (one of {listed}), not '{echo(text)}'."
    number = int(text)
    if number not in known:
        return f"Version {number} ('{which}') is not a live version; choose one of {listed}."
    return number


def diff_view(
    versions: Sequence[SchemaVersion], raw_from: str | None, raw_to: str | None
) -> DiffView:
    """The diff between the versions ``raw_from`` and ``raw_to`` name (query text as given)."""
    by_number = {v.version: v for v in versions}
    known = sorted(by_number)
    if len(known) < 2:
        return DiffView(error="Only one version is registered: there is nothing to compare.")
    old = _version_number(raw_from, "from", known)
    new = _version_number(raw_to, "to", known)
    if isinstance(old, str) or isinstance(new, str):
        return DiffView(error=" ".join(f for f in (old, new) if isinstance(f, str)))
    before, after = _schema_of(by_number[old]), _schema_of(by_number[new])
    lines = json_line_diff(before, after, old_label=f"version {old}", new_label=f"version {new}")
    return DiffView(None, old, new, diff_fields(before, after), tuple(lines))


# -- how to consume --------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    id: str
    title: str
    language: str
    code: str
    note: str


def _group_prefix(viewer: Viewer | None) -> str:
    """The viewer's domain for a group id (groups are named ``<domain>.…``), else a stand-in."""
    principal = viewer.principal if viewer is not None else None
    if principal and principal != "admin" and PRODUCT_NAME.match(f"{principal}.x"):
        return principal
    return "my-domain"


def _py(text: str) -> str:
    """``text`` as a Python string literal in double quotes (what ``ruff format`` writes)."""
    return json.dumps(text)


def consume_snippets(
    product: DataProduct,
    *,
    registry_url: str,
    bootstrap_servers: str,
    group_prefix: str,
    read_requires_auth: bool,
) -> list[Snippet]:
    """Copy-ready code reading ``product``: the mesh SDK, confluent-kafka, ``mesh tail``.

    Every value is written as a Python string literal (:func:`_py`) or a shell word
    (``shlex.quote``), so whatever a URL holds, the code stays what it says.
    """
    group = f"{group_prefix}.{product.name.replace('.', '-')}-reader"
    auth_sdk = (
        "# The registry wants a credential: MESH_REGISTRY_PRINCIPAL and MESH_REGISTRY_TOKEN.\n"
        if read_requires_auth
        else ""
    )
    sdk = (
        "from mesh_stream import MeshSettings, ProductConsumer\n"
        "\n"
        "# Kafka from MESH_BOOTSTRAP_SERVERS (and MESH_KAFKA_* for TLS/SASL).\n"
        f"{auth_sdk}"
        f"settings = MeshSettings(registry_url={_py(registry_url)})\n"
        "with ProductConsumer(\n"
        f"    [{_py(product.name)}],\n"
        f"    group_id={_py(group)},\n"
        "    settings=settings,\n"
        "    from_beginning=True,\n"
        ") as consumer:\n"
        "    while True:\n"
        "        for record in consumer.consume(max_records=500, timeout=1.0):\n"
        "            print(record.key, record.value)\n"
        "        consumer.commit()  # after processing: at-least-once\n"
    )
    registry_config = f'{{"url": {_py(registry_url)}}}'
    if read_requires_auth:
        registry_config = (
            f'{{\n    "url": {_py(registry_url)},\n'
            '    "basic.auth.user.info": "<domain>:<token>",  # your registry credential\n}'
        )
    confluent = (
        "# pip install 'confluent-kafka[avro,schemaregistry]'\n"
        "from confluent_kafka import Consumer\n"
        "from confluent_kafka.schema_registry import SchemaRegistryClient\n"
        "from confluent_kafka.schema_registry.avro import AvroDeserializer\n"
        "from confluent_kafka.serialization import MessageField, SerializationContext\n"
        "\n"
        f"registry = SchemaRegistryClient({registry_config})\n"
        "deserialize = AvroDeserializer(registry)\n"
        "consumer = Consumer(\n"
        "    {\n"
        f'        "bootstrap.servers": {_py(bootstrap_servers)},\n'
        f'        "group.id": {_py(group)},\n'
        '        "auto.offset.reset": "earliest",\n'
        "    }\n"
        ")\n"
        f"consumer.subscribe([{_py(product.topic)}])\n"
        "try:\n"
        "    while True:\n"
        "        message = consumer.poll(1.0)\n"
        "        if message is None or message.error():\n"
        "            continue\n"
        "        context = SerializationContext(message.topic(), MessageField.VALUE)\n"
        "        key = message.key().decode() if message.key() is not None else None\n"
        "        print(key, deserialize(message.value(), context))\n"
        "finally:\n"
        "    consumer.close()\n"
    )
    tail = (
        f"MESH_REGISTRY_URL={shlex.quote(registry_url)} "
        f"mesh tail {shlex.quote(product.name)} --from-beginning --max 10"
    )
    return [
        Snippet(
            "snippet-sdk",
            "mesh SDK",
            "python",
            sdk,
            "Decodes with the writer schema of each record; poison pills go to the "
            f"dead-letter topic {product.dlq_topic}.",
        ),
        Snippet(
            "snippet-confluent",
            "confluent-kafka",
            "python",
            confluent,
            "Any Confluent client reads mesh topics: Confluent framing, subject "
            f"{product.value_subject}.",
        ),
        Snippet(
            "snippet-tail",
            "mesh tail",
            "shell",
            tail,
            "Prints decoded records; add --json for one JSON object per line.",
        ),
    ]


# -- the page --------------------------------------------------------------------------------


def retention_text(ms: int) -> str:
    if ms < 0:
        return "forever"
    for size, unit in ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute")):
        if ms >= size and ms % size == 0:
            count = ms // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{ms} ms"


def email_of(contact: str) -> str | None:
    """``contact`` when it is an email address (a ``mailto:`` link), else None (a channel)."""
    return contact if EMAIL.fullmatch(contact) else None


def _bootstrap_servers(services: Services) -> str:
    found = getattr(services.schemas.store, "bootstrap_servers", None)
    return found if isinstance(found, str) and found else "127.0.0.1:9092"


def _registry_url(request: Request) -> str:
    """``MESH_REGISTRY_PUBLIC_URL`` when set: the address readers are meant to use, whatever
    Host header the page was asked with (behind a proxy, or forged); else the address the
    page was asked at. (The advertised URL is an instance's own, for its peers: not this.)"""
    public: str | None = request.app.state.portal.public_url
    return public or str(request.base_url).rstrip("/")


def _rule_sets(version: SchemaVersion | None) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The registered version's ruleSet lists (domainRules, migrationRules, ...) with rules."""
    rule_set = version.contract.rule_set if version is not None else None
    if not rule_set:
        return []
    return [
        (kind, [r for r in rules if isinstance(r, Mapping)])
        for kind, rules in rule_set.items()
        if isinstance(rules, list) and rules
    ]


def page_context(
    request: Request,
    services: Services,
    product: DataProduct,
    viewer: Viewer | None,
) -> dict[str, Any]:
    """Everything ``product.html`` shows about ``product``."""
    described = services.products.describe(product.name)
    registry = described["registry"]
    versions = services.schemas.live_versions(product.value_subject)
    latest = versions[-1] if versions else None
    schema = _schema_of(latest) if latest is not None else None
    downstream: list[str] = list(registry.get("downstream") or [])
    consumers: list[dict[str, Any]] = list(registry.get("consumers") or [])
    try:
        health: ProductHealth | None = services.health.health(product.name)
        now = services.health.book.now_ms()
        history = services.health.history(product.name, CHART_HOURS * 60)
    except MeshError:  # the product went away between two reads
        health, now, history = None, 0, []
    observed = health is not None and bool(health.figures)
    metadata = latest.contract.metadata if latest is not None else None
    return {
        "product": product,
        "registry": registry,
        "downstream": downstream,
        "consumers": consumers,
        "health": health if observed else None,
        "health_css": STATUS_CLASS[health.status] if health is not None else "unknown",
        # dated like the cards' times: a stale measurement may be from another day
        "health_at": record_time(health.measured_at_ms) if observed and health else None,
        "slos": slo_rows(product, health if observed else None),
        "charts": chart_series(product, history, end_ms=now) if history else [],
        "chart_hours": CHART_HOURS,
        "latest": latest,
        "fields": schema_fields(schema) if schema is not None else [],
        "schema_is_record": isinstance(schema, Mapping) and schema.get("type") == "record",
        "schema_json": json.dumps(schema, indent=2, ensure_ascii=False) if schema else "",
        "contact_email": email_of(product.owner.contact),
        "versions": version_rows(versions),
        "compatibility": compatibility_info(services, product, downstream, len(consumers)),
        "default_from": versions[-2].version if len(versions) > 1 else None,
        "default_to": latest.version if latest is not None else None,
        "diff": None,
        "rule_sets": _rule_sets(latest),
        "metadata": metadata or {},
        "metadata_json": json.dumps(metadata, indent=2, sort_keys=True) if metadata else "",
        "retention": retention_text(product.retention.ms),
        "snippets": consume_snippets(
            product,
            registry_url=_registry_url(request),
            bootstrap_servers=_bootstrap_servers(services),
            group_prefix=_group_prefix(viewer),
            read_requires_auth=services.read_requires_auth,
        ),
    }


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def not_found(request: Request, name: str) -> HTMLResponse:
    return render(
        request,
        "not_found.html",
        {
            "title": "Product not found",
            "message": f"No product named '{echo(name)}' is registered.",
            "query": echo(name),
        },
        status_code=404,
    )


def _swaps_fragment(request: Request) -> bool:
    """An htmx request for the diff alone (a history restore wants the whole page)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and (
        headers.get("hx-history-restore-request") != "true"
    )


@router.get("/products/{name}", response_class=HTMLResponse)
def product_page(request: Request, name: SentProductName, viewer: ViewerDep) -> HTMLResponse:
    services = _services(request)
    product = find_product(services, name)
    if product is None:
        return not_found(request, name)
    try:
        context = page_context(request, services, product, viewer)
    except ProductNotFoundError:  # deleted since the lookup
        return not_found(request, name)
    return render(request, "product.html", context)


@router.get("/products/{name}/diff", response_class=HTMLResponse)
def product_diff(
    request: Request,
    name: SentProductName,
    viewer: ViewerDep,
    raw_from: Annotated[str | None, Query(alias="from")] = None,
    raw_to: Annotated[str | None, Query(alias="to")] = None,
) -> HTMLResponse:
    """The diff fragment to htmx (always 200: htmx swaps only successes, and a bad choice is
    a message to show); without htmx the whole page, 400 for a bad choice. A plain ``def``,
    as is the product page: a wide schema's diff and page are CPU work, kept off the event
    loop (h54: one anonymous diff held every request, liveness included, for 8 s)."""
    services = _services(request)
    product = find_product(services, name)
    if product is None:
        return not_found(request, name)
    versions = services.schemas.live_versions(product.value_subject)
    diff = diff_view(versions, raw_from, raw_to)
    if _swaps_fragment(request):
        return render(request, "_diff.html", {"product": product, "diff": diff})
    try:
        context = page_context(request, services, product, viewer)
    except ProductNotFoundError:
        return not_found(request, name)
    context["diff"] = diff
    if diff.old is not None:
        context["default_from"], context["default_to"] = diff.old, diff.new
    return render(
        request, "product.html", context, status_code=400 if diff.error is not None else 200
    )
