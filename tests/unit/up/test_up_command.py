"""`mesh up`'s own logic without a broker: lineage order, credentials, probes, refusals."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from mesh_stream.broker import ClusterState, ClusterStatus
from mesh_stream.broker.cluster import NodeState, NodeStatus
from mesh_stream.cli.main import cli
from mesh_stream.descriptor import DataProduct, load_descriptors
from mesh_stream.errors import BrokerError, ConfigurationError, ProjectNotFoundError
from mesh_stream.supervisor import Backoff, ChildState, EventKind, Supervisor
from mesh_stream.up import (
    BrokerWatch,
    broker_status,
    domain_of,
    probe_registry,
    registry_credentials,
    single_instance,
    topological,
)

ROOT = Path(__file__).resolve().parents[3]


def product(name: str, kind: str = "source-aligned", inputs: tuple[str, ...] = ()) -> DataProduct:
    return DataProduct.model_validate(
        {
            "name": name,
            "domain": name.split(".", maxsplit=1)[0],
            "kind": kind,
            "description": "d",
            "owner": {"team": "t", "contact": "c"},
            "schema": "schemas/x.avsc",
            "slos": {"freshness_seconds": 1, "availability": 99},
            "classification": "internal",
            "inputs": list(inputs),
        }
    )


def test_topological_puts_every_product_after_its_inputs() -> None:
    products = [
        product("z.top", "consumer-aligned", ("a.middle", "b.source")),
        product("a.middle", "aggregate", ("b.source",)),
        product("b.source"),
        product("c.other"),
    ]
    ordered = [p.name for p in topological(products)]
    assert sorted(ordered) == sorted(p.name for p in products)
    for item in products:
        for name in item.inputs:
            assert ordered.index(name) < ordered.index(item.name)


def test_topological_on_the_sample_mesh_registers_sources_first() -> None:
    products = load_descriptors(ROOT / "domains")
    ordered = topological(products)
    kinds = [p.kind.value for p in ordered]
    sources = kinds.count("source-aligned")
    assert kinds[:sources] == ["source-aligned"] * sources
    names = [p.name for p in ordered]
    for item in ordered:
        assert all(names.index(i) < names.index(item.name) for i in item.inputs if i in names)


def test_topological_refuses_a_cycle() -> None:
    products = [
        product("a.one", "aggregate", ("b.two",)),
        product("b.two", "aggregate", ("a.one",)),
    ]
    with pytest.raises(ConfigurationError, match="inputs form a cycle"):
        topological(products)


def test_domain_of_a_runnable() -> None:
    assert domain_of(["python", "-m", "domains.orders.simulator", "--rate", "5"], {}) == "orders"
    argv = ["python", "-m", "domains.analytics.processors.revenue", "worker"]
    assert domain_of(argv, {}) == "analytics"
    assert domain_of(["python", "x.py"], {"MESH_REGISTRY_PRINCIPAL": "payments"}) == "payments"
    assert domain_of(["python", "x.py"], {}) is None


def test_registry_credentials_are_created_once_private_and_extended(tmp_path: Path) -> None:
    path = tmp_path / "registry" / "credentials.json"
    first = registry_credentials(path, ["admin", "orders"])
    assert sorted(first) == ["admin", "orders"]
    assert len(set(first.values())) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = registry_credentials(path, ["admin", "orders", "payments"])
    assert {k: again[k] for k in first} == first  # the same tokens a second time
    assert json.loads(path.read_text()) == again


def test_registry_credentials_name_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match=f"{path} is not valid JSON.*delete it"):
        registry_credentials(path, ["admin"])


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, object]]]:
    """A tiny HTTP server whose answer to GET /subjects the test chooses."""
    answer: dict[str, object] = {"status": 200, "body": b"[]"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(str(answer["status"])))
            self.end_headers()
            body = answer["body"]
            assert isinstance(body, bytes)
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()
        server.server_close()


def test_probe_registry(http_server: tuple[str, dict[str, object]]) -> None:
    url, answer = http_server
    assert probe_registry(url) is True
    answer["status"] = 401
    assert probe_registry(url) is True  # reads need a credential: still a registry
    answer.update(status=503, body=b'{"error_code": 50302, "message": "the registry is starting"}')
    assert probe_registry(url) is False  # a registry still replaying its log: not yet
    answer.update(status=200, body=b"<html>hello</html>")
    with pytest.raises(ConfigurationError, match=f"not a mesh registry answers at {url}"):
        probe_registry(url)
    closed = url.rsplit(":", 1)[0] + ":1"
    assert probe_registry(closed) is False


def test_second_mesh_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with single_instance(tmp_path), pytest.raises(ConfigurationError) as refused:  # noqa: SIM117
        with single_instance(tmp_path):
            pass
    message = str(refused.value)
    assert f"already runs from {tmp_path}" in message
    assert "MESH_DATA_DIR" in message
    with single_instance(tmp_path):  # released again
        pass


def test_a_state_folder_that_cannot_be_made_is_named_with_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError) as refused, single_instance(blocker / "state"):
        pass
    assert str(refused.value) == (
        f"cannot use {blocker / 'state'} as the mesh's state folder (Not a directory); pick a "
        "writable one with --data-dir or MESH_DATA_DIR"
    )


def test_fresh_is_refused_against_a_cluster_mesh_up_does_not_own(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["up", "--fresh", "--no-view", "--project", str(ROOT), "--data-dir", str(tmp_path)],
        env={"MESH_BOOTSTRAP_SERVERS": "kafka.example:9092"},
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigurationError)
    assert "MESH_BOOTSTRAP_SERVERS=kafka.example:9092" in str(result.exception)
    assert "unset MESH_BOOTSTRAP_SERVERS" in str(result.exception)


def test_a_project_without_mesh_yaml_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["up", "--no-view", "--project", str(tmp_path), "--data-dir", str(tmp_path / "d")]
    )
    assert isinstance(result.exception, ProjectNotFoundError)
    assert str(result.exception).startswith(f"--project={tmp_path}: no mesh.yaml there")
    assert "mesh init" in str(result.exception)


def test_a_project_without_descriptors_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text("domains: [shop]\n")
    result = CliRunner().invoke(
        cli, ["up", "--no-view", "--project", str(tmp_path), "--data-dir", str(tmp_path / "d")]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert f"no product descriptors under {tmp_path.resolve()}/domains/" in str(result.exception)


def test_up_finds_the_project_upwards_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mesh.yaml").write_text("domains: [shop]\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    monkeypatch.delenv("MESH_PROJECT_ROOT", raising=False)
    result = CliRunner().invoke(cli, ["up", "--no-view", "--data-dir", str(tmp_path / "d")])
    assert f"under {tmp_path.resolve()}/domains/" in str(result.exception)  # found, then empty


def test_up_help_explains_every_option() -> None:
    result = CliRunner().invoke(cli, ["up", "--help"])
    assert result.exit_code == 0
    for option in (
        "--rate",
        "--seed",
        "--fresh",
        "--no-view",
        "--duration",
        "--register-only",
        "--project",
        "--data-dir",
    ):
        assert option in result.output
    assert "Ctrl-C" in result.output


class FakeCluster:
    """Stands in for LocalCluster: the test decides whether it runs and whether start works."""

    def __init__(self, tmp_path: Path) -> None:
        self.running = True
        self.start_fails = False
        self.starts: list[int] = []
        self.tmp_path = tmp_path

    def status(self) -> ClusterStatus:
        return ClusterStatus(self.running, "127.0.0.1:1", (), self.tmp_path)

    def start(
        self, *, brokers: int = 1, port: int = 9092, timeout: float = 90.0, fresh: bool = False
    ) -> ClusterState:
        self.starts.append(port)
        assert (brokers, fresh, timeout) == (1, False, 5)  # same cluster, same data
        if self.start_fails:
            raise BrokerError("port 1 is taken")
        self.running = True
        return ClusterState("id", "4.1.1", [NodeState(1, 1, 2, pid=99)])

    def log_file(self, node_id: int) -> Path:
        return self.tmp_path / f"node-{node_id}" / "server.log"


def test_broker_watch_reports_and_restarts_a_dead_broker_with_backoff(tmp_path: Path) -> None:
    clock = [0.0]
    supervisor = Supervisor([], tmp_path / "logs")
    supervisor.log_dir.mkdir(parents=True)
    cluster = FakeCluster(tmp_path)
    backoff = Backoff(initial=1.0, factor=3.0, maximum=60.0, stable_after=100.0)
    watch = BrokerWatch(
        cluster, supervisor, port=9092, timeout=5, backoff=backoff, interval=5.0,
        clock=lambda: clock[0],
    )  # fmt: skip
    watch.check()
    clock[0] = 5.0
    watch.check()
    assert list(supervisor.events) == []  # healthy: nothing to say
    cluster.running = False
    clock[0] = 10.0
    watch.check()
    died = supervisor.events[-1]
    assert died.kind is EventKind.EXITED
    assert died.restart_in == backoff.delay(1)
    assert "Kafka stopped running; restart #1 in 1.0s" in died.message
    assert str(tmp_path / "node-1" / "server.log") in died.message
    cluster.start_fails = True
    clock[0] += backoff.delay(1)
    watch.check()  # the restart fails: reported, next try waits longer
    failed = supervisor.events[-1]
    assert "Kafka did not come back: port 1 is taken" in failed.message
    assert failed.restart_in == backoff.delay(2)
    cluster.start_fails = False
    clock[0] += backoff.delay(2)
    watch.check()
    assert supervisor.events[-1].kind is EventKind.RESTARTED
    assert "restarted (restart #2) at 127.0.0.1:1" in supervisor.events[-1].message
    assert cluster.starts == [9092, 9092]


def test_the_local_broker_is_a_row_of_the_process_table(tmp_path: Path) -> None:
    log = tmp_path / "node-1" / "server.log"

    class Cluster(FakeCluster):
        def status(self) -> ClusterStatus:
            node = NodeStatus(1, "127.0.0.1:1", 4242, self.running, log)
            return ClusterStatus(self.running, "127.0.0.1:1", (node,), self.tmp_path)

    cluster = Cluster(tmp_path)
    row = broker_status(cluster, None)
    assert (row.name, row.kind, row.state, row.pid, row.restarts, row.log_file) == (
        "kafka", "broker", ChildState.RUNNING, 4242, 0, log
    )  # fmt: skip
    cluster.running = False
    down = broker_status(cluster, None)
    assert (down.state, down.pid) == (ChildState.RESTARTING, None)
