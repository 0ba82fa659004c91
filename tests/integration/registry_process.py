"""A real `mesh registry serve` subprocess on a fixed free port, to kill -9 and restart.

The consumer tests need the registry to vanish and come back at the same URL, which the
in-process session fixture cannot do. State lives in the test broker (its own topic), so a
restarted process replays everything the killed one stored. Several processes given the same
``topic`` and ``writer_id`` are instances of one registry (one writer, the others forward).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

from mesh_stream.broker.cluster import free_port
from tests.conftest import KafkaAddress

MESH = str(Path(sys.executable).with_name("mesh"))
TOKENS = {"admin": "admin-secret", "orders": "orders-secret", "payments": "payments-secret"}


class RegistryProcess:
    """``start()``, ``kill()`` (SIGKILL) and ``start()`` again; the URL never changes."""

    def __init__(
        self,
        kafka: KafkaAddress,
        *,
        topic: str | None = None,
        writer_id: str | None = None,
        default_writer_id: bool = False,
    ) -> None:
        """``default_writer_id`` leaves ``--writer-id`` out, so the registry picks its own."""
        self.kafka = kafka
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        session = uuid.uuid4().hex[:8]
        self.topic = topic or f"_mesh_registry-consumer-{session}"
        self.writer_id = None if default_writer_id else writer_id or f"writer-consumer-{session}"
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "MESH_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MESH_REGISTRY_CREDENTIALS": ",".join(f"{p}:{t}" for p, t in TOKENS.items()),
        }
        env.pop("MESH_REGISTRY_CREDENTIALS_FILE", None)
        command = [MESH, "registry", "serve", "--port", str(self.port), "--topic", self.topic]
        if self.writer_id is not None:
            command += ["--writer-id", self.writer_id]
        process = subprocess.Popen(
            command,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.process = process
        assert process.stderr is not None
        started = threading.Event()

        def drain() -> None:  # keep reading, or a full pipe would stall the registry
            assert process.stderr is not None
            for line in process.stderr:
                self.log.append(line)
                if re.search(r"listening on http://", line):
                    started.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not started.wait(0.1):
            assert process.poll() is None, "registry exited:\n" + "".join(self.log[-30:])
            assert time.monotonic() < deadline, "registry did not start:\n" + "".join(self.log)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> RegistryProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()
