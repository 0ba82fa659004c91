"""The Kafka server every export describes: the same hosts in each document, without the
listener name a MESH_BOOTSTRAP_SERVERS may carry (ODCS kept `PLAINTEXT://` in its host while
AsyncAPI and OpenLineage stripped it; a campaign)."""

from __future__ import annotations

from pathlib import Path

from mesh_stream.exports.asyncapi import asyncapi_document
from mesh_stream.exports.odcs import odcs_contract
from mesh_stream.exports.openlineage import dataset_namespace
from mesh_stream.exports.source import KafkaServer, local_product
from mesh_stream.project import load_project

ROOT = Path(__file__).resolve().parents[3]


def test_a_listener_name_in_the_bootstrap_servers_reaches_no_document() -> None:
    server = KafkaServer(" PLAINTEXT://broker-1:9092, SASL_SSL://broker-2:9093 ,")
    assert server.hosts == ["broker-1:9092", "broker-2:9093"]
    item = local_product(load_project(ROOT), "orders.order-placed", reason="a unit test")
    assert odcs_contract(item, server)["servers"][0]["host"] == "broker-1:9092,broker-2:9093"
    servers = asyncapi_document([item], server, title="t")["servers"]
    assert [entry["host"] for entry in servers.values()] == ["broker-1:9092", "broker-2:9093"]
    assert dataset_namespace(server) == "kafka://broker-1:9092"
