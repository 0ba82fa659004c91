"""The supervisor against real (small) child processes: restarts, back-off, ordered stop,
no process left behind, one log file per child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_stream.supervisor import (
    SHUTDOWN_ORDER,
    Backoff,
    ChildSpec,
    ChildState,
    EventKind,
    Supervisor,
    SupervisorEvent,
    describe_exit,
    group_members,
    process_running,
)

PY = sys.executable


def python(code: str) -> tuple[str, ...]:
    return (PY, "-c", textwrap.dedent(code))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), timeout)
    return path.read_text()


def test_backoff_grows_exponentially_and_caps() -> None:
    backoff = Backoff(initial=0.5, factor=3.0, maximum=10.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [
        min(0.5 * 3.0 ** (n - 1), 10.0) for n in range(1, 6)
    ]


def test_describe_exit_names_signal_or_status() -> None:
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_crashing_child_is_restarted_with_exponential_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = Backoff(initial=0.25, factor=2.0, maximum=1.5, stable_after=60.0)
    spec = ChildSpec("crasher", "simulator", python("import sys; print('boom'); sys.exit(3)"))
    seen: list[SupervisorEvent] = []
    sup = Supervisor([spec], tmp_path / "logs", backoff=backoff, clock=clock, on_event=seen.append)
    sup.start()
    try:
        exits: list[SupervisorEvent] = []
        while len(exits) < 5:
            events = sup.poll()
            exits += [e for e in events if e.kind is EventKind.EXITED]
            due = sup.next_restart_at()
            if not events and due is not None:
                assert sup.status()[0].state is ChildState.RESTARTING
                clock.now = due  # let the back-off expire without waiting for it
            time.sleep(0.01)
    finally:
        sup.stop(timeout=5)
    assert [e.restart_in for e in exits] == [backoff.delay(n) for n in range(1, 6)]
    assert all(e.exit_status == 3 for e in exits)
    # the child's last line says why: a child failing on every start (a module that does
    # not exist) said so only in its log, and the view showed 0 errors (a campaign)
    assert "exited with status 3 after " in exits[0].message
    assert exits[0].message.split("s: ", 1)[1].startswith("boom; restart #1 in 0.2s")
    assert str(tmp_path / "logs" / "crasher.log") in exits[0].message
    restarted = [e for e in seen if e.kind is EventKind.RESTARTED]
    assert [e.message.split(",")[0] for e in restarted] == [
        f"restarted (restart #{n}" for n in range(1, 5)
    ]
    log = (tmp_path / "logs" / "crasher.log").read_text()
    assert log.splitlines().count("boom") == len(restarted) + 1
    assert log.count("mesh up: start #") == len(restarted) + 1
    supervisor_log = (tmp_path / "logs" / "supervisor.log").read_text()
    assert supervisor_log.count("crasher: exited with status 3") == len(
        [e for e in seen if e.kind is EventKind.EXITED]
    )


def test_backoff_resets_after_a_stable_run(tmp_path: Path) -> None:
    clock = FakeClock()
    backoff = Backoff(initial=0.5, factor=2.0, maximum=8.0, stable_after=30.0)
    flag = tmp_path / "go"
    # Dies at once until the flag file exists, then runs until told to exit.
    code = f"""
        import os, sys, time
        if not os.path.exists({str(flag)!r}):
            sys.exit(1)
        while os.path.exists({str(flag)!r}):
            time.sleep(0.02)
        sys.exit(2)
    """
    sup = Supervisor(
        [ChildSpec("flaky", "processor", python(code))], tmp_path, backoff=backoff, clock=clock
    )
    sup.start()
    try:
        exits: list[SupervisorEvent] = []

        def drive(count: int) -> None:
            while len(exits) < count:
                events = sup.poll()
                exits.extend(e for e in events if e.kind is EventKind.EXITED)
                due = sup.next_restart_at()
                if not events and due is not None:
                    clock.now = due
                time.sleep(0.01)

        drive(3)  # three quick failures in a row: 0.5, 1, 2
        flag.write_text("run")
        clock.now = sup.next_restart_at() or clock.now
        sup.poll()  # restarted; now it stays up
        wait_until(lambda: sup.status()[0].state is ChildState.RUNNING)
        time.sleep(0.3)
        assert sup.poll() == []
        clock.now += backoff.stable_after  # it ran "long enough" to count as healthy
        flag.unlink()
        drive(4)
    finally:
        sup.stop(timeout=5)
    assert [e.restart_in for e in exits] == [
        backoff.delay(1),
        backoff.delay(2),
        backoff.delay(3),
        backoff.delay(1),
    ]
    assert exits[-1].exit_status == 2


SIGTERM_RECORDER = """
    import signal, sys, time
    def done(*_):
        with open({out!r}, "a") as f:
            f.write({name!r} + "\\n")
        time.sleep({linger})
        sys.exit(0)
    signal.signal(signal.SIGTERM, done)
    open({ready!r}, "w").close()
    while True:
        time.sleep(0.05)
