"""ODCS v3 contracts: every sample product's contract is valid against the ODCS v3 JSON
Schema (the one the open-data-contract-standard package ships, run by `make odcs-tools`'
virtualenv), carries every field doc and PII mark of its .avsc, and maps rules, SLOs, owner,
server, registry facts and every Avro shape."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream.descriptor import QualityRule, RuleFailure, Slos
from mesh_stream.exports.odcs import API_VERSION, odcs_contract
from mesh_stream.exports.source import ExportedProduct, KafkaServer, local_product
from mesh_stream.project import MeshProject, load_project
from mesh_stream.schema.names import MAX_UNFOLDED
from tests.unit.exports.schemas import doubling

ROOT = Path(__file__).resolve().parents[3]
TOOLS_PYTHON = ROOT / ".tools" / "datacontract" / "bin" / "python"
CHECK = ROOT / "tools" / "datacontract" / "check_odcs.py"
SERVER = KafkaServer("broker-1:9093,broker-2:9093", "SASL_SSL", "SCRAM-SHA-512")


def odcs_check(mode: str, contracts: Mapping[str, dict[str, Any]], folder: Path) -> str:
    """Run tools/datacontract/check_odcs.py ``mode`` on the contracts; its output."""
    if not TOOLS_PYTHON.exists():
        pytest.fail(f"{TOOLS_PYTHON} is missing: run `make odcs-tools`")
    paths = []
    for name, contract in contracts.items():
        path = folder / f"{name}.odcs.yaml"
        path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run(
        [str(TOOLS_PYTHON), str(CHECK), mode, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def project() -> MeshProject:
    return load_project(ROOT)


@pytest.fixture(scope="module")
def sample(project: MeshProject) -> dict[str, ExportedProduct]:
    return {
        p.name: local_product(project, p.name, reason="a unit test") for p in project.descriptors()
    }


def avro_fields(schema: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every record field of an Avro schema (through arrays, maps, unions), by dotted path."""
    if isinstance(schema, list):
        for branch in schema:
            yield from avro_fields(branch, path)
    elif isinstance(schema, Mapping):
        for field in schema.get("fields", []):
            dotted = f"{path}.{field['name']}" if path else field["name"]
            yield dotted, field
            yield from avro_fields(field["type"], dotted)
        for key in ("items", "values"):
            if key in schema:
                yield from avro_fields(schema[key], path)


