"""A processor's inputs come from the registry: its project holds only its own output.

The registry is the real service over its in-memory store, reached over HTTP; the project
is a temporary folder with mesh.yaml, the output's descriptor and its .avsc, and no YAML of
the input's domain.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domains.analytics.processors import revenue
from mesh_stream.descriptor import DataProduct, load_descriptor
from mesh_stream.errors import (
    ConfigurationError,
    MeshError,
    ProductNotFoundError,
    SubjectNotFoundError,
)
from mesh_stream.kafka.topics import TopicState
from mesh_stream.processing import app as processing_app
from mesh_stream.project import MeshProject, load_project
from mesh_stream.registration import registered_inputs
from mesh_stream.registry.client import RegistryClient
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.server import RegistryServer
from mesh_stream.settings import MeshSettings

REPO = Path(__file__).resolve().parents[3]
TOKENS = {"admin": "admin-secret", "orders": "orders-secret", "analytics": "analytics-secret"}
OUTPUT = "analytics.revenue-by-region"
INPUT = "orders.order-placed"
# Kafka is never reached in these tests: port 1 answers nobody.
SETTINGS = MeshSettings(bootstrap_servers="127.0.0.1:1", registry_url="http://127.0.0.1:1")


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    running = RegistryServer(create_app(InMemoryStore(), credentials=Credentials(TOKENS)))
    running.start()
    yield running
    running.stop()


def client(server: RegistryServer, principal: str) -> RegistryClient:
    return RegistryClient(server.url, principal=principal, token=TOKENS[principal])


@pytest.fixture
def analytics(server: RegistryServer) -> Iterator[RegistryClient]:
    with client(server, "analytics") as made:
        yield made


@pytest.fixture
def project(tmp_path: Path) -> MeshProject:
    """The analytics domain's own repository: its output only, nothing of orders."""
    descriptor = REPO / "domains" / "analytics" / "products" / "revenue-by-region.yaml"
    target = tmp_path / "domains" / "analytics" / "products"
    target.mkdir(parents=True)
    shutil.copy(descriptor, target)
    schema = load_descriptor(descriptor).schema_file
    (tmp_path / schema).parent.mkdir(parents=True)
    shutil.copy(REPO / schema, tmp_path / schema)
    (tmp_path / "mesh.yaml").write_text("domains: [analytics]\n")
    return load_project(tmp_path)


def publish_input(server: RegistryServer, **changes: Any) -> DataProduct:
    """What the orders domain does from its own repository: schema, then descriptor."""
    product = load_descriptor(REPO / "domains" / "orders" / "products" / "order-placed.yaml")
    product = product.model_copy(update=changes)
    with client(server, "orders") as orders:
        text = (REPO / product.schema_file).read_text(encoding="utf-8")
        orders.register_schema(product.value_subject, text)
        orders.put_product(product)
    return product


def test_inputs_are_the_registrys_descriptor_and_latest_schema(
    server: RegistryServer, analytics: RegistryClient, project: MeshProject
) -> None:
    published = publish_input(server, description="As the registry tells it.")
    output = project.descriptor(OUTPUT)
    assert output is not None
    assert project.descriptor(INPUT) is None  # no YAML of the orders domain here

    inputs, schemas = registered_inputs(analytics, output, wait=0)

    assert inputs == (published,)
    assert inputs[0].description == "As the registry tells it."
    assert schemas == {INPUT: analytics.get_latest(published.value_subject).schema}


