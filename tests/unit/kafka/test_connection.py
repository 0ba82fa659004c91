"""KafkaConnection: settings in, validated before any connection, configs out, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from mesh_stream.broker.security import ensure_tls
from mesh_stream.errors import (
    BrokerUnreachableError,
    ConfigurationError,
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    SettingsError,
)
from mesh_stream.kafka import KafkaConnection, SaslMechanism, SecurityProtocol, explain_kafka_error
from mesh_stream.settings import MeshSettings

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def _no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, not from MESH_* variables of the shell."""
    import os

    for key in [k for k in os.environ if k.startswith("MESH_")]:
        monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CA and a certificate + key pair (made by the broker launcher's helper)."""
    directory = tmp_path_factory.mktemp("tls")
    files = ensure_tls(directory)
    pem = files.keystore_file.read_text()
    key_end = pem.index("-----END PRIVATE KEY-----") + len("-----END PRIVATE KEY-----\n")
    (directory / "client.key").write_text(pem[:key_end])
    (directory / "client.pem").write_text(pem[key_end:])
    return directory


def sasl(**changes: object) -> KafkaConnection:
    values: dict[str, object] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "orders",
        "sasl_password": PASSWORD,
    }
    values.update(changes)
    return KafkaConnection.create("b1:9092,b2:9092", **values)  # type: ignore[arg-type]


def test_a_listener_protocol_before_a_server_is_librdkafkas_alone() -> None:
    """librdkafka takes ``SASL_SSL://host:port``; faust's URL and the socket probes get the
    address without it (h41: faust was given ``kafka://PLAINTEXT://...``)."""
    conn = KafkaConnection.create("PLAINTEXT://b1:9092, sasl_ssl://[::1]:9093")
    assert (
        conn.librdkafka_config()["bootstrap.servers"]
        == "PLAINTEXT://b1:9092, sasl_ssl://[::1]:9093"
    )
    assert conn.addresses == [("b1", "9092"), ("[::1]", "9093")]
    assert conn.faust_broker_url() == "kafka://b1:9092;kafka://[::1]:9093"
    with pytest.raises(ConfigurationError, match=r"has no port in 'PLAINTEXT://b1' \(host:port\)"):
        KafkaConnection.create("PLAINTEXT://b1")


def test_defaults_render_a_plaintext_local_config() -> None:
    conn = KafkaConnection.from_settings(MeshSettings())
    assert conn.security_protocol is SecurityProtocol.PLAINTEXT
    assert dict(conn.librdkafka_config()) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "plaintext",
    }
    assert conn.faust_broker_url() == "kafka://127.0.0.1:9092"
    assert conn.faust_broker_credentials() is None
    assert "faust" not in sys.modules or "mesh_stream.processing" in sys.modules
    assert conn.ssl_context() is None
    assert conn.principal == "User:ANONYMOUS"


def test_from_environment_renders_every_librdkafka_key(
    tls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "MESH_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "MESH_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "MESH_KAFKA_SASL_USERNAME": "payments",
        "MESH_KAFKA_SASL_PASSWORD": PASSWORD,
        "MESH_KAFKA_SSL_CA_LOCATION": str(tls / "ca.pem"),
        "MESH_KAFKA_SSL_CERTIFICATE_LOCATION": str(tls / "client.pem"),
        "MESH_KAFKA_SSL_KEY_LOCATION": str(tls / "client.key"),
        "MESH_KAFKA_CLIENT_ID": "payments-svc",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    conn = KafkaConnection.from_settings(MeshSettings(), default_client_id="ignored")
    config = conn.librdkafka_config({"group.id": "g", "client.id": "override"})
    assert dict(config) == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "payments",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(tls / "ca.pem"),
        "ssl.certificate.location": str(tls / "client.pem"),
        "ssl.key.location": str(tls / "client.key"),
        "client.id": "override",
        "group.id": "g",
    }
    assert conn.principal == "User:payments"
    assert conn.describe() == "SASL_SSL to k1:9093,k2:9093 as payments (SCRAM-SHA-256)"