def odcs_properties(
    holder: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every property of an ODCS object (through items, map values, union branches)."""
    branches = holder.get("physicalType") == "union"
    for prop in holder.get("properties", []):
        dotted = path if branches else (f"{path}.{prop['name']}" if path else prop["name"])
        if not branches:
            yield dotted, prop
        yield from odcs_properties(prop, dotted)
    if "items" in holder:
        yield from odcs_properties(holder["items"], path)
    if "map" in holder:
        yield from odcs_properties(holder["map"]["value"], path)


def custom(holder: Mapping[str, Any]) -> dict[str, Any]:
    return {item["property"]: item["value"] for item in holder.get("customProperties", [])}


def test_every_sample_contract_is_valid_odcs_v3(
    sample: dict[str, ExportedProduct], tmp_path: Path
) -> None:
    assert len(sample) == 12
    contracts = {name: odcs_contract(item, SERVER) for name, item in sample.items()}
    output = odcs_check("schema", contracts, tmp_path)
    assert output.count("ok ") == 12
    for name, contract in contracts.items():
        assert contract["apiVersion"] == API_VERSION == "v3.2.0"
        assert contract["kind"] == "DataContract"
        assert (contract["id"], contract["name"], contract["dataProduct"]) == (name, name, name)
        # not registered: the local .avsc, a draft at version 0.0.0
        assert (contract["version"], contract["status"]) == ("0.0.0", "draft")
        [server] = contract["servers"]
        assert server["type"] == "kafka"
        assert server["host"] == "broker-1:9093,broker-2:9093"
        assert server["format"] == "avro"
        assert custom(server)["topic"] == f"{name}.v1"
        assert custom(server)["securityProtocol"] == "SASL_SSL"
        assert custom(server)["saslMechanism"] == "SCRAM-SHA-512"
        [obj] = contract["schema"]
        assert obj["physicalName"] == f"{name}.v1"
        descriptor = sample[name].product
        assert contract["domain"] == descriptor.domain
        assert contract["description"]["purpose"] == descriptor.description
        assert contract["team"] == {
            "name": descriptor.owner.team,
            "members": [{"username": descriptor.owner.contact, "role": "owner"}],
        }
        assert contract["support"][0]["url"] == f"mailto:{descriptor.owner.contact}"
        assert contract["tags"] == list(descriptor.tags)
        facts = custom(contract)
        assert facts["kind"] == descriptor.kind.value
        assert facts["inputs"] == list(descriptor.inputs)
        assert facts["classification"] == descriptor.classification.value
        assert "schemaId" not in facts


def test_every_field_doc_and_pii_mark_is_in_the_contract(
    sample: dict[str, ExportedProduct],
) -> None:
    pii_seen = 0
    for name, item in sample.items():
        [obj] = odcs_contract(item, None)["schema"]
        props = dict(odcs_properties(obj))
        fields = dict(avro_fields(item.schema))
        assert set(props) == set(fields), name
        for path, field in fields.items():
            prop = props[path]
            assert prop.get("description") == field.get("doc"), f"{name}: {path}"
            if field.get("pii") is True:
                pii_seen += 1
                assert prop["tags"] == ["pii"], f"{name}: {path}"
                assert prop["classification"] == "restricted"
            else:
                assert "pii" not in prop.get("tags", []), f"{name}: {path}"
                assert prop["classification"] == item.product.classification.value
    assert pii_seen == 3  # customers.customer-profile: full_name, email, phone


@pytest.mark.timeout(20)
def test_a_record_nested_twice_per_level_is_unfolded_a_bounded_number_of_times(
    sample: dict[str, ExportedProduct],
) -> None:
    """ODCS unfolded every use of a named record: 3 s at 16 levels, doubling with each, on
    the registry's event loop for GET /products/{name}/odcs (a review)."""
    item = ExportedProduct(product=sample["orders.order-placed"].product, schema=doubling(60))
    [obj] = odcs_contract(item, None)["schema"]
    listed = dict(odcs_properties(obj))
    assert MAX_UNFOLDED < len(listed) < 4 * MAX_UNFOLDED  # unfolded by name: each counts
    assert "t.a.v" not in listed  # the deepest inline definition is far below
    assert "t.b" in listed


def test_key_nullability_and_field_lineage(sample: dict[str, ExportedProduct]) -> None:
    profile_contract = odcs_contract(sample["customers.customer-profile"], None)
    assert profile_contract["description"]["limitations"] == (
        "Personal data: only these domains may read it: customers, analytics."
    )
    [profile] = profile_contract["schema"]
    props = dict(odcs_properties(profile))
    assert props["customer_id"]["partitioned"] is True
    assert props["customer_id"]["primaryKey"] is True  # compacted: one record per key
    assert props["phone"]["required"] is False  # ["null", "string"]
    assert custom(props["phone"])["avroDefault"] is None
    assert props["full_name"]["required"] is True
    assert props["updated_at"]["logicalType"] == "timestamp"
    [placed] = odcs_contract(sample["orders.order-placed"], None)["schema"]
    assert "primaryKey" not in dict(odcs_properties(placed))["order_id"]  # an event stream

    contract = odcs_contract(sample["analytics.customer-360"], None)
    assert "servers" not in contract
    props = dict(odcs_properties(contract["schema"][0]))
    assert props["region"]["transformSourceObjects"] == ["customers.customer-profile"]
    assert custom(props["region"])["fieldLineage"] == ["customers.customer-profile:region"]
    assert props["customer_id"]["transformSourceObjects"] == [
        "customers.customer-profile",
        "customers.engagement-event",
        "orders.order-placed",
    ]


def test_rules_slos_and_registry_facts(sample: dict[str, ExportedProduct], tmp_path: Path) -> None:
    base = sample["orders.order-placed"]
    product = base.product.model_copy(
        update={
            "rules": (
                QualityRule(
                    name="positive-total",
                    expr="message.total_amount >= 0",
                    doc="A refund is its own event.",
                    on_failure=RuleFailure.DLQ,
                ),
                QualityRule(name="has-lines", expr="size(message.items) > 0"),
            ),
            "slos": Slos(
                freshness_seconds=5.0,
                availability=99.9,
                max_dlq_ratio=0.01,
                max_lag_seconds=60.0,
                min_records_per_minute=10.0,
            ),
        }
    )
    registered = ExportedProduct(
        product=product,
        schema=base.schema,
        schema_id=42,
        schema_version=3,
        compatibility="FULL_TRANSITIVE",
        downstream=("analytics.customer-360",),
        metadata={"properties": {"owner": "order-service"}},
        rule_set={
            "domainRules": [
                # the descriptor's own rule, as compiled: not repeated
                {
                    "name": "positive-total",
                    "kind": "CONDITION",
                    "type": "CEL",
                    "mode": "WRITE",
                    "expr": "message.total_amount >= 0",
                    "onFailure": "DLQ",
                },
                # registered by another client only: still binds publishers
                {
                    "name": "known-currency",
                    "kind": "CONDITION",
                    "type": "CEL",
                    "mode": "WRITE",
                    "expr": "message.currency in ['EUR', 'USD']",
                    "onFailure": "ERROR",
                },
                {
                    "name": "off",
                    "kind": "CONDITION",
                    "type": "CEL",
                    "expr": "false",
                    "disabled": True,
                },
            ]
        },
    )
    contract = odcs_contract(registered, SERVER)
    odcs_check("schema", {"rules": contract}, tmp_path)
    assert (contract["version"], contract["status"]) == ("3.0.0", "active")
    quality = contract["schema"][0]["quality"]
    assert quality[0] == {
        "name": "positive-total",
        "type": "custom",
        "engine": "cel",
        "implementation": "message.total_amount >= 0",
        "severity": "error",
        "description": "A refund is its own event.",
        "customProperties": quality[0]["customProperties"],
    }
    assert custom(quality[0])["onFailure"] == "DLQ"
    assert custom(quality[1])["onFailure"] == "ERROR"
    assert [q["name"] for q in quality] == ["positive-total", "has-lines", "known-currency"]
    assert quality[2]["implementation"] == "message.currency in ['EUR', 'USD']"
    assert custom(quality[2])["source"] == "registry"
    slas = {
        item["property"]: (item["value"], item.get("unit")) for item in contract["slaProperties"]
    }
    assert slas == {
        "latency": (5.0, "s"),
        "availability": (99.9, "%"),
        "retention": (604800000, "ms"),
        "volume": (10.0, "records/min"),
        "dlqRatio": (0.01, "ratio"),
        "consumerLag": (60.0, "s"),
    }
    facts = custom(contract)
    assert facts["schemaId"] == 42
    assert facts["schemaVersion"] == 3
    assert facts["compatibility"] == "FULL_TRANSITIVE"
    assert facts["valueSubject"] == "orders.order-placed.v1-value"
    assert facts["downstream"] == ["analytics.customer-360"]
    assert facts["confluentMetadata"] == {"properties": {"owner": "order-service"}}


NESTED = {
    "type": "record",
    "name": "Shape",
    "namespace": "io.example",
    "doc": "Every Avro shape.",
    "fields": [
        {
            "name": "address",
            "doc": "Nested record.",
            "type": {
                "type": "record",
                "name": "Address",
                "doc": "A postal address.",
                "fields": [
                    {"name": "street", "type": "string", "doc": "Street.", "pii": True},
                    {
                        "name": "geo",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "Geo",
                                "fields": [{"name": "lat", "type": "double", "doc": "Latitude."}],
                            },
                        ],
                        "default": None,
                        "doc": "Optional nested record.",
                    },
                ],
            },
        },
        {
            "name": "previous",
            "type": {"type": "array", "items": "Address"},
            "doc": "Named type reused in an array.",
        },
        {
            "name": "scores",
            "doc": "Map of arrays.",
            "type": {"type": "map", "values": {"type": "array", "items": "float"}},
        },
        {
            "name": "payload",
            "doc": "A real union.",
            "type": ["null", "string", "long", "Geo"],
            "default": None,
        },
        {"name": "next", "type": ["null", "Shape"], "default": None, "doc": "Recursive."},
        {
            "name": "colour",
            "doc": "Enum.",
            "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]},
        },
        {"name": "hash", "doc": "Fixed.", "type": {"type": "fixed", "name": "Md5", "size": 16}},
        {
            "name": "amount",
            "doc": "Decimal.",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3},
        },
        {"name": "day", "doc": "Date.", "type": {"type": "int", "logicalType": "date"}},
        {
            "name": "at",
            "doc": "Micros.",
            "type": {"type": "long", "logicalType": "timestamp-micros"},
        },
        {
            "name": "local",
            "doc": "Local time.",
            "type": {"type": "long", "logicalType": "local-timestamp-millis"},
        },
        {"name": "flag", "type": "boolean", "doc": "Boolean."},
        {"name": "blob", "type": "bytes", "doc": "Bytes."},
        {"name": "count", "type": "int", "doc": "Int.", "default": 0},
    ],
}