"""


def test_stop_goes_kind_by_kind_in_shutdown_order(tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    specs = []
    # Given in start order (registry first); each lingers a little so overlapping waves
    # would interleave in the record.
    for kind, names in (
        ("registry", ["registry"]),
        ("simulator", ["sim-a", "sim-b"]),
        ("processor", ["proc-a", "proc-b"]),
    ):
        for name in names:
            code = SIGTERM_RECORDER.format(
                out=str(out), name=f"{kind}:{name}", linger=0.2, ready=str(tmp_path / name)
            )
            specs.append(ChildSpec(name, kind, python(code)))
    sup = Supervisor(specs, tmp_path / "logs")
    sup.start()
    for spec in specs:
        wait_until((tmp_path / spec.name).exists)
    pids = [s.pid for s in sup.status()]
    events = sup.stop(timeout=10)
    kinds = [line.split(":")[0] for line in out.read_text().splitlines()]
    assert sorted(kinds, key=SHUTDOWN_ORDER.index) == kinds
    assert sorted(kinds) == sorted(spec.kind for spec in specs)
    assert [e.child for e in events if e.kind is EventKind.STOPPED] == [
        s.name for s in sorted(specs, key=lambda s: SHUTDOWN_ORDER.index(s.kind))
    ]
    assert all(pid is not None and not process_running(pid) for pid in pids)
    assert all(s.state is ChildState.STOPPED for s in sup.status())


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.05)
    """
    sup = Supervisor([ChildSpec("stubborn", "processor", python(code))], tmp_path)
    sup.start()
    wait_until(ready.exists)
    pid = sup.status()[0].pid
    assert pid is not None
    events = sup.stop(timeout=0.5)
    killed = [e for e in events if e.kind is EventKind.KILLED]
    assert [e.child for e in killed] == ["stubborn"]
    assert "did not stop within 0.5s of SIGTERM; sent SIGKILL" in killed[0].message
    assert not process_running(pid)
    stopped = [e for e in events if e.kind is EventKind.STOPPED]
    assert stopped[0].exit_status == -signal.SIGKILL


GRANDPARENT = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open({out!r}, "w") as f:
        f.write(str(child.pid) + "\\n")
    time.sleep({lifetime})
