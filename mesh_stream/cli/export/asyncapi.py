"""`mesh export asyncapi`: AsyncAPI 3.0 documents of products, one per domain (or per product
with ``--per-product``), the Kafka server and its security scheme from the settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from mesh_stream.cli.export.common import (
    open_source,
    product_selection,
    render,
    selected,
    write_documents,
)
from mesh_stream.exports.asyncapi import asyncapi_document, product_version
from mesh_stream.exports.source import ExportedProduct, KafkaServer
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.settings import MeshSettings


@click.command()
@product_selection
@click.option(
    "--per-product",
    is_flag=True,
    help="One document per product (asyncapi-<product>.yaml) instead of one per domain "
    "(asyncapi-<domain>.yaml).",
)
@click.option("--json", "as_json", is_flag=True, help="Write JSON (.json files) instead of YAML.")
@click.pass_obj
def asyncapi(
    settings: MeshSettings,
    names: tuple[str, ...],
    export_all: bool,
    output: Path | None,
    registry_url: str | None,
    per_product: bool,
    as_json: bool,
) -> None:
    """Write products as AsyncAPI 3.0 documents: the Kafka server (security scheme from
    MESH_KAFKA_SECURITY_PROTOCOL / MESH_KAFKA_SASL_MECHANISM, never a secret), one channel
    per topic with its Kafka bindings, a `send` operation by the owning domain, and a message
    whose payload is the registered Avro schema (every field doc and PII mark kept), its key
    and the Confluent schema-id binding; owner, classification, SLOs and lineage as x-mesh-*
    extensions. Validate with tools/asyncapi/validate.mjs (`make asyncapi-tools`)."""
    source = open_source(settings, registry_url)
    products = selected(source, names, export_all)
    server = KafkaServer.from_connection(KafkaConnection.from_settings(settings))
    schema_registry = public_url(registry_url or settings.registry_url)
    suffix = "json" if as_json else "yaml"
    documents: list[tuple[str, dict[str, Any]]] = []
    for file_stem, group, title, version in groups(products, per_product=per_product):
        document = asyncapi_document(
            group, server, title=title, version=version, registry_url=schema_registry
        )
        documents.append((f"asyncapi-{file_stem}.{suffix}", document))
    if output is None and (len(documents) > 1 or as_json):  # JSON: a line per document
        write_stream(documents, as_json=as_json)
        return
    write_documents(documents, output, as_json=as_json)


def groups(
    products: Sequence[ExportedProduct], *, per_product: bool
) -> list[tuple[str, list[ExportedProduct], str, str]]:
    """``(file stem, products, title, info.version)`` of each document to write."""
    if per_product:
        return [
            (item.product.name, [item], item.product.name, product_version(item))
            for item in products
        ]
    by_domain: dict[str, list[ExportedProduct]] = {}
    for item in products:
        by_domain.setdefault(item.product.domain, []).append(item)
    return [
        (domain, group, f"{domain} domain data products", "1.0.0")
        for domain, group in sorted(by_domain.items())
    ]


def write_stream(documents: Sequence[tuple[str, dict[str, Any]]], *, as_json: bool) -> None:
    """Several documents on standard output as one stream a tool can split: YAML documents
    separated by ``---``, or one JSON document per line."""
    for file_name, document in documents:
        if as_json:
            sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write("---\n" + render(file_name, document))


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part (a document never carries a secret)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
