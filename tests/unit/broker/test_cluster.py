"""The launcher's decisions, checked without starting a JVM: ports, state, refusals."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_stream.broker.cluster import (
    ClusterState,
    LocalCluster,
    NodeState,
    cleaner_buffer_bytes,
    free_port,
    java_environment,
    new_cluster_id,
    process_alive,
    properties_text,
)
from mesh_stream.broker.distribution import KafkaDistribution, require_tool
from mesh_stream.broker.security import ensure_credentials
from mesh_stream.errors import (
    BrokerAlreadyRunningError,
    BrokerError,
    BrokerStartTimeoutError,
    ConfigurationError,
    KafkaFetchError,
    PortInUseError,
    ToolMissingError,
)


@pytest.fixture
def cluster(tmp_path: Path) -> LocalCluster:
    # A distribution that looks fetched, so start() gets past the fetch step without Maven.
    distribution = KafkaDistribution("9.9.9", tmp_path / "cache")
    distribution.libs_dir.mkdir(parents=True)
    (distribution.libs_dir / "kafka_2.13-9.9.9.jar").write_bytes(b"")
    return LocalCluster(distribution, tmp_path / "data")


def wait_until_exec(pid: int, marker: str, timeout: float = 10.0) -> None:
    """Until process ``pid`` runs its own command line: just after fork it still shows ours."""
    deadline = time.monotonic() + timeout
    while marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, f"process {pid} did not exec within {timeout} s"
        time.sleep(0.01)


@pytest.fixture
def fake_kafka_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line looks like a Kafka node's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", "server.properties"]
    )
    wait_until_exec(proc.pid, "server.properties")
    yield proc
    proc.kill()
    proc.wait()


def test_cluster_id_is_kafka_shaped() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and "=" not in i and not i.startswith("-") for i in ids)


def test_status_of_a_never_started_cluster(cluster: LocalCluster) -> None:
    report = cluster.status()
    assert not report.running
    assert report.nodes == ()
    assert report.bootstrap_servers is None


def test_second_start_is_refused_while_one_runs(
    cluster: LocalCluster, fake_kafka_process: subprocess.Popen[bytes]
) -> None:
    state = ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998, pid=fake_kafka_process.pid)])
    cluster._save_state(state)
    assert cluster.status().running
    with pytest.raises(BrokerAlreadyRunningError) as caught:
        cluster.start()
    assert "127.0.0.1:19999" in str(caught.value)
    assert str(fake_kafka_process.pid) in str(caught.value)
    assert "mesh broker stop" in str(caught.value)


def test_stop_terminates_the_recorded_process(
    cluster: LocalCluster, fake_kafka_process: subprocess.Popen[bytes]
) -> None:
    state = ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998, pid=fake_kafka_process.pid)])
    cluster._save_state(state)
    assert cluster.stop(timeout=5) == [fake_kafka_process.pid]
    assert not Path(f"/proc/{fake_kafka_process.pid}").exists()  # gone, and reaped
    assert not cluster.status().running
    assert json.loads(cluster.state_file.read_text())["nodes"][0]["pid"] is None


def test_an_unrelated_process_with_a_reused_pid_is_not_taken_for_kafka() -> None:
    # Our own pid runs, but its command line is not a Kafka node's.
    assert not process_alive(os.getpid())


def test_taken_port_is_named_with_the_fix(cluster: LocalCluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            cluster.start(port=taken)
    message = str(caught.value)
    assert f"port {taken}" in message
    assert "--port" in message
    assert "MESH_BROKER_PORT" in message


def test_a_port_named_for_existing_data_must_be_its_port(cluster: LocalCluster) -> None:
    """A second start with another --port came up on the recorded port, silently."""
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)]))
    with pytest.raises(ConfigurationError) as refused:
        cluster.start(port=19990, port_chosen=True)
    assert str(refused.value) == (
        f"{cluster.data_dir} holds a cluster on port 19999, not 19990; start it with --port "
        f"19999 (or without --port and MESH_BROKER_PORT), use --fresh to erase it, or pick "
        f"another MESH_DATA_DIR"
    )


def test_node_count_must_match_existing_data(cluster: LocalCluster) -> None:
    cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998)]))
    with pytest.raises(ConfigurationError, match=r"holds a 1-node cluster, not 3.*--fresh"):
        cluster.start(brokers=3)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        (
            '{"kafka_version": "4.1.0", "nodes": []}',
            "it has no 'cluster_id' key",
        ),  # h50: ('cluster_id')
        ('{"cluster_id": "c", "kafka_version": "4", "nodes": 5}', "an entry is not what mesh"),
    ],
)
def test_damaged_state_file_is_reported_with_its_path_and_what_is_wrong(
    cluster: LocalCluster, text: str, said: str
) -> None:
    cluster.data_dir.mkdir(parents=True)
    cluster.state_file.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        cluster.status()
    assert str(caught.value).startswith(f"{cluster.state_file} is damaged ({said}")


def test_a_damaged_state_file_still_lets_stop_stop_what_runs_from_it(
    cluster: LocalCluster,
) -> None:
    """`mesh broker stop` failed on a damaged cluster.json and left the JVM running, and the
    message's `--fresh` failed the same way (a campaign)."""
    node = cluster.node_dir(1)
    node.mkdir(parents=True)
    cluster.state_file.write_text("{not json")
    running = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", f"{node}/x"]
    )
    try:
        wait_until_exec(running.pid, "kafka.Kafka")
        with pytest.raises(ConfigurationError) as damaged:
            cluster.start()
        assert f"stop what runs from it with `{cluster.stop_command}`" in str(damaged.value)
        with pytest.raises(BrokerAlreadyRunningError, match="still run"):
            cluster.start(fresh=True)  # past the damaged file: refused only for what runs
        assert cluster.stop(timeout=5) == [running.pid]
        assert running.wait(5) is not None
        assert cluster.state_file.read_text() == "{not json"  # --fresh replaces it
    finally:
        running.kill()
        running.wait()


