"""OpenLineage datasets, run events and static lineage of the sample mesh."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from mesh_stream.exports import openlineage as ol
from mesh_stream.exports.source import ExportedProduct, KafkaServer, local_product
from mesh_stream.project import load_project
from mesh_stream.schema.names import MAX_UNFOLDED
from tests.unit.exports.schemas import ADDRESS_REUSED, RECURSIVE, doubling

ROOT = Path(__file__).resolve().parents[3]
SERVER = KafkaServer("broker-1:9092, broker-2:9092", "SASL_SSL", "PLAIN")
NAMESPACE = "kafka://broker-1:9092"


@pytest.fixture(scope="module")
def sample() -> dict[str, ExportedProduct]:
    project = load_project(ROOT)
    return {p.name: local_product(project, p.name, reason="test") for p in project.descriptors()}


def _fields(schema_fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema_fields}


def check_spec_shape(document: dict[str, Any], *, run: bool) -> None:
    """What OpenLineage.json requires of every event the client's classes let through."""
    assert document["producer"] == ol.PRODUCER
    assert document["schemaURL"].startswith("https://openlineage.io/spec/2-0-")
    assert document["schemaURL"].endswith("RunEvent" if run else "JobEvent")
    assert document["job"]["namespace"] == ol.JOB_NAMESPACE
    for dataset in (*document["inputs"], *document["outputs"]):
        assert dataset["namespace"] == NAMESPACE
        for facet in dataset.get("facets", {}).values():
            assert facet["_producer"] == ol.PRODUCER
            assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/")
    if run:
        uuid.UUID(document["run"]["runId"])
    else:
        assert "run" not in document
        assert "eventType" not in document
    json.dumps(document)  # plain JSON all the way down


def test_namespace_is_the_first_bootstrap_server() -> None:
    assert ol.dataset_namespace(SERVER) == NAMESPACE
    assert ol.dataset_namespace(KafkaServer("SSL://b:9093")) == "kafka://b:9093"


def test_dataset_carries_schema_docs_owner_and_source(
    sample: dict[str, ExportedProduct],
) -> None:
    item = sample["orders.order-placed"]
    dataset = ol.to_document(ol.input_dataset(item, SERVER))
    assert dataset["name"] == "orders.order-placed.v1"
    facets = dataset["facets"]
    fields = _fields(facets["schema"]["fields"])
    assert list(fields) == [f["name"] for f in item.schema["fields"]]
    for avro_field in item.schema["fields"]:  # every doc of the .avsc
        assert fields[avro_field["name"]]["description"] == avro_field["doc"]
    assert fields["order_id"]["type"] == "uuid"
    assert fields["placed_at"]["type"] == "timestamp-millis"
    assert fields["channel"]["type"] == "enum"
    assert fields["items"]["type"] == "array"
    nested = _fields(fields["items"]["fields"])  # the array's records, nested
    assert nested["unit_price"] == {
        "name": "unit_price",
        "type": "decimal",
        "description": "Price of one unit, in the order currency.",
        "ordinal_position": 3,
        "fields": [],
    }
    assert facets["documentation"]["description"] == item.product.description
    assert facets["ownership"]["owners"] == [{"name": "team:order-service", "type": "OWNER"}]
    assert facets["dataSource"] == {
        **facets["dataSource"],
        "name": NAMESPACE,
        "uri": NAMESPACE,
    }


def test_nullable_union_is_its_other_branch(sample: dict[str, ExportedProduct]) -> None:
    dataset = ol.to_document(ol.input_dataset(sample["customers.customer-profile"], SERVER))
    assert _fields(dataset["facets"]["schema"]["fields"])["phone"]["type"] == "string"


def _schema_facet_fields(
    sample: dict[str, ExportedProduct], schema: dict[str, Any]
) -> list[dict[str, Any]]:
    item = ExportedProduct(product=sample["orders.order-placed"].product, schema=schema)
    fields: list[dict[str, Any]] = ol.to_document(ol.input_dataset(item, SERVER))["facets"][
        "schema"
    ]["fields"]
    return fields


def test_every_use_of_a_named_record_lists_its_fields(
    sample: dict[str, ExportedProduct],
) -> None:
    city = {
        "name": "city",
        "type": "string",
        "description": "City.",
        "ordinal_position": 1,
        "fields": [],
    }
    assert _schema_facet_fields(sample, ADDRESS_REUSED) == [
        {"name": "home", "type": "record", "ordinal_position": 1, "fields": [city]},
        {"name": "work", "type": "record", "ordinal_position": 2, "fields": [city]},
        {"name": "maybe", "type": "record", "ordinal_position": 3, "fields": [city]},
        {"name": "past", "type": "array", "ordinal_position": 4, "fields": [city]},
    ]


def test_a_record_inside_itself_is_listed_once(sample: dict[str, ExportedProduct]) -> None:
    assert _schema_facet_fields(sample, RECURSIVE) == [
        {
            "name": "root",
            "type": "record",
            "ordinal_position": 1,
            "fields": [
                {"name": "value", "type": "long", "ordinal_position": 1, "fields": []},
                {"name": "next", "type": "record", "ordinal_position": 2, "fields": []},
            ],
        },
        {"name": "parent", "type": "record", "ordinal_position": 2, "fields": []},
    ]