def test_nested_records_arrays_maps_unions_and_logical_types(
    sample: dict[str, ExportedProduct], tmp_path: Path
) -> None:
    base = sample["orders.order-placed"]
    item = ExportedProduct(product=base.product, schema=json.loads(json.dumps(NESTED)))
    contract = odcs_contract(item, None)
    odcs_check("schema", {"nested": contract}, tmp_path)
    [obj] = contract["schema"]
    props = {p["name"]: p for p in obj["properties"]}

    address = props["address"]
    assert (address["logicalType"], address["physicalType"]) == ("object", "record")
    street, geo = address["properties"]
    assert (street["tags"], street["classification"]) == (["pii"], "restricted")
    assert geo["required"] is False
    assert geo["properties"][0]["description"] == "Latitude."
    assert custom(address)["avroName"] == "io.example.Address"
    assert custom(address)["avroDoc"] == "A postal address."

    previous = props["previous"]
    assert previous["logicalType"] == "array"
    assert [p["name"] for p in previous["items"]["properties"]] == ["street", "geo"]
    assert previous["items"]["properties"][0]["tags"] == ["pii"]  # PII through a reference

    scores = props["scores"]
    assert scores["logicalType"] == "map"
    assert scores["map"]["key"]["logicalType"] == "string"
    assert scores["map"]["value"]["items"]["logicalTypeOptions"] == {"format": "f32"}

    payload = props["payload"]
    assert (payload["logicalType"], payload["physicalType"]) == ("object", "union")
    assert payload["required"] is False
    assert [p["name"] for p in payload["properties"]] == ["string", "long", "io.example.Geo"]
    assert custom(payload)["avroUnion"] == ["string", "long", "io.example.Geo"]

    recursive = props["next"]
    assert recursive["required"] is False
    assert "properties" not in recursive
    assert custom(recursive)["avroRecord"] == "io.example.Shape"

    assert props["colour"]["enum"] == [{"value": "RED"}, {"value": "GREEN"}]
    assert props["hash"]["logicalTypeOptions"] == {"format": "binary"}
    assert custom(props["hash"])["size"] == 16
    amount = props["amount"]
    assert (amount["logicalType"], amount["physicalType"]) == ("number", "bytes")
    assert (custom(amount)["precision"], custom(amount)["scale"]) == (9, 3)
    assert props["day"]["logicalType"] == "date"
    assert props["at"]["logicalTypeOptions"] == {"timezone": True}
    assert props["local"]["logicalTypeOptions"] == {"timezone": False}
    assert custom(props["at"])["avroLogicalType"] == "timestamp-micros"
    assert props["flag"]["logicalType"] == "boolean"
    assert props["blob"]["logicalTypeOptions"] == {"format": "binary"}
    assert props["count"]["logicalTypeOptions"] == {"format": "i32"}
    assert custom(props["count"])["avroDefault"] == "0"
    assert all(p["required"] for n, p in props.items() if n not in ("payload", "next"))


