"""Processor workers as child processes that `mesh verify` starts, kills and restarts.

A worker is ``python -m <module> worker -l info``, the way `mesh up` runs processors; its
output goes to a log file per worker, which also tells when it is ready (faust's
``[^Worker]: Ready`` line) and, when it stops on its own, why.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mesh_stream.errors import MeshError

__all__ = ["READY_LINE", "Worker", "WorkerFailedError"]

#: What faust's worker logs once it runs its agents.
READY_LINE = b"[^Worker]: Ready"


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
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "worker", "-l", "info"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the worker logged that it is ready; an error if it stopped first."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.check_alive()
            if READY_LINE in self._log_since_start():
                return time.monotonic() - began
            time.sleep(0.2)
        raise WorkerFailedError(
            f"{self.name} ({self.module}) not ready after {timeout:.0f} s; its log: "
            f"{self.log_path}\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        """Raise :class:`WorkerFailedError` (with the log's first error) if it has stopped."""
        if self.process is None or self.process.poll() is None or self._stopped_by_us:
            return
        raise WorkerFailedError(
            f"{self.name} ({self.module}) stopped by itself with exit status "
            f"{self.process.returncode}: {self.first_error() or 'no error line in its log'}; "
            f"its log: {self.log_path}"
        )

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

    def _log_since_start(self) -> bytes:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read()
        except FileNotFoundError:
            return b""

    def first_error(self) -> str | None:
        """The first line of this start's log that reports an error."""
        for line in self._log_since_start().decode(errors="replace").splitlines():
            lowered = line.lower()
            if "error" in lowered or "crashed" in lowered or "exception" in lowered:
                return line.strip()
        return None

    def log_tail(self, characters: int = 3000) -> str:
        return self._log_since_start().decode(errors="replace")[-characters:]
