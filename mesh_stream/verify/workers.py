"""Processor workers as child processes that `mesh verify` starts, kills and restarts.

A worker is ``python -m <module> worker -l info``, the way `mesh up` runs processors; its
output goes to a log file per worker, which also tells when it is ready (faust's
``[^Worker]: Ready`` line) and, when it stops on its own, why. A worker whose log holds the
engine's crash report (``processor X crashed on topic[p]@offset: ...``) has failed even
while its process is still stopping: faust takes seconds to exit after a crash.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mesh_stream.errors import MeshError
from mesh_stream.processing.names import CRASH_LINE_PATTERN

__all__ = ["JOINING_LINE", "READY_LINE", "Worker", "WorkerFailedError"]

#: What faust's worker logs once it runs its agents.
READY_LINE = b"[^Worker]: Ready"
#: What a worker's consumer logs as it asks to join its group (aiokafka's words): from then
#: on the group rebalances, until every member has joined again.
JOINING_LINE = b"(Re-)joining group"
#: The one line the engine logs first when a processor's record crashes the worker.
CRASH_REPORT = re.compile(CRASH_LINE_PATTERN)
#: A log line's level, as faust formats it (``[2026-01-01 12:00:00,000] [42] [ERROR] ...``).
_ERROR_LEVEL = re.compile(r"\[(ERROR|CRITICAL)\]")
#: The timestamp and process id a faust log line starts with.
_LOG_PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*\] \[\d+\] ")
#: The last line of a Python traceback (``KeyError: 'x'``, ``pkg.SomeError: ...``).
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning): ")


class WorkerFailedError(MeshError):
    """A worker stopped by itself, or never became ready."""


class Worker:
    """One worker process of the processor under test."""

    def __init__(
        self, name: str, module: str, env: Mapping[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0
        self._stopped_by_us = False
        #: How far this start's log was searched for the crash report, and what was found.
        self._scanned = 0
        self._crash_report: str | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.starts += 1
        self._stopped_by_us = False
        with self.log_path.open("ab") as log:
            log.write(f"\n==== mesh verify: start {self.starts} ====\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._scanned = 0
            self._crash_report = None
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "worker", "-l", "info"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for(self, line: bytes, timeout: float) -> float | None:
        """Seconds until this start's log holds ``line`` (None after ``timeout``); an error
        if the worker stopped first."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.check_alive()
            if line in self._log_since_start():
                return time.monotonic() - began
            time.sleep(0.05)
        return None

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the worker logged that it is ready; an error if it stopped first."""
        took = self.wait_for(READY_LINE, timeout)
        if took is not None:
            return took
        raise WorkerFailedError(
            f"{self.name} ({self.module}) not ready after {timeout:.0f} s; its log: "
            f"{self.log_path}\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        """Raise :class:`WorkerFailedError` (with the log's first error) if it has stopped by
        itself, or if it logged the engine's crash report and is still stopping."""
        if self.process is None or self._stopped_by_us:
            return
        if self.process.poll() is None:
            report = self.crash_report()
            if report is not None:
                raise WorkerFailedError(
                    f"{self.name} ({self.module}) crashed: {report}; its log: {self.log_path}"
                )
            return
        said = self.first_error()
        if said is None and self.process.returncode == 0:
            said = (
                "no error line in its log; a worker is `python -m MODULE worker`, so does the "
                'module end with `if __name__ == "__main__": run(PROCESSOR)`?'
            )
        raise WorkerFailedError(
            f"{self.name} ({self.module}) stopped by itself with exit status "
            f"{self.process.returncode}: {said or 'no error line in its log'}; "
            f"its log: {self.log_path}"
        )

    def crash_report(self) -> str | None:
        """The engine's crash report in this start's log, if it logged one (searched from
        where the last call stopped, so that a drain can ask often)."""
        if self._crash_report is None:
            new = self._log_since_start(self._scanned)
            complete = new[: new.rfind(b"\n") + 1]  # a line still being written waits
            self._scanned += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if CRASH_REPORT.search(line):
                    self._crash_report = _message(line)
                    break
        return self._crash_report

    def kill(self) -> None:
        """SIGKILL: no clean-up, no commit, state as it was on disk."""
        self._stopped_by_us = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        self._stopped_by_us = True
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _log_since_start(self, skip: int = 0) -> bytes:
        """This start's log, less its first ``skip`` bytes."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset + skip)
                return log.read()
        except FileNotFoundError:
            return b""

    def first_error(self) -> str | None:
        """The line of this start's log that tells best why it stopped: the engine's crash
        report, else the first line logged as an error, else the exception a traceback ends
        with (a worker that failed before faust's logging started)."""
        lines = self._log_since_start().decode(errors="replace").splitlines()
        for line in lines:
            if CRASH_REPORT.search(line):
                return _message(line)
        for line in lines:
            if _ERROR_LEVEL.search(line):
                return _message(line)
        raised = [line for line in lines if _RAISED.match(line)]
        return raised[-1].strip() if raised else None

    def log_tail(self, characters: int = 3000) -> str:
        return self._log_since_start().decode(errors="replace")[-characters:]


def _message(line: str) -> str:
    """A log line without its timestamp and process id; the engine's crash report also
    without its level (it says what it is)."""
    text = _LOG_PREFIX.sub("", line.strip())
    report = CRASH_REPORT.search(text)
    if report is not None and text[: report.start()].strip() in ("", "[ERROR]", "[CRITICAL]"):
        return text[report.start() :]
    return text
