"""A product as an Open Data Contract Standard (ODCS) v3 contract.

Contract tooling (datacontract-cli, catalogs that read ODCS) gets what the descriptor and the
registered schema say: the Avro record as one schema object whose properties carry every
field's doc, nullability and PII mark, the descriptor's CEL rules as ``quality`` checks, its
SLOs as ``slaProperties`` with units, the owner as ``team``/``support`` and the topic as a
Kafka server. What ODCS has no slot for (kind, lineage, registry facts) goes into
``customProperties`` under the vendor ``mesh-stream``.

Avro to ODCS, field by field: ``logicalType`` is ODCS's portable type, ``physicalType`` the
Avro type it is written as, and ``customProperties`` keep the Avro details a reader needs to
decode (``avroLogicalType``, ``precision``/``scale``, ``avroDefault``) under the names
datacontract-cli's own Avro import and export use, and what it has no name for: former names
(``avroAliases`` of a field or the record, ``avroTypeAliases`` of a nested named type) and a
field's sort ``avroOrder``. A union of ``null`` and one type is that type, not required; any
other union is an object with one optional property per branch (named like the branch, as
Avro's JSON encoding writes a union value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mesh_stream.descriptor import (
    Classification,
    CleanupPolicy,
    DataProduct,
    QualityRule,
    RuleFailure,
)
from mesh_stream.exports.source import ExportedProduct, KafkaServer
from mesh_stream.schema.names import MAX_UNFOLDED, NAMED_KINDS, NamedTypes, full_name

#: the newest ODCS v3 the published JSON Schema (open-data-contract-standard 3.2.0) accepts
API_VERSION = "v3.2.0"
VENDOR = "mesh-stream"
#: how a field marked ``"pii": true`` in the .avsc is classified, whatever the product's level
PII_CLASSIFICATION = "restricted"
PII_TAG = "pii"

_PRIMITIVES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "string": ("string", {}),
    "int": ("integer", {"format": "i32"}),
    "long": ("integer", {"format": "i64"}),
    "float": ("number", {"format": "f32"}),
    "double": ("number", {"format": "f64"}),
    "boolean": ("boolean", {}),
    "bytes": ("string", {"format": "binary"}),
    "null": (None, {}),
}
#: Avro logical type -> ODCS logical type and its options (None: keep the base type's)
_LOGICAL: dict[str, tuple[str, dict[str, Any]]] = {
    "uuid": ("string", {"format": "uuid"}),
    "decimal": ("number", {}),
    "date": ("date", {}),
    "time-millis": ("time", {}),
    "time-micros": ("time", {}),
    "timestamp-millis": ("timestamp", {"timezone": True}),
    "timestamp-micros": ("timestamp", {"timezone": True}),
    "timestamp-nanos": ("timestamp", {"timezone": True}),
    "local-timestamp-millis": ("timestamp", {"timezone": False}),
    "local-timestamp-micros": ("timestamp", {"timezone": False}),
    "local-timestamp-nanos": ("timestamp", {"timezone": False}),
}


def custom(property_name: str, value: Any, description: str | None = None) -> dict[str, Any]:
    """One ODCS custom property (``vendor: mesh-stream``)."""
    item: dict[str, Any] = {"property": property_name, "value": value}
    if description:
        item["description"] = description
    item["vendor"] = VENDOR
    return item


def contract_version(product: ExportedProduct) -> str:
    """``<schema version>.0.0`` of the registered schema; ``0.0.0`` before registration."""
    return f"{product.schema_version}.0.0" if product.schema_version is not None else "0.0.0"


def odcs_contract(product: ExportedProduct, server: KafkaServer | None) -> dict[str, Any]:
    """The ODCS v3 contract of ``product``; ``server`` adds the Kafka cluster as its server."""
    descriptor = product.product
    contract: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": descriptor.name,
        "name": descriptor.name,
        "version": contract_version(product),
        "status": "active" if product.registered else "draft",
        "domain": descriptor.domain,
        "dataProduct": descriptor.name,
        "description": _description(descriptor),
        "tags": list(descriptor.tags),
        "schema": [_schema_object(product)],
        "slaProperties": _sla_properties(descriptor),
        "team": {
            "name": descriptor.owner.team,
            "members": [{"username": descriptor.owner.contact, "role": "owner"}],
        },
        "support": [_support(descriptor.owner.contact)],
    }
    if server is not None:
        contract["servers"] = [_server(descriptor, server)]
    contract["customProperties"] = _contract_properties(product)
    return contract


def _description(descriptor: DataProduct) -> dict[str, Any]:
    usage = (
        f"Read Kafka topic {descriptor.topic}: Avro values in the Confluent wire format "
        f"(schema subject {descriptor.value_subject})"
        + (f", keyed by {descriptor.key_field}" if descriptor.key_field else "")
        + f"; records that fail decoding or a rule go to {descriptor.dlq_topic}."
    )
    description: dict[str, Any] = {"purpose": descriptor.description, "usage": usage}
    if descriptor.classification is Classification.PII:
        readers = ", ".join((descriptor.domain, *descriptor.readers))
        description["limitations"] = f"Personal data: only these domains may read it: {readers}."
    return description


def _support(contact: str) -> dict[str, Any]:
    if "@" in contact and "://" not in contact:
        return {"channel": contact, "tool": "email", "url": f"mailto:{contact}"}
    if "://" in contact:
        return {"channel": contact, "url": contact}
    return {"channel": contact}


def _server(descriptor: DataProduct, server: KafkaServer) -> dict[str, Any]:
    properties = [
        custom("topic", descriptor.topic),
        custom("deadLetterTopic", descriptor.dlq_topic),
        custom("securityProtocol", server.security_protocol),
    ]
    if server.sasl_mechanism is not None:
        properties.append(custom("saslMechanism", server.sasl_mechanism))
    return {
        "server": "kafka",
        "type": "kafka",
        "description": f"The Kafka cluster; the product is topic {descriptor.topic}.",
        "host": ",".join(server.hosts),
        "format": "avro",
        "customProperties": properties,
    }


# -- schema --------------------------------------------------------------------------------


def _schema_object(product: ExportedProduct) -> dict[str, Any]:
    descriptor = product.product
    schema = product.schema
    names = NamedTypes(schema)
    properties = [
        _field_property(field, descriptor, names, parents=(full_name(schema, None),))
        for field in schema.get("fields", [])
    ]
    obj: dict[str, Any] = {
        "name": str(schema.get("name", descriptor.name)),
        "physicalName": descriptor.topic,
        "physicalType": "topic",
        "businessName": descriptor.name,
        "description": str(schema.get("doc") or descriptor.description),
        "logicalType": "object",
        "properties": properties,
    }
    quality = [_quality(rule) for rule in descriptor.rules]
    quality += _registered_only_rules(product, {rule.name for rule in descriptor.rules})
    if quality:
        obj["quality"] = quality
    obj_custom = [custom("avroType", "record"), custom("valueSubject", descriptor.value_subject)]
    if schema.get("namespace"):
        obj_custom.append(custom("namespace", schema["namespace"]))
    if schema.get("aliases"):
        obj_custom.append(custom("avroAliases", list(schema["aliases"])))
    obj["customProperties"] = obj_custom
    return obj


def _is_pii(field: Mapping[str, Any]) -> bool:
    return field.get("pii") is True


def _field_property(
    field: Mapping[str, Any],
    descriptor: DataProduct,
    names: NamedTypes,
    parents: tuple[str, ...],
    path: str = "",
) -> dict[str, Any]:
    name = str(field["name"])
    dotted = f"{path}.{name}" if path else name
    prop: dict[str, Any] = {"name": name}
    if field.get("doc"):
        prop["description"] = str(field["doc"])
    type_part, required = _type_part(field.get("type"), descriptor, names, parents, dotted)
    prop.update(type_part)
    prop["required"] = required
    if _is_pii(field):
        prop["classification"] = PII_CLASSIFICATION
        prop["tags"] = [PII_TAG]
    else:
        prop["classification"] = descriptor.classification.value
    if not path and name == descriptor.key_field:
        prop["partitioned"] = True
        prop["partitionKeyPosition"] = 1
        if descriptor.retention.cleanup_policy is not CleanupPolicy.DELETE:
            prop["primaryKey"] = True
            prop["primaryKeyPosition"] = 1
    sources = descriptor.field_lineage.get(dotted, ())
    if sources:
        prop["transformSourceObjects"] = sorted({source.partition(":")[0] for source in sources})
        prop["transformDescription"] = "Computed from " + ", ".join(sources) + "."
    extra = list(prop.pop("customProperties", []))
    if "default" in field:
        extra.append(custom("avroDefault", _default_value(field["default"])))
    if field.get("aliases"):
        extra.append(custom("avroAliases", list(field["aliases"])))
    if "order" in field:
        extra.append(custom("avroOrder", field["order"]))
    if sources:
        extra.append(custom("fieldLineage", list(sources)))
    if extra:
        prop["customProperties"] = extra
    return prop


def _default_value(default: Any) -> Any:
    """A field's Avro default as datacontract-cli reads ``avroDefault``: null and text as
    they are, anything else as its JSON text (``0``, ``true``, ``[]``)."""
    if default is None or isinstance(default, str):
        return default
    return json.dumps(default)


def _type_part(
    avro: Any,
    descriptor: DataProduct,
    names: NamedTypes,
    parents: tuple[str, ...],
    path: str,
) -> tuple[dict[str, Any], bool]:
    """The ODCS type keys of an Avro type, and whether a value is always present."""
    namespace = parents[-1].rpartition(".")[0] or None if parents else None
    part: dict[str, Any]
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null" and not (_is_mapping_of(b, "null"))]
        nullable = len(branches) < len(avro)
        if len(branches) == 1:
            part, _ = _type_part(branches[0], descriptor, names, parents, path)
            return part, not nullable
        return _union(branches, descriptor, names, parents, path), not nullable
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _primitive(avro, {}), avro != "null"
        named = names.resolve(avro, namespace)
        if named is None:
            return {"physicalType": avro}, True
        if full_name(named, namespace) in parents or names.unfolded >= MAX_UNFOLDED:
            # a recursive record, or one document's worth unfolded: name it, do not unfold it
            return {
                "logicalType": "object",
                "physicalType": "record",
                "customProperties": [custom("avroRecord", full_name(named, namespace))],
            }, True
        names.unfolded += 1
        return _type_part(named, descriptor, names, parents, path)
    if not isinstance(avro, Mapping):
        return {"physicalType": str(avro)}, True
    kind = avro.get("type")
    if isinstance(kind, (list, Mapping)):
        return _type_part(kind, descriptor, names, parents, path)
    if kind in ("record", "error"):
        full = full_name(avro, namespace)
        props = [
            _field_property(f, descriptor, names, (*parents, full), path)
            for f in avro.get("fields", [])
        ]
        part = {"logicalType": "object", "physicalType": "record"}
        if props:
            part["properties"] = props
        part["customProperties"] = _named_custom(avro, full)
        return part, True
    if kind == "enum":
        part = {
            "logicalType": "string",
            "physicalType": "enum",
            "enum": [{"value": str(symbol)} for symbol in avro.get("symbols", [])],
            "customProperties": _named_custom(avro, full_name(avro, namespace)),
        }
        return part, True
    if kind == "array":
        items, _ = _type_part(avro.get("items"), descriptor, names, parents, path)
        return {"logicalType": "array", "physicalType": "array", "items": items}, True
    if kind == "map":
        value, _ = _type_part(avro.get("values"), descriptor, names, parents, path)
        return {
            "logicalType": "map",
            "physicalType": "map",
            "map": {"key": {"logicalType": "string", "physicalType": "string"}, "value": value},
        }, True
    if kind == "fixed":
        part = _primitive("fixed", avro)
        part.setdefault("customProperties", []).extend(
            [*_named_custom(avro, full_name(avro, namespace)), custom("size", avro.get("size"))]
        )
        return part, True
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return _primitive(kind, avro), kind != "null"
    return {"physicalType": str(kind)}, True


def _is_mapping_of(avro: Any, kind: str) -> bool:
    return isinstance(avro, Mapping) and avro.get("type") == kind


def _primitive(kind: str, avro: Mapping[str, Any]) -> dict[str, Any]:
    logical_name = avro.get("logicalType")
    base = _PRIMITIVES.get(kind, ("string", {"format": "binary"}))
    logical, options = _LOGICAL.get(logical_name, base) if logical_name else base
    part: dict[str, Any] = {"physicalType": kind}
    if logical is not None:
        part["logicalType"] = logical
    if options:
        part["logicalTypeOptions"] = dict(options)
    extra: list[dict[str, Any]] = []
    if logical_name:
        extra.append(custom("avroLogicalType", logical_name))
    for key in ("precision", "scale"):
        if key in avro:
            extra.append(custom(key, avro[key]))
    if extra:
        part["customProperties"] = extra
    return part


def _named_custom(avro: Mapping[str, Any], full_name: str) -> list[dict[str, Any]]:
    items = [custom("avroName", full_name)]
    if avro.get("doc"):
        items.append(custom("avroDoc", str(avro["doc"])))
    if avro.get("aliases"):
        items.append(custom("avroTypeAliases", list(avro["aliases"])))
    return items


def _union(
    branches: Sequence[Any],
    descriptor: DataProduct,
    names: NamedTypes,
    parents: tuple[str, ...],
    path: str,
) -> dict[str, Any]:
    namespace = parents[-1].rpartition(".")[0] or None if parents else None
    props = []
    for branch in branches:
        label = _branch_label(branch, names, namespace)
        part, _ = _type_part(branch, descriptor, names, parents, f"{path}.{label}")
        props.append({"name": label, **part, "required": False})
    return {
        "logicalType": "object",
        "physicalType": "union",
        "properties": props,
        "customProperties": [
            custom("avroUnion", [p["name"] for p in props], "exactly one branch holds the value")
        ],
    }


def _branch_label(branch: Any, names: NamedTypes, namespace: str | None) -> str:
    """How Avro's JSON encoding names a union branch: the type's (full) name."""
    if isinstance(branch, str):
        named = None if branch in _PRIMITIVES else names.resolve(branch, namespace)
        return full_name(named, namespace) if named is not None else branch
    if isinstance(branch, Mapping):
        if isinstance(branch.get("type"), str) and branch.get("type") in NAMED_KINDS:
            return full_name(branch, namespace)
        return str(branch.get("type"))
    return str(branch)


# -- quality and SLAs -----------------------------------------------------------------------


def _quality(rule: QualityRule) -> dict[str, Any]:
    check: dict[str, Any] = {
        "name": rule.name,
        "type": "custom",
        "engine": "cel",
        "implementation": rule.expr,
        "severity": "error",
    }
    if rule.doc:
        check["description"] = rule.doc
    action = (
        "the record goes to the dead-letter topic; the rest of the batch goes on"
        if rule.on_failure is RuleFailure.DLQ
        else "the publish is refused"
    )
    check["customProperties"] = [
        custom("onFailure", rule.on_failure.value, f"when the expression is false: {action}"),
        custom("mode", "WRITE", "checked by the publisher before a record reaches Kafka"),
    ]
    return check


def _registered_only_rules(product: ExportedProduct, known: set[str]) -> list[dict[str, Any]]:
    """CEL conditions of the registered ``ruleSet`` the descriptor does not declare (a rule
    registered with the schema by another client still binds every publisher)."""
    checks = []
    for rule in (product.rule_set or {}).get("domainRules") or ():
        if not isinstance(rule, Mapping) or rule.get("disabled"):
            continue
        name, expr = str(rule.get("name", "")), rule.get("expr")
        kind = (str(rule.get("type", "")).upper(), str(rule.get("kind", "")).upper())
        if name in known or kind != ("CEL", "CONDITION") or not isinstance(expr, str):
            continue
        check: dict[str, Any] = {
            "name": name,
            "type": "custom",
            "engine": "cel",
            "implementation": expr,
            "severity": "error",
        }
        if rule.get("doc"):
            check["description"] = str(rule["doc"])
        check["customProperties"] = [
            custom("onFailure", str(rule.get("onFailure") or "ERROR")),
            custom("mode", str(rule.get("mode") or "WRITE")),
            custom("source", "registry", "declared in the registered schema's ruleSet only"),
        ]
        checks.append(check)
    return checks


def _sla_properties(descriptor: DataProduct) -> list[dict[str, Any]]:
    slos = descriptor.slos
    items: list[dict[str, Any]] = [
        {
            "property": "latency",
            "value": slos.freshness_seconds,
            "unit": "s",
            "description": "Most time from a record's event time to its availability on "
            "the topic (freshness).",
        },
        {
            "property": "availability",
            "value": slos.availability,
            "unit": "%",
            "description": "Share of time the topic is available to read.",
        },
    ]
    retention = descriptor.retention
    items.append(
        {
            "property": "retention",
            "value": retention.ms if retention.ms >= 0 else "unlimited",
            **({"unit": "ms"} if retention.ms >= 0 else {}),
            "description": f"How long records stay on the topic (cleanup.policy "
            f"{retention.cleanup_policy.value}).",
        }
    )
    if slos.min_records_per_minute is not None:
        items.append(
            {
                "property": "volume",
                "value": slos.min_records_per_minute,
                "unit": "records/min",
                "description": "Fewest records a minute the topic should carry.",
            }
        )
    if slos.max_dlq_ratio is not None:
        items.append(
            {
                "property": "dlqRatio",
                "value": slos.max_dlq_ratio,
                "unit": "ratio",
                "description": "Most dead letters per record read, over a minute "
                f"(dead-letter topic {descriptor.dlq_topic}).",
            }
        )
    if slos.max_lag_seconds is not None:
        items.append(
            {
                "property": "consumerLag",
                "value": slos.max_lag_seconds,
                "unit": "s",
                "description": "Longest a registered consumer group or downstream processor "
                "may lag behind the newest record.",
            }
        )
    return items


def _contract_properties(product: ExportedProduct) -> list[dict[str, Any]]:
    descriptor = product.product
    items = [
        custom("kind", descriptor.kind.value, "source-aligned, aggregate or consumer-aligned"),
        custom("classification", descriptor.classification.value),
        custom("topic", descriptor.topic),
        custom("valueSubject", descriptor.value_subject),
        custom("partitions", descriptor.partitions),
        custom("cleanupPolicy", descriptor.retention.cleanup_policy.value),
        custom("inputs", list(descriptor.inputs), "products this one is built from (lineage)"),
        custom("downstream", list(product.downstream), "products built from this one"),
    ]
    if descriptor.key_field:
        items.append(custom("keyField", descriptor.key_field))
    if descriptor.replication_factor is not None:
        items.append(custom("replicationFactor", descriptor.replication_factor))
    if descriptor.readers:
        items.append(custom("readers", list(descriptor.readers)))
    if product.schema_id is not None:
        items.append(custom("schemaId", product.schema_id))
        items.append(custom("schemaVersion", product.schema_version))
    compatibility = product.compatibility or descriptor.compatibility_level.value
    items.append(custom("compatibility", compatibility))
    if descriptor.compatibility_reason:
        items.append(custom("compatibilityReason", descriptor.compatibility_reason))
    if product.metadata:
        items.append(custom("confluentMetadata", dict(product.metadata)))
    return items
