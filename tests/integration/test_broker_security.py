"""The secured local cluster, reached through KafkaConnection: real brokers, real SCRAM, TLS.

A 1-node ``sasl`` cluster started with `mesh broker start --security sasl` (the CLI path,
users admin, orders and payments) and a 1-node ``sasl_ssl`` cluster started through
``LocalCluster``, each on its own data dir and free ports, each stopped in teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from mesh_stream.broker import local_cluster
from mesh_stream.broker.cluster import LocalCluster
from mesh_stream.errors import KafkaAuthenticationError, KafkaAuthorizationError
from mesh_stream.kafka import (
    KafkaConnection,
    explain_kafka_error,
    make_admin,
    make_consumer,
    make_producer,
    new_topic,
    probe,
)
from mesh_stream.kafka.topics import TopicSpec, ensure_topic
from mesh_stream.settings import MeshSettings
from tests.conftest import KafkaAddress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MESH = [sys.executable, "-m", "mesh_stream.cli.main"]
HEAP = "256m"


def mesh(
    data_dir: Path, *args: str, timeout: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env["MESH_DATA_DIR"] = str(data_dir)
    env["MESH_BROKER_HEAP"] = HEAP
    if "MESH_CACHE_DIR" in os.environ:
        env["MESH_CACHE_DIR"] = os.environ["MESH_CACHE_DIR"]
    return subprocess.run(
        [*MESH, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


@dataclass(frozen=True)
class SecuredCluster:
    bootstrap_servers: str
    data_dir: Path
    passwords: dict[str, str]
    ca_file: Path | None
    start_output: str

    def settings(self, user: str, **changes: object) -> MeshSettings:
        """The MESH_* settings a client of ``user`` would have (as from the environment)."""
        values: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "kafka_security_protocol": "SASL_SSL" if self.ca_file else "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": user,
            "kafka_sasl_password": self.passwords.get(user),
            "kafka_ssl_ca_location": self.ca_file,
        }
        values.update(changes)
        return MeshSettings(**values)  # type: ignore[arg-type]

    def connection(self, user: str, **changes: object) -> KafkaConnection:
        return KafkaConnection.from_settings(self.settings(user, **changes))


def read_passwords(data_dir: Path) -> dict[str, str]:
    raw = json.loads((data_dir / "broker" / "credentials.json").read_text())
    return dict(raw["users"])


@pytest.fixture(scope="module")
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    data_dir = tmp_path_factory.mktemp("sasl")
    # A project whose domain folders (those holding products/) name the users; started from
    # inside it, no --domains. A folder without products/ is no domain.
    project = tmp_path_factory.mktemp("project")
    (project / "mesh.yaml").write_text("name: secured\n")
    for domain in ("payments", "orders"):
        (project / "domains" / domain / "products").mkdir(parents=True)
    (project / "domains" / "__pycache__").mkdir()
    started = mesh(
        data_dir, "broker", "start", "--port", "0", "--security", "sasl",
        cwd=project / "domains" / "orders",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.split("bootstrap servers: ")[1].split()[0]
        yield SecuredCluster(
            bootstrap, data_dir, read_passwords(data_dir), None, started.stdout + started.stderr
        )
    finally:
        stopped = mesh(data_dir, "broker", "stop")
        assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def sasl_ssl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    data_dir = tmp_path_factory.mktemp("sasl-ssl")
    settings = MeshSettings(data_dir=data_dir, broker_heap=HEAP)
    cluster: LocalCluster = local_cluster(settings)
    try:
        state = cluster.start(brokers=1, port=0, timeout=120, security="sasl_ssl", users=["orders"])
        ca_file = data_dir / "broker" / "tls" / "ca.pem"
        yield SecuredCluster(
            state.bootstrap_servers, data_dir, read_passwords(data_dir), ca_file, ""
        )
    finally:
        cluster.stop()


def round_trip(conn: KafkaConnection, topic: str, values: list[bytes]) -> list[bytes]:
    """Create ``topic``, produce ``values`` (acks=all, every report checked), read them back."""
    admin = make_admin(conn)
    admin.create_topics([new_topic(topic, partitions=1)])[topic].result(30)
    errors: list[KafkaError | None] = []
    producer = make_producer(conn, {"acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None] * len(values)
    consumer = make_consumer(
        conn, {"group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    read: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(read) < len(values) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            read.append(message.value() or b"")
    consumer.close()
    return read


# -- sasl --------------------------------------------------------------------------------
def test_start_prints_no_password_and_status_names_the_credentials_file(
    sasl_cluster: SecuredCluster,
) -> None:
    credentials_file = sasl_cluster.data_dir / "broker" / "credentials.json"
    assert list(sasl_cluster.passwords) == ["admin", "orders", "payments", "registry", "monitor"]
    for password in sasl_cluster.passwords.values():
        assert password not in sasl_cluster.start_output
    assert (
        f"security: sasl (SASL_PLAINTEXT, SCRAM-SHA-512); users admin, orders, payments, "
        f"registry, monitor; "
        f"passwords in {credentials_file}"
    ) in sasl_cluster.start_output
    assert "export MESH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n" in sasl_cluster.start_output
    assert oct(credentials_file.stat().st_mode & 0o777) == "0o600"
    node = sasl_cluster.data_dir / "broker" / "node-1"
    assert oct((node / "server.properties").stat().st_mode & 0o777) == "0o600"
    assert not (node / "format.args").exists()  # the argfile that carried --add-scram
    log = (node / "server.log").read_text()
    assert "Kafka Server started" in log
    for password in sasl_cluster.passwords.values():
        assert password not in log

    status = mesh(sasl_cluster.data_dir, "broker", "status")
    assert status.returncode == 0
    assert f"  security sasl; credentials in {credentials_file}\n" in status.stdout
    report = json.loads(mesh(sasl_cluster.data_dir, "broker", "status", "--json").stdout)
    assert (report["security"], report["credentials_file"]) == ("sasl", str(credentials_file))
    for password in sasl_cluster.passwords.values():
        assert password not in status.stdout + json.dumps(report)

    # The printed export line reads the admin password from the file, without showing it.
    line = next(
        x for x in sasl_cluster.start_output.splitlines() if "MESH_KAFKA_SASL_PASSWORD" in x
    )
    shown = subprocess.run(
        ["bash", "-c", f'{line}; printf %s "$MESH_KAFKA_SASL_PASSWORD"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == sasl_cluster.passwords["admin"]


def test_admin_creates_a_topic_and_produces_and_consumes(sasl_cluster: SecuredCluster) -> None:
    conn = sasl_cluster.connection("admin")
    values = [b"one", b"two", b"three"]
    assert round_trip(conn, "secured.round-trip.v1", values) == values


def test_a_domain_user_authenticates_and_the_broker_enforces_acls(
    sasl_cluster: SecuredCluster,
) -> None:
    admin = sasl_cluster.connection("admin")
    admin_client = make_admin(admin)
    admin_client.create_topics([new_topic("admin.only.v1", partitions=1)])["admin.only.v1"].result(
        30
    )
    orders = sasl_cluster.connection("orders")
    assert list(probe(orders, timeout=15).brokers) == [1]

    reports: list[KafkaError | None] = []
    producer = make_producer(orders, {"acks": "all", "message.timeout.ms": 10000})
    producer.produce("admin.only.v1", b"x", on_delivery=lambda err, _m: reports.append(err))
    producer.flush(20)
    assert len(reports) == 1
    refused = reports[0]
    assert refused is not None
    assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    error = explain_kafka_error(refused, orders, topic="admin.only.v1", operation="WRITE")
    assert isinstance(error, KafkaAuthorizationError)
    assert str(error).startswith(
        f"User:orders may not WRITE topic admin.only.v1 at {sasl_cluster.bootstrap_servers}: "
        "no ACL allows it (TOPIC_AUTHORIZATION_FAILED)"
    )


def test_a_registry_run_as_a_domains_user_is_told_to_run_as_its_own(
    sasl_cluster: SecuredCluster,
) -> None:
    """The broker's refusal advised granting User:orders the registry's topic, which would
    let a domain rewrite every domain's schemas (a campaign)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env |= {
        "MESH_BOOTSTRAP_SERVERS": sasl_cluster.bootstrap_servers,
        "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MESH_KAFKA_SASL_USERNAME": "orders",
        "MESH_KAFKA_SASL_PASSWORD": sasl_cluster.passwords["orders"],
        "MESH_REGISTRY_TOPIC": f"_mesh_registry_{uuid.uuid4().hex[:6]}",
    }
    served = subprocess.run(
        [*MESH, "registry", "serve", "--port", "0", "--open-writes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert served.returncode == 1, served.stderr
    last = served.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: the registry runs as User:orders, which the broker does not let use the "
        f"registry's topic {env['MESH_REGISTRY_TOPIC']}; run it as the registry's own Kafka "
        "user, the one `mesh acl apply` grants that topic (User:registry unless it was given "
        "--registry-principal; MESH_KAFKA_SASL_USERNAME=registry with its password)"
    ), served.stderr
    assert sasl_cluster.passwords["orders"] not in served.stdout + served.stderr


def test_a_wrong_password_is_a_clear_authentication_error(sasl_cluster: SecuredCluster) -> None:
    conn = sasl_cluster.connection("payments", kafka_sasl_password="not-the-password")
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as caught:
        probe(conn, timeout=20)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(
        f"authentication to {sasl_cluster.bootstrap_servers} failed as payments with "
        "SCRAM-SHA-512: check MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD"
    )
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in message
    assert "not-the-password" not in message
    # what `mesh tail`, `mesh monitor` and `mesh registry serve` ask first names the
    # credentials too (a docs audit: it said the listener needs credentials or TLS, and to
    # check the protocol and CA settings)
    from mesh_stream.broker.reachability import existing_topics

    with pytest.raises(KafkaAuthenticationError) as caught:
        existing_topics(conn, timeout=5)
    message = str(caught.value)
    assert message.startswith(
        f"authentication to {sasl_cluster.bootstrap_servers} failed as payments with "
        "SCRAM-SHA-512: "
    ), message
    assert "check MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message
    # and so does a publisher opening, which creates its topic first (a campaign: after 19 s
    # it said no broker answers, and to start Kafka)
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError, match="failed as payments with SCRAM-SHA-512"):
        ensure_topic(conn, TopicSpec("payments.anything.v1", 1, 1), timeout=20)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("addresses", [1, 2], ids=["one-address", "two-addresses"])