def test_default_client_id_applies_when_the_setting_is_unset() -> None:
    settings = MeshSettings(bootstrap_servers="k:1")
    conn = KafkaConnection.from_settings(settings, default_client_id="mesh-registry")
    assert conn.librdkafka_config()["client.id"] == "mesh-registry"


def test_names_are_read_case_insensitively_and_the_object_is_immutable() -> None:
    conn = sasl(security_protocol="sasl-plaintext", sasl_mechanism="scram_sha_512")
    assert conn.security_protocol is SecurityProtocol.SASL_PLAINTEXT
    assert conn.sasl_mechanism is SaslMechanism.SCRAM_SHA_512
    with pytest.raises(AttributeError):
        conn.sasl_username = "other"  # type: ignore[misc]
    other = conn.replace(sasl_username="payments")
    assert other.sasl_username == "payments"
    assert conn.sasl_username == "orders"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sasl_mechanism": "SCRAM-SHA-1"},
            "MESH_KAFKA_SASL_MECHANISM='SCRAM-SHA-1' is not a supported SASL mechanism; use one "
            "of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"security_protocol": "TLS"},
            "MESH_KAFKA_SECURITY_PROTOCOL='TLS' is not a security protocol; use one of "
            "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {"sasl_username": None},
            "MESH_KAFKA_SASL_PASSWORD is set without MESH_KAFKA_SASL_USERNAME; set both or neither",
        ),
        (
            {"sasl_password": None},
            "MESH_KAFKA_SASL_USERNAME is set without MESH_KAFKA_SASL_PASSWORD; set both or neither",
        ),
        (
            {"sasl_username": None, "sasl_password": None},
            "MESH_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT, which needs "
            "MESH_KAFKA_SASL_USERNAME and MESH_KAFKA_SASL_PASSWORD; set them",
        ),
        (
            {"sasl_mechanism": None},
            "MESH_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT, which needs "
            "MESH_KAFKA_SASL_MECHANISM; use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"security_protocol": "PLAINTEXT"},
            "MESH_KAFKA_SASL_MECHANISM and MESH_KAFKA_SASL_USERNAME and MESH_KAFKA_SASL_PASSWORD "
            "set, but MESH_KAFKA_SECURITY_PROTOCOL is PLAINTEXT; set it to SASL_PLAINTEXT or "
            "SASL_SSL, or unset them",
        ),
        (
            {"security_protocol": "SSL", "sasl_mechanism": None, "sasl_username": None},
            "MESH_KAFKA_SASL_PASSWORD set, but MESH_KAFKA_SECURITY_PROTOCOL is SSL; set it to "
            "SASL_PLAINTEXT or SASL_SSL, or unset them",
        ),
        (
            {"ssl_ca_location": "/etc/ca.pem"},
            "MESH_KAFKA_SSL_CA_LOCATION set, but MESH_KAFKA_SECURITY_PROTOCOL is "
            "SASL_PLAINTEXT; TLS files need SSL or SASL_SSL",
        ),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_setting(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        sasl(**changes)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_tls_files_are_checked_before_any_connection(tls: Path, tmp_path: Path) -> None:
    def build(**files: object) -> KafkaConnection:
        return sasl(security_protocol="SASL_SSL", **files)

    missing = tmp_path / "nope" / "ca.pem"
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_ca_location=missing)
    assert str(caught.value) == (
        f"MESH_KAFKA_SSL_CA_LOCATION: {missing} does not exist; point it at a PEM file"
    )
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_ca_location=tmp_path)
    assert str(caught.value) == (
        f"MESH_KAFKA_SSL_CA_LOCATION: {tmp_path} is not a file; point it at a PEM file"
    )
    garbage = tmp_path / "ca.der"
    garbage.write_bytes(b"\x30\x82\x01\x0a")
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_ca_location=garbage)
    assert str(caught.value) == (
        f"MESH_KAFKA_SSL_CA_LOCATION: {garbage} is not a PEM file (no -----BEGIN line)"
    )
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_certificate_location=tls / "client.pem")
    assert str(caught.value) == (
        "MESH_KAFKA_SSL_CERTIFICATE_LOCATION is set without MESH_KAFKA_SSL_KEY_LOCATION; "
        "a client certificate needs its private key"
    )
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_key_location=tls / "client.key")
    assert str(caught.value) == (
        "MESH_KAFKA_SSL_KEY_LOCATION is set without MESH_KAFKA_SSL_CERTIFICATE_LOCATION; "
        "a private key needs its certificate"
    )
    with pytest.raises(ConfigurationError) as caught:
        build(ssl_certificate_location=tls / "client.pem", ssl_key_location=missing)
    assert str(caught.value) == (
        f"MESH_KAFKA_SSL_KEY_LOCATION: {missing} does not exist; point it at a PEM file"
    )