"""


def test_stop_leaves_no_grandchild_behind(tmp_path: Path) -> None:
    out = tmp_path / "grandchild.pid"
    code = GRANDPARENT.format(out=str(out), lifetime=120)
    sup = Supervisor([ChildSpec("parent", "simulator", python(code))], tmp_path)
    sup.start()
    grandchild = int(wait_for_file(out))
    child = sup.status()[0].pid
    assert child is not None
    assert process_running(grandchild)
    sup.stop(timeout=5)
    assert not process_running(child)
    assert not process_running(grandchild)
    assert group_members(child) == []


def test_dead_childs_orphans_are_killed_before_the_restart(tmp_path: Path) -> None:
    out = tmp_path / "grandchild.pid"
    code = GRANDPARENT.format(out=str(out), lifetime=0)  # dies at once, orphaning its child
    clock = FakeClock()
    sup = Supervisor(
        [ChildSpec("leaky", "simulator", python(code))],
        tmp_path,
        clock=clock,
        backoff=Backoff(initial=100),
    )
    sup.start()
    try:
        grandchild = int(wait_for_file(out))
        exits: list[SupervisorEvent] = []
        while not exits:
            exits = [e for e in sup.poll() if e.kind is EventKind.EXITED]
            time.sleep(0.01)
        wait_until(lambda: not process_running(grandchild), timeout=5)
    finally:
        sup.stop(timeout=5)


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """`mesh up` killed with SIGKILL cannot stop its children; Linux must do it for it."""
    pids = tmp_path / "pids"
    driver = f"""
        import sys, time
        from pathlib import Path
        from mesh_stream.supervisor import ChildSpec, Supervisor
        sleep = (sys.executable, "-c", "import time; time.sleep(120)")
        sup = Supervisor(
            [ChildSpec("sleeper", "processor", sleep)],
            Path({str(tmp_path / "logs")!r}),
        )
        sup.start()
        with open({str(pids)!r}, "w") as f:
            f.write(str(sup.status()[0].pid) + "\\n")
        time.sleep(120)
    """
    driver_process = subprocess.Popen([PY, "-c", textwrap.dedent(driver)])
    try:
        child = int(wait_for_file(pids))
        assert process_running(child)
        driver_process.send_signal(signal.SIGKILL)
        driver_process.wait(timeout=10)
        wait_until(lambda: not process_running(child), timeout=10)
    finally:
        if driver_process.poll() is None:
            driver_process.kill()


def test_environment_and_log_file(tmp_path: Path) -> None:
    code = "import os; print('rate=' + os.environ['SIM_RATE'] + ',base=' + os.environ['BASE'])"
    spec = ChildSpec("env-check", "simulator", python(code), env={"SIM_RATE": "7.5"})
    clock = FakeClock()
    sup = Supervisor(
        [spec],
        tmp_path / "logs",
        env={**os.environ, "BASE": "yes"},
        clock=clock,
        backoff=Backoff(initial=1000),
    )
    sup.start()
    try:
        wait_until(lambda: "\nrate=" in sup.log_file("env-check").read_text())
    finally:
        sup.stop(timeout=5)
    assert "\nrate=7.5,base=yes\n" in (tmp_path / "logs" / "env-check.log").read_text()


def test_unstartable_command_is_reported_and_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    missing = str(tmp_path / "no-such-program")
    sup = Supervisor(
        [ChildSpec("ghost", "simulator", (missing,))],
        tmp_path,
        clock=clock,
        backoff=Backoff(initial=2.0),
    )
    events = sup.start()
    assert [e.kind for e in events] == [EventKind.FAILED_TO_START]
    assert "could not be started" in events[0].message
    assert missing in events[0].message
    assert events[0].restart_in == 2.0
    clock.now += 2.0
    again = sup.poll()
    assert [e.kind for e in again] == [EventKind.FAILED_TO_START]
    assert again[0].restart_in == Backoff(initial=2.0).delay(2)
    sup.stop(timeout=1)


def test_children_added_later_are_started_and_stopped(tmp_path: Path) -> None:
    sleep = python("import time; time.sleep(60)")
    sup = Supervisor([ChildSpec("first", "registry", sleep)], tmp_path)
    sup.start()
    events = sup.add(ChildSpec("second", "processor", sleep))
    assert [(e.child, e.kind) for e in events] == [("second", EventKind.STARTED)]
    assert sup.start() == []  # nothing is started twice
    assert sup.running("first")
    assert sup.running("second")
    pids = [s.pid for s in sup.status()]
    stopped = [e.child for e in sup.stop(timeout=5) if e.kind is EventKind.STOPPED]
    assert stopped == ["second", "first"]  # processors before the registry
    assert not any(pid is not None and process_running(pid) for pid in pids)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    spec = ChildSpec("twin", "simulator", python("pass"))
    with pytest.raises(Exception, match="two supervised children are named 'twin'"):
        Supervisor([spec, spec], tmp_path)


def test_a_quoted_last_line_never_shows_a_url_s_password(tmp_path: Path) -> None:
    """The exit event quotes the child's last line; a library echoing a URL with its
    user:password would have put the password on mesh up's output (review h29)."""
    from mesh_stream.supervisor import last_log_line

    log = tmp_path / "child.log"
    log.write_text(
        "\n=== 2026 mesh up: start #1: x\n"
        "error: cannot reach http://admin:S3CRET@reg:8081/x (ConnectError)\n\n"
    )
    assert last_log_line(log) == "error: cannot reach http://<hidden>@reg:8081/x (ConnectError)"
    log.write_text("\n=== 2026 mesh up: start #1: x\n")
    assert last_log_line(log) is None  # this run wrote nothing


def test_a_crashed_processor_s_exit_quotes_its_crash_line_not_faust_s_last_words(
    tmp_path: Path,
) -> None:
    """Every exit event of a crashing worker read "We experienced a crash! Reraising original
    exception...", faust's last line, and never the line naming the record (h45)."""
    from mesh_stream.supervisor import last_log_line

    crash = (
        "processor analytics.revenue-by-region crashed on orders.order-placed.v1[2]@2: apply "
        "raised ValueError amount too large: 332.11"
    )
    log = tmp_path / "child.log"
    log.write_text(
        "\n=== 2026 mesh up: start #1: x\n"
        "[2026-12-07 05:50:01,000] [42] [ERROR] processor analytics.revenue-by-region crashed "
        "on orders.order-placed.v1[1]@7: apply raised ValueError earlier run\n"
        "\n=== 2026 mesh up: start #2: x\n"
        "[2026-12-07 05:51:01,000] [43] [INFO] started\n"
        f"[2026-12-07 05:51:02,000] [43] [ERROR] {crash}\n"
        "[2026-12-07 05:51:02,100] [43] [ERROR] [^--RekeyStage]: Crashed reason=...\n"
        "[2026-12-07 05:51:02,200] [43] [CRITICAL] [^Worker]: We experienced a crash! "
        "Reraising original exception...\n"
    )
    assert last_log_line(log) == crash
    with log.open("a") as more:  # the next run crashes nowhere: its own last line
        more.write("\n=== 2026 mesh up: start #3: x\nerror: no broker answers\n")
    assert last_log_line(log) == "error: no broker answers"