def test_no_credentials_against_the_sasl_listener_fails_clearly(
    sasl_cluster: SecuredCluster, addresses: int
) -> None:
    """With several bootstrap servers librdkafka reports no "all brokers down", only each
    metadata ask's own error (h59: a 3-node cluster got "Failed to get metadata: Local: Timed
    out" after the whole timeout); the same listener under two names stands in for them."""
    port = sasl_cluster.bootstrap_servers.rpartition(":")[2]
    servers = ",".join([f"127.0.0.1:{port}", f"localhost:{port}"][:addresses])
    conn = KafkaConnection.from_settings(MeshSettings(bootstrap_servers=servers))
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as caught:
        probe(conn, timeout=20)
    assert time.monotonic() - started < 10
    assert str(caught.value) == (
        f"{servers} accepts connections but closes them on Kafka "
        "requests sent over PLAINTEXT: the listener needs credentials or TLS; check "
        "MESH_KAFKA_SECURITY_PROTOCOL, MESH_KAFKA_SASL_MECHANISM, MESH_KAFKA_SASL_USERNAME / "
        "MESH_KAFKA_SASL_PASSWORD and MESH_KAFKA_SSL_CA_LOCATION"
    )


@pytest.mark.parametrize("listener_prefix", ["", "PLAINTEXT://"])
def test_sasl_settings_against_a_plaintext_listener_name_the_protocol_setting(
    kafka: KafkaAddress, listener_prefix: str
) -> None:
    """SASL credentials pointed at a PLAINTEXT listener: the listener answers plain Kafka
    requests, so the error says the protocol is wrong, not the credentials (hostile-input
    campaign: it said the listener needs credentials or TLS). A server given with its
    listener's protocol, as librdkafka allows, is probed too (h41: it was skipped)."""
    from mesh_stream.broker.reachability import existing_topics

    servers = listener_prefix + kafka.bootstrap_servers
    conn = KafkaConnection.from_settings(
        MeshSettings(
            bootstrap_servers=servers,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="orders",
            kafka_sasl_password="not-shown-anywhere",
        )
    )
    expected = (
        f"{servers} is a PLAINTEXT listener (it answers Kafka requests without "
        "credentials or TLS), but mesh connects over SASL_PLAINTEXT: set "
        "MESH_KAFKA_SECURITY_PROTOCOL=PLAINTEXT (and drop the MESH_KAFKA_SASL_* and "
        "MESH_KAFKA_SSL_* settings), or point MESH_BOOTSTRAP_SERVERS at the cluster's "
        "SASL_PLAINTEXT listener"
    )
    for ask in (lambda: probe(conn, timeout=20), lambda: existing_topics(conn, timeout=5)):
        with pytest.raises(KafkaAuthenticationError) as caught:
            ask()
        assert str(caught.value) == expected
        assert "not-shown-anywhere" not in str(caught.value)