def test_three_node_properties_form_one_quorum(cluster: LocalCluster) -> None:
    state = cluster._plan(None, brokers=3, port=0)
    ports = [n.port for n in state.nodes] + [n.controller_port for n in state.nodes]
    assert len(set(ports)) == 6
    props = cluster._properties(state, state.nodes[1])
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    assert lines["node.id"] == "2"
    assert lines["process.roles"] == "broker,controller"
    assert lines["controller.quorum.voters"] == ",".join(
        f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in state.nodes
    )
    assert lines["default.replication.factor"] == "3"
    assert lines["min.insync.replicas"] == "2"
    assert lines["offsets.topic.replication.factor"] == "3"
    # Kafka's own topics of group offsets and transactions: a few partitions, not 50 each
    assert lines["offsets.topic.num.partitions"] == "6"
    assert lines["transaction.state.log.num.partitions"] == "6"


@pytest.mark.parametrize(
    ("heap", "buffer"),
    [
        ("256m", 32 * 1024**2),
        ("512M", 64 * 1024**2),
        ("4g", 128 * 1024**2),
        ("65536k", 8 * 1024**2),
    ],
)
def test_the_log_cleaner_takes_an_eighth_of_the_heap_at_most(
    cluster: LocalCluster, heap: str, buffer: int
) -> None:
    """Kafka's 128 MiB default made a 256 MiB node fail now and then at start-up
    (OutOfMemoryError in the log cleaner), as in a clean-clone CI run."""
    cluster.heap = heap
    state = cluster._plan(None, brokers=1, port=0)
    props = cluster._properties(state, state.nodes[0])
    lines = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    assert int(lines["log.cleaner.dedupe.buffer.size"]) == buffer
    assert cleaner_buffer_bytes("lots") is None  # unread: Kafka's default stays


def test_requested_ports_are_consecutive(cluster: LocalCluster) -> None:
    state = cluster._plan(None, brokers=3, port=29092)
    assert [n.port for n in state.nodes] == [29092, 29093, 29094]
    assert state.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"


def test_missing_tool_says_what_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError) as caught:
        require_tool("mvn", "fetch Apache Kafka's jars from Maven Central")
    assert "`mvn` is not on PATH" in str(caught.value)
    assert "fetch Apache Kafka's jars" in str(caught.value)
    assert "MESH_BOOTSTRAP_SERVERS" in str(caught.value)


