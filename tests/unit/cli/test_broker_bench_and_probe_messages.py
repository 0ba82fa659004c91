"""Small CLI findings of a hostile-input campaign, each with its exact wording: `mesh bench`'s
options said once, MESH_BROKER_START_TIMEOUT's lower bound, what `--fresh` erased, the
registry's taken-port hint, and a port that listens but never answers Kafka."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_stream.broker import reachability
from mesh_stream.broker.cluster import ClusterState, LocalCluster, NodeState
from mesh_stream.broker.distribution import KafkaDistribution
from mesh_stream.cli import bench as bench_cli
from mesh_stream.cli.main import run
from mesh_stream.errors import BrokerUnreachableError, ConfigurationError
from mesh_stream.kafka.clients import probe
from mesh_stream.kafka.connection import KafkaConnection
from mesh_stream.registry.service.server import bind_listener
from mesh_stream.settings import MeshSettings

REPO = Path(__file__).resolve().parents[3]


class ReachedWork(BaseException):
    """Raised where a command would start its real work."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MESH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)


def _mesh(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of `mesh ARGS` run in-process, as the console script runs it."""
    status = run(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, err


# -- 1. mesh bench: its options in one place ----------------------------------------------


def test_bench_hands_its_run_one_options_value_with_a_field_per_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = {field.name for field in dataclasses.fields(bench_cli.BenchOptions)}
    assert fields == {param.name for param in bench_cli.bench.params}
    handed: list[object] = []

    def fake_run(settings: MeshSettings, given: object) -> None:
        handed.append(given)
        raise ReachedWork

    monkeypatch.setattr(bench_cli, "_run", fake_run)
    with pytest.raises(ReachedWork):
        run(["bench", "--codec-only", "--codec-records", "7", "--output", str(tmp_path / "out")])
    (given,) = handed
    assert isinstance(given, bench_cli.BenchOptions)
    assert (given.codec_only, given.codec_records, given.output) == (True, 7, tmp_path / "out")
    assert given.monitor_products == (12, 1000)  # click's defaults, converted


# -- 2. MESH_BROKER_START_TIMEOUT is at least 1, as --timeout -------------------------------


def test_a_start_timeout_under_one_second_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESH_BROKER_START_TIMEOUT", "0.5")
    status, err = _mesh(["broker", "status"], capsys)
    assert status == 2
    assert err.splitlines()[-2:] == [
        "error: invalid MESH_* environment setting:",
        "  MESH_BROKER_START_TIMEOUT='0.5': is less than 1 second, which no broker "
        "start fits in; give at least 1 (as `mesh broker start --timeout`), or unset it for "
        "the default 90",
    ]


def test_a_start_timeout_of_one_second_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_BROKER_START_TIMEOUT", "1")
    assert MeshSettings().broker_start_timeout == 1.0


# -- 3. mesh broker start --fresh says what it erased ----------------------------------------


def test_fresh_names_the_folder_it_erased_with_everything_that_was_in_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data" / "broker"
    LocalCluster(KafkaDistribution("9.9.9", tmp_path), data)._save_state(
        ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998), NodeState(2, 20000, 20001)])
    )
    for node in ("node-1", "node-2"):
        (data / node / "data").mkdir(parents=True)
        (data / node / "data" / "meta.properties").write_text("cluster.id=abc\n")
        (data / node / "server.log").write_text("started\n")
    (data / "tls").mkdir()
    (data / "tls" / "ca.pem").write_text("pem")
    (data / "credentials.json").write_text("{}")

    def configured(*_args: object, **_kwargs: object) -> None:
        assert not data.exists()  # erased before the first node is configured
        raise ReachedWork

    monkeypatch.setattr(KafkaDistribution, "fetch", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(LocalCluster, "_configure", configured)
    with pytest.raises(ReachedWork):
        run(["broker", "start", "--brokers", "2", "--port", "0", "--fresh"])
    _out, err = capsys.readouterr()
    assert (
        f"--fresh: erased {data} (7 files and 5 folders in it): cluster.json, "
        "credentials.json, node-1/, node-2/, tls/\n"
    ) in err


def test_fresh_on_a_new_folder_says_there_was_nothing_to_erase(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(KafkaDistribution, "fetch", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(LocalCluster, "_configure", lambda *_a, **_k: _reached())
    with pytest.raises(ReachedWork):
        run(["broker", "start", "--port", "0", "--fresh"])
    _out, err = capsys.readouterr()
    assert f"--fresh: {tmp_path / 'data' / 'broker'} does not exist yet; nothing to erase" in err


def _reached() -> None:
    raise ReachedWork


# -- 4. the registry's taken port: both ways to choose another -------------------------------


def test_a_taken_registry_port_names_the_option_and_mesh_ups_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError) as caught:
            bind_listener("127.0.0.1", port)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use; is the port taken "
        "(another registry?) choose another port: with `mesh registry serve --port PORT` (0 "
        "picks a free one), or, for the registry `mesh up` starts, in MESH_REGISTRY_URL (e.g. "
        "http://127.0.0.1:8082)"
    )


# -- 5. a port that listens but never answers Kafka --------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def _silent_wording(port: int, seconds: int) -> str:
    return (
        f"127.0.0.1:{port} accepts TCP connections but gave no Kafka answer within {seconds} s "
        "(over PLAINTEXT): it may not be a Kafka listener, or it is stuck; check "
        "MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and MESH_KAFKA_SECURITY_PROTOCOL"
    )


def test_probe_names_a_silent_port_even_when_no_broker_down_came_in_time(
    silent_port: int,
) -> None:
    # Under 2 s librdkafka has reported nothing down yet: the end of the wait decides.
    with pytest.raises(BrokerUnreachableError) as caught:
        probe(KafkaConnection.create(f"127.0.0.1:{silent_port}"), timeout=1.0)
    assert str(caught.value) == _silent_wording(silent_port, 1)


@pytest.mark.parametrize(
    "command",
    [["products", "plan"], ["acl", "apply"], ["monitor"]],
    ids=["products plan", "acl apply", "monitor"],
)
def test_every_command_says_the_same_of_a_silent_port(
    command: list[str],
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(reachability, "DEFAULT_PROBE_TIMEOUT", 1.0)
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", f"127.0.0.1:{silent_port}")
    status, err = _mesh(command, capsys)
    assert status == 1
    assert err.splitlines()[-1] == f"error: {_silent_wording(silent_port, 1)}"


def test_a_bad_domain_in_broker_start_domains_is_a_usage_error_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--domains "orders,Bad Name"` exited 1 from deep in the launcher (h42): the flag's
    own value is a usage error, exit 2, naming the flag; nothing is started."""
    monkeypatch.setenv("MESH_DATA_DIR", str(tmp_path))
    started: list[object] = []
    monkeypatch.setattr(LocalCluster, "start", lambda *a, **_k: started.append(a))
    status = run(["broker", "start", "--security", "sasl", "--domains", "orders, Bad Name"])
    assert status == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--domains': 'Bad Name' is not a domain name" in err
    assert started == []