def test_bootstrap_servers_must_be_host_port() -> None:
    with pytest.raises(ConfigurationError) as caught:
        KafkaConnection.create("localhost")
    assert str(caught.value) == (
        "MESH_BOOTSTRAP_SERVERS='localhost' has no port in 'localhost' (host:port); set it to "
        "your cluster's bootstrap servers, e.g. broker1:9092,broker2:9092"
    )


def test_the_password_never_shows_in_repr_str_or_the_rendered_config() -> None:
    conn = sasl()
    config = conn.librdkafka_config({"ssl.key.password": "keypass"})
    assert config["sasl.password"] == PASSWORD  # the real value goes to librdkafka
    for text in (repr(conn), str(conn), repr(config), str(config), f"{config}", conn.describe()):
        assert PASSWORD not in text
        assert "keypass" not in text
    assert "sasl_password=SecretStr('**********')" in repr(conn)
    assert "'sasl.password': '**********'" in repr(config)
    assert conn.redacted() == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "orders",
        "sasl.password": "**********",
    }
    assert isinstance(sasl(sasl_password=SecretStr(PASSWORD)).sasl_password, SecretStr)


# Run in a child interpreter: importing faust here would leave it in this process's
# sys.modules, where tests/unit/test_public_api.py checks that the API does not pull it in.
FAUST_CHECK = """
import sys
from pathlib import Path

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol, SASLMechanism

from mesh_stream.kafka import KafkaConnection

tls, password = Path(sys.argv[1]), sys.argv[2]
sasl = dict(
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="orders",
    sasl_password=password,
)
conn = KafkaConnection.create("b1:9092,b2:9092", **sasl)
plain = conn.faust_broker_credentials()
assert isinstance(plain, SASLCredentials)
assert plain.protocol is AuthProtocol.SASL_PLAINTEXT
assert plain.mechanism is SASLMechanism.SCRAM_SHA_512
assert (plain.username, plain.password, plain.ssl_context) == ("orders", password, None)
assert password not in repr(plain)
assert conn.faust_broker_url() == "kafka://b1:9092;kafka://b2:9092"

secured = conn.replace(security_protocol="SASL_SSL", ssl_ca_location=tls / "ca.pem")
credentials = secured.faust_broker_credentials()
assert isinstance(credentials, SASLCredentials)
assert credentials.protocol is AuthProtocol.SASL_SSL
assert credentials.ssl_context.check_hostname is True
subjects = [str(c["subject"]) for c in credentials.ssl_context.get_ca_certs()]
assert subjects == ["((('commonName', 'mesh-stream local CA'),),)"], subjects

mtls = KafkaConnection.create(
    "b1:9093",
    security_protocol="SSL",
    ssl_ca_location=tls / "ca.pem",
    ssl_certificate_location=tls / "client.pem",
    ssl_key_location=tls / "client.key",
)
ssl_credentials = mtls.faust_broker_credentials()
assert isinstance(ssl_credentials, SSLCredentials)
assert ssl_credentials.protocol is AuthProtocol.SSL
print("faust credentials ok")
"""