def test_failed_fetch_names_the_artifact_and_settings(tmp_path: Path) -> None:
    distribution = KafkaDistribution("0.0.0-no-such-version", tmp_path / "cache")
    with pytest.raises(KafkaFetchError) as caught:
        distribution.fetch()
    message = str(caught.value)
    assert "org.apache.kafka:kafka_2.13:0.0.0-no-such-version" in message
    assert "settings.xml" in message
    assert "MESH_KAFKA_VERSION" in message
    assert not distribution.is_fetched()
    assert not (distribution.home / "libs.partial").exists()


def test_unrecorded_nodes_of_this_data_dir_are_found_refused_and_stopped(
    cluster: LocalCluster,
) -> None:
    config = str(cluster.node_dir(1) / "server.properties")
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", config]
    )
    try:
        wait_until_exec(stray.pid, config)
        cluster._save_state(ClusterState("abc", "9.9.9", [NodeState(1, 19999, 19998, pid=None)]))
        assert cluster.stray_pids() == [stray.pid]
        with pytest.raises(
            BrokerAlreadyRunningError, match=r"does not record them.*mesh broker stop"
        ):
            cluster.start()
        assert cluster.stop(timeout=5) == [stray.pid]
        assert not Path(f"/proc/{stray.pid}").exists()
        assert cluster.stray_pids() == []
    finally:
        stray.kill()
        stray.wait()


def test_a_node_that_never_answers_times_out_with_its_log_tail(
    cluster: LocalCluster, fake_kafka_process: subprocess.Popen[bytes]
) -> None:
    # A live "node" whose port nobody serves: the wait must end at the deadline, with the log.
    state = ClusterState("abc", "9.9.9", [NodeState(1, free_port(), 0, pid=fake_kafka_process.pid)])
    cluster.node_dir(1).mkdir(parents=True)
    cluster.log_file(1).write_text("line one\nKafka is still thinking\n")
    with pytest.raises(BrokerStartTimeoutError) as caught:
        cluster._wait_ready(state, timeout=1.5)
    message = str(caught.value)
    assert f"did not answer at {state.bootstrap_servers} within 2s" in message
    assert "--timeout or MESH_BROKER_START_TIMEOUT" in message
    assert f"--- {cluster.log_file(1)} ---\nline one\nKafka is still thinking" in message


def test_a_node_that_exits_during_start_up_shows_its_log(cluster: LocalCluster) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass", "kafka.Kafka"])
    dead.wait()
    state = ClusterState("abc", "9.9.9", [NodeState(1, free_port(), 0, pid=dead.pid)])
    cluster.node_dir(1).mkdir(parents=True)
    cluster.log_file(1).write_text("ERROR Exiting Kafka due to fatal exception\n")
    with pytest.raises(BrokerError, match=r"(?s)node 1 exited during start-up.*fatal exception"):
        cluster._wait_ready(state, timeout=30)


@pytest.mark.parametrize("brokers", [0, 10])
def test_a_node_count_a_local_cluster_cannot_run_is_refused(
    cluster: LocalCluster, brokers: int
) -> None:
    with pytest.raises(ConfigurationError, match=rf"--brokers must be 1 to 9, got {brokers}"):
        cluster.start(brokers=brokers)


def test_a_format_a_start_left_unlaunched_makes_way_and_real_data_is_refused(
    cluster: LocalCluster,
) -> None:
    """An interrupted first start leaves folders only a format wrote (another cluster id):
    the next start formats them again. A folder a node ran in is never erased silently."""
    interrupted = cluster.node_dir(1) / "data"
    interrupted.mkdir(parents=True)
    (interrupted / "meta.properties").write_text("cluster.id=from-the-interrupted-start\n")
    (interrupted / "bootstrap.checkpoint").write_bytes(b"\0")
    cluster._clear_unlaunched_format(interrupted)
    assert not interrupted.exists()

    ran = cluster.node_dir(2) / "data"
    (ran / "__cluster_metadata-0").mkdir(parents=True)
    (ran / "meta.properties").write_text("cluster.id=a-cluster-that-ran\n")
    with pytest.raises(ConfigurationError, match=r"node-2/data holds Kafka data but .*--fresh"):
        cluster._clear_unlaunched_format(ran)
    assert (ran / "__cluster_metadata-0").is_dir()