@pytest.mark.timeout(20)
def test_a_record_nested_twice_per_level_is_unfolded_a_bounded_number_of_times(
    sample: dict[str, ExportedProduct],
) -> None:
    """Every use of a record is listed, up to MAX_UNFOLDED record uses a document: a valid
    schema nesting one record twice in each of 60 levels would list 2**60 fields (a
    review: 2 s at 16 levels, doubling with each)."""
    fields = _schema_facet_fields(sample, doubling(60))

    def count(listed: list[dict[str, Any]]) -> int:
        return sum(1 + count(field["fields"]) for field in listed)

    assert MAX_UNFOLDED <= count(fields) <= 2 * MAX_UNFOLDED + 2
    assert [fields[0]["name"], fields[0]["fields"][0]["name"]] == ["t", "a"]


def test_column_lineage_from_field_lineage(sample: dict[str, ExportedProduct]) -> None:
    item = sample["analytics.customer-360"]
    topics = {name: entry.product.topic for name, entry in sample.items()}
    dataset = ol.to_document(ol.output_dataset(item, SERVER, topics))
    lineage = dataset["facets"]["columnLineage"]["fields"]
    assert set(lineage) == set(item.product.field_lineage)
    assert lineage["lifetime_spend"]["inputFields"] == [
        {
            "namespace": NAMESPACE,
            "name": "orders.order-placed.v1",
            "field": "total_amount",
            "transformations": [],  # field_lineage does not say how
        }
    ]
    assert {f["name"] for f in lineage["customer_id"]["inputFields"]} == {
        "customers.customer-profile.v1",
        "orders.order-placed.v1",
        "customers.engagement-event.v1",
    }
    source = ol.to_document(ol.output_dataset(sample["orders.order-placed"], SERVER))
    assert "columnLineage" not in source["facets"]


def test_static_lineage_is_one_job_event_per_derived_product(
    sample: dict[str, ExportedProduct],
) -> None:
    events = [ol.to_document(e) for e in ol.static_lineage(sample.values(), SERVER)]
    derived = sorted(name for name, item in sample.items() if item.product.inputs)
    assert derived
    assert sorted(e["job"]["name"] for e in events) == derived
    for event in events:
        check_spec_shape(event, run=False)
        product = sample[event["job"]["name"]].product
        assert [d["name"] for d in event["outputs"]] == [product.topic]
        assert [d["name"] for d in event["inputs"]] == [
            sample[name].product.topic for name in product.inputs
        ]
        assert all("schema" in d["facets"] for d in event["inputs"])
        assert event["job"]["facets"]["jobType"]["processingType"] == "STREAMING"


def test_static_lineage_names_an_unknown_input_by_its_topic(
    sample: dict[str, ExportedProduct],
) -> None:
    (event,) = ol.static_lineage([sample["analytics.revenue-by-region"]], SERVER)
    document = ol.to_document(event)
    (dataset,) = document["inputs"]
    assert (dataset["namespace"], dataset["name"]) == (NAMESPACE, "orders.order-placed.v1")
    assert not dataset["facets"]  # no schema known


def test_run_events_through_a_processors_life(sample: dict[str, ExportedProduct]) -> None:
    output = sample["analytics.revenue-by-region"]
    inputs = [sample["orders.order-placed"]]
    run_id = ol.new_run_id()
    states = (ol.RunState.START, ol.RunState.RUNNING, ol.RunState.COMPLETE)
    for state in states:
        document = ol.to_document(ol.run_event(state, run_id, output, inputs, SERVER))
        check_spec_shape(document, run=True)
        assert document["eventType"] == state.value
        assert document["run"]["runId"] == run_id
        assert document["job"]["name"] == "analytics.revenue-by-region"
        assert [d["name"] for d in document["inputs"]] == ["orders.order-placed.v1"]
        assert [d["name"] for d in document["outputs"]] == ["analytics.revenue-by-region.v1"]
    failed = ol.to_document(
        ol.run_event(ol.RunState.FAIL, run_id, output, inputs, SERVER, error="KeyError 'x'")
    )
    assert failed["run"]["facets"]["errorMessage"]["message"] == "KeyError 'x'"


def test_the_clients_validation_refuses_what_the_spec_refuses(
    sample: dict[str, ExportedProduct],
) -> None:
    output = sample["analytics.revenue-by-region"]
    with pytest.raises(ValueError, match="UUID"):
        ol.run_event(ol.RunState.START, "not-a-uuid", output, [], SERVER)
    with pytest.raises(ValueError, match="noon"):
        ol.run_event(ol.RunState.START, ol.new_run_id(), output, [], SERVER, event_time="noon")


def test_a_dead_lineage_endpoint_is_logged_once_and_never_raises(
    sample: dict[str, ExportedProduct], caplog: pytest.LogCaptureFixture
) -> None:
    from pydantic import SecretStr

    from mesh_stream.processing.app import ProcessorSpec
    from mesh_stream.processing.lineage import LineageRun
    from mesh_stream.settings import MeshSettings

    output, source = sample["analytics.revenue-by-region"], sample["orders.order-placed"]
    settings = MeshSettings(
        bootstrap_servers="127.0.0.1:9092", openlineage_url=SecretStr("http://127.0.0.1:1")
    )
    spec = ProcessorSpec(
        output.product,
        (source.product,),
        1,
        settings,
        json.dumps(output.schema),
        {source.product.name: json.dumps(source.schema)},
    )
    lineage = LineageRun.for_worker(spec)
    assert lineage is not None
    assert LineageRun.for_worker(ProcessorSpec(output.product, (), 1, MeshSettings(), "{}")) is None
    for state in (ol.RunState.START, ol.RunState.RUNNING):
        lineage._emit(state)
        assert lineage._last is not None
        lineage._last.result(timeout=30)  # sent (and failed) without raising
    warnings = [r for r in caplog.records if "OpenLineage events not sent" in r.getMessage()]
    assert len(warnings) == 1
    assert "http://127.0.0.1:1" not in warnings[0].getMessage()  # the URL may hold a token
