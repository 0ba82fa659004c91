"""`mesh up --secure` without a broker: the options, the refusals, and the per-domain Kafka
environment (the password reaches the child's environment only)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from mesh_stream.broker import LocalCluster
from mesh_stream.broker.security import BrokerCredentials
from mesh_stream.cli.main import cli
from mesh_stream.errors import ConfigurationError
from mesh_stream.project import load_project
from mesh_stream.settings import MeshSettings, SecurityProtocol
from mesh_stream.up import MeshUp, UpOptions

ROOT = Path(__file__).resolve().parents[3]


def mesh_up(tmp_path: Path, **settings: object) -> MeshUp:
    options = UpOptions(
        rate=1.0,
        seed=1,
        fresh=False,
        view=False,
        duration=None,
        project=load_project(ROOT),
        secure=True,
        brokers=3,
    )
    return MeshUp(MeshSettings(data_dir=tmp_path, **settings), options)


def credentials(tmp_path: Path, *names: str) -> BrokerCredentials:
    """admin and ``names`` (default: orders and the platform's services' users)."""
    names = names or ("orders", "registry", "monitor")
    users = {name: SecretStr(f"{name}-secret") for name in ("admin", *names)}
    return BrokerCredentials("sasl", tmp_path / "credentials.json", users)


class FakeCluster:
    def __init__(self, data_dir: Path, found: BrokerCredentials | None) -> None:
        self.data_dir = data_dir
        self.found = found

    def credentials(self) -> BrokerCredentials | None:
        return self.found


def test_help_offers_secure_and_brokers() -> None:
    result = CliRunner().invoke(cli, ["up", "--help"])
    assert result.exit_code == 0, result.output
    assert "--secure" in result.output
    flat = " ".join(result.output.split())  # as click wraps it at any width
    assert "[default: 3 with --secure, else 1]" in flat


@pytest.mark.parametrize("brokers", ["0", "10"])
def test_brokers_outside_what_a_local_cluster_runs_are_refused(brokers: str) -> None:
    result = CliRunner().invoke(cli, ["up", "--secure", "--brokers", brokers])
    assert result.exit_code == 2
    assert f"'--brokers': {brokers} is not in the range 1<=x<=9" in result.output


def test_secure_refuses_a_cluster_named_by_mesh_bootstrap_servers(tmp_path: Path) -> None:
    up = mesh_up(tmp_path, bootstrap_servers="kafka.example.com:9092")
    with pytest.raises(ConfigurationError, match="--secure runs its own local SASL cluster"):
        up._refuse_fresh_on_a_foreign_cluster()


def test_each_child_gets_its_own_users_password_in_its_environment(tmp_path: Path) -> None:
    up = mesh_up(tmp_path)
    assert up._kafka_env("orders") == {}  # not secured yet: nothing to pass
    up._credentials = credentials(tmp_path)
    assert up._kafka_env("orders") == {
        "MESH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "MESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MESH_KAFKA_SASL_USERNAME": "orders",
        "MESH_KAFKA_SASL_PASSWORD": "orders-secret",
    }
    with pytest.raises(ConfigurationError, match="has no user 'payments'") as caught:
        up._kafka_env("payments")
    assert "secret" not in str(caught.value)
    own = up._connection("127.0.0.1:9092")  # mesh up's own clients (topics, live view)
    assert own.security_protocol is SecurityProtocol.SASL_PLAINTEXT
    assert own.sasl_username == "admin"
    assert "admin-secret" not in repr(own)


def test_a_running_cluster_is_reused_only_if_sasl_with_every_domain(tmp_path: Path) -> None:
    up = mesh_up(tmp_path)
    plain = cast(LocalCluster, FakeCluster(tmp_path, None))
    with pytest.raises(ConfigurationError, match="--secure needs a SASL cluster"):
        up._reused_credentials(plain, "plaintext", ["orders"])
    secured = cast(LocalCluster, FakeCluster(tmp_path, credentials(tmp_path)))
    with pytest.raises(ConfigurationError, match="has no user for payments"):
        up._reused_credentials(secured, "sasl", ["orders", "payments"])
    assert up._reused_credentials(secured, "sasl", ["orders"]).users["orders"]
    # a cluster made before the registry and the monitor had users of their own
    older = cast(LocalCluster, FakeCluster(tmp_path, credentials(tmp_path, "orders")))
    with pytest.raises(ConfigurationError, match="has no user for registry, monitor; stop it"):
        up._reused_credentials(older, "sasl", ["orders"])