def test_a_domain_user_named_like_a_platform_service_is_refused(cluster: LocalCluster) -> None:
    """It would share the service's password (the service's user is made anyway)."""
    with pytest.raises(ConfigurationError) as refused:
        cluster.start(security="sasl", users=["orders", " monitor"])
    assert str(refused.value).startswith(
        "--domains: 'monitor' is the Kafka user of the platform's monitor, not a domain"
    )


@pytest.mark.parametrize(
    ("user", "said"),
    [
        ("../x", "--domains: '../x' is not a domain name"),
        ("admin", "--domains: 'admin' is the registry's and the broker's super user"),
        ("anonymous", "--domains: 'anonymous' is the owner the registry records"),
        ("mesh-x", "--domains: 'mesh-x' would own the platform's own names"),
        ("a_b", "--domains: 'a_b' is not a domain name"),
    ],
)
def test_a_domain_no_project_could_hold_is_refused_before_fresh_erases_anything(
    cluster: LocalCluster, user: str, said: str
) -> None:
    """`--fresh --domains ../x` erased the cluster, then refused the name (a campaign); the
    launcher takes only the names `mesh init` and the registry take, and checks them first."""
    kept = cluster.data_dir / "node-1" / "data" / "meta.properties"
    kept.parent.mkdir(parents=True)
    kept.write_text("cluster.id=still-here\n")
    with pytest.raises(ConfigurationError) as refused:
        cluster.start(security="sasl", users=["orders", user], fresh=True)
    assert str(refused.value).startswith(said), refused.value
    assert kept.read_text() == "cluster.id=still-here\n"


def test_a_path_past_ascii_is_written_as_java_reads_properties_files() -> None:
    """Java reads server.properties as ISO-8859-1: `ü` written as UTF-8 was `Ã¼`, and
    Kafka kept its data in a garbled folder outside the data dir (a campaign)."""
    assert properties_text("log.dirs=/tmp/d\u00fc/x\U0001f600\n") == (
        "log.dirs=/tmp/d\\u00fc/x\\ud83d\\ude00\n"
    )
    assert properties_text("plain=ascii\n") == "plain=ascii\n"


@pytest.mark.parametrize(
    ("environ", "forced"),
    [
        ({}, True),
        ({"LANG": "C"}, True),
        ({"LC_ALL": "POSIX", "LANG": "en_US.UTF-8"}, True),
        ({"LANG": "en_US.UTF-8"}, False),
        ({"LC_CTYPE": "de_DE.utf8@euro"}, False),
    ],
)
def test_kafkas_jvms_run_in_a_utf8_locale(environ: dict[str, str], forced: bool) -> None:
    """Java names files in the locale's encoding: under POSIX a path's `ü` is lost."""
    env = java_environment(environ)
    assert (env.get("LC_ALL") == "C.UTF-8") is forced
    assert env == ({**environ, "LC_ALL": "C.UTF-8"} if forced else environ)


