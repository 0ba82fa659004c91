"""AsyncAPI 3.0 export: every sample product's document passes the official AsyncAPI 3.0.0
JSON Schema and @asyncapi/parser (tools/asyncapi/validate.mjs), carries every field doc and
PII mark of its .avsc, and names the security scheme the connection uses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_stream import registration
from mesh_stream.cli.export.asyncapi import public_url
from mesh_stream.cli.main import run
from mesh_stream.errors import ConfigurationError
from mesh_stream.exports.asyncapi import (
    AVRO_SCHEMA_FORMAT,
    COMPONENT_KEY,
    asyncapi_document,
    product_version,
)
from mesh_stream.exports.source import ExportedProduct, KafkaServer, local_product
from mesh_stream.project import load_project
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.server import RegistryServer

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"
NODE_MODULES = ROOT / "tools" / "asyncapi" / "node_modules"


def asyncapi_problems(paths: Sequence[Path], *, parse: bool = True) -> list[dict[str, Any]]:
    """Run the AsyncAPI validators on ``paths``; one entry per file with its problems.

    ``parse=False`` checks the official JSON Schema only: the parser takes about a second a
    document here, so tests parse a few documents and schema-check all of them."""
    node = shutil.which("node")
    if node is None or not NODE_MODULES.is_dir():
        pytest.fail(
            "the AsyncAPI validators are not installed (node and tools/asyncapi/node_modules); "
            "run `make asyncapi-tools`"
        )
    done = subprocess.run(
        [node, str(VALIDATOR), *([] if parse else ["--schema-only"]), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert [r["file"] for r in results] == [str(p) for p in paths]
    return results


def errors_of(results: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Files with schema or parser errors (warnings, e.g. "3.1.0 exists", are fine)."""
    return {
        r["file"]: r["schema_errors"] + r["parser_errors"]
        for r in results
        if r["schema_errors"] or r["parser_errors"]
    }