def test_faust_gets_sasl_credentials_with_a_tls_context(tls: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAUST_CHECK, str(tls), PASSWORD],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "faust credentials ok\n"
    mtls = KafkaConnection.create(
        "b1:9093",
        security_protocol="SSL",
        ssl_ca_location=tls / "ca.pem",
        ssl_certificate_location=tls / "client.pem",
        ssl_key_location=tls / "client.key",
    )
    assert mtls.principal == f"the principal of the certificate {tls / 'client.pem'}"


def test_a_key_that_does_not_match_the_certificate_is_named(tls: Path, tmp_path: Path) -> None:
    other = ensure_tls(tmp_path / "other")
    pem = other.keystore_file.read_text()
    (tmp_path / "other.key").write_text(pem[: pem.index("-----END PRIVATE KEY-----") + 26])
    conn = KafkaConnection.create(
        "b1:9093",
        security_protocol="SSL",
        ssl_ca_location=tls / "ca.pem",
        ssl_certificate_location=tls / "client.pem",
        ssl_key_location=tmp_path / "other.key",
    )
    with pytest.raises(ConfigurationError) as caught:
        conn.ssl_context()
    assert str(caught.value).startswith(
        f"MESH_KAFKA_SSL_CERTIFICATE_LOCATION / MESH_KAFKA_SSL_KEY_LOCATION: "
        f"{tls / 'client.pem'} and {tmp_path / 'other.key'} are not a matching PEM "
        f"certificate and unencrypted key"
    )


def test_importing_the_connection_does_not_import_faust() -> None:
    code = (
        "import sys, mesh_stream.kafka, mesh_stream.kafka.connection, mesh_stream.kafka.clients; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- explain_kafka_error -------------------------------------------------------------------
AUTH_TEXT = (
    "sasl_plaintext://b1:9092/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
)


def test_a_failed_sasl_login_names_the_credential_settings() -> None:
    error = explain_kafka_error(KafkaError(KafkaError._AUTHENTICATION, AUTH_TEXT), sasl())
    assert isinstance(error, KafkaAuthenticationError)
    assert str(error) == (
        "authentication to b1:9092,b2:9092 failed as orders with SCRAM-SHA-512: check "
        "MESH_KAFKA_SASL_USERNAME / MESH_KAFKA_SASL_PASSWORD (and MESH_KAFKA_SASL_MECHANISM); "
        f"the broker said: {AUTH_TEXT}"
    )
    wrapped = KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, AUTH_TEXT))
    assert isinstance(explain_kafka_error(wrapped, sasl()), KafkaAuthenticationError)
    assert PASSWORD not in str(error)


def test_an_unverified_broker_certificate_names_the_ca_setting() -> None:
    text = (
        "sasl_ssl://b1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL "
        "routines::certificate verify failed: broker certificate could not be verified"
    )
    conn = sasl(security_protocol="SASL_SSL")
    error = explain_kafka_error(KafkaError(KafkaError._SSL, text), conn)
    assert isinstance(error, KafkaAuthenticationError)
    assert str(error) == (
        "the TLS certificate of b1:9092,b2:9092 could not be verified: set "
        "MESH_KAFKA_SSL_CA_LOCATION to the PEM file of the CA that signed it (now unset, so "
        f"the system's CAs are used); {text}"
    )


