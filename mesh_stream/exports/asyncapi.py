"""AsyncAPI 3.0 documents of products: what a generic client generator or catalog needs to
find, decode and trust a product's topic, generated from its descriptor and schema.

One document covers a set of products (the CLI makes one per domain, or one per product):
one server per bootstrap address with the Kafka server binding and the security scheme the
connection uses (never a secret), one channel per topic with its Kafka channel binding
(partitions, replicas, cleanup policy, retention), one ``send`` operation per channel (the
owning domain publishes; the description says how to receive), and one message per product
whose payload is the Avro schema itself (a multi-format schema, so every field ``doc`` and
``"pii": true`` mark travels with it), with its key and the Confluent schema-id binding.
What AsyncAPI has no field for (owner, classification, SLOs, kind, lineage, schema id and
version) travels as ``x-mesh-*`` extensions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mesh_stream.errors import ConfigurationError
from mesh_stream.exports.source import ExportedProduct, KafkaServer

ASYNCAPI_VERSION = "3.0.0"
#: Kafka bindings version (server, channel, operation and message bindings).
BINDING_VERSION = "0.5.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
#: Records are Avro binary in Confluent's framing (magic byte, 4-byte schema id, body).
CONTENT_TYPE = "application/vnd.apache.avro"
#: AsyncAPI's pattern for component (and message) keys.
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9\.\-_]+\Z")

#: An address the ``email`` format of AsyncAPI's validators (ajv-formats, full mode) accepts.
CONTACT_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
    re.IGNORECASE | re.ASCII,
)
_URL_CHAR = r"(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})"
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
#: An http(s) URL with a host name, every character where RFC 3986 allows it: a subset of
#: what the ``uri`` format accepts (braces, ``|`` or a stray ``[`` are not).
CONTACT_URL = re.compile(
    rf"https?://{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::\d{{1,5}})?"
    rf"(?:/{_URL_CHAR}*)*(?:\?(?:{_URL_CHAR}|[/?])*)?(?:#(?:{_URL_CHAR}|[/?])*)?",
    re.IGNORECASE | re.ASCII,
)

#: SASL mechanism -> the AsyncAPI 3.0 security scheme type (also its components key).
SASL_SCHEMES = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramSha256",
    "SCRAM-SHA-512": "scramSha512",
}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def asyncapi_document(
    products: Sequence[ExportedProduct],
    server: KafkaServer | None,
    *,
    title: str,
    version: str = "1.0.0",
    registry_url: str | None = None,
) -> dict[str, Any]:
    """One AsyncAPI 3.0.0 document for ``products`` on ``server`` (no ``servers`` when None).

    ``registry_url``, when given, goes into the Kafka server binding as the Confluent
    schema registry consumers decode with. Raises :class:`ConfigurationError` for no
    products, a product given twice, an empty title or an unknown security protocol.
    """
    if not products:
        raise ConfigurationError("an AsyncAPI document needs at least one product")
    names = [item.product.name for item in products]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(f"products given more than once: {', '.join(twice)}")
    if not title.strip():
        raise ConfigurationError("an AsyncAPI document needs a non-empty title")
    ordered = sorted(products, key=lambda item: item.product.name)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(ordered, title, version),
        "defaultContentType": CONTENT_TYPE,
    }
    components: dict[str, Any] = {}
    if server is not None:
        servers, schemes = _servers(server, registry_url)
        document["servers"] = servers
        if schemes:
            components["securitySchemes"] = schemes
    document["channels"] = {_key(item): _channel(item) for item in ordered}
    document["operations"] = {f"{_key(item)}.send": _operation(item) for item in ordered}
    components["messages"] = {_key(item): _message(item) for item in ordered}
    document["components"] = components
    return document


def product_version(item: ExportedProduct) -> str:
    """A one-product document's ``info.version``: ``<major>.<schema version>.0`` (the topic's
    major version, then the registered schema's version; 0 for a schema not registered)."""
    return f"{item.product.version}.{item.schema_version or 0}.0"


def _key(item: ExportedProduct) -> str:
    """The product's id in the document (channel, message); product names already fit
    AsyncAPI's key pattern, checked anyway so a bad name fails here, not in a consumer."""
    name = item.product.name
    if not COMPONENT_KEY.fullmatch(name):
        raise ConfigurationError(
            f"product name {name!r} does not fit AsyncAPI's key pattern {COMPONENT_KEY.pattern}"
        )
    return name


def _info(products: Sequence[ExportedProduct], title: str, version: str) -> dict[str, Any]:
    domains = sorted({item.product.domain for item in products})
    if len(products) == 1:
        description = products[0].product.description
    else:
        description = (
            f"Data products of the {', '.join(domains)} domain{'s' if len(domains) > 1 else ''}"
            f", generated by mesh-stream from their descriptors and registered schemas."
        )
    info: dict[str, Any] = {"title": title, "version": version, "description": description}
    owners = sorted({(item.product.owner.team, item.product.owner.contact) for item in products})
    info["contact"] = _contact(owners)
    tags = sorted({tag for item in products for tag in item.product.tags})
    if tags:
        info["tags"] = [{"name": tag} for tag in tags]
    return info


def _contact(owners: Sequence[tuple[str, str]]) -> dict[str, str]:
    """AsyncAPI's contact: one owner's team and its email or URL; several owners by name.

    ``email`` and ``url`` are typed (formats ``email`` and ``uri``): a contact the validators
    would refuse there, though the ownership policy let it through, stays in ``name``.
    """
    if len(owners) > 1:
        return {"name": ", ".join(f"{team} ({contact})" for team, contact in owners)}
    team, contact = owners[0]
    if CONTACT_EMAIL.fullmatch(contact):
        return {"name": team, "email": contact}
    if CONTACT_URL.fullmatch(contact):
        return {"name": team, "url": contact}
    return {"name": f"{team} ({contact})"}