def test_tls_against_a_plaintext_listener_is_named_at_once(kafka: KafkaAddress) -> None:
    """A processor worker with MESH_KAFKA_SECURITY_PROTOCOL=SSL against a PLAINTEXT broker
    waited 30 s in the topics' creation, then said that no broker answers; `prepare` now
    asks through `probe`, as the CLI does."""
    conn = KafkaConnection.from_settings(
        MeshSettings(bootstrap_servers=kafka.bootstrap_servers, kafka_security_protocol="SSL")
    )
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as caught:
        probe(conn, timeout=30)
    assert time.monotonic() - started < 15
    assert str(caught.value).startswith(
        f"{kafka.bootstrap_servers} is a PLAINTEXT listener (it answers Kafka requests without "
        "credentials or TLS), but mesh connects over SSL: set MESH_KAFKA_SECURITY_PROTOCOL="
        "PLAINTEXT"
    )


def test_a_restart_with_a_new_domain_adds_its_user_and_keeps_the_others(
    sasl_cluster: SecuredCluster,
) -> None:
    assert mesh(sasl_cluster.data_dir, "broker", "stop").returncode == 0
    again = mesh(
        sasl_cluster.data_dir, "broker", "start", "--port", "0", "--security", "sasl",
        "--domains", "orders,payments,shipping",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "added SCRAM users: shipping" in again.stderr
    passwords = read_passwords(sasl_cluster.data_dir)
    assert {k: v for k, v in passwords.items() if k != "shipping"} == sasl_cluster.passwords
    shipping = sasl_cluster.connection("shipping", kafka_sasl_password=passwords["shipping"])
    assert list(probe(shipping, timeout=15).brokers) == [1]
    assert list(probe(sasl_cluster.connection("orders"), timeout=15).brokers) == [1]


# -- sasl_ssl ------------------------------------------------------------------------------
def test_over_tls_a_client_with_the_generated_ca_produces_and_consumes(
    sasl_ssl_cluster: SecuredCluster,
) -> None:
    conn = sasl_ssl_cluster.connection("admin")
    assert conn.librdkafka_config()["security.protocol"] == "sasl_ssl"
    values = [b"tls-1", b"tls-2"]
    assert round_trip(conn, "secured.tls.v1", values) == values
    assert list(probe(sasl_ssl_cluster.connection("orders"), timeout=15).brokers) == [1]


def test_over_tls_a_client_without_the_ca_names_the_ca_setting(
    sasl_ssl_cluster: SecuredCluster,
) -> None:
    """Asked by the probe (publishers, processors) and by what `mesh tail`, `mesh monitor`
    and `mesh registry serve` ask first (h42: those named only the protocol setting)."""
    from mesh_stream.broker.reachability import existing_topics

    conn = sasl_ssl_cluster.connection("orders", kafka_ssl_ca_location=None)
    for ask in (lambda: probe(conn, timeout=20), lambda: existing_topics(conn, timeout=10)):
        started = time.monotonic()
        with pytest.raises(KafkaAuthenticationError) as caught:
            ask()
        assert time.monotonic() - started < 15
        assert str(caught.value).startswith(
            f"the TLS certificate of {sasl_ssl_cluster.bootstrap_servers} could not be "
            "verified: set MESH_KAFKA_SSL_CA_LOCATION to the PEM file of the CA that signed it "
            "(now unset, so the system's CAs are used)"
        )


def test_over_tls_a_refused_password_names_the_credentials(
    sasl_ssl_cluster: SecuredCluster,
) -> None:
    from mesh_stream.broker.reachability import existing_topics

    conn = sasl_ssl_cluster.connection("orders", kafka_sasl_password="not-the-password")
    for ask in (lambda: probe(conn, timeout=20), lambda: existing_topics(conn, timeout=10)):
        with pytest.raises(KafkaAuthenticationError) as caught:
            ask()
        message = str(caught.value)
        assert message.startswith(
            f"authentication to {sasl_ssl_cluster.bootstrap_servers} failed as orders with "
            "SCRAM-SHA-512"
        ), message
        assert "MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD" in message
        assert "not-the-password" not in message


def test_faust_credentials_connect_aiokafka_over_sasl_ssl(
    sasl_ssl_cluster: SecuredCluster,
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    conn = sasl_ssl_cluster.connection("admin")
    admin = make_admin(conn)
    admin.create_topics([new_topic("secured.faust.v1", partitions=1)])["secured.faust.v1"].result(
        30
    )
    auth = credentials_to_aiokafka_auth(conn.faust_broker_credentials())
    servers = conn.faust_broker_url().replace("kafka://", "").replace(";", ",")

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=servers, **auth)
        await producer.start()
        try:
            await producer.send_and_wait("secured.faust.v1", b"from-aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "secured.faust.v1", bootstrap_servers=servers, auto_offset_reset="earliest", **auth
        )
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=15000, max_records=1)
        finally:
            await consumer.stop()
        return [record.value for records in batch.values() for record in records]

    assert asyncio.run(run()) == [b"from-aiokafka"]
