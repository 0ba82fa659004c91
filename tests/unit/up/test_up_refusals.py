"""`mesh up` refuses at once what would otherwise loop or fail late: a port that something
other than a registry holds, a registry child that dies while starting, and a project's
runnables module that raises. Real sockets and real child processes; no broker."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_stream.cli.main import run
from mesh_stream.errors import ConfigurationError
from mesh_stream.project import load_project
from mesh_stream.settings import MeshSettings
from mesh_stream.supervisor import Backoff, ChildSpec, ChildState, EventKind, Supervisor
from mesh_stream.up import MeshUp, UpOptions, probe_registry
from mesh_stream.up.orchestrator import RESTART_BACKOFF, _unhealthy

ROOT = Path(__file__).resolve().parents[3]


def listener(behaviour: str) -> Iterator[int]:
    """A TCP port on 127.0.0.1 that takes connections and then, per ``behaviour``: says
    nothing (``silent``), sends bytes that are not HTTP (``garbage``), reads the request's
    first bytes and resets the connection as Kafka does with a request it cannot parse
    (``reset``), or reads the whole request and closes without a word (``closes``)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            if behaviour == "garbage":
                connection.recv(4096)
                connection.sendall(b"\x00\x00\x00\x12not http at all\r\n\r\n")
            elif behaviour == "reset":
                connection.recv(4)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.close()
            elif behaviour == "closes":
                connection.recv(4096)
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        server.close()
        for connection in held:
            connection.close()
        thread.join(timeout=5)


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from listener("silent")


def refusal(url: str, detail: str) -> str:
    return (
        f"something that is not a mesh registry listens at {url} ({detail}); stop it, or point "
        f"MESH_REGISTRY_URL elsewhere"
    )


def test_a_port_that_takes_connections_but_never_answers_is_named(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    began = time.monotonic()
    with pytest.raises(ConfigurationError) as refused:
        probe_registry(url, timeout=0.5)
    assert str(refused.value) == refusal(
        url, "it took the connection, then gave no answer to GET /subjects within 0.5s"
    )
    assert time.monotonic() - began < 5  # after the probe's timeout, not a retry loop
    # The registry `mesh up` started binds its port before it answers: not ready yet.
    assert probe_registry(url, timeout=0.2, starting=True) is False


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        ("garbage", "the answer is not HTTP (illegal status line: "),
        ("reset", "the connection was reset"),
        ("closes", "the server closed the connection without an HTTP answer"),
    ],
)
def test_a_port_that_does_not_speak_http_is_named(behaviour: str, said: str) -> None:
    for port in listener(behaviour):
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(ConfigurationError) as refused:
            probe_registry(url, timeout=2.0)
        message = str(refused.value)
        prefix = f"something that is not a mesh registry listens at {url} (no HTTP answer to "
        assert message.startswith(f"{prefix}GET /subjects: {said}"), message
        assert message.endswith("); stop it, or point MESH_REGISTRY_URL elsewhere")
        assert probe_registry(url, timeout=2.0, starting=True) is False


def test_only_a_refused_connection_means_nothing_listens() -> None:
    bound = socket.socket()  # bound, not listening: connections to it are refused
    bound.bind(("127.0.0.1", 0))
    try:
        assert probe_registry(f"http://127.0.0.1:{bound.getsockname()[1]}") is False
    finally:
        bound.close()
    assert probe_registry("http://no-such-host.invalid:8081") is False  # no such host


def mesh_up(tmp_path: Path, registry_url: str, **child_env: str) -> tuple[MeshUp, io.StringIO]:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "mesh.yaml").write_text("domains: [shop]\n")
    options = UpOptions(
        rate=1,
        seed=1,
        fresh=False,
        view=False,
        duration=None,
        project=load_project(tmp_path / "project"),
        register_only=True,
    )
    settings = MeshSettings(data_dir=tmp_path / "data", registry_url=registry_url)
    out = io.StringIO()
    up = MeshUp(settings, options, out=out)
    up._run.supervisor = Supervisor(
        [],
        up.log_dir,
        env={**up._child_env("127.0.0.1:1"), **child_env},
        backoff=RESTART_BACKOFF,
        on_event=up._on_event,
    )
    return up, out