def test_a_missing_acl_names_topic_principal_and_operation() -> None:
    error = explain_kafka_error(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed"),
        sasl(sasl_username="payments"),
        topic="orders.order-placed.v1",
        operation="write",
    )
    assert isinstance(error, KafkaAuthorizationError)
    assert str(error) == (
        "User:payments may not WRITE topic orders.order-placed.v1 at b1:9092,b2:9092: no ACL "
        "allows it (TOPIC_AUTHORIZATION_FAILED); topic orders.order-placed.v1 belongs "
        "to domain orders (its name says so) and only that domain's Kafka user writes it: "
        "publish with orders's credentials (MESH_KAFKA_SASL_USERNAME), or ask orders to publish it"
    )  # not "grant yourself the ACL": `mesh acl apply` would remove it (h32)
    read = explain_kafka_error(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        sasl(sasl_username="payments"),
        topic="customers.customer-profile.v1",
        operation="READ",
    )
    assert str(read).endswith(
        "the ACL plan (`mesh acl plan`) lets every domain read domain customers's products "
        "except one classified pii, which only the domains in its descriptor's `readers` "
        "read: ask customers to add payments to `readers`, then `mesh acl apply`"
    )
    own = explain_kafka_error(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        sasl(sasl_username="orders"),
        topic="orders.order-placed.v1",
        operation="WRITE",
    )
    assert "grant ALLOW WRITE on topic orders.order-placed.v1 to User:orders" in str(own)
    group = explain_kafka_error(
        KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED),
        sasl(),
        group="analytics-revenue",
        operation="READ",
    )
    assert str(group).startswith("User:orders may not READ group analytics-revenue at ")
    others = explain_kafka_error(
        KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED),
        sasl(),
        group="payments.billing",
        operation="READ",
    )
    assert str(others).endswith(
        "group payments.billing is not named as orders's: the ACL plan grants a domain the "
        "groups named `orders.<name>` or `orders-<name>`; rename it so, or run with the "
        "credentials of the domain it belongs to"
    )  # not "grant ALLOW READ on group payments.billing to User:orders" (h42)
    for named_elsewise in ("com.acme.reader", "billing-reader"):  # no domain is guessed (h43)
        said = str(
            explain_kafka_error(
                KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED),
                sasl(),
                group=named_elsewise,
                operation="READ",
            )
        )
        assert f"group {named_elsewise} is not named as orders's" in said
    own = explain_kafka_error(
        KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED),
        sasl(),
        group="orders-reporting.v2",
        operation="READ",
    )
    assert "grant ALLOW READ on group orders-reporting.v2 to User:orders" in str(own)
    dead_letters = explain_kafka_error(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        sasl(),
        topic="payments.payment-captured.v1.dlq",
        operation="READ",
    )
    assert str(dead_letters).endswith(
        "payments.payment-captured.v1.dlq is a dead-letter topic: only its owner, domain "
        "payments, reads it"
    )  # not "ask payments to add orders to `readers`" (h42)


def test_other_errors_keep_librdkafkas_text() -> None:
    down = explain_kafka_error(
        KafkaError(KafkaError._ALL_BROKERS_DOWN, "2/2 brokers are down"), sasl()
    )
    assert isinstance(down, BrokerUnreachableError)
    assert str(down) == (
        "no Kafka broker answers at b1:9092,b2:9092 (2/2 brokers are down); check "
        "MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and MESH_KAFKA_SECURITY_PROTOCOL"
    )
    other = explain_kafka_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"), sasl())
    assert str(other) == (
        "Kafka error at b1:9092,b2:9092 (SASL_PLAINTEXT to b1:9092,b2:9092 as orders "
        "(SCRAM-SHA-512)): too large"
    )


def test_direct_construction_normalises_plain_values_and_still_validates(tmp_path: Path) -> None:
    conn = KafkaConnection(
        "b1:9092",
        security_protocol="sasl_plaintext",  # type: ignore[arg-type]
        sasl_mechanism="PLAIN",  # type: ignore[arg-type]
        sasl_username="orders",
        sasl_password=PASSWORD,  # type: ignore[arg-type]
    )
    assert conn.security_protocol is SecurityProtocol.SASL_PLAINTEXT
    assert conn.sasl_mechanism is SaslMechanism.PLAIN
    assert isinstance(conn.sasl_password, SecretStr)
    assert conn.librdkafka_config()["sasl.password"] == PASSWORD
    assert PASSWORD not in repr(conn)
    with pytest.raises(ConfigurationError, match=r"^MESH_KAFKA_SSL_CA_LOCATION: .* does not exist"):
        KafkaConnection("b1:9093", SecurityProtocol.SSL, ssl_ca_location=str(tmp_path / "x"))  # type: ignore[arg-type]


