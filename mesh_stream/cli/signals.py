"""Signal handling for the commands that run until stopped (`mesh up`, `mesh monitor`).

Handlers are process-wide state, so only command entry points install them, and only for as
long as the command runs; the library code they drive says what a signal means (e.g.
:meth:`mesh_stream.up.MeshUp.on_signal`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["on_stop_signals", "terminate_as_interrupt"]

#: The signals that ask a foreground command to stop: Ctrl-C and `kill`.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signals(handle: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handle`` receives SIGINT and SIGTERM inside the block; the previous handlers are
    back after it."""
    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def terminate_as_interrupt(*, once: bool = False) -> Iterator[list[int]]:
    """SIGTERM inside the block ends the command as Ctrl-C does (a ``KeyboardInterrupt``,
    which also breaks a blocking call), so what it printed is flushed as it exits. Whatever
    ends the block after the signal is the stop: an interrupt landing inside C code can come
    out as that code's own error (a TypeError from confluent-kafka converting a client's
    settings, a SystemError as librdkafka's consume returns), which is raised as the
    ``KeyboardInterrupt`` it replaced. Yields the signals received; with ``once``, a second
    SIGTERM while the first unwinds is ignored (SIGKILL still ends the process)."""
    received: list[int] = []

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if once and received:
            return
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    except Exception as exc:
        if received:
            raise KeyboardInterrupt(signal.Signals(received[0]).name) from exc
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