def test_mesh_up_starts_no_registry_on_a_port_something_else_holds(
    tmp_path: Path, silent_port: int
) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    up, out = mesh_up(tmp_path, url)
    began = time.monotonic()
    with pytest.raises(ConfigurationError) as refused:
        up._start_registry(["shop"], "127.0.0.1:1")
    assert str(refused.value) == refusal(
        url, "it took the connection, then gave no answer to GET /subjects within 2s"
    )
    assert time.monotonic() - began < 10
    assert up._run.supervisor is not None
    assert up._run.supervisor.status() == []  # no registry child was started
    assert "registry: starting" not in out.getvalue()


def test_a_token_in_the_registry_url_is_never_shown_and_is_used_as_the_credential(
    tmp_path: Path,
) -> None:
    """mesh up printed MESH_REGISTRY_URL as given, token and all (a review)."""
    from mesh_stream.errors import RegistryUnavailableError

    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    up, out = mesh_up(tmp_path, f"https://orders:s3cret-1@127.0.0.1:{closed}")
    with pytest.raises(RegistryUnavailableError) as refused:
        up._start_registry(["shop"], "127.0.0.1:1")
    assert "s3cret-1" not in str(refused.value) + out.getvalue()
    assert f"MESH_REGISTRY_URL=https://127.0.0.1:{closed};" in str(refused.value)


def test_a_registry_child_that_dies_while_starting_stops_mesh_up_with_its_reason(
    tmp_path: Path,
) -> None:
    """The child refuses its settings and exits at once (as on a taken port, which it checks
    only once Kafka answers: tests/integration/test_up_refusals.py)."""
    free = socket.socket()  # bound without listening: a probe is refused
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    url = f"http://127.0.0.1:{port}"
    up, out = mesh_up(tmp_path, url, MESH_LOG_FORMAT="bogus")
    supervisor = up._run.supervisor
    assert supervisor is not None
    log = up.log_dir / "registry.log"
    try:
        began = time.monotonic()
        with pytest.raises(ConfigurationError) as stopped:
            up._start_registry(["shop"], "127.0.0.1:1")
        assert time.monotonic() - began < 30  # one attempt, not the 90 s wait or a loop
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        assert lines[0].startswith("=== ")
        assert "start #1:" in lines[0]
        assert "start #2" not in log.read_text()
        said_last = lines[-1].strip()
        assert said_last.startswith("MESH_LOG_FORMAT='bogus'")
        assert str(stopped.value) == (
            f"the registry `mesh up` started at {url} exited with status 2 before it "
            f"answered: {said_last} (log: {log})"
        )
        [status] = supervisor.status()
        assert (status.state, status.restarts, status.last_exit) == (ChildState.STOPPED, 0, 2)
        said = out.getvalue()
        assert f"registry: starting at {url}" in said
        assert "while starting; not restarted" in said
        assert "restart #" not in said
        supervisor.poll()
        assert supervisor.status()[0].pid is None  # poll does not bring it back either
    finally:
        supervisor.stop(timeout=5)