#: The record, a field and a nested record renamed (``aliases``), fields with a sort ``order``.
RENAMED = {
    "type": "record",
    "name": "Event",
    "namespace": "x",
    "aliases": ["OldEvent"],
    "fields": [
        {"name": "action", "type": "string", "aliases": ["verb"], "order": "descending"},
        {
            "name": "place",
            "type": {
                "type": "record",
                "name": "Place",
                "aliases": ["Spot"],
                "fields": [{"name": "city", "type": "string", "order": "ignore"}],
            },
        },
    ],
}


def test_aliases_and_sort_order_are_custom_properties(
    sample: dict[str, ExportedProduct], tmp_path: Path
) -> None:
    base = sample["orders.order-placed"]
    contract = odcs_contract(ExportedProduct(product=base.product, schema=RENAMED), None)
    [obj] = contract["schema"]
    assert obj["customProperties"][-1] == {
        "property": "avroAliases",
        "value": ["OldEvent"],
        "vendor": "mesh-stream",
    }
    action, place = obj["properties"]
    assert action["customProperties"] == [
        {"property": "avroAliases", "value": ["verb"], "vendor": "mesh-stream"},
        {"property": "avroOrder", "value": "descending", "vendor": "mesh-stream"},
    ]
    assert place["customProperties"] == [
        {"property": "avroName", "value": "x.Place", "vendor": "mesh-stream"},
        {"property": "avroTypeAliases", "value": ["Spot"], "vendor": "mesh-stream"},
    ]
    assert place["properties"][0]["customProperties"] == [
        {"property": "avroOrder", "value": "ignore", "vendor": "mesh-stream"}
    ]
    odcs_check("schema", {"renamed": contract}, tmp_path)