def test_probe_of_an_address_nobody_serves_names_the_bootstrap_setting() -> None:
    from mesh_stream.broker.cluster import free_port
    from mesh_stream.kafka import probe

    conn = sasl().replace(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnreachableError) as caught:
        probe(conn, timeout=3)
    message = str(caught.value)
    assert message.startswith(f"no Kafka broker answers at {conn.bootstrap_servers} (")
    assert message.endswith(
        "check MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and MESH_KAFKA_SECURITY_PROTOCOL"
    )


def test_a_kafka_exception_without_an_error_object_keeps_its_text() -> None:
    error = explain_kafka_error(KafkaException("something odd"), sasl())
    assert str(error) == (
        "Kafka error at b1:9092,b2:9092 (SASL_PLAINTEXT to b1:9092,b2:9092 as orders "
        "(SCRAM-SHA-512)): something odd"
    )


def test_librdkafkas_own_lines_go_through_python_logging_and_a_quiet_connection_has_none(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka wrote its lines (`%3|...|FAIL|...`, one per failed reconnect of each
    client) straight to stderr, past the application's logging and MESH_LOG_FORMAT=json.
    They now reach the `mesh_stream.kafka.librdkafka` logger. The registry's clients use a
    quiet connection (``QUIET_LOG_LEVEL``): with its broker away, it wrote 45 such lines a
    second while saying it in its own words. Shown by real librdkafka clients reconnecting to
    a port nothing listens on."""
    import logging
    import socket
    import time

    from mesh_stream.kafka.clients import LIBRDKAFKA_LOGGER, make_consumer, make_producer
    from mesh_stream.kafka.connection import QUIET_LOG_LEVEL

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    conn = KafkaConnection.create(f"127.0.0.1:{closed}")

    def lines_of(connection: KafkaConnection) -> list[str]:
        caplog.clear()
        producer = make_producer(connection, {"reconnect.backoff.max.ms": 100})
        consumer = make_consumer(connection, {"group.id": "g", "reconnect.backoff.max.ms": 100})
        consumer.subscribe(["t"])
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            producer.poll(0.05)
            consumer.poll(0.05)
        consumer.close()
        del producer
        assert capfd.readouterr().err == ""  # nothing written past Python logging
        return [
            f"{r.levelname} {r.getMessage()}"
            for r in caplog.records
            if r.name == LIBRDKAFKA_LOGGER.name
        ]

    with caplog.at_level(logging.INFO, logger=LIBRDKAFKA_LOGGER.name):
        found = lines_of(conn)
        assert any(line.startswith("ERROR FAIL [rdkafka#producer") for line in found), found
        assert any(line.startswith("ERROR FAIL [rdkafka#consumer") for line in found), found
        assert lines_of(conn.replace(client_log_level=QUIET_LOG_LEVEL)) == []


def test_a_librdkafka_line_said_again_and_again_is_logged_once_then_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer of an unreachable Kafka logged the same ERROR line 20 times a second."""
    import logging

    from mesh_stream.kafka import clients

    now = [100.0]
    monkeypatch.setattr(clients.time, "monotonic", lambda: now[0])
    repeats = clients.RepeatedLines(quiet_s=30.0)

    def passes(message: str) -> str | None:
        record = logging.LogRecord("x", logging.ERROR, "", 0, message, (), None)
        return record.getMessage() if repeats.filter(record) else None

    fail = "FAIL [rdkafka#consumer-1]: Connect to 127.0.0.1:9 failed (after {}ms in state CONNECT)"
    assert passes(fail.format(0)) == fail.format(0)
    for waited in range(1, 20):  # the same line, a few ms apart, for 19 s
        now[0] += 1.0
        assert passes(fail.format(waited)) is None
    other = "FAIL [rdkafka#consumer-1]: Connect to 127.0.0.1:9093 failed (after 0ms in state X)"
    assert passes(other) == other  # another broker is another line
    now[0] += 11.0
    assert passes(fail.format(7)) == (fail.format(7) + " (19 more like it in 30 s not shown)")
    assert passes(fail.format(8)) is None  # and quiet again


def test_a_dead_letter_kafka_never_acknowledges_says_so_not_refused() -> None:
    """A review: an unreachable Kafka was reported as a refusal, with hints about ACLs."""
    import socket

    from confluent_kafka import Message

    from mesh_stream.errors import DeliveryError
    from mesh_stream.kafka.dlq import DeadLetterWriter

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    writer = DeadLetterWriter(
        KafkaConnection.create(f"127.0.0.1:{closed}"), "billing.invoices", timeout_s=1.0
    )
    pill = Message(topic="t", partition=0, offset=3, key=b"k", value=b"x", timestamp=(1, 5))
    with pytest.raises(DeliveryError) as caught:
        writer.write(pill, "t.dlq", ValueError("bad"))
    assert str(caught.value) == (
        f"the dead letter to t.dlq was not acknowledged within 1 s: is Kafka reachable at "
        f"127.0.0.1:{closed}?"
    )


@pytest.mark.parametrize(
    ("username", "password", "says"),
    [
        ("orders x", "pw", "MESH_KAFKA_SASL_USERNAME holds blanks or control characters"),
        ("orders\n", "pw", "MESH_KAFKA_SASL_USERNAME holds blanks or control characters"),
        ("orders", "s3cret-pw\n", "MESH_KAFKA_SASL_PASSWORD holds control characters"),
        ("orders", "s3cret\x01pw", "MESH_KAFKA_SASL_PASSWORD holds control characters"),
    ],
)
def test_sasl_credentials_with_control_characters_are_refused_naming_the_setting(
    username: str, password: str, says: str
) -> None:
    """A password read from a file with its newline was sent as it was; the broker said only
    that the login failed (h42). The value is never shown."""
    with pytest.raises(SettingsError) as caught:
        KafkaConnection.create(
            "b1:9092",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=username,
            sasl_password=password,
        )
    assert str(caught.value).startswith(says)
    assert "s3cret" not in str(caught.value)


def test_a_password_with_a_blank_is_a_password() -> None:
    conn = KafkaConnection.create(
        "b1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="orders",
        sasl_password="correct horse battery staple",
    )
    assert conn.sasl_password is not None


def test_a_pem_file_openssl_cannot_read_is_named_by_its_setting(tmp_path: Path) -> None:
    """A file with BEGIN/END lines over a broken body passed our check, then librdkafka
    refused `ssl.ca.location` in its own words (h42): now the setting and path are named."""
    from mesh_stream.kafka.clients import make_admin

    fake = tmp_path / "ca.pem"
    fake.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    conn = KafkaConnection.create("127.0.0.1:1", security_protocol="SSL", ssl_ca_location=fake)
    with pytest.raises(SettingsError) as caught:
        make_admin(conn, {"log_level": 0})
    assert str(caught.value).startswith(
        f"MESH_KAFKA_SSL_CA_LOCATION: {fake} is not a usable PEM file (OpenSSL could not read it"
    )


def test_connect_refusals_keep_the_first_refusal_until_records_come() -> None:
    """A consumer raised a refused login on every later empty poll, even once librdkafka
    had reconnected (h43): the refusal is forgotten when records come."""
    from confluent_kafka import KafkaError

    from mesh_stream.kafka.clients import ConnectRefusals

    seen: list[int] = []
    refusals = ConnectRefusals(lambda error: seen.append(error.code()))
    refusals(KafkaError(KafkaError._TRANSPORT, "down"))  # an outage: not kept
    assert refusals.first is None
    refusals(KafkaError(KafkaError._AUTHENTICATION, "refused"))
    refusals(KafkaError(KafkaError._SSL, "later"))
    assert refusals.first is not None
    assert refusals.first.code() == KafkaError._AUTHENTICATION
    assert seen == [KafkaError._TRANSPORT, KafkaError._AUTHENTICATION, KafkaError._SSL]
    refusals.clear()
    assert refusals.first is None
    with pytest.raises(ConfigurationError, match="error_cb must be callable"):
        ConnectRefusals("not callable")  # type: ignore[arg-type]
