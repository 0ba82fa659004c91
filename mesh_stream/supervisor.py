"""Supervised child processes: what keeps `mesh up`'s registry, simulators and processors alive.

A :class:`Supervisor` starts every :class:`ChildSpec` as a child process in its own process
group (so a Ctrl-C in the terminal reaches only `mesh up`, which then stops the children in
order), appends each child's stdout and stderr to ``<log_dir>/<name>.log``, and, on every
:meth:`Supervisor.poll`, notices children that died, reports them as
:class:`SupervisorEvent` values and starts them again after an exponential back-off.

:meth:`Supervisor.stop` shuts down kind by kind in :data:`SHUTDOWN_ORDER` (processors first so
they commit what they consumed, then simulators, then the registry): SIGTERM to the whole
process group, a grace period, then SIGKILL, and finally any process still left in a group
(a grandchild) is killed too, so nothing is left behind. On Linux a child also receives
SIGTERM if the supervising thread dies without stopping it (``PR_SET_PDEATHSIG``), which
covers a `mesh up` killed with SIGKILL.

The supervisor runs no thread of its own: the caller drives it with :meth:`poll` from one
long-lived thread (the one that started it), which keeps it simple to test with a fake clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from mesh_stream.errors import ConfigurationError
from mesh_stream.processing.names import CRASH_LINE_PATTERN
from mesh_stream.settings import shown_url
from mesh_stream.terminal import visible

#: Kinds stop in this order; kinds not listed stop last.
SHUTDOWN_ORDER: tuple[str, ...] = ("processor", "simulator", "monitor", "registry")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """One process to supervise: a unique ``name``, its ``kind`` and how to run it."""

    name: str
    kind: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delays: ``initial * factor**(n-1)`` for the n-th failure in a row,
    capped at ``maximum``. A child that ran at least ``stable_after`` seconds before dying
    counts as healthy again, so its next restart waits only ``initial``."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before restarting after ``failures`` (>= 1) failures in a row."""
        return float(min(self.initial * self.factor ** max(failures - 1, 0), self.maximum))


class ChildState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # died, waiting for its back-off to expire
    STOPPED = "stopped"


class EventKind(StrEnum):
    STARTED = "started"
    EXITED = "exited"  # died unexpectedly; a restart is scheduled
    RESTARTED = "restarted"
    STOPPING = "stopping"
    KILLED = "killed"  # did not stop within the grace period
    STOPPED = "stopped"
    FAILED_TO_START = "failed-to-start"


@dataclass(frozen=True)
class SupervisorEvent:
    """Something that happened to a child, for the live view and the supervisor log."""

    at: datetime
    child: str
    kind: EventKind
    message: str
    exit_status: int | None = None
    restart_in: float | None = None

    @property
    def is_problem(self) -> bool:
        return self.kind in (EventKind.EXITED, EventKind.KILLED, EventKind.FAILED_TO_START)

    def line(self) -> str:
        """The event as one log line."""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.child}: {self.message}"


@dataclass(frozen=True)
class ChildStatus:
    """A snapshot of one child for display."""

    name: str
    kind: str
    state: ChildState
    pid: int | None
    restarts: int
    last_exit: int | None
    log_file: Path
    #: Exits in a row, each after a run shorter than the back-off's ``stable_after`` (reset
    #: only by the next exit): two or more, with the current run not yet that long, is a
    #: crash loop.
    failures: int = 0
    #: Seconds the current run has lasted (None when not running).
    up_for: float | None = None
    #: The last line the child wrote before its last exit, as its exit event quoted it.
    last_said: str | None = None


@dataclass
class _Child:
    spec: ChildSpec
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    next_start: float | None = None
    last_exit: int | None = None
    last_said: str | None = None
    stopped: bool = False


