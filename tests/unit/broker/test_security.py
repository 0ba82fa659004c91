"""The secured local cluster's decisions, checked without a JVM: users, files, properties."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mesh_stream.broker.cluster import ClusterState, LocalCluster, NodeState
from mesh_stream.broker.distribution import KafkaDistribution
from mesh_stream.broker.security import (
    check_user_names,
    ensure_credentials,
    ensure_tls,
    find_domains,
    load_credentials,
)
from mesh_stream.errors import ConfigurationError, ProjectNotFoundError
from mesh_stream.kafka import SecurityProtocol


@pytest.fixture
def cluster(tmp_path: Path) -> LocalCluster:
    distribution = KafkaDistribution("9.9.9", tmp_path / "cache")
    distribution.libs_dir.mkdir(parents=True)
    (distribution.libs_dir / "kafka_2.13-9.9.9.jar").write_bytes(b"")
    return LocalCluster(distribution, tmp_path / "data")


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_domains_are_the_ones_mesh_yaml_lists(tmp_path: Path) -> None:
    for name in ("orders", "payments", "legacy"):
        (tmp_path / "src" / name / "products").mkdir(parents=True)
    (tmp_path / "mesh.yaml").write_text("domains: [orders, payments]\nproducts: src\n")
    inner = tmp_path / "src" / "orders" / "deep"
    inner.mkdir()
    assert find_domains(inner) == ["orders", "payments"]  # the nearest mesh.yaml upwards
    assert find_domains(tmp_path) == ["orders", "payments"]


def test_without_a_domains_list_the_products_folder_has_them(tmp_path: Path) -> None:
    for name in ("orders", "payments"):
        (tmp_path / "contracts" / name / "products").mkdir(parents=True)
    (tmp_path / "contracts" / "notes").mkdir()  # no products/ inside: not a domain
    (tmp_path / "domains" / "shipping").mkdir(parents=True)  # not the products folder
    (tmp_path / "mesh.yaml").write_text("products: contracts\n")
    assert find_domains(tmp_path) == ["orders", "payments"]


def test_the_project_root_setting_wins_and_no_project_means_no_domains(tmp_path: Path) -> None:
    project = tmp_path / "inventory"
    project.mkdir()
    (project / "mesh.yaml").write_text("domains: [inventory]\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "domains" / "shipping").mkdir(parents=True)
    assert find_domains(elsewhere) == []  # folders alone do not make a project
    assert find_domains(elsewhere, project_root=project) == ["inventory"]
    with pytest.raises(ProjectNotFoundError, match=r"holds no mesh\.yaml"):
        find_domains(project, project_root=elsewhere)


def test_user_names_are_checked_and_admin_comes_first() -> None:
    assert check_user_names(["orders", " payments ", "orders", "", "admin"]) == [
        "admin",
        "orders",
        "payments",
    ]
    with pytest.raises(ConfigurationError) as caught:
        check_user_names(["orders", "Pay Ments"])
    assert str(caught.value) == (
        "--domains: 'Pay Ments' is not a domain name (lowercase letters, digits, '-' or '_', "
        "starting with a letter)"
    )


def test_passwords_are_made_once_into_a_private_file(tmp_path: Path) -> None:
    credentials, added = ensure_credentials(tmp_path, "sasl", ["orders"])
    assert added == ["admin", "orders"]
    path = tmp_path / "credentials.json"
    assert credentials.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = json.loads(path.read_text())
    assert raw["security"] == "sasl"
    assert raw["mechanism"] == "SCRAM-SHA-512"
    assert raw["ca_file"] is None
    assert list(raw["users"]) == ["admin", "orders"]
    assert all(len(p) == 32 for p in raw["users"].values())
    assert raw["users"]["admin"] != raw["users"]["orders"]
    assert "**********" in repr(credentials)
    assert raw["users"]["admin"] not in repr(credentials)

    again, added_again = ensure_credentials(tmp_path, "sasl", ["orders", "payments"])
    assert added_again == ["payments"]
    assert again.users["admin"].get_secret_value() == raw["users"]["admin"]
    assert again.users["orders"].get_secret_value() == raw["users"]["orders"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_credentials(tmp_path)
    assert loaded is not None
    assert list(loaded.users) == ["admin", "orders", "payments"]


def test_a_damaged_credentials_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text('{"users": {}}')
    with pytest.raises(ConfigurationError) as caught:
        load_credentials(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'credentials.json'} is damaged (it has no 'security' key); start with "
        "--fresh to make new "
        "credentials (this erases the cluster's data)"
    )


def test_a_users_connection_renders_scram_over_the_clusters_protocol(tmp_path: Path) -> None:
    credentials, _ = ensure_credentials(tmp_path, "sasl_ssl", ["orders"])
    ensure_tls(tmp_path / "tls")
    conn = credentials.connection("127.0.0.1:1234", "orders")
    assert conn.security_protocol is SecurityProtocol.SASL_SSL
    config = conn.librdkafka_config()
    assert config["sasl.username"] == "orders"
    assert config["sasl.password"] == credentials.users["orders"].get_secret_value()
    assert config["ssl.ca.location"] == str(tmp_path / "tls" / "ca.pem")
    with pytest.raises(ConfigurationError, match=r"has no user 'billing'.*--domains billing"):
        credentials.connection("127.0.0.1:1234", "billing")


def test_tls_files_are_made_once_with_a_private_key(tmp_path: Path) -> None:
    from cryptography import x509

    files = ensure_tls(tmp_path)
    assert stat.S_IMODE(files.keystore_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    keystore = files.keystore_file.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")
    chain = x509.load_pem_x509_certificates(keystore.encode())
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    assert chain[1] == ca
    assert chain[0].issuer == ca.subject
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    before = files.ca_file.read_bytes()
    assert ensure_tls(tmp_path) == files
    assert files.ca_file.read_bytes() == before


def test_sasl_properties_secure_every_listener(cluster: LocalCluster) -> None:
    credentials, _ = ensure_credentials(cluster.data_dir, "sasl", ["orders"])
    state = cluster._plan(None, brokers=1, port=0)
    state.security = "sasl"
    node = state.nodes[0]
    lines = properties(cluster._properties(state, node, credentials))
    admin = credentials.users["admin"].get_secret_value()
    assert lines["listeners"] == (
        f"SASL_PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
    )
    assert lines["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{node.port}"
    assert lines["listener.security.protocol.map"] == (
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert lines["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert lines["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert lines["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert lines["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert lines["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert lines["super.users"] == "User:admin"
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{admin}";'
    )
    assert "ssl.keystore.location" not in lines
    assert credentials.users["orders"].get_secret_value() not in str(lines)


def test_sasl_ssl_properties_use_pem_stores(cluster: LocalCluster) -> None:
    credentials, _ = ensure_credentials(cluster.data_dir, "sasl_ssl", [])
    state = cluster._plan(None, brokers=1, port=0)
    lines = properties(cluster._properties(state, state.nodes[0], credentials))
    tls = cluster.data_dir / "tls"
    assert lines["advertised.listeners"] == f"SASL_SSL://127.0.0.1:{state.nodes[0].port}"
    assert lines["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert lines["ssl.keystore.type"] == "PEM"
    assert lines["ssl.keystore.location"] == str(tls / "broker.pem")
    assert lines["ssl.truststore.type"] == "PEM"
    assert lines["ssl.truststore.location"] == str(tls / "ca.pem")


def test_the_plaintext_mode_writes_no_security_settings(cluster: LocalCluster) -> None:
    state = cluster._plan(None, brokers=1, port=0)
    lines = properties(cluster._properties(state, state.nodes[0]))
    assert lines["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert not [key for key in lines if "sasl" in key or "ssl" in key or "authorizer" in key]


def test_status_names_the_security_mode_and_the_credentials_file(cluster: LocalCluster) -> None:
    ensure_credentials(cluster.data_dir, "sasl", ["orders"])
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)], "sasl"))
    report = cluster.status()
    assert report.security == "sasl"
    assert report.credentials_file == cluster.data_dir / "credentials.json"
    conn = cluster.connection("orders")
    assert conn.bootstrap_servers == "127.0.0.1:19999"
    assert conn.sasl_username == "orders"


def test_a_plaintext_cluster_reports_no_credentials(cluster: LocalCluster) -> None:
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)]))
    report = cluster.status()
    assert (report.security, report.credentials_file) == ("plaintext", None)
    assert cluster.credentials() is None
    assert cluster.connection().librdkafka_config() == {
        "bootstrap.servers": "127.0.0.1:19999",
        "security.protocol": "plaintext",
    }


def test_state_files_from_before_security_load_as_plaintext(cluster: LocalCluster) -> None:
    cluster.data_dir.mkdir(parents=True)
    cluster.state_file.write_text(
        json.dumps(
            {
                "cluster_id": "abc",
                "kafka_version": "9.9.9",
                "nodes": [{"node_id": 1, "port": 19999, "controller_port": 19998, "pid": None}],
            }
        )
    )
    assert cluster.status().security == "plaintext"


def test_the_security_mode_must_match_existing_data(cluster: LocalCluster) -> None:
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)], "sasl"))
    with pytest.raises(ConfigurationError) as caught:
        cluster.start(brokers=1, security="plaintext")
    assert str(caught.value) == (
        f"{cluster.data_dir} holds a cluster started with --security sasl, not plaintext; "
        "start it with --security sasl, use --fresh to erase it, or pick another MESH_DATA_DIR"
    )
    with pytest.raises(ConfigurationError, match=r"--security 'tls' is not a security mode"):
        cluster.start(brokers=1, security="tls")


def test_a_secured_cluster_without_its_credentials_file_is_refused(cluster: LocalCluster) -> None:
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)], "sasl"))
    with pytest.raises(ConfigurationError) as caught:
        cluster.start(brokers=1, security="sasl")
    assert str(caught.value) == (
        f"{cluster.data_dir / 'credentials.json'} is missing, so the passwords of this "
        "cluster's users are lost; start with --fresh to make a new cluster"
    )