def test_a_child_given_up_on_is_not_restarted_but_others_still_are(tmp_path: Path) -> None:
    exits = (sys.executable, "-c", "print('cannot start: port taken'); raise SystemExit(3)")
    events: list[str] = []
    supervisor = Supervisor([], tmp_path, on_event=lambda e: events.append(e.message))
    try:
        supervisor.add(ChildSpec("waited-on", "registry", exits))
        supervisor.add(ChildSpec("crashes-later", "processor", exits))
        deadline = time.monotonic() + 30
        while supervisor.running("waited-on") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supervisor.give_up_if_exited("waited-on") == 3
        assert supervisor.give_up_if_exited("waited-on") is None  # once
        while supervisor.running("crashes-later") and time.monotonic() < deadline:
            time.sleep(0.05)
        supervisor.poll()
        states = {s.name: (s.state, s.restarts, s.last_exit) for s in supervisor.status()}
        assert states == {
            "waited-on": (ChildState.STOPPED, 0, 3),
            "crashes-later": (ChildState.RESTARTING, 1, 3),
        }
        kinds = [(e.child, e.kind) for e in supervisor.events]
        assert ("waited-on", EventKind.FAILED_TO_START) in kinds
        assert ("crashes-later", EventKind.EXITED) in kinds
        assert any(
            m.startswith("exited with status 3 after ") and "while starting; not restarted" in m
            for m in events
        )
    finally:
        supervisor.stop(timeout=5)


# -- the project's runnables module ------------------------------------------------------------
RUNNABLES = {
    "at_import": "raise RuntimeError('boom at import')\n",
    "in_call": "def runnables(rate, seed=42):\n    raise RuntimeError('boom in runnables')\n",
    "exits_at_import": "import sys\nsys.exit(0)\n",
    "exits_in_call": "def runnables(rate, seed=42):\n    raise SystemExit(3)\n",
    "missing_dependency": "import no_such_dependency_of_rmod\n",
    "not_a_list": "def runnables(rate, seed=42):\n    return 7\n",
}
SAID = {
    "at_import": "RuntimeError: boom at import (while imported)",
    "in_call": "RuntimeError: boom in runnables (calling runnables(rate, seed=...))",
    "exits_at_import": "SystemExit: 0 (while imported)",
    "exits_in_call": "SystemExit: 3 (calling runnables(rate, seed=...))",
    "missing_dependency": (
        "ModuleNotFoundError: No module named 'no_such_dependency_of_rmod' (while imported)"
    ),
    "not_a_list": ("TypeError: 'int' object is not iterable (calling runnables(rate, seed=...))"),
}


def project_with_runnables(tmp_path: Path, module: str, source: str) -> Path:
    root = tmp_path / "project"
    products = root / "domains" / "orders" / "products"
    products.mkdir(parents=True)
    shutil.copy(ROOT / "domains" / "orders" / "products" / "order-placed.yaml", products)
    (root / "mesh.yaml").write_text(f"domains: [orders]\nrunnables: {module}\n")
    (root / f"{module}.py").write_text(source)
    return root.resolve()


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("rmod_"):
            del sys.modules[name]


@pytest.mark.usefixtures("clean_imports")
@pytest.mark.parametrize("case", sorted(RUNNABLES))
def test_a_runnables_module_that_fails_is_named_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    module = f"rmod_{case}"
    root = project_with_runnables(tmp_path, module, RUNNABLES[case])
    data = tmp_path / "data"
    # Were Kafka's stage reached, this address would fail it with another message.
    monkeypatch.setenv("MESH_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status = run(
        ["up", "--no-view", "--duration", "5", "--project", str(root), "--data-dir", str(data)]
    )
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert captured.err.endswith(
        f"error: the project's runnables module '{module}' ({root}/mesh.yaml `runnables`) "
        f"raised {SAID[case]}; fix it\n"
    ), captured.err
    assert "Kafka" not in captured.err + captured.out  # nothing started, nothing registered
    assert not (data / "logs").exists()
    assert str(root) not in sys.path  # the import path is left as it was (a design audit)


