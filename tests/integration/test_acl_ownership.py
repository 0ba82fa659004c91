"""Ownership at the broker: `mesh acl apply` with the sample mesh's descriptors on a real
1-node SASL cluster (users admin + the sample domains), stopped in teardown.

After apply, ``payments`` cannot write ``orders.order-placed.v1`` (and nothing is written)
but reads it, ``orders`` writes it, the pii ``customers.customer-profile`` is read by
``analytics`` (named in its ``readers``) and refused to ``payments``; a second apply
changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from mesh_stream.cli.product_health import KafkaAlerts
from mesh_stream.descriptor import load_descriptors
from mesh_stream.errors import KafkaAuthorizationError
from mesh_stream.governance.acl_plan import ALERTS_TOPIC, plan_project
from mesh_stream.health import Alert, FigureName, Status
from mesh_stream.kafka import (
    KafkaConnection,
    explain_kafka_error,
    make_admin,
    make_consumer,
    make_producer,
    new_topic,
)
from mesh_stream.products_plan.model import AclStatus, ProjectPlan
from mesh_stream.products_plan.plan import _plan_acls
from tests.conftest import KafkaAddress
from tests.integration.test_broker_security import SecuredCluster, read_passwords

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
MESH = [sys.executable, "-m", "mesh_stream.cli.main"]
HEAP = "256m"
ORDERS = "orders.order-placed.v1"
PROFILE = "customers.customer-profile.v1"
DOMAINS = "analytics,customers,orders,payments,shipping"


def mesh(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    base |= {"MESH_DATA_DIR": str(data_dir), "MESH_BROKER_HEAP": HEAP}
    if "MESH_CACHE_DIR" in os.environ:
        base["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]
    return subprocess.run(
        [*MESH, *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
    )


def as_user(cluster: SecuredCluster, user: str) -> dict[str, str]:
    """The MESH_KAFKA_* environment of ``user`` on ``cluster``."""
    return {
        "MESH_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MESH_KAFKA_SASL_USERNAME": user,
        "MESH_KAFKA_SASL_PASSWORD": cluster.passwords[user],
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    data_dir = tmp_path_factory.mktemp("acl")
    started = mesh(
        data_dir, "broker", "start", "--port", "0", "--security", "sasl", "--domains", DOMAINS
    )
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.split("bootstrap servers: ")[1].split()[0]
        secured = SecuredCluster(bootstrap, data_dir, read_passwords(data_dir), None, "")
        admin = make_admin(secured.connection("admin"))
        created = admin.create_topics([new_topic(t, partitions=1) for t in (ORDERS, PROFILE)])
        for future in created.values():
            future.result(30)
        yield secured
    finally:
        stopped = mesh(data_dir, "broker", "stop")
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def applied(cluster: SecuredCluster) -> subprocess.CompletedProcess[str]:
    result = mesh(
        cluster.data_dir, "acl", "apply", "--root", str(REPO), env=as_user(cluster, "admin")
    )
    assert result.returncode == 0, result.stderr
    return result


def produce(conn: KafkaConnection, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record (acks=all, idempotent) and return its delivery error, if any."""
    reports: list[KafkaError | None] = []
    producer = make_producer(
        conn, {"acks": "all", "enable.idempotence": True, "message.timeout.ms": 10000}
    )
    producer.produce(topic, value, on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(20)
    assert len(reports) == 1
    return reports[0]


def read_all(conn: KafkaConnection, topic: str, *, expect: int) -> list[bytes] | KafkaError:
    """Up to ``expect`` values of ``topic`` from the start, or the consumer's first error."""
    consumer = make_consumer(
        conn,
        {
            "group.id": f"{conn.sasl_username}.acl-test-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        },
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < expect and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                return error
            values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def records_in(cluster: SecuredCluster, topic: str) -> int:
    consumer = make_consumer(cluster.connection("admin"), {"group.id": "admin-watermarks"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    return int(high - low)


def test_apply_creates_the_plan(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    plan = mesh(cluster.data_dir, "acl", "plan", "--root", str(REPO), "--json")
    assert plan.returncode == 0, plan.stderr
    assert "created: User:orders ALLOW WRITE on TOPIC PREFIXED 'orders.'\n" in applied.stdout
    assert "created: User:payments ALLOW READ on TOPIC LITERAL 'orders.order-placed.v1'\n" in (
        applied.stdout
    )
    assert "deleted:" not in applied.stdout
    created = applied.stdout.count("created: ")
    assert created == plan.stdout.count('"principal"')
    assert f"created {created}, deleted 0 ACL(s)" in applied.stdout


def test_another_domain_cannot_write_an_orders_topic_and_nothing_is_written(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    payments = cluster.connection("payments")
    refused = produce(payments, ORDERS, b"fake order")
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    error = explain_kafka_error(refused, payments, topic=ORDERS, operation="WRITE")
    assert isinstance(error, KafkaAuthorizationError)
    assert str(error).startswith(
        f"User:payments may not WRITE topic {ORDERS} at {cluster.bootstrap_servers}: "
        "no ACL allows it (TOPIC_AUTHORIZATION_FAILED)"
    )
    assert records_in(cluster, ORDERS) == 0


def test_the_owner_writes_and_a_reader_reads(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    assert produce(cluster.connection("orders"), ORDERS, b"real order") is None
    assert read_all(cluster.connection("payments"), ORDERS, expect=1) == [b"real order"]
    assert b"fake order" not in read_all(cluster.connection("admin"), ORDERS, expect=1)


def test_a_reader_writes_a_dead_letter_topic_but_cannot_create_one(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    """Readers were granted CREATE on `<topic>.dlq`: one could create another domain's
    dead-letter topic with a retention of a second, and everyone's dead letters vanished
    (h42). The owner creates it; a reader only writes there."""
    dlq = f"{ORDERS}.dlq"
    admin = make_admin(cluster.connection("admin"), {"log_level": 0})
    with contextlib.suppress(KafkaException):  # the owner's (here admin's) topic, once
        admin.create_topics([new_topic(dlq, partitions=1, replication_factor=1)])[dlq].result(30)
    assert produce(cluster.connection("payments"), dlq, b"undecodable") is None
    squatted = "orders.order-status-changed.v1.dlq"  # payments reads the product
    with contextlib.suppress(KafkaException):  # gone, as before the owner's first apply
        admin.delete_topics([squatted])[squatted].result(30)
    reader = make_admin(cluster.connection("payments"), {"log_level": 0})
    created = reader.create_topics(
        [new_topic(squatted, partitions=1, replication_factor=1, config={"retention.ms": "1000"})]
    )[squatted]
    with pytest.raises(KafkaException) as refused:
        created.result(30)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_pii_product_is_read_only_by_the_domains_it_names(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    assert produce(cluster.connection("customers"), PROFILE, b"alice") is None
    assert read_all(cluster.connection("analytics"), PROFILE, expect=1) == [b"alice"]
    refused = read_all(cluster.connection("payments"), PROFILE, expect=1)
    assert isinstance(refused, KafkaError)
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce(cluster.connection("analytics"), PROFILE, b"mallory") is not None


def test_a_domain_user_follows_the_product_alerts_and_cannot_write_them(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    """`mesh products status --watch` as a domain's user: it reads the monitor's alerts."""
    topic = ALERTS_TOPIC
    admin = make_admin(cluster.connection("admin"))
    for future in admin.create_topics([new_topic(topic, partitions=1)]).values():
        future.result(30)
    alerts = KafkaAlerts(cluster.connection("payments"), topic)
    try:
        assert alerts.poll(1.0) == []  # assigned at the end: nothing published before
        alert = Alert(
            kind="breach",
            product="orders.order-placed",
            figure=FigureName.FRESHNESS_SECONDS,
            slo=5.0,
            value=9.0,
            status=Status.BREACHED,
            since_ms=int(time.time() * 1000),
            reason="newest record age",
        )
        assert (
            produce(cluster.connection("monitor"), topic, alert.model_dump_json().encode()) is None
        )
        seen: list[Alert | str] = []
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            seen += alerts.poll(0.5)
        assert seen == [alert]
    finally:
        alerts.close()
    assert produce(cluster.connection("payments"), topic, b"forged alert") is not None


def test_a_second_apply_changes_nothing_and_stale_mesh_acls_are_removed(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    admin = as_user(cluster, "admin")
    again = mesh(cluster.data_dir, "acl", "apply", "--root", str(REPO), env=admin)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("no changes: the ")
    assert "created" not in again.stdout
    assert "deleted" not in again.stdout

    # A project without the pii reader: apply removes analytics' grant on the profile only.
    project = cluster.data_dir / "project"
    (project / "domains").mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(REPO / "domains"), str(project)], check=True)
    descriptor = project / "domains" / "customers" / "products" / "customer-profile.yaml"
    descriptor.write_text(descriptor.read_text().replace("readers: [analytics]\n", ""))
    (project / "mesh.yaml").write_text("name: acl-test\n")
    dry = mesh(cluster.data_dir, "acl", "apply", "--dry-run", env=admin, cwd=project / "domains")
    assert dry.returncode == 0, dry.stderr
    assert "would delete: User:analytics ALLOW READ on TOPIC LITERAL " in dry.stdout
    assert "would create: " not in dry.stdout
    changed = mesh(cluster.data_dir, "acl", "apply", "--root", str(project), env=admin)
    assert changed.returncode == 0, changed.stderr
    deleted = [line for line in changed.stdout.splitlines() if line.startswith("deleted: ")]
    assert deleted == [
        f"deleted: User:analytics ALLOW {op} on TOPIC LITERAL '{topic}'"
        for op, topic in [
            ("DESCRIBE", PROFILE),
            ("DESCRIBE_CONFIGS", PROFILE),
            ("READ", PROFILE),
            ("DESCRIBE", f"{PROFILE}.dlq"),
            ("DESCRIBE_CONFIGS", f"{PROFILE}.dlq"),
            ("WRITE", f"{PROFILE}.dlq"),
        ]
    ]
    refused = read_all(cluster.connection("analytics"), PROFILE, expect=1)
    assert isinstance(refused, KafkaError)
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    restored = mesh(cluster.data_dir, "acl", "apply", "--root", str(REPO), env=admin)
    assert restored.returncode == 0, restored.stderr
    assert "created 6, deleted 0 ACL(s)" in restored.stdout


def test_a_domain_removed_from_the_project_loses_every_acl_the_mesh_granted_for_it(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    """The project drops `shipping` (and the analytics product built from it): apply leaves
    shipping's ACLs alone until `--retire shipping`, which deletes User:shipping's ACLs and
    everyone's on shipping's names, and shipping can write nothing."""
    admin = as_user(cluster, "admin")
    dispatched = "shipping.shipment-dispatched.v1"
    kafka_admin = make_admin(cluster.connection("admin"))  # kept: its futures need it alive
    kafka_admin.create_topics([new_topic(dispatched, partitions=1)])[dispatched].result(30)
    assert produce(cluster.connection("shipping"), dispatched, b"before") is None
    project = cluster.data_dir / "without-shipping"
    project.mkdir()
    subprocess.run(["cp", "-r", str(REPO / "domains"), str(project)], check=True)
    (project / "mesh.yaml").write_text("name: acl-test\n")
    subprocess.run(["rm", "-r", str(project / "domains" / "shipping")], check=True)
    (project / "domains" / "analytics" / "products" / "order-fulfilment-sla.yaml").unlink()
    expected = set(plan_project(REPO).acls) - set(plan_project(project).acls)
    assert {acl.principal for acl in expected} >= {"User:shipping", "User:monitor"}

    # Without --retire, a domain the project lacks is named and left alone: a project may
    # be one domain's repository. Only the analytics product built from shipping goes.
    kept = mesh(cluster.data_dir, "acl", "apply", "--root", str(project), env=admin)
    alone = "domain 'shipping' is not in this project, but the cluster still lets User:shipping"
    try:
        assert kept.returncode == 0, kept.stderr
        assert alone in kept.stderr
        assert "run again with --retire shipping" in kept.stderr
        deleted = {line for line in kept.stdout.splitlines() if line.startswith("deleted: ")}
        assert deleted
        assert not [line for line in deleted if "shipping" in line.split(" on ")[0]]
        assert produce(cluster.connection("shipping"), dispatched, b"kept") is None
        retire = ("acl", "apply", "--root", str(project), "--retire", "shipping")
        dry = mesh(cluster.data_dir, *retire, "--dry-run", env=admin)
        assert dry.returncode == 0, dry.stderr
        assert "domain 'shipping' is retired: would delete every ACL the mesh granted" in dry.stderr
        assert produce(cluster.connection("shipping"), dispatched, b"dry run") is None
        retired = mesh(cluster.data_dir, *retire, env=admin)
        assert retired.returncode == 0, retired.stderr
        deleted |= {line for line in retired.stdout.splitlines() if line.startswith("deleted: ")}
        assert deleted == {f"deleted: {acl}" for acl in expected}
        assert "created: " not in retired.stdout
        error = produce(cluster.connection("shipping"), dispatched, b"after")
        assert error is not None
        assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        assert records_in(cluster, dispatched) == 3  # "before", "kept" and "dry run"
        again = mesh(cluster.data_dir, *retire, env=admin)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("no changes: the ")
        assert "domain 'shipping': the cluster holds no ACL the mesh granted for it" in again.stderr
        assert alone not in again.stderr
        planned = mesh(cluster.data_dir, *retire[:-1], "orders", env=admin)
        assert planned.returncode == 2
        assert "'orders': this project still grants it" in planned.stderr
    finally:
        restored = mesh(cluster.data_dir, "acl", "apply", "--root", str(REPO), env=admin)
        assert restored.returncode == 0, restored.stderr
    assert f"created {len(expected)}, deleted 0 ACL(s)" in restored.stdout


def monitor_sees(cluster: SecuredCluster, topic: str) -> bool:
    """Whether User:monitor may read ``topic``'s offsets (as the product monitor does)."""
    consumer = make_consumer(cluster.connection("monitor"), {"group.id": "mesh-monitor-test"})
    try:
        consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    except KafkaException as exc:
        # an unauthorized topic is left out of the metadata: "unknown partition"
        hidden = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._UNKNOWN_PARTITION)
        if exc.args[0].code() not in hidden:
            raise
        return False
    finally:
        consumer.close()
    return True


def test_a_replaced_monitor_principal_keeps_its_grants_until_retired(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    """--monitor-principal User:monitor2 alone leaves the old User:monitor reading the pii
    profile; --retire-principal User:monitor deletes exactly the old principal's ACLs."""
    admin = as_user(cluster, "admin")
    replaced = ("acl", "apply", "--root", str(REPO), "--monitor-principal", "User:monitor2")
    old = {acl for acl in plan_project(REPO).acls if acl.principal == "User:monitor"}
    assert monitor_sees(cluster, PROFILE)
    moved = mesh(cluster.data_dir, *replaced, env=admin)
    try:
        assert moved.returncode == 0, moved.stderr
        assert "User:monitor ALLOW" not in moved.stdout
        assert f"created {len(old)}, deleted 0 ACL(s)" in moved.stdout  # monitor2's
        assert monitor_sees(cluster, PROFILE)
        refused = mesh(
            cluster.data_dir, *replaced, "--retire-principal", "User:monitor2", env=admin
        )
        assert refused.returncode == 2
        assert "User:monitor2 is still granted by this plan" in refused.stderr
        retired = mesh(cluster.data_dir, *replaced, "--retire-principal", "User:monitor", env=admin)
        assert retired.returncode == 0, retired.stderr
        assert "User:monitor is retired: deleting the ACLs the mesh granted it" in retired.stderr
        deleted = {line for line in retired.stdout.splitlines() if line.startswith("deleted: ")}
        assert deleted == {f"deleted: {acl}" for acl in old}
        assert not monitor_sees(cluster, PROFILE)
    finally:
        restored = mesh(cluster.data_dir, "acl", "apply", "--root", str(REPO), env=admin)
        assert restored.returncode == 0, restored.stderr
    assert monitor_sees(cluster, PROFILE)


def test_apply_by_a_domain_user_is_a_one_line_authorization_error(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    # Another registry principal: there is something to create, which orders may not.
    refused = mesh(
        cluster.data_dir, "acl", "apply", "--root", str(REPO), "--registry-principal",
        "User:other", env=as_user(cluster, "orders"),
    )  # fmt: skip
    # Kafka answers a principal that may not DESCRIBE the cluster with no ACLs at all, not
    # an error: the plan would be "create every ACL". It is refused, saying whose it is.
    said = (
        f"error: User:orders may not DESCRIBE the ACLs of the cluster at "
        f"{cluster.bootstrap_servers}: that takes a principal allowed to DESCRIBE the "
        f"cluster, such as the cluster's admin (set MESH_KAFKA_SASL_USERNAME"
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(said), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cluster.passwords["orders"] not in refused.stdout + refused.stderr
    dry_run = mesh(
        cluster.data_dir, "acl", "apply", "--dry-run", "--root", str(REPO),
        env=as_user(cluster, "orders"),
    )  # fmt: skip
    assert dry_run.returncode == 1
    assert dry_run.stderr.startswith(said), dry_run.stderr
    assert "would create" not in dry_run.stdout
    # the product plan (what `mesh products plan` shows) says the ACLs cannot be read, not
    # that they are missing
    plan = ProjectPlan(REPO, ("orders",), "http://127.0.0.1:1", cluster.bootstrap_servers)
    orders = cluster.connection("orders")
    products = [p for p in load_descriptors(REPO / "domains") if p.domain == "orders"]
    _plan_acls(plan, orders, make_admin(orders), products)
    assert plan.acl_status is AclStatus.UNREADABLE
    assert plan.acl_note is not None
    assert plan.acl_note.startswith("cannot read the cluster's ACLs (User:orders may not DESCRIBE")
    assert plan.acls_missing == []


def test_apply_without_credentials_names_the_settings(
    cluster: SecuredCluster, applied: subprocess.CompletedProcess[str]
) -> None:
    refused = mesh(
        cluster.data_dir,
        "acl",
        "apply",
        "--root",
        str(REPO),
        env={"MESH_BOOTSTRAP_SERVERS": cluster.bootstrap_servers},
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {cluster.bootstrap_servers} accepts connections")
    assert "MESH_KAFKA_SASL_USERNAME" in refused.stderr


def test_a_cluster_without_an_authorizer_is_security_disabled(
    kafka: KafkaAddress, tmp_path: Path
) -> None:
    refused = mesh(
        tmp_path,
        "acl",
        "apply",
        "--root",
        str(REPO),
        env={"MESH_BOOTSTRAP_SERVERS": kafka.bootstrap_servers},
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"error: the cluster at {kafka.bootstrap_servers} has no authorizer, so it keeps no "
        "ACLs (SECURITY_DISABLED)"
    )