def test_a_cluster_with_a_killed_node_is_partly_running_and_start_says_how_to_mend_it(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """After `kill -9` of one node of three, status said "not running" and start "a broker
    already runs" (a campaign)."""
    cluster = LocalCluster(cluster.distribution, tmp_path / "mesh" / "broker")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka"])
    try:
        wait_until_exec(alive.pid, "kafka.Kafka")
        nodes = [NodeState(1, 19991, 19981, pid=alive.pid), NodeState(2, 19992, 19982)]
        cluster._save_state(ClusterState("abc", "9.9.9", nodes))
        env = {**os.environ, "MESH_DATA_DIR": str(cluster.data_dir.parent)}
        shown = subprocess.run(
            [str(Path(sys.executable).with_name("mesh")), "broker", "status"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 3
        assert shown.stdout.startswith("partly running (1 of 2 nodes): "), shown.stdout
        with pytest.raises(BrokerAlreadyRunningError) as refused:
            cluster.start(brokers=3)  # not the cluster it was: its stopped node is not started
        assert str(refused.value) == (
            f"the cluster from {cluster.data_dir} runs partly: node 2 stopped, the others run "
            f"(pid {alive.pid}); start it as it was (--brokers 2, --security plaintext, port "
            f"19991, no --fresh, no new --domains) to bring node 2 back, or stop it with "
            f"`{cluster.stop_command}`"
        )
    finally:
        alive.kill()
        alive.wait()


def test_a_stopped_node_of_a_secured_cluster_is_restarted_with_the_projects_own_domains(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h59: the documented restart of a stopped node (the same `mesh broker start`) was
    refused from the project's folder, where --domains defaults to the project's domains:
    any user counted as new, though the cluster has them all. A domain it lacks still needs
    a whole start."""
    cluster = LocalCluster(cluster.distribution, tmp_path / "mesh" / "broker")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka"])
    try:
        wait_until_exec(alive.pid, "kafka.Kafka")
        nodes = [NodeState(1, 19991, 19981, pid=alive.pid), NodeState(2, 19992, 19982)]
        cluster._save_state(ClusterState("abc", "9.9.9", nodes, security="sasl"))
        ensure_credentials(cluster.data_dir, "sasl", ["admin", "orders", "payments"])
        restarted: list[list[int]] = []

        def restart(previous: ClusterState, down: list[int], timeout: float) -> ClusterState:
            restarted.append(down)
            return previous

        monkeypatch.setattr(cluster, "_restart_nodes", restart)
        cluster.start(brokers=2, security="sasl", users=["orders", "payments"])
        assert restarted == [[2]]
        with pytest.raises(BrokerAlreadyRunningError, match="no new --domains"):
            cluster.start(brokers=2, security="sasl", users=["orders", "shipping"])
        assert restarted == [[2]]
    finally:
        alive.kill()
        alive.wait()


def test_strays_are_nodes_of_this_data_dir_not_of_one_whose_path_holds_it(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """The data dir's path inside another's (`/x/<ours>/node-1`) was taken for ours, which a
    stop with a damaged cluster.json would then signal (a review)."""
    inner = f"{tmp_path}/outer{cluster.node_dir(1)}/server.properties"
    ours = f"{cluster.node_dir(1)}/server.properties"
    code = "import time; time.sleep(60)"
    other = subprocess.Popen([sys.executable, "-c", code, "kafka.Kafka", inner])
    mine = subprocess.Popen([sys.executable, "-c", code, "kafka.Kafka", ours])
    try:
        wait_until_exec(other.pid, "kafka.Kafka")
        wait_until_exec(mine.pid, "kafka.Kafka")
        assert cluster.stray_pids() == [mine.pid]
    finally:
        for process in (other, mine):
            process.kill()
            process.wait()


def test_a_free_port_is_picked_below_the_ephemeral_range_and_can_be_bound() -> None:
    """A port the kernel gave (bind 0) sits in the ephemeral range, where any outgoing
    connection may take it before the listener binds it: a test's registry lost its port
    that way (verify28). Picked below that range, each is free when returned."""
    import socket

    from mesh_stream.broker.cluster import PICKED_PORTS

    ports = [free_port() for _ in range(20)]
    assert all(port in PICKED_PORTS for port in ports)
    assert len(set(ports)) > 1  # picked at random, not one after the other
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports[0]))


def test_a_port_another_process_picked_is_not_picked_again_while_promised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes starting brokers at once both picked a port nothing listened on yet:
    one Kafka node then met another cluster's controller there (verify33). A picked port
    is promised for a while (a marker in the user's scratch folder) and skipped by every
    picker."""
    import itertools
    import time

    from mesh_stream.broker import cluster
    from mesh_stream.settings import user_scratch_dir

    promised, other = free_port(), free_port()  # both now promised to this process
    folder = user_scratch_dir() / "ports"
    assert (folder / str(promised)).is_file()
    candidates = itertools.cycle([promised, other])
    monkeypatch.setattr(cluster._picker, "randrange", lambda _a, _b: next(candidates))
    (folder / str(other)).unlink()  # as if `other`'s promise had run out
    assert free_port() == other
    stale = time.time() - cluster.PORT_PROMISE_S - 1
    os.utime(folder / str(promised), (stale, stale))
    assert free_port() == promised  # an old promise no longer holds