@pytest.mark.usefixtures("clean_imports")
def test_ctrl_c_inside_the_runnables_module_still_interrupts(tmp_path: Path) -> None:
    root = project_with_runnables(tmp_path, "rmod_interrupted", "raise KeyboardInterrupt\n")
    options = UpOptions(
        rate=1, seed=1, fresh=False, view=False, duration=None, project=load_project(root)
    )
    up = MeshUp(MeshSettings(data_dir=tmp_path / "data"), options, out=io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        up._list_runnables()


def test_a_crash_looping_or_down_child_is_named_when_duration_runs_out(tmp_path: Path) -> None:
    """What `mesh up --duration` exits 1 for: a child down or crash-looping at the end, with
    its last exit and the line it wrote before it; a child that runs is not named."""
    loops = (sys.executable, "-c", "print('no such input product'); raise SystemExit(3)")
    fine = (sys.executable, "-c", "import time; time.sleep(60)")
    fast = Backoff(initial=0.05, factor=1.0, maximum=0.05, stable_after=60.0)
    supervisor = Supervisor([], tmp_path, backoff=fast)
    try:
        supervisor.add(ChildSpec("proc-loops", "processor", loops))
        supervisor.add(ChildSpec("sim-fine", "simulator", fine))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            supervisor.poll()
            if {s.name: s.failures for s in supervisor.status()}["proc-loops"] >= 3:
                break
            time.sleep(0.02)
        log = tmp_path / "proc-loops.log"
        assert [name.split(" ")[0] for name in _unhealthy(supervisor.status())] == ["proc-loops"]
        [named] = _unhealthy(supervisor.status())
        assert re.fullmatch(
            rf"proc-loops was (down|crash-looping) \(restarted \d+ time\(s\), last exited with "
            rf"status 3: no such input product; log: {re.escape(str(log))}\)",
            named,
        ), named
    finally:
        supervisor.stop(timeout=5)


def test_a_child_that_crashed_at_start_and_then_ran_stably_is_not_named(tmp_path: Path) -> None:
    """h38: two exits at start-up (a registry not ready yet) then a healthy run was still
    called crash-looping, quoting the running child's newest line."""
    marker = tmp_path / "starts"
    flaky = (
        sys.executable,
        "-c",
        f"import pathlib, time; p = pathlib.Path({str(marker)!r}); n = len(p.read_text()) "
        f"if p.exists() else 0; p.write_text('x' * (n + 1)); print('attempt', n + 1, "
        f"flush=True); raise SystemExit(3) if n < 2 else time.sleep(60)",
    )
    fast = Backoff(initial=0.05, factor=1.0, maximum=0.05, stable_after=60.0)
    supervisor = Supervisor([], tmp_path, backoff=fast)
    try:
        supervisor.add(ChildSpec("proc-flaky", "processor", flaky))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            supervisor.poll()
            [status] = supervisor.status()
            if status.restarts == 2 and status.state is ChildState.RUNNING:
                break
            time.sleep(0.02)
        [status] = supervisor.status()
        assert (status.failures, status.last_said) == (2, "attempt 2")
        assert _unhealthy([status]) == [  # running, but not stably yet: still a loop
            f"proc-flaky was crash-looping (restarted 2 time(s), last exited with status 3: "
            f"attempt 2; log: {tmp_path / 'proc-flaky.log'})"
        ]
        time.sleep(0.6)
        supervisor.poll()
        assert _unhealthy(supervisor.status(), settled_s=0.5) == []  # up since: healthy
    finally:
        supervisor.stop(timeout=5)


def test_run_exits_1_and_names_the_unhealthy_children(tmp_path: Path) -> None:
    """What the CLI returns when --duration ran out on a crash loop."""
    out = io.StringIO()
    options = UpOptions(rate=1, seed=1, fresh=False, view=False, duration=5, project=None)
    up = MeshUp(MeshSettings(data_dir=tmp_path / "data"), options, out=out)
    said = "proc-x was crash-looping (restarted 4 time(s), last exited with status 3: boom)"

    def start_all() -> None:
        up._run.unhealthy_at_end = [said]
        up._stop.set()  # as if --duration had run out

    up._start_all = start_all  # type: ignore[method-assign]
    assert up.run() == 1
    assert f"mesh up --duration: when the 5s ran out, {said}; exit status 1" in out.getvalue()
    up._start_all = up._stop.set  # type: ignore[method-assign]
    up._run.unhealthy_at_end = []
    assert up.run() == 0
