"""A domain team's workflow from its own folder, outside this repository, on a real broker and
registry: init -> lint -> plan -> apply -> apply again -> publish -> tail, and the bad inputs
(another domain's descriptor, a broken .avsc, an incompatible change, no mesh.yaml), each
refused in one line with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from mesh_stream import ProductConsumer, RegistryClient
from mesh_stream.cli.main import run
from mesh_stream.kafka import KafkaConnection
from mesh_stream.kafka.clients import make_admin
from mesh_stream.scaffold import scaffold
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress
from tests.integration.test_broker_security import SecuredCluster, read_passwords

REPOSITORY = Path(__file__).resolve().parents[2]
PRODUCT = "inventory.example-event"
SUBJECT = "inventory.example-event.v1-value"
SCHEMA_FILE = "schemas/inventory/example-event.avsc"


@dataclass(frozen=True)
class Registry:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def registry(kafka: KafkaAddress) -> Iterator[Registry]:
    """A registry of its own (own topic) that knows the inventory domain's credential."""
    from pydantic import SecretStr

    from mesh_stream.registry.service.server import RegistryServer, build_registry

    tokens = {
        "admin": "admin-secret",
        "inventory": "inv-secret",
        "orders": "orders-secret",
        "reporting": "reporting-secret",
        "depot": "depot-secret",
        "stock": "stock-secret",
    }
    session = uuid.uuid4().hex[:8]
    settings = MeshSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        registry_credentials=SecretStr(",".join(f"{p}:{t}" for p, t in tokens.items())),
        registry_credentials_file=None,
        registry_topic=f"_mesh_registry-workflow-{session}",
        registry_writer_id=f"mesh-registry-workflow-{session}",
    )
    app, store = build_registry(settings)
    server = RegistryServer(app)
    try:
        yield Registry(server.start(), tokens)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("domain-team")
    assert not folder.resolve().is_relative_to(REPOSITORY)
    return folder