def _servers(
    server: KafkaServer, registry_url: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One server per bootstrap address, and the security schemes they reference."""
    protocol = server.security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigurationError(
            f"Kafka security protocol {server.security_protocol!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)} (MESH_KAFKA_SECURITY_PROTOCOL)"
        )
    schemes: dict[str, Any] = {}
    if protocol.startswith("SASL_"):
        mechanism = (server.sasl_mechanism or "PLAIN").upper()
        scheme = SASL_SCHEMES.get(mechanism)
        if scheme is None:
            raise ConfigurationError(
                f"SASL mechanism {server.sasl_mechanism!r} is not one of "
                f"{', '.join(SASL_SCHEMES)} (MESH_KAFKA_SASL_MECHANISM)"
            )
        schemes[scheme] = {
            "type": scheme,
            "description": f"SASL/{mechanism} with the domain's Kafka principal"
            f"{' over TLS' if protocol == 'SASL_SSL' else ''}.",
        }
    elif protocol == "SSL" and server.client_certificate:
        schemes["X509"] = {
            "type": "X509",
            "description": "Mutual TLS: the client's certificate names its Kafka principal.",
        }
    binding: dict[str, Any] = {"bindingVersion": BINDING_VERSION}
    if registry_url:
        binding["schemaRegistryUrl"] = registry_url
        binding["schemaRegistryVendor"] = "confluent"
    hosts = server.hosts
    if not hosts:
        raise ConfigurationError("the Kafka bootstrap servers are empty (MESH_BOOTSTRAP_SERVERS)")
    servers: dict[str, Any] = {}
    for index, host in enumerate(hosts, start=1):
        entry: dict[str, Any] = {
            "host": host,
            "protocol": "kafka" if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") else "kafka-secure",
            "description": f"Kafka bootstrap server ({protocol}).",
        }
        if schemes:
            entry["security"] = [{"$ref": f"#/components/securitySchemes/{s}"} for s in schemes]
        entry["bindings"] = {"kafka": dict(binding)}
        servers["kafka" if len(hosts) == 1 else f"kafka-{index}"] = entry
    return servers, schemes


def _channel(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    key = _key(item)
    binding: dict[str, Any] = {"topic": product.topic, "partitions": product.partitions}
    if product.replication_factor is not None:
        binding["replicas"] = product.replication_factor
    binding["topicConfiguration"] = {
        "cleanup.policy": product.retention.cleanup_policy.value.split(","),
        "retention.ms": product.retention.ms,
    }
    binding["bindingVersion"] = BINDING_VERSION
    channel: dict[str, Any] = {
        "address": product.topic,
        "title": product.name,
        "description": product.description,
        "messages": {key: {"$ref": f"#/components/messages/{key}"}},
    }
    if product.tags:
        channel["tags"] = [{"name": tag} for tag in product.tags]
    channel["bindings"] = {"kafka": binding}
    channel.update(_product_extensions(item))
    return channel


def _product_extensions(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    lineage: dict[str, Any] = {"inputs": list(product.inputs)}
    if item.downstream:
        lineage["downstream"] = list(item.downstream)
    if product.field_lineage:
        lineage["fields"] = {out: list(src) for out, src in product.field_lineage.items()}
    return {
        "x-mesh-product": product.name,
        "x-mesh-owner": {"team": product.owner.team, "contact": product.owner.contact},
        "x-mesh-kind": product.kind.value,
        "x-mesh-classification": product.classification.value,
        "x-mesh-slos": product.slos.model_dump(mode="json", exclude_none=True),
        "x-mesh-lineage": lineage,
    }


def _operation(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    key = _key(item)
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{key}"},
        "title": f"{product.domain} publishes {product.name}",
        "summary": f"The {product.domain} domain ({product.owner.team}) publishes {product.name}.",
        "description": (
            f"Only the {product.domain} domain writes topic `{product.topic}`. To receive it, "
            f"subscribe to `{product.topic}` with a Confluent Avro deserializer reading the "
            f"schema registry (value subject `{product.value_subject}`; the schema id is in "
            f"each record's first bytes), or run `mesh tail {product.name}`; a record that "
            f"cannot be decoded goes to `{product.dlq_topic}`."
        ),
        "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
    }


def _message(item: ExportedProduct) -> dict[str, Any]:
    product = item.product
    binding: dict[str, Any] = {}
    if product.key_field is not None:
        binding["key"] = {
            "type": "string",
            "description": f"The record's `{product.key_field}` field, as a UTF-8 string.",
        }
    binding.update(
        {
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "schemaLookupStrategy": "TopicIdStrategy",
            "bindingVersion": BINDING_VERSION,
        }
    )
    record_name = str(item.schema.get("name", product.name))
    message: dict[str, Any] = {
        "name": record_name,
        "title": product.name,
        "summary": product.description,
        "contentType": CONTENT_TYPE,
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": item.schema},
    }
    if item.schema.get("doc"):
        message["description"] = str(item.schema["doc"])
    if product.tags:
        message["tags"] = [{"name": tag} for tag in product.tags]
    message["bindings"] = {"kafka": binding}
    message["x-mesh-classification"] = product.classification.value
    message["x-mesh-schema-subject"] = product.value_subject
    message["x-mesh-schema-id"] = item.schema_id
    message["x-mesh-schema-version"] = item.schema_version
    if item.compatibility is not None:
        message["x-mesh-compatibility"] = item.compatibility
    return message