def test_prepare_builds_the_spec_from_the_project_and_the_registry(
    server: RegistryServer,
    analytics: RegistryClient,
    project: MeshProject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published = publish_input(server)
    created: list[list[str]] = []
    # The topics are Kafka's business (tests/integration/test_processors.py); here: which ones,
    # after Kafka's settings are checked (a wrong protocol is named at once, not in 30 s).
    monkeypatch.setattr(processing_app, "probe", lambda _conn, **_timeout: created.append(["?"]))
    monkeypatch.setattr(
        processing_app,
        "absent_topics",
        lambda _conn, products: created.append(["absent?", *(p.topic for p in products)]) or [],
    )
    monkeypatch.setattr(
        processing_app,
        "ensure_topics",
        lambda _conn, products: created.append([p.topic for p in products]),
    )
    monkeypatch.setattr(
        processing_app,
        "ensure_dlq_topics",
        lambda _conn, products, every: created.append([p.dlq_topic for p in products if every]),
    )

    spec = processing_app.prepare(SETTINGS, OUTPUT, project=project, registry=analytics)

    assert spec.inputs == (published,)
    assert spec.output == project.descriptor(OUTPUT)
    assert spec.output_schema == project.schema_path(spec.output).read_text(encoding="utf-8")
    assert set(spec.input_schemas) == {INPUT}
    assert created == [
        ["?"],
        ["absent?", published.topic],  # an input's topic is its domain's to create
        [spec.output.topic],
        [published.dlq_topic],
    ]
    registered = analytics.get_latest(spec.output.value_subject)
    assert registered.schema_id == spec.output_schema_id
    assert analytics.get_product(OUTPUT)["inputs"] == [INPUT]  # its lineage, in the catalog


def test_an_unregistered_input_is_named_with_the_fix_before_kafka_is_touched(
    analytics: RegistryClient, project: MeshProject
) -> None:
    with pytest.raises(ProductNotFoundError) as caught:
        processing_app.prepare(
            SETTINGS, OUTPUT, project=project, registry=analytics, wait_for_inputs=0
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"{OUTPUT}: input {INPUT} is not registered (descriptor and value schema) in the "
        f"registry at {analytics.url}; publish it first (`mesh products apply` in its "
        f"domain's project, or start its publisher), then start this processor"
    )


def test_a_wait_for_an_input_is_said_when_it_starts_not_only_when_it_ends(
    analytics: RegistryClient, project: MeshProject, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker waiting for a missing input logged nothing for 120 s (processor campaign)."""
    output = project.descriptor(OUTPUT)
    assert output is not None
    with (
        caplog.at_level(logging.WARNING, logger="mesh_stream.registration"),
        pytest.raises(ProductNotFoundError),
    ):
        registered_inputs(analytics, output, wait=2.0, poll_interval=0.2)
    assert [r.getMessage() for r in caplog.records] == [
        f"{OUTPUT}: input {INPUT} is not registered in the registry at {analytics.url} yet; "
        "waiting up to 2 s for its publisher"
    ]


def test_a_misspelt_input_is_said_with_the_registered_product_it_resembles_at_once(
    server: RegistryServer,
    analytics: RegistryClient,
    project: MeshProject,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typo in ``inputs`` looked like a publisher not started yet: nothing said which
    registered product was meant until the two-minute wait ended (h55)."""
    publish_input(server)
    output = project.descriptor(OUTPUT)
    assert output is not None
    typo = output.model_copy(update={"inputs": ["orders.order-placd"]})
    with (
        caplog.at_level(logging.WARNING, logger="mesh_stream.registration"),
        pytest.raises(ProductNotFoundError) as caught,
    ):
        registered_inputs(analytics, typo, wait=0.3, poll_interval=0.1)
    assert [r.getMessage() for r in caplog.records] == [
        f"{OUTPUT}: input orders.order-placd is not registered in the registry at "
        f"{analytics.url} yet (did you mean {INPUT}?); waiting up to 0.3 s for its publisher"
    ]
    assert f"after 0 s (did you mean {INPUT}?); publish it first" in str(caught.value)


def test_an_input_nothing_registered_resembles_gets_no_guess(
    server: RegistryServer, analytics: RegistryClient, project: MeshProject
) -> None:
    publish_input(server)
    output = project.descriptor(OUTPUT)
    assert output is not None
    other = output.model_copy(update={"inputs": ["payments.refund-issued"]})
    with pytest.raises(ProductNotFoundError) as caught:
        registered_inputs(analytics, other, wait=0)
    assert "did you mean" not in str(caught.value)


def test_an_input_registered_while_the_processor_waits_is_taken(
    server: RegistryServer, analytics: RegistryClient, project: MeshProject
) -> None:
    output = project.descriptor(OUTPUT)
    assert output is not None
    calls = 0
    original = analytics.get_product

    def get_product(name: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:  # the publisher registers it between two looks
            publish_input(server)
        return original(name)

    analytics.get_product = get_product  # type: ignore[method-assign]
    inputs, _schemas = registered_inputs(analytics, output, wait=30, poll_interval=0.01)
    assert [p.name for p in inputs] == [INPUT]
    assert calls == 2  # missing at the first look, taken at the second


def test_the_output_must_be_a_product_of_the_project(
    analytics: RegistryClient, project: MeshProject
) -> None:
    with pytest.raises(ConfigurationError, match=r"no product 'analytics\.nope'"):
        processing_app.prepare(SETTINGS, "analytics.nope", project=project, registry=analytics)


def test_a_field_the_processor_reads_but_the_input_lost_stops_prepare(
    server: RegistryServer, analytics: RegistryClient, project: MeshProject
) -> None:
    publish_input(server)
    [orders] = revenue.PROCESSOR.inputs
    reads_more = dataclasses.replace(orders, reads=(*orders.reads, "coupon_code"))
    processor = dataclasses.replace(revenue.PROCESSOR, inputs=(reads_more,))
    with pytest.raises(ConfigurationError) as refused:
        processing_app.prepare(
            SETTINGS, OUTPUT, project=project, registry=analytics, processor=processor
        )
    message = str(refused.value)
    assert "processor analytics.revenue-by-region reads field 'coupon_code'" in message
    assert INPUT in message
    assert "\n" not in message
    with pytest.raises(SubjectNotFoundError):  # refused before the output was registered
        analytics.get_latest("analytics.revenue-by-region.v1-value")


def test_a_worker_whose_input_lost_a_field_prints_one_line_and_exits_1(
    server: RegistryServer, project: MeshProject
) -> None:
    """What a team sees when the orders domain removed a field the processor reads."""
    publish_input(server)
    script = (
        "import dataclasses\n"
        "from domains.analytics.processors import revenue\n"
        "from mesh_stream.processing import run\n"
        "[orders] = revenue.PROCESSOR.inputs\n"
        "more = dataclasses.replace(orders, reads=(*orders.reads, 'coupon_code'))\n"
        "run(dataclasses.replace(revenue.PROCESSOR, inputs=(more,)), ['worker'])\n"
    )
    env = {
        **os.environ,
        "MESH_REGISTRY_URL": server.url,
        "MESH_REGISTRY_PRINCIPAL": "analytics",
        "MESH_REGISTRY_TOKEN": TOKENS["analytics"],
        "MESH_PROJECT_ROOT": str(project.root),
        "MESH_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: processor analytics.revenue-by-region reads field 'coupon_code' of "
        "orders.order-placed"
    )


def test_prepare_registers_the_rekey_group_with_the_fields_the_processor_reads(
    server: RegistryServer,
    analytics: RegistryClient,
    project: MeshProject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a processor has started, the registry refuses an input version that drops a
    field it reads, naming its group (not only products that declare field_lineage)."""
    published = publish_input(server)
    monkeypatch.setattr(processing_app, "probe", lambda _conn, **_timeout: None)
    monkeypatch.setattr(processing_app, "absent_topics", lambda _conn, _products: [])
    monkeypatch.setattr(processing_app, "ensure_topics", lambda _conn, _products: None)
    monkeypatch.setattr(processing_app, "ensure_dlq_topics", lambda _c, _p, **_every: None)

    processing_app.prepare(
        SETTINGS, OUTPUT, project=project, registry=analytics, processor=revenue.PROCESSOR
    )

    [registration] = analytics.consumers(INPUT)
    assert registration["group"] == f"mesh-{OUTPUT}-rekey"
    assert registration["owner"] == "analytics"
    assert registration["reads"] == sorted(revenue.PROCESSOR.input(INPUT).reads)
    schema = json.loads((REPO / published.schema_file).read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "region"]
    with client(server, "orders") as orders, pytest.raises(MeshError) as refused:
        orders.register_schema(published.value_subject, json.dumps(schema))
    assert f"mesh-{OUTPUT}-rekey" in str(refused.value)
    assert "region" in str(refused.value)


def test_a_worker_outside_any_project_is_told_the_setting_it_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was told to pass --project DIR, which a worker (faust's command line) lacks."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MeshError) as caught:
        processing_app.prepare(SETTINGS.model_copy(update={"project_root": None}), OUTPUT)
    assert str(caught.value).endswith(
        "run inside a project, create one with `mesh init DOMAIN`, or name it with "
        "MESH_PROJECT_ROOT"
    )


def publish_major_two_without(server: RegistryServer, field: str) -> DataProduct:
    """The orders domain moves its product to major 2, a new topic and subject whose schema
    drops ``field`` (the registry checks nothing across majors)."""
    product = load_descriptor(REPO / "domains" / "orders" / "products" / "order-placed.yaml")
    product = product.model_copy(update={"version": 2})
    document = json.loads((REPO / product.schema_file).read_text(encoding="utf-8"))
    document["fields"] = [item for item in document["fields"] if item["name"] != field]
    with client(server, "orders") as orders:
        orders.register_schema(product.value_subject, json.dumps(document))
        orders.put_product(product)
    return product


def pinned(major: object) -> Any:
    [orders] = revenue.PROCESSOR.inputs
    return dataclasses.replace(
        revenue.PROCESSOR, inputs=(dataclasses.replace(orders, major=major),)
    )


def prepare_without_kafka(
    monkeypatch: pytest.MonkeyPatch,
    project: MeshProject,
    registry: RegistryClient,
    processor: Any,
    partitions_on_cluster: int = 3,
) -> Any:
    for name in ("probe", "ensure_topics"):
        monkeypatch.setattr(processing_app, name, lambda *_args, **_kwargs: None)
    monkeypatch.setattr(processing_app, "make_admin", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(
        processing_app.topics,
        "describe_topic",
        lambda _admin, _conn, name: TopicState(name, partitions_on_cluster, frozenset({1})),
    )
    monkeypatch.setattr(processing_app, "absent_topics", lambda _conn, _products: [])
    monkeypatch.setattr(processing_app, "ensure_dlq_topics", lambda *_args, **_kwargs: None)
    return processing_app.prepare(
        SETTINGS, OUTPUT, project=project, registry=registry, processor=processor
    )


def test_an_input_read_at_an_earlier_major_keeps_its_topic_and_schema(
    server: RegistryServer,
    analytics: RegistryClient,
    project: MeshProject,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new major that drops a field the processor reads stops it at its current major; held
    at major 1, it reads the v1 topic with the v1 subject's latest schema."""
    first = publish_input(server)
    publish_major_two_without(server, "region")
    with pytest.raises(ConfigurationError, match="reads field 'region'"):
        prepare_without_kafka(monkeypatch, project, analytics, revenue.PROCESSOR)

    caplog.set_level(logging.INFO)
    spec = prepare_without_kafka(monkeypatch, project, analytics, pinned(1))

    assert [product.topic for product in spec.inputs] == ["orders.order-placed.v1"]
    assert spec.inputs[0] == first
    # the v1 topic's partitions, not the current major's (h46: the window clock waited for
    # partitions v1 does not have)
    assert first.partitions != 6
    spec = prepare_without_kafka(
        monkeypatch, project, analytics, pinned(1), partitions_on_cluster=6
    )
    assert spec.inputs[0].partitions == 6
    assert spec.input_schemas == {INPUT: analytics.get_latest(first.value_subject).schema}
    # not registered as a reader: the registry would check `reads` (region) against v2 and
    # refuse, with a warning whose advice does not apply
    said = [r.getMessage() for r in caplog.records if r.name == processing_app.__name__]
    assert (
        f"{OUTPUT}: input {INPUT} is held at major 1; its re-key group is not registered as a "
        f"reader (the registry protects the current major's fields)"
    ) in said
    assert not [r for r in caplog.records if "is not registered on product" in r.getMessage()]


def test_an_input_major_that_is_not_there_is_named(
    server: RegistryServer,
    analytics: RegistryClient,
    project: MeshProject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish_major_two_without(server, "coupon_code")  # only major 2 was ever published
    with pytest.raises(ConfigurationError) as ahead:
        prepare_without_kafka(monkeypatch, project, analytics, pinned(3))
    assert str(ahead.value) == (
        f"{OUTPUT}: input {INPUT} is read at major 3, but its current major is 2 "
        f"({INPUT}.v2); read a major from 1 to 2"
    )
    with pytest.raises(ConfigurationError) as retired:
        prepare_without_kafka(monkeypatch, project, analytics, pinned(1))
    assert str(retired.value) == (
        f"{OUTPUT}: input {INPUT} is read at major 1, but the registry at {analytics.url} has "
        f"no schema under {INPUT}.v1-value (that major was retired, or never published); read "
        f"another major"
    )


@pytest.mark.parametrize("major", [0, -1, True, "1", 1.0])
def test_a_major_that_is_no_version_number_is_refused_naming_the_input(major: object) -> None:
    with pytest.raises(ConfigurationError) as refused:
        pinned(major)
    assert str(refused.value).startswith(
        f"Input {INPUT}: major must be a whole number from 1 (the major version to read, "
        f"e.g. major=1 for {INPUT}.v1) or None for the current one, got "
    )


class _Readers:
    """The registry's consumer registrations of one product, as `RegistryClient.consumers`."""

    def __init__(self, *entries: dict[str, Any], fails: bool = False) -> None:
        self.entries, self.fails = list(entries), fails

    def consumers(self, product: str) -> list[dict[str, Any]]:
        if self.fails:
            from mesh_stream.errors import RegistryUnavailableError

            raise RegistryUnavailableError(f"{product}: registry away", status=503)
        return self.entries


def test_a_second_processor_declared_for_one_output_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two different processors for one output shared its groups and mixed their outputs
    without a word (h55): the re-key group's registration names the module its processor's
    apply came from, and a worker of another module warns."""
    from mesh_stream.processing.app import REKEY_READER, _warn_if_declared_elsewhere

    group = "mesh-inventory.totals-rekey"
    theirs = {"group": group, "description": f"{REKEY_READER} inventory.totals (team.two_a)"}
    with caplog.at_level(logging.WARNING):
        _warn_if_declared_elsewhere(_Readers(theirs), "inventory.event", group, "team.two_b")
    [warned] = [r.getMessage() for r in caplog.records]
    assert warned.startswith(
        f"consumer group {group} on inventory.event was registered by a worker whose processor "
        "comes from module team.two_a; this one runs team.two_b. Two different processors for "
        "one output share its consumer groups"
    )
    caplog.clear()
    other_group = {**theirs, "group": "mesh-inventory.other-rekey"}
    older = {"group": group, "description": f"{REKEY_READER} inventory.totals"}  # no module
    for readers in (
        _Readers(theirs),  # the same module: its other workers (scaled out)
        _Readers(other_group),
        _Readers(older),
        _Readers(fails=True),
    ):
        module = "team.two_a"
        with caplog.at_level(logging.WARNING):
            _warn_if_declared_elsewhere(readers, "inventory.event", group, module)
    assert caplog.records == []