def _env(kafka: KafkaAddress, registry: Registry, principal: str = "inventory") -> dict[str, str]:
    return {
        "MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MESH_REGISTRY_URL": registry.url,
        "MESH_REGISTRY_PRINCIPAL": principal,
        "MESH_REGISTRY_TOKEN": registry.tokens[principal],
        "MESH_PROJECT_ROOT": "",
    }


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` in os.environ (an empty value unsets the variable), restored afterwards."""
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _mesh(args: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """`mesh ARGS` run in ``cwd`` through the CLI's own error boundary (``main.run``)."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(args)
    finally:
        os.chdir(old)
    return Outcome(code, out.getvalue(), err.getvalue())


def _errors(result: Outcome) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(("error:", "refused:"))]


def _versions(registry: Registry, subject: str) -> list[int]:
    """The subject's registered versions, straight from the registry's HTTP API."""
    answer = httpx.get(f"{registry.url}/subjects/{subject}/versions", timeout=10)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return [int(v) for v in answer.json()]


#: The publisher's ten events: item-(n % 3) with quantity n + 1, for n in 0..9.
EXPECTED_TOTALS = {"item-0": 1 + 4 + 7 + 10, "item-1": 2 + 5 + 8, "item-2": 3 + 6 + 9}

ITEM_TOTALS = """\
name: inventory.item-totals
domain: inventory
kind: aggregate
description: Total quantity per item over every inventory example event, updated in place.
owner: {team: inventory-team, contact: inventory-team@example.com}
schema: schemas/inventory/item-totals.avsc
key_field: item_id
partitions: 3
retention: {ms: 604800000, cleanup_policy: "compact,delete"}
slos: {freshness_seconds: 60, availability: 99.5}
classification: internal
tags: [inventory, totals]
inputs: [inventory.example-event]
"""

ITEM_TOTALS_SCHEMA = {
    "type": "record",
    "name": "ItemTotals",
    "namespace": "com.example.inventory",
    "doc": "Running totals of one item over its example events.",
    "fields": [
        {"name": "item_id", "type": "string", "doc": "Id of the item; the Kafka key."},
        {"name": "total_quantity", "type": "long", "doc": "Sum of the item's quantities."},
        {
            "name": "updated_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "Event time of the latest event counted.",
        },
    ],
}


def _add_item_totals(project: Path) -> None:
    """The product the processor template computes (as the tutorial declares it)."""
    (project / "domains/inventory/products/item-totals.yaml").write_text(ITEM_TOTALS)
    (project / "schemas/inventory/item-totals.avsc").write_text(json.dumps(ITEM_TOTALS_SCHEMA))


def _latest_totals(
    kafka: KafkaAddress, registry: Registry, *, expected: dict[str, int], within: float
) -> dict[str, int]:
    """The latest total per item on inventory.item-totals, read until it equals ``expected``
    or ``within`` seconds pass."""
    settings = MeshSettings(bootstrap_servers=kafka.bootstrap_servers, registry_url=registry.url)
    latest: dict[str, int] = {}
    deadline = time.monotonic() + within
    with ProductConsumer(
        ["inventory.item-totals"],
        group_id=f"inventory.test-{uuid.uuid4().hex[:6]}",
        connection=KafkaConnection.from_settings(settings),
        registry=RegistryClient.from_settings(settings),
        from_beginning=True,
    ) as consumer:
        while latest != expected and time.monotonic() < deadline:
            for record in consumer.consume(max_records=100, timeout=2.0):
                latest[record.value["item_id"]] = record.value["total_quantity"]
    return latest


def test_a_domain_team_ships_a_product_from_its_own_repository(
    kafka: KafkaAddress, registry: Registry, workspace: Path
) -> None:
    env = _env(kafka, registry)
    project = workspace / "inventory"

    made = _mesh(["init", "inventory", str(project)], workspace, env)
    assert made.exit_code == 0, made.stderr
    assert (project / "mesh.yaml").is_file()

    lint = _mesh(["lint"], project, env)
    assert lint.exit_code == 0, lint.stdout + lint.stderr

    plan = _mesh(["products", "plan", "--json"], project, env)
    assert plan.exit_code == 0, plan.stderr
    planned = json.loads(plan.stdout)
    [item] = planned["products"]
    assert (item["name"], item["descriptor"], item["schema"]) == (PRODUCT, "new", "new")
    assert item["topic_status"] == "missing"
    assert planned["applicable"] is True
    assert planned["acls"]["status"] == "no authorizer"
    assert {c["field"] for c in item["schema_changes"]} == {
        "event_id", "item_id", "action", "quantity", "occurred_at"
    }  # fmt: skip

    applied = _mesh(["products", "apply"], project, env)
    assert applied.exit_code == 0, applied.stderr
    assert f"{PRODUCT}: schema registered under {SUBJECT}" in applied.stdout
    assert f"{PRODUCT}: descriptor registered" in applied.stdout
    assert f"{PRODUCT}: topic inventory.example-event.v1 created" in applied.stdout
    assert _versions(registry, SUBJECT) == [1]

    again = _mesh(["products", "apply"], project, env)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"{PRODUCT}: unchanged",
        "unchanged: the registry and Kafka already match the 1 product(s)",
    ]
    assert _versions(registry, SUBJECT) == [1]
    replan = json.loads(_mesh(["products", "plan", "--json"], project, env).stdout)
    assert replan["unchanged"] is True
    assert replan["products"][0]["topic_status"] == "as specified"

    publisher = subprocess.run(
        [sys.executable, "domains/inventory/publisher.py"],
        cwd=project,
        env={**os.environ, **env, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert publisher.returncode == 0, publisher.stderr
    tail = _mesh(
        ["tail", PRODUCT, "--from-beginning", "--max", "10", "--timeout", "30", "--json"],
        project,
        env,
    )
    assert tail.exit_code == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted(r["quantity"] for r in records) == list(range(1, 11))

    show = _mesh(["products", "show", PRODUCT, "--json"], project, env)
    assert show.exit_code == 0, show.stderr
    fields = {f["name"]: f for f in json.loads(show.stdout)["fields"]}
    assert fields["occurred_at"]["type"] == "long (timestamp-millis)"
    assert fields["item_id"]["doc"] == "Id of the item the event is about; the Kafka key."

    # The scaffolded processor template computes a second product from the first.
    _add_item_totals(project)
    assert _mesh(["lint"], project, env).exit_code == 0
    totals_apply = _mesh(["products", "apply"], project, env)
    assert totals_apply.exit_code == 0, totals_apply.stderr
    assert "inventory.item-totals: descriptor registered" in totals_apply.stdout
    worker_env = {**os.environ, **env, "PYTHONPATH": str(REPOSITORY)}
    worker_env["MESH_DATA_DIR"] = str(workspace / "processor-data")
    log = (workspace / "processor.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "domains/inventory/processors/example_processor.py", "worker"],
        cwd=project,
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        totals = _latest_totals(kafka, registry, expected=EXPECTED_TOTALS, within=120)
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    assert totals == EXPECTED_TOTALS, (workspace / "processor.log").read_text()[-3000:]

    # Another domain's repository builds on the product, which it finds in the registry only.
    reporting = workspace / "reporting"
    assert _mesh(["init", "reporting", str(reporting)], workspace, env).exit_code == 0
    (reporting / "domains/reporting/products/item-totals.yaml").write_text(
        ITEM_TOTALS.replace("inventory.item-totals", "reporting.item-totals")
        .replace("domain: inventory", "domain: reporting")
        .replace("schemas/inventory/", "schemas/reporting/")
        .replace("team: inventory-team, contact: inventory-team@", "team: bi, contact: bi@")
    )
    (reporting / "schemas/reporting/item-totals.avsc").write_text(json.dumps(ITEM_TOTALS_SCHEMA))
    as_reporting = _env(kafka, registry, "reporting")
    lint = _mesh(["lint"], reporting, as_reporting)  # the input is found in the registry
    assert lint.exit_code == 0, lint.stdout + lint.stderr
    assert "inputs-exist" not in lint.stdout
    plan = _mesh(["products", "plan", "--json"], reporting, as_reporting)
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert _mesh(["products", "apply"], reporting, as_reporting).exit_code == 0
    lineage = _mesh(
        ["products", "lineage", PRODUCT, "--direction", "downstream", "--json"], reporting, env
    )
    assert [
        edge["to"] for edge in json.loads(lineage.stdout)["edges"] if edge["to"].startswith("rep")
    ] == ["reporting.item-totals"]


def test_apply_creates_every_products_dead_letter_topic(
    kafka: KafkaAddress, registry: Registry, workspace: Path
) -> None:
    """A product's dead-letter topic is created by apply, its owner's tool (a campaign: ACLs
    and monitoring set up after apply saw no such topic), whether or not a DLQ rule writes
    there: its readers dead-letter what they cannot decode there, and may not create it
    (they would choose its retention, h42). Its own domain: the module's registry is shared."""
    env = _env(kafka, registry, "stock")
    project = workspace / "stock"
    assert _mesh(["init", "stock", str(project)], workspace, env).exit_code == 0
    dlq_topic = "stock.example-event.v1.dlq"
    planned = _mesh(["products", "plan"], project, env)
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    assert f"dead-letter topic {dlq_topic}: missing, apply creates it" in planned.stdout
    applied = _mesh(["products", "apply"], project, env)
    assert applied.exit_code == 0, applied.stderr
    assert f"stock.example-event: dead-letter topic {dlq_topic} created" in applied.stdout
    admin = make_admin(KafkaConnection.create(kafka.bootstrap_servers), {"log_level": 0})
    assert dlq_topic in admin.list_topics(timeout=10).topics
    assert json.loads(_mesh(["products", "plan", "--json"], project, env).stdout)["unchanged"]
    # One a reader made with a retention of a second, before owners created them (h42): plan
    # says so, and apply sets it as specified (h43).
    config = ConfigResource(
        ResourceType.TOPIC,
        dlq_topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([config])[config].result(30)
    drifted = _mesh(["products", "plan"], project, env)
    assert f"dead-letter topic {dlq_topic}: differs from its spec, apply sets it" in (
        drifted.stdout
    ), drifted.stdout
    assert "retention.ms is 1000" in drifted.stdout
    fixed = _mesh(["products", "apply"], project, env)
    assert fixed.exit_code == 0, fixed.stderr
    assert f"stock.example-event: dead-letter topic {dlq_topic} set as specified" in fixed.stdout
    described = ConfigResource(ResourceType.TOPIC, dlq_topic)
    entries = admin.describe_configs([described])[described].result(30)
    assert entries["retention.ms"].value == "604800000"
    assert json.loads(_mesh(["products", "plan", "--json"], project, env).stdout)["unchanged"]


def test_a_publisher_leaves_out_of_the_catalog_a_descriptor_its_topic_contradicts(
    kafka: KafkaAddress, registry: Registry, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`mesh products apply` refuses a descriptor promising 3 partitions and `delete` for a
    topic with 1 and `compact`; a publisher opening first put it in the catalog all the same
    (a campaign). It publishes to the topic as it is, and leaves the catalog alone."""
    env = _env(kafka, registry, "depot")
    project = workspace / "depot"
    assert _mesh(["init", "depot", str(project)], workspace, env).exit_code == 0
    topic = "depot.example-event.v1"
    admin = make_admin(KafkaConnection.create(kafka.bootstrap_servers), {"log_level": 0})
    created = admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[
        topic
    ]
    created.result(30)
    records = project / "records.jsonl"
    records.write_text(
        json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "item_id": "item-1",
                "action": "CREATED",
                "quantity": 1,
                "occurred_at": 1_767_225_600_000,
            }
        )
        + "\n"
    )
    with caplog.at_level("WARNING"):
        published = _mesh(["publish", "depot.example-event", "--file", str(records)], project, env)
    assert published.exit_code == 0, published.stdout + published.stderr
    assert "registered the descriptor" not in published.stderr
    warned = [
        r.getMessage()
        for r in caplog.records
        if "is not registered in the catalog" in r.getMessage()
    ]
    assert warned, caplog.text
    assert warned[0].startswith(
        f"the descriptor of depot.example-event is not registered in the catalog: its topic "
        f"{topic} partitions is 1, the spec says 3"
    ), warned[0]
    assert httpx.get(f"{registry.url}/products/depot.example-event", timeout=10).status_code == 404


def test_refused_applies_name_the_file_and_write_nothing(
    kafka: KafkaAddress, registry: Registry, workspace: Path
) -> None:
    env = _env(kafka, registry)
    project = workspace / "inventory"
    assert _mesh(["init", "inventory", str(project)], workspace, env).exit_code == 0
    assert _mesh(["products", "apply"], project, env).exit_code == 0
    schema = project / SCHEMA_FILE
    original = schema.read_text()

    # A descriptor of another domain: the registry would answer 403; nothing is written.
    (project / "mesh.yaml").write_text(
        (project / "mesh.yaml").read_text().replace("[inventory]", "[inventory, orders]")
    )
    orders = project / "domains/orders/products"
    orders.mkdir(parents=True)
    (orders / "stock-order.yaml").write_text(
        (project / "domains/inventory/products/example-event.yaml")
        .read_text()
        .replace("inventory.example-event", "orders.stock-order")
        .replace("domain: inventory", "domain: orders")
        .replace("schemas/inventory/example-event.avsc", "schemas/orders/stock-order.avsc")
    )
    (project / "schemas/orders").mkdir()
    (project / "schemas/orders/stock-order.avsc").write_text(original)
    refused = _mesh(["products", "apply"], project, env)
    assert refused.exit_code == 1
    [ownership] = [line for line in _errors(refused) if "[ownership]" in line]
    assert ownership.startswith("refused: domains/orders/products/stock-order.yaml:4: ")
    assert "403" in ownership
    assert "MESH_REGISTRY_PRINCIPAL=orders" in ownership
    assert _errors(refused)[-1].startswith("error: nothing applied: 1 refusal(s)")
    assert _versions(registry, "orders.stock-order.v1-value") == []
    assert "orders.stock-order" not in _mesh(["products", "list"], project, env).stdout
    (orders / "stock-order.yaml").unlink()

    # A broken .avsc: plan and apply name the file and line; nothing is written.
    schema.write_text(original.replace('"int"', '"int",,'))
    for command in ("plan", "apply"):
        broken = _mesh(["products", command], project, env)
        assert broken.exit_code == 1, command
        named = [
            line for line in _errors(broken) if "schemas/inventory/example-event.avsc:" in line
        ]
        assert named, broken.stderr
        assert "[schema-valid]" in named[0]
    assert _versions(registry, SUBJECT) == [1]

    # An incompatible change (int -> string): plan and apply name the field; nothing written.
    schema.write_text(
        original.replace(
            '"name": "quantity", "type": "int"', '"name": "quantity", "type": "string"'
        )
    )
    plan = _mesh(["products", "plan"], project, env)
    assert plan.exit_code == 1
    assert "~ quantity: int -> string" in plan.stdout
    assert "INCOMPATIBLE" in plan.stdout
    apply = _mesh(["products", "apply"], project, env)
    assert apply.exit_code == 1
    [incompatible] = [line for line in _errors(apply) if "[schema-compatibility]" in line]
    assert incompatible.startswith(f"refused: {SCHEMA_FILE}:10: ")
    assert "quantity" in incompatible
    assert _versions(registry, SUBJECT) == [1]

    # A compatible change goes through and registers version 2.
    schema.write_text(
        original.replace(
            '    {"name": "occurred_at"',
            '    {"name": "note", "type": ["null", "string"], "default": null, "doc": "A '
            'remark."},\n'
            '    {"name": "occurred_at"',
        )
    )
    plan = _mesh(["products", "plan"], project, env)
    assert plan.exit_code == 0, plan.stderr
    assert "+ note: null|string" in plan.stdout
    assert "compatible (registry)" in plan.stdout
    assert _mesh(["products", "apply"], project, env).exit_code == 0
    assert _versions(registry, SUBJECT) == [1, 2]

    # More partitions in the descriptor than the topic has: the catalog would describe a
    # topic that is not there, so it is refused at the line, and nothing is written.
    descriptor = project / "domains/inventory/products/example-event.yaml"
    text = descriptor.read_text()
    line = text.splitlines().index("partitions: 3") + 1
    descriptor.write_text(text.replace("partitions: 3", "partitions: 6"))
    topic = "inventory.example-event.v1"
    plan = _mesh(["products", "plan"], project, env)
    assert plan.exit_code == 1, plan.stderr
    assert "    descriptor partitions: 3 -> 6" in plan.stdout
    assert f"topic {topic}: drifted" in plan.stdout
    assert "[topic-contradiction]" in plan.stderr
    refused = _mesh(["products", "apply"], project, env)
    assert refused.exit_code == 1
    [contradiction] = [e for e in _errors(refused) if "[topic-contradiction]" in e]
    assert contradiction == (
        f"refused: domains/inventory/products/example-event.yaml:{line}: [topic-contradiction] "
        f"topic {topic} exists with partitions 3, but the descriptor says 6: the catalog would "
        "describe a topic that is not there; fix: set `partitions` to the topic's 3, or have "
        "the topic altered first (kafka-topics --alter --partitions; apply never alters an "
        "existing topic)"
    )
    # Fewer than the topic has: Kafka cannot take partitions away, so the fix is the descriptor.
    descriptor.write_text(text.replace("partitions: 3", "partitions: 2"))
    fewer = _mesh(["products", "apply"], project, env)
    assert fewer.exit_code == 1
    assert (
        f"[topic-contradiction] topic {topic} exists with partitions 3, but the descriptor says "
        "2: the catalog would describe a topic that is not there; fix: set `partitions: 3` "
        "(Kafka cannot take partitions away)"
    ) in fewer.stderr
    # Another retention: refused until the topic has it (the platform alters it), then the
    # same descriptor goes through. The topic is shared with other tests: set back after.
    day = "86400000"
    descriptor.write_text(text.replace("ms: 604800000", f"ms: {day}"))
    longer = _mesh(["products", "apply"], project, env)
    assert longer.exit_code == 1
    assert f"exists with retention.ms 604800000, but the descriptor says {day}" in longer.stderr
    try:
        _set_retention(kafka, topic, day)
        apply = _mesh(["products", "apply"], project, env)
        assert apply.exit_code == 0, apply.stderr
        assert f"{PRODUCT}: descriptor updated" in apply.stdout
        assert "differs from its descriptor" not in apply.stderr
    finally:
        _set_retention(kafka, topic, "604800000")


def _set_retention(kafka: KafkaAddress, topic: str, retention_ms: str) -> None:
    """Alter ``topic``'s retention.ms, as the platform would with kafka-configs."""
    admin = make_admin(KafkaConnection(bootstrap_servers=kafka.bootstrap_servers))
    change = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", retention_ms, incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)


def test_a_project_root_without_mesh_yaml_is_one_line_naming_the_setting(
    kafka: KafkaAddress, registry: Registry, workspace: Path
) -> None:
    env = {**_env(kafka, registry), "MESH_PROJECT_ROOT": str(workspace)}

    for command in ("plan", "apply"):
        result = _mesh(["products", command], workspace, env)
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: MESH_PROJECT_ROOT=")
        assert "mesh.yaml" in result.stderr


@pytest.fixture
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    """A 1-node SASL cluster with an authorizer and the users admin and inventory."""
    data_dir = tmp_path_factory.mktemp("sasl")
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    base |= {"MESH_DATA_DIR": str(data_dir), "MESH_BROKER_HEAP": "256m"}
    if "MESH_CACHE_DIR" in os.environ:
        base["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]

    def broker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mesh_stream.cli.main", "broker", *args],
            env=base,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    started = broker("start", "--port", "0", "--security", "sasl", "--domains", "inventory")
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.split("bootstrap servers: ")[1].split()[0]
        yield SecuredCluster(bootstrap, data_dir, read_passwords(data_dir), None, "")
    finally:
        stopped = broker("stop")
        assert stopped.returncode == 0, stopped.stderr


def _kafka_user(cluster: SecuredCluster, user: str) -> dict[str, str]:
    return {
        "MESH_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MESH_KAFKA_SASL_USERNAME": user,
        "MESH_KAFKA_SASL_PASSWORD": cluster.passwords[user],
    }


def test_on_a_cluster_with_an_authorizer_apply_grants_the_domains_acls_once(
    kafka: KafkaAddress, registry: Registry, workspace: Path, sasl_cluster: SecuredCluster
) -> None:
    project = workspace / "inventory"
    scaffold("inventory", project)
    as_admin = {**_env(kafka, registry), **_kafka_user(sasl_cluster, "admin")}

    plan = _mesh(["products", "plan", "--json"], project, as_admin)
    assert plan.exit_code == 0, plan.stderr
    acls = json.loads(plan.stdout)["acls"]
    assert acls["status"] == "missing"
    missing = {(a["principal"], a["operation"], a["name"]) for a in acls["missing"]}
    assert ("User:inventory", "WRITE", "inventory.") in missing
    assert {principal for principal, _, _ in missing} == {"User:inventory"}

    applied = _mesh(["products", "apply"], project, as_admin)
    assert applied.exit_code == 0, applied.stderr
    created = [line for line in applied.stdout.splitlines() if line.startswith("ACL created: ")]
    assert len(created) == len(acls["missing"])
    again = _mesh(["products", "apply"], project, as_admin)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("unchanged: ")
    replan = json.loads(_mesh(["products", "plan", "--json"], project, as_admin).stdout)
    assert replan["acls"] == {"status": "in place", "missing": [], "note": None}

    # The domain's own Kafka user may now write its product.
    publisher = subprocess.run(
        [sys.executable, "domains/inventory/publisher.py"],
        cwd=project,
        env={
            **os.environ,
            **_env(kafka, registry),
            **_kafka_user(sasl_cluster, "inventory"),
            "PYTHONPATH": str(REPOSITORY),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert publisher.returncode == 0, publisher.stderr
