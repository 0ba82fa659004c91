"""Products as DataHub metadata change proposals (MCPs).

What DataHub's Kafka ingestion cannot see (owners, tags, classification, domains, lineage,
field docs and PII marks) comes from the descriptor and the registered schema:

- each domain is a ``domain`` entity (``urn:li:domain:<domain>``);
- each product's topic is a ``dataset`` (``urn:li:dataset:(urn:li:dataPlatform:kafka,<topic>,
  PROD)``) with ``datasetProperties``, ``schemaMetadata`` (fields, types, docs, a ``pii`` tag
  on each PII field), ``ownership`` (the owner team as a ``corpGroup``), ``globalTags`` (the
  descriptor's tags plus ``classification-<level>``), ``domains``, ``subTypes`` and, for a
  derived product, ``upstreamLineage`` (its inputs, fine-grained from ``field_lineage``);
- each product is also a DataHub Data Product (``urn:li:dataProduct:<name>``) whose
  ``dataProductProperties`` list its dataset.

:func:`proposals` returns them in the JSON form DataHub's file source reads (``aspect:
{json: ...}``); :func:`post_proposals` sends them to a GMS (``/aspects?action=ingestProposal``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from mesh_stream.descriptor import DataProduct, topic_for
from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.exports.source import ExportedProduct
from mesh_stream.schema.names import Scope
from mesh_stream.settings import shown_url

PLATFORM = "urn:li:dataPlatform:kafka"
ENVIRONMENT = "PROD"
PII_TAG = "urn:li:tag:pii"
#: Who the audit stamps name: the file carries no real author.
ACTOR = "urn:li:corpuser:datahub"

__all__ = [
    "dataset_urn",
    "domain_urn",
    "post_proposals",
    "product_urn",
    "proposals",
]


def dataset_urn(topic: str) -> str:
    return f"urn:li:dataset:({PLATFORM},{topic},{ENVIRONMENT})"


def domain_urn(domain: str) -> str:
    return f"urn:li:domain:{domain}"


def product_urn(name: str) -> str:
    return f"urn:li:dataProduct:{name}"


def _field_urn(topic: str, field: str) -> str:
    return f"urn:li:schemaField:({dataset_urn(topic)},{field})"


def _stamp() -> dict[str, Any]:
    return {"time": 0, "actor": ACTOR}


def _mcp(entity_type: str, urn: str, aspect_name: str, aspect: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "entityType": entity_type,
        "entityUrn": urn,
        "changeType": "UPSERT",
        "aspectName": aspect_name,
        "aspect": {"json": dict(aspect)},
    }


# -- schema -------------------------------------------------------------------------------

_PRIMITIVES = {
    "string": "StringType",
    "int": "NumberType",
    "long": "NumberType",
    "float": "NumberType",
    "double": "NumberType",
    "boolean": "BooleanType",
    "bytes": "BytesType",
    "null": "NullType",
}
_LOGICAL = {
    "date": "DateType",
    "time-millis": "TimeType",
    "time-micros": "TimeType",
    "timestamp-millis": "TimeType",
    "timestamp-micros": "TimeType",
    "decimal": "NumberType",
    "uuid": "StringType",
}


@dataclass(frozen=True)
class _Shape:
    """How DataHub shows an Avro type, and the nested record fields listed under it."""

    kind: str
    native: str
    nullable: bool = False
    nested: Sequence[Mapping[str, Any]] = ()
    #: where the nested fields are read (None: nothing nested)
    scope: Scope | None = None
    #: a record used inside itself: named, its fields not listed again
    recursive: bool = False


def _describe(avro: Any, scope: Scope) -> _Shape:
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) == 1:
            return replace(_describe(branches[0], scope), nullable=True)
        return _Shape("UnionType", "union", nullable="null" in avro)
    if isinstance(avro, str):
        found = scope.resolve(avro)
        if found is not None:
            return _describe(*found)
        return _Shape(_PRIMITIVES.get(avro, "RecordType"), avro)
    if isinstance(avro, Mapping):
        logical = avro.get("logicalType")
        if isinstance(logical, str) and logical in _LOGICAL:
            return _Shape(_LOGICAL[logical], logical)
        shape = avro.get("type")
        if shape in ("record", "error"):
            name = str(avro.get("name", "record"))
            inner = scope.enter(avro)
            if inner is None:
                return _Shape("RecordType", name, recursive=True)
            return _Shape("RecordType", name, nested=list(avro["fields"]), scope=inner)
        if shape == "enum":
            return _Shape("EnumType", "enum")
        if shape == "fixed":
            return _Shape("FixedType", "fixed")
        if shape == "array":
            items = _describe(avro.get("items"), scope)
            return replace(items, kind="ArrayType", native=f"array<{items.native}>", nullable=False)
        if shape == "map":
            values = _describe(avro.get("values"), scope)
            return replace(values, kind="MapType", native=f"map<{values.native}>", nullable=False)
        return _describe(shape, scope)
    return _Shape("NullType", "unknown", nullable=True)


def _schema_fields(
    fields: Sequence[Mapping[str, Any]], key_field: str | None, scope: Scope, prefix: str = ""
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in fields:
        path = f"{prefix}{item['name']}"
        shape = _describe(item.get("type"), scope)
        field: dict[str, Any] = {
            "fieldPath": path,
            "nullable": shape.nullable,
            "type": {"type": {f"com.linkedin.schema.{shape.kind}": {}}},
            "nativeDataType": shape.native,
            "recursive": shape.recursive,
            "isPartOfKey": not prefix and path == key_field,
        }
        if item.get("doc"):
            field["description"] = str(item["doc"])
        if item.get("pii") is True:
            field["globalTags"] = {"tags": [{"tag": PII_TAG}]}
        out.append(field)
        if shape.scope is not None:
            out.extend(_schema_fields(shape.nested, key_field, shape.scope, f"{path}."))
    return out


def _schema_metadata(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    return {
        "schemaName": product.topic,
        "platform": PLATFORM,
        "version": item.schema_version or 0,
        "created": _stamp(),
        "lastModified": _stamp(),
        "hash": "",
        "platformSchema": {
            "com.linkedin.schema.KafkaSchema": {
                "documentSchema": json.dumps(item.schema),
                "documentSchemaType": "AVRO",
            }
        },
        "fields": _schema_fields(
            item.schema.get("fields", ()), product.key_field, Scope.of(item.schema)
        ),
    }


# -- aspects of a product -------------------------------------------------------------------


def _properties(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    custom = {
        "product": product.name,
        "kind": product.kind.value,
        "classification": product.classification.value,
        "owner.contact": product.owner.contact,
        "partitions": str(product.partitions),
        "retention.ms": str(product.retention.ms),
        "cleanup.policy": product.retention.cleanup_policy.value,
        "slo.freshness_seconds": str(product.slos.freshness_seconds),
        "slo.availability": str(product.slos.availability),
    }
    if item.schema_id is not None:
        custom["schema.id"] = str(item.schema_id)
        custom["schema.version"] = str(item.schema_version)
    if item.compatibility:
        custom["compatibility"] = item.compatibility
    return {
        "name": product.topic,
        "qualifiedName": product.name,
        "description": product.description,
        "customProperties": custom,
        "tags": [],
    }


def _tags(product: DataProduct) -> dict[str, Any]:
    names = [*product.tags, f"classification-{product.classification.value}"]
    return {"tags": [{"tag": f"urn:li:tag:{name}"} for name in dict.fromkeys(names)]}


def _ownership(product: DataProduct) -> dict[str, Any]:
    return {
        "owners": [{"owner": f"urn:li:corpGroup:{product.owner.team}", "type": "TECHNICAL_OWNER"}],
        "lastModified": _stamp(),
    }


def _upstream_lineage(product: DataProduct, topics: Mapping[str, str]) -> dict[str, Any]:
    def topic(name: str) -> str:
        return topics.get(name, topic_for(name))

    aspect: dict[str, Any] = {
        "upstreams": [
            {"auditStamp": _stamp(), "dataset": dataset_urn(topic(name)), "type": "TRANSFORMED"}
            for name in product.inputs
        ]
    }
    if product.field_lineage:
        aspect["fineGrainedLineages"] = [
            {
                "upstreamType": "FIELD_SET",
                "upstreams": [
                    _field_urn(topic(source.partition(":")[0]), source.partition(":")[2])
                    for source in sources
                ],
                "downstreamType": "FIELD",
                "downstreams": [_field_urn(product.topic, output)],
                "confidenceScore": 1.0,
            }
            for output, sources in product.field_lineage.items()
        ]
    return aspect


def _product_proposals(item: ExportedProduct, topics: Mapping[str, str]) -> list[dict[str, Any]]:
    product = item.product
    dataset = dataset_urn(product.topic)
    aspects: list[tuple[str, dict[str, Any]]] = [
        ("datasetProperties", _properties(item)),
        ("subTypes", {"typeNames": ["Topic"]}),
        ("schemaMetadata", _schema_metadata(item)),
        ("ownership", _ownership(product)),
        ("globalTags", _tags(product)),
        ("domains", {"domains": [domain_urn(product.domain)]}),
    ]
    if product.inputs:
        aspects.append(("upstreamLineage", _upstream_lineage(product, topics)))
    out = [_mcp("dataset", dataset, name, aspect) for name, aspect in aspects]
    data_product = product_urn(product.name)
    out += [
        _mcp(
            "dataProduct",
            data_product,
            "dataProductProperties",
            {
                "name": product.name,
                "description": product.description,
                "assets": [{"destinationUrn": dataset, "created": _stamp()}],
                "customProperties": {"kind": product.kind.value},
            },
        ),
        _mcp("dataProduct", data_product, "domains", {"domains": [domain_urn(product.domain)]}),
        _mcp("dataProduct", data_product, "ownership", _ownership(product)),
        _mcp("dataProduct", data_product, "globalTags", _tags(product)),
    ]
    return out


def proposals(products: Iterable[ExportedProduct]) -> list[dict[str, Any]]:
    """Every MCP of ``products``: their domains first, then each product's dataset and Data
    Product (inputs outside ``products`` are named by their v1 topic)."""
    chosen = list(products)
    topics = {item.product.name: item.product.topic for item in chosen}
    domains = sorted({item.product.domain for item in chosen})
    out = [
        _mcp(
            "domain",
            domain_urn(domain),
            "domainProperties",
            {"name": domain, "description": f"The {domain} domain of the data mesh."},
        )
        for domain in domains
    ]
    for item in chosen:
        out += _product_proposals(item, topics)
    return out


# -- sending to GMS ---------------------------------------------------------------------------


def _ingest_body(mcp: Mapping[str, Any]) -> dict[str, Any]:
    """The Rest.li body of ``/aspects?action=ingestProposal``: the aspect as a JSON string."""
    return {
        "proposal": {
            "entityType": mcp["entityType"],
            "entityUrn": mcp["entityUrn"],
            "changeType": mcp["changeType"],
            "aspectName": mcp["aspectName"],
            "aspect": {
                "value": json.dumps(mcp["aspect"]["json"]),
                "contentType": "application/json",
            },
        }
    }


def gms_url_problem(gms_url: str) -> str | None:
    """Why ``gms_url`` cannot be a DataHub GMS address (None when it can): it must be an
    http(s) URL naming a host; a password in it is never repeated by the caller."""
    try:
        parts = urlsplit(gms_url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        return f"is not a usable URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host (e.g. http://localhost:8080)"
    if parts.query or parts.fragment:
        # the API path is appended to the URL: a query would swallow it (h42)
        return (
            "has a query or fragment; give the GMS base URL (its token goes in MESH_DATAHUB_TOKEN)"
        )
    return None


def _token_problem(token: str) -> str | None:
    """What in ``token`` an HTTP header cannot carry, in words that do not repeat it."""
    if not token.isascii():
        return "a character that is not ASCII"
    if any(not char.isprintable() or char.isspace() for char in token):
        return "a blank or a control character"
    return None


def post_proposals(
    mcps: Sequence[Mapping[str, Any]],
    gms_url: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """POST each MCP to the GMS at ``gms_url``; the number sent. A refusal is an error naming
    the entity and aspect and GMS's status (the token is never part of it)."""
    problem = gms_url_problem(gms_url)
    if problem is not None:
        raise ConfigurationError(f"--gms-url {shown_url(gms_url)!r} {problem}")
    headers = {"X-RestLi-Protocol-Version": "2.0.0", "Content-Type": "application/json"}
    if token:
        unusable = _token_problem(token)
        if unusable is not None:  # h51: httpx's refusal quoted the header, token and all
            raise ConfigurationError(
                f"MESH_DATAHUB_TOKEN holds {unusable} (not shown), which an HTTP header "
                f"cannot carry; a DataHub access token is printable ASCII text"
            )
        headers["Authorization"] = f"Bearer {token}"
    endpoint = gms_url.rstrip("/") + "/aspects?action=ingestProposal"
    shown = shown_url(gms_url)  # a password in the URL is never repeated
    with httpx.Client(headers=headers, timeout=timeout, transport=transport) as client:
        for mcp in mcps:
            where = f"{mcp['entityUrn']} {mcp['aspectName']}"
            try:
                response = client.post(endpoint, json=_ingest_body(mcp))
            except httpx.HTTPError as exc:
                raise MeshError(
                    f"DataHub GMS at {shown} unreachable while sending {where}: {exc}"
                ) from exc
            if response.status_code >= 400:
                raise MeshError(
                    f"DataHub GMS at {shown} refused {where}: HTTP {response.status_code} "
                    f"{_gms_said(response, token=token is not None)}"
                )
    return len(mcps)


def _gms_said(response: httpx.Response, *, token: bool) -> str:
    """GMS's own message in one line, or what answered instead (an HTML error page printed
    whole buried the status; a campaign); a refused credential names the token setting."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    try:
        body = response.json()
    except ValueError:
        body = None
    said = ""
    if isinstance(body, dict):
        said = str(body.get("message") or body.get("exceptionClass") or json.dumps(body))
    elif body is not None:
        said = json.dumps(body)
    said = " ".join(said.split())[:300]
    # a message that repeats the status the caller already says ("HTTP 404 HTTP 404 ...", h51)
    said = said.removeprefix(f"HTTP {response.status_code}").lstrip(" :")
    if response.status_code in (401, 403):
        fix = (
            "check that MESH_DATAHUB_TOKEN is a valid DataHub access token allowed to ingest"
            if token
            else "set MESH_DATAHUB_TOKEN to a DataHub access token (metadata service "
            "authentication is on)"
        )
        return f"{said + '; ' if said else ''}{fix}"
    if said:
        return said
    return (
        f"with {kind}, not a DataHub GMS answer; is --gms-url the GMS (its REST API, port "
        f"8080 by default), not the DataHub frontend?"
    )