def describe_exit(status: int) -> str:
    """``exited with status 3`` or ``killed by SIGKILL`` for a Popen return code."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exited with status {status}"


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a dead process nobody reaped yet)."""
    stat = Path(f"/proc/{pid}/stat")
    if sys.platform == "linux":
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    if sys.platform != "linux":
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            return [pgid]
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command: state, ppid, pgrp, ...
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_orphans(pgid: int) -> None:
    """SIGKILL what is left of a dead child's process group (its orphans)."""
    for pid in group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
#: How much of a child's last log line an exit event quotes.
QUOTED_CHARS = 200


#: A processor's crash line, quoted in place of the lines a stopping worker logs after it
#: (faust's "We experienced a crash!", which says nothing of the record).
_CRASH_LINE = re.compile(CRASH_LINE_PATTERN)


def last_log_line(log_file: Path) -> str | None:
    """The last line a child wrote to its log in its last run (a processor's crash line if
    the run logged one), shortened and with control characters shown escaped, or None: what
    an exit event quotes, since a child that fails on every start (a module that does not
    exist) said why only in its log."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(max(0, log_file.stat().st_size - 8192))
            tail = handle.read()
    except OSError:
        return None
    last: str | None = None
    for raw in reversed(tail.splitlines()):
        line = raw.decode("utf-8", "replace").strip()
        if line.startswith("=== ") and " mesh up: start #" in line:
            break  # the run's start marker: nothing of an earlier run
        crash = _CRASH_LINE.search(line)
        if crash is not None:
            last = crash.group()
            break
        if line and last is None:
            last = line
    if last is None:
        return None
    # a library may echo a URL with its user:password or a token: as messages show it
    shown = visible(_URL.sub(lambda url: shown_url(url.group()), last))
    return shown if len(shown) <= QUOTED_CHARS else shown[: QUOTED_CHARS - 1] + "…"


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that asks Linux to SIGTERM the child when its parent thread dies."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class Supervisor:
    """Start, watch, restart and stop a set of child processes (see the module docstring)."""

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        log_dir: Path,
        *,
        backoff: Backoff | None = None,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 15.0,
        on_event: Callable[[SupervisorEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_dir = log_dir
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self._env = dict(os.environ if env is None else env)
        self._on_event = on_event
        self._clock = clock
        self._children: dict[str, _Child] = {}
        self.events: deque[SupervisorEvent] = deque(maxlen=500)
        self._stopping = False
        for spec in specs:
            if spec.name in self._children:
                raise ConfigurationError(f"two supervised children are named {spec.name!r}")
            if not spec.argv:
                raise ConfigurationError(f"child {spec.name!r} has an empty command")
            self._children[spec.name] = _Child(spec, log_dir / f"{spec.name}.log")

    # -- queries ---------------------------------------------------------------------------
    @property
    def supervisor_log(self) -> Path:
        return self.log_dir / "supervisor.log"

    def log_file(self, name: str) -> Path:
        return self._children[name].log_file

    def status(self) -> list[ChildStatus]:
        now = self._clock()
        found = []
        for child in self._children.values():
            up_for = now - child.started_at if child.process is not None else None
            found.append(
                ChildStatus(
                    name=child.spec.name,
                    kind=child.spec.kind,
                    state=self._state(child),
                    pid=child.process.pid if child.process is not None else None,
                    restarts=child.restarts,
                    last_exit=child.last_exit,
                    log_file=child.log_file,
                    failures=child.failures,
                    up_for=up_for,
                    last_said=child.last_said,
                )
            )
        return found

    def _state(self, child: _Child) -> ChildState:
        if child.process is not None:
            return ChildState.RUNNING
        if child.next_start is not None and not self._stopping:
            return ChildState.RESTARTING
        return ChildState.STOPPED

    # -- events ----------------------------------------------------------------------------
    def _emit(
        self,
        child: str,
        kind: EventKind,
        message: str,
        *,
        exit_status: int | None = None,
        restart_in: float | None = None,
    ) -> SupervisorEvent:
        event = SupervisorEvent(
            at=datetime.now(UTC),
            child=child,
            kind=kind,
            message=message,
            exit_status=exit_status,
            restart_in=restart_in,
        )
        self.events.append(event)
        with contextlib.suppress(OSError), self.supervisor_log.open("a") as log:
            log.write(event.line() + "\n")
        if self._on_event is not None:
            self._on_event(event)
        return event

    def record(
        self, child: str, kind: EventKind, message: str, *, restart_in: float | None = None
    ) -> SupervisorEvent:
        """Report an event about something supervised elsewhere (e.g. the local broker)."""
        return self._emit(child, kind, message, restart_in=restart_in)

    # -- start -----------------------------------------------------------------------------
    def start(self) -> list[SupervisorEvent]:
        """Start every child not started yet (in the order given). Returns the events."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        return [
            event
            for child in self._children.values()
            if child.process is None and child.next_start is None and not child.stopped
            for event in self._spawn(child)
        ]

    def add(self, spec: ChildSpec) -> list[SupervisorEvent]:
        """Supervise one more child and start it now (`mesh up` starts in stages)."""
        if spec.name in self._children:
            raise ConfigurationError(f"two supervised children are named {spec.name!r}")
        if not spec.argv:
            raise ConfigurationError(f"child {spec.name!r} has an empty command")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = _Child(spec, self.log_dir / f"{spec.name}.log")
        self._children[spec.name] = child
        return self._spawn(child)

    def running(self, name: str) -> bool:
        """True while child ``name`` runs (it may still die before the next :meth:`poll`)."""
        process = self._children[name].process
        return process is not None and process.poll() is None

    def _spawn(self, child: _Child) -> list[SupervisorEvent]:
        spec = child.spec
        env = {**self._env, "PYTHONUNBUFFERED": "1", **spec.env}
        attempt = child.restarts + 1
        with child.log_file.open("ab") as log:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== {stamp} mesh up: start #{attempt}: {' '.join(spec.argv)}\n".encode())
            log.flush()
            try:
                child.process = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=spec.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only calls prctl
                )
            except OSError as exc:
                child.process = None
                return [self._schedule_restart(child, None, f"could not be started: {exc}")]
        child.started_at = self._clock()
        child.next_start = None
        child.stopped = False
        pid = child.process.pid
        if child.restarts:
            return [
                self._emit(
                    spec.name,
                    EventKind.RESTARTED,
                    f"restarted (restart #{child.restarts}, pid {pid})",
                )
            ]
        return [self._emit(spec.name, EventKind.STARTED, f"started {spec.kind} (pid {pid})")]

    def _schedule_restart(self, child: _Child, status: int | None, what: str) -> SupervisorEvent:
        now = self._clock()
        ran = now - child.started_at if status is not None else 0.0
        stable = status is not None and ran >= self.backoff.stable_after
        child.failures = 1 if stable else child.failures + 1
        delay = self.backoff.delay(child.failures)
        child.next_start = now + delay
        child.last_exit = status
        child.restarts += 1
        ran_text = f" after {ran:.1f}s" if status is not None else ""
        # what it wrote last, a signal's victim too (an OOM kill), for the --duration summary
        child.last_said = last_log_line(child.log_file) if status else None
        said = child.last_said if status is not None and status > 0 else None
        said_text = f": {said}" if said else ""
        return self._emit(
            child.spec.name,
            EventKind.EXITED if status is not None else EventKind.FAILED_TO_START,
            f"{what}{ran_text}{said_text}; restart #{child.restarts} in {delay:.1f}s "
            f"(log: {child.log_file})",
            exit_status=status,
            restart_in=delay,
        )

    # -- watch -----------------------------------------------------------------------------
    def poll(self) -> list[SupervisorEvent]:
        """Reap children that died, schedule their restarts, start those that are due."""
        if self._stopping:
            return []
        events: list[SupervisorEvent] = []
        for child in self._children.values():
            process = child.process
            if process is not None and process.poll() is not None:
                child.process = None
                _kill_orphans(process.pid)
                status = process.returncode
                events.append(self._schedule_restart(child, status, describe_exit(status)))
            elif (
                process is None
                and child.next_start is not None
                and self._clock() >= child.next_start
            ):
                events.extend(self._spawn(child))
        return events

    def give_up_if_exited(self, name: str) -> int | None:
        """The exit status of child ``name`` if it has died, and then it is *not* restarted;
        None while it runs (or before it was started).

        For a child its caller waits on while it starts (`mesh up`'s registry): one that dies
        before it was ever ready dies the same way on every restart (its port taken, a setting
        wrong), so the caller stops with its reason rather than retrying forever. A child that
        dies later is still restarted by :meth:`poll`.
        """
        child = self._children[name]
        process = child.process
        if process is None or process.poll() is None:
            return None
        child.process = None
        _kill_orphans(process.pid)
        status = process.returncode
        child.last_exit = status
        child.stopped = True
        ran = self._clock() - child.started_at
        self._emit(
            name,
            EventKind.FAILED_TO_START,
            f"{describe_exit(status)} after {ran:.1f}s, while starting; not restarted "
            f"(log: {child.log_file})",
            exit_status=status,
        )
        return status

    def next_restart_at(self) -> float | None:
        """Clock time of the earliest pending restart, if any."""
        pending = [c.next_start for c in self._children.values() if c.process is None]
        due = [t for t in pending if t is not None]
        return min(due) if due else None

    # -- stop ------------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> list[SupervisorEvent]:
        """Stop every child, kind by kind in :data:`SHUTDOWN_ORDER`; nothing is left behind.

        Each kind gets SIGTERM (to its whole process group) and ``timeout`` seconds (default
        ``stop_timeout``) before SIGKILL. Safe to call more than once.
        """
        grace = self.stop_timeout if timeout is None else timeout
        self._stopping = True
        events: list[SupervisorEvent] = []
        for kind_children in self._shutdown_waves():
            events.extend(self._stop_wave(kind_children, grace))
        return events

    def kill(self) -> None:
        """SIGKILL every child's process group at once (a second Ctrl-C)."""
        self._stopping = True
        for child in self._children.values():
            if child.process is not None:
                _signal_group(child.process.pid, signal.SIGKILL)

    def _shutdown_waves(self) -> list[list[_Child]]:
        def rank(kind: str) -> int:
            return SHUTDOWN_ORDER.index(kind) if kind in SHUTDOWN_ORDER else len(SHUTDOWN_ORDER)

        kinds = sorted({c.spec.kind for c in self._children.values()}, key=rank)
        return [[c for c in self._children.values() if c.spec.kind == kind] for kind in kinds]

    def _stop_wave(self, children: Sequence[_Child], grace: float) -> list[SupervisorEvent]:
        events: list[SupervisorEvent] = []
        running = [c for c in children if c.process is not None]
        for child in children:
            child.next_start = None
        for child in running:
            assert child.process is not None
            events.append(self._emit(child.spec.name, EventKind.STOPPING, "stopping (SIGTERM)"))
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            c.process is not None and c.process.poll() is None for c in running
        ):
            time.sleep(0.05)
        for child in running:
            process = child.process
            assert process is not None
            if process.poll() is None:
                events.append(
                    self._emit(
                        child.spec.name,
                        EventKind.KILLED,
                        f"did not stop within {grace:g}s of SIGTERM; sent SIGKILL",
                    )
                )
                _signal_group(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            # Grandchildren that outlived the child are still in its group: end them too.
            leftovers = group_members(process.pid)
            if leftovers:
                _signal_group(process.pid, signal.SIGKILL)
                end = time.monotonic() + 5
                while group_members(process.pid) and time.monotonic() < end:
                    time.sleep(0.05)
            child.process = None
            child.stopped = True
            status = process.returncode
            child.last_exit = status
            events.append(
                self._emit(
                    child.spec.name,
                    EventKind.STOPPED,
                    f"stopped ({describe_exit(status) if status is not None else 'gone'})",
                    exit_status=status,
                )
            )
        return events

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