def field_marks(schema: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(field path, "doc"|"pii", value)`` of every field of every record in ``schema``."""
    if isinstance(schema, list):
        for branch in schema:
            yield from field_marks(branch, path)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema.get("fields", []):
                here = f"{path}.{field['name']}" if path else field["name"]
                for mark in ("doc", "pii"):
                    if mark in field:
                        yield here, mark, field[mark]
                yield from field_marks(field["type"], here)
        elif schema.get("type") == "array":
            yield from field_marks(schema["items"], f"{path}[]")
        elif schema.get("type") == "map":
            yield from field_marks(schema["values"], f"{path}{{}}")


@pytest.fixture(scope="module")
def sample() -> list[ExportedProduct]:
    """The 12 sample products as the registry would give them (ids and versions set)."""
    project = load_project(ROOT)
    found = []
    for number, descriptor in enumerate(project.descriptors(), start=1):
        item = local_product(project, descriptor.name, reason="test")
        found.append(
            dataclasses.replace(
                item,
                schema_id=100 + number,
                schema_version=number % 3 + 1,
                compatibility="FULL_TRANSITIVE",
                warnings=(),
            )
        )
    assert len(found) == 12
    return found


def by_domain(products: Sequence[ExportedProduct]) -> dict[str, list[ExportedProduct]]:
    groups: dict[str, list[ExportedProduct]] = {}
    for item in products:
        groups.setdefault(item.product.domain, []).append(item)
    return groups


SERVERS = {
    "plaintext": KafkaServer("127.0.0.1:9092"),
    "sasl-scram-512-tls": KafkaServer(
        "b1.example:9093,b2.example:9093", "SASL_SSL", "SCRAM-SHA-512"
    ),
    "sasl-scram-256": KafkaServer("b1.example:9092", "SASL_PLAINTEXT", "SCRAM-SHA-256"),
    "sasl-plain-tls": KafkaServer("b1.example:9093", "SASL_SSL", "PLAIN"),
    "mtls": KafkaServer("b1.example:9093", "SSL", client_certificate=True),
    "tls": KafkaServer("b1.example:9093", "SSL"),
}


def test_every_sample_document_passes_the_asyncapi_schema_and_parser(
    sample: list[ExportedProduct], tmp_path: Path
) -> None:
    def write(name: str, document: dict[str, Any]) -> Path:
        path = tmp_path / name
        text = json.dumps(document) if name.endswith(".json") else yaml.safe_dump(document)
        path.write_text(text, encoding="utf-8")
        return path

    paths = []
    # one document per domain on each kind of connection, one per product, one with no server
    for kind, server in SERVERS.items():
        for domain, group in by_domain(sample).items():
            document = asyncapi_document(
                group, server, title=f"{domain} domain", registry_url="http://registry:8081"
            )
            paths.append(write(f"asyncapi-{domain}-{kind}.yaml", document))
    for item in sample:
        document = asyncapi_document(
            [item], None, title=item.product.name, version=product_version(item)
        )
        paths.append(write(f"asyncapi-{item.product.name}.json", document))
    assert errors_of(asyncapi_problems(paths, parse=False)) == {}
    # the parser too, on the richest document (several servers, SASL, every analytics
    # product: field lineage, compacted topics), and a broken copy: both validators refuse it
    richest = paths[list(SERVERS).index("sasl-scram-512-tls") * 5]
    assert richest.name == "asyncapi-analytics-sasl-scram-512-tls.yaml"
    broken = yaml.safe_load(richest.read_text(encoding="utf-8"))
    del broken["channels"]["analytics.customer-360"]["address"]
    broken["components"]["messages"]["analytics.customer-360"]["payload"]["schema"]["type"] = "rec"
    good, bad = asyncapi_problems([richest, write("broken.yaml", broken)])
    assert errors_of([good]) == {}
    assert bad["schema_errors"]
    assert bad["parser_errors"]


def test_round_trip_keeps_every_field_doc_and_pii_mark(
    sample: list[ExportedProduct], tmp_path: Path
) -> None:
    for domain, group in by_domain(sample).items():
        document = asyncapi_document(group, SERVERS["plaintext"], title=domain)
        written = tmp_path / f"{domain}.yaml"
        written.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        messages = yaml.safe_load(written.read_text(encoding="utf-8"))["components"]["messages"]
        for item in group:
            avsc = json.loads((ROOT / item.product.schema_file).read_text(encoding="utf-8"))
            payload = messages[item.product.name]["payload"]
            assert payload["schemaFormat"] == AVRO_SCHEMA_FORMAT
            expected = set(map(repr, field_marks(avsc)))
            assert expected, item.product.name
            assert expected <= set(map(repr, field_marks(payload["schema"]))), item.product.name
            assert payload["schema"].get("doc") == avsc.get("doc")
    pii = {
        (item.product.name, path)
        for item in sample
        for path, mark, value in field_marks(item.schema)
        if mark == "pii" and value is True
    }
    assert ("customers.customer-profile", "email") in pii


def test_channel_operation_and_message_describe_the_product(
    sample: list[ExportedProduct],
) -> None:
    analytics = by_domain(sample)["analytics"]
    document = asyncapi_document(
        analytics, SERVERS["plaintext"], title="analytics", registry_url="http://r:8081"
    )
    name = "analytics.customer-360"
    item = next(i for i in analytics if i.product.name == name)
    channel = document["channels"][name]
    assert channel["address"] == "analytics.customer-360.v1"
    kafka = channel["bindings"]["kafka"]
    assert kafka == {
        "topic": "analytics.customer-360.v1",
        "partitions": 3,
        "topicConfiguration": {"cleanup.policy": ["compact"], "retention.ms": -1},
        "bindingVersion": "0.5.0",
    }
    sla = document["channels"]["analytics.order-fulfilment-sla"]["bindings"]["kafka"]
    assert sla["topicConfiguration"]["cleanup.policy"] == ["compact", "delete"]
    assert channel["x-mesh-owner"] == {
        "team": "analytics-platform",
        "contact": "analytics-platform@meshstream.example",
    }
    assert channel["x-mesh-classification"] == "internal"
    assert channel["x-mesh-kind"] == "consumer-aligned"
    assert channel["x-mesh-slos"] == {"freshness_seconds": 30.0, "availability": 99.5}
    assert channel["x-mesh-lineage"]["inputs"] == [
        "customers.customer-profile",
        "customers.engagement-event",
        "orders.order-placed",
    ]
    assert channel["x-mesh-lineage"]["fields"]["region"] == ["customers.customer-profile:region"]
    assert [t["name"] for t in channel["tags"]] == ["analytics", "customers", "profile"]
    operation = document["operations"][f"{name}.send"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": f"#/channels/{name}"}
    assert "mesh tail analytics.customer-360" in operation["description"]
    message = document["components"]["messages"][name]
    assert message["bindings"]["kafka"] == {
        "key": {
            "type": "string",
            "description": message["bindings"]["kafka"]["key"]["description"],
        },
        "schemaIdLocation": "payload",
        "schemaIdPayloadEncoding": "confluent",
        "schemaLookupStrategy": "TopicIdStrategy",
        "bindingVersion": "0.5.0",
    }
    assert "customer_id" in message["bindings"]["kafka"]["key"]["description"]
    assert message["x-mesh-schema-id"] == item.schema_id
    assert message["x-mesh-schema-version"] == item.schema_version
    assert document["info"]["contact"] == {
        "name": "analytics-platform",
        "email": "analytics-platform@meshstream.example",
    }
    assert document["servers"]["kafka"]["bindings"]["kafka"]["schemaRegistryUrl"] == "http://r:8081"
    assert all(COMPONENT_KEY.fullmatch(key) for key in document["components"]["messages"])
    # replicas appear when the descriptor sets a replication factor
    replicated = dataclasses.replace(
        item, product=item.product.model_copy(update={"replication_factor": 3})
    )
    again = asyncapi_document([replicated], None, title=name)
    assert again["channels"][name]["bindings"]["kafka"]["replicas"] == 3
    assert "servers" not in again


#: Owner contacts the ownership policy lets through -> the document's ``info.contact``: only
#: what AsyncAPI's ``email`` and ``uri`` formats accept goes into ``email`` or ``url``.
CONTACTS = {
    "orders-team@example.com": {"name": "orders-team", "email": "orders-team@example.com"},
    "https://wiki.example.com:8443/teams/orders?tab=on-call#now": {
        "name": "orders-team",
        "url": "https://wiki.example.com:8443/teams/orders?tab=on-call#now",
    },
    "https://wiki.example.com/teams/{orders}": {
        "name": "orders-team (https://wiki.example.com/teams/{orders})"
    },
    "https://example.com/a|b": {"name": "orders-team (https://example.com/a|b)"},
    "https://[oops": {"name": "orders-team (https://[oops)"},
    "orders(team)@example.com": {"name": "orders-team (orders(team)@example.com)"},
    "orders..team@example.com": {"name": "orders-team (orders..team@example.com)"},
    "#orders-on-call": {"name": "orders-team (#orders-on-call)"},
}


def test_a_contact_asyncapi_would_refuse_as_email_or_url_stays_in_the_name(
    sample: list[ExportedProduct], tmp_path: Path
) -> None:
    item = sample[0]
    paths = []
    for number, (contact, expected) in enumerate(CONTACTS.items()):
        owner = item.product.owner.model_copy(update={"team": "orders-team", "contact": contact})
        product = item.product.model_copy(update={"owner": owner})
        document = asyncapi_document(
            [dataclasses.replace(item, product=product)], None, title=product.name
        )
        assert document["info"]["contact"] == expected, contact
        paths.append(tmp_path / f"contact-{number}.json")
        paths[-1].write_text(json.dumps(document), encoding="utf-8")
    assert errors_of(asyncapi_problems(paths, parse=False)) == {}


@pytest.mark.parametrize(
    ("kind", "protocol", "scheme"),
    [
        ("plaintext", "kafka", None),
        ("tls", "kafka-secure", None),
        ("mtls", "kafka-secure", "X509"),
        ("sasl-scram-256", "kafka", "scramSha256"),
        ("sasl-scram-512-tls", "kafka-secure", "scramSha512"),
        ("sasl-plain-tls", "kafka-secure", "plain"),
    ],
)
def test_security_scheme_matches_the_connection(
    sample: list[ExportedProduct], kind: str, protocol: str, scheme: str | None
) -> None:
    document = asyncapi_document(sample[:1], SERVERS[kind], title="t")
    servers = document["servers"]
    hosts = SERVERS[kind].bootstrap_servers.split(",")
    assert [s["host"] for s in servers.values()] == hosts
    assert list(servers) == (
        ["kafka"] if len(hosts) == 1 else [f"kafka-{n + 1}" for n in range(len(hosts))]
    )
    for server in servers.values():
        assert server["protocol"] == protocol
        if scheme is None:
            assert "security" not in server
        else:
            assert server["security"] == [{"$ref": f"#/components/securitySchemes/{scheme}"}]
    schemes = document["components"].get("securitySchemes", {})
    assert schemes == (
        {}
        if scheme is None
        else {scheme: {"type": scheme, "description": schemes[scheme]["description"]}}
    )
    assert "password" not in json.dumps(document).lower()


def test_bad_input_is_refused_with_a_clear_error(sample: list[ExportedProduct]) -> None:
    with pytest.raises(ConfigurationError, match="at least one product"):
        asyncapi_document([], None, title="t")
    placed = next(i for i in sample if i.product.name == "orders.order-placed")
    with pytest.raises(ConfigurationError, match=r"more than once: orders\.order-placed"):
        asyncapi_document([placed, placed], None, title="t")
    with pytest.raises(ConfigurationError, match="non-empty title"):
        asyncapi_document(sample[:1], None, title="  ")
    with pytest.raises(ConfigurationError, match=r"'SASL_XYZ'.*MESH_KAFKA_SECURITY_PROTOCOL"):
        asyncapi_document(sample[:1], KafkaServer("h:1", "SASL_XYZ"), title="t")
    with pytest.raises(ConfigurationError, match=r"'GSSAPI'.*MESH_KAFKA_SASL_MECHANISM"):
        asyncapi_document(sample[:1], KafkaServer("h:1", "SASL_SSL", "GSSAPI"), title="t")
    with pytest.raises(ConfigurationError, match="MESH_BOOTSTRAP_SERVERS"):
        asyncapi_document(sample[:1], KafkaServer(" , "), title="t")


@pytest.fixture(scope="module")
def small_registry() -> Iterator[str]:
    """An in-memory registry served over HTTP with three sample products in two domains."""
    server = RegistryServer(create_app(InMemoryStore()))
    url = server.start()
    try:
        project = load_project(ROOT)
        with RegistryClient(url) as client:
            for name in (
                "orders.order-placed",
                "orders.order-status-changed",
                "customers.customer-profile",
            ):
                product = project.descriptor(name)
                assert product is not None
                registration.register_product(client, product, ROOT, wait_for_inputs=0)
        yield url
    finally:
        server.stop()


def test_cli_writes_streams_and_files_without_secrets(
    small_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "hunter2-kafka-password"
    for variable, value in {
        "MESH_REGISTRY_URL": small_registry,
        "MESH_PROJECT_ROOT": str(ROOT),
        "MESH_BOOTSTRAP_SERVERS": "b1.example:9093",
        "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "MESH_KAFKA_SASL_USERNAME": "orders",
        "MESH_KAFKA_SASL_PASSWORD": secret,
    }.items():
        monkeypatch.setenv(variable, value)

    def mesh(*args: str) -> str:
        capsys.readouterr()
        assert run(["export", "asyncapi", *args]) == 0
        captured = capsys.readouterr()
        assert secret not in captured.out + captured.err
        return captured.out

    stream = list(yaml.safe_load_all(mesh("--all")))  # several documents: a YAML stream
    assert [d["info"]["title"] for d in stream] == [
        "customers domain data products",
        "orders domain data products",
    ]
    assert stream[1]["servers"]["kafka"]["security"] == [
        {"$ref": "#/components/securitySchemes/scramSha256"}
    ]
    lines = mesh("--all", "--json").splitlines()  # as JSON: one document a line
    assert [json.loads(line)["info"]["title"] for line in lines] == [
        d["info"]["title"] for d in stream
    ]
    single = yaml.safe_load(mesh("orders.order-placed"))
    assert list(single["channels"]) == ["orders.order-placed"]
    [line] = mesh("orders.order-placed", "--json").splitlines()  # one document: one line too
    assert json.loads(line) == single
    mesh("--all", "--per-product", "--json", "--output", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "asyncapi-customers.customer-profile.json",
        "asyncapi-orders.order-placed.json",
        "asyncapi-orders.order-status-changed.json",
    ]
    placed = json.loads((tmp_path / "asyncapi-orders.order-placed.json").read_text("utf-8"))
    assert placed["info"]["version"] == "1.1.0"


def test_public_url_drops_credentials() -> None:
    assert public_url("https://orders:s3cret@registry.example:8081/x") == (
        "https://registry.example:8081/x"
    )
    assert public_url("http://127.0.0.1:8081") == "http://127.0.0.1:8081"
