"""`terminate_as_interrupt`: SIGTERM ends a command as Ctrl-C does, even when the interrupt
lands inside C code that reports it as an error of its own; without a signal an error is
left as it is, and the previous handler is back afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mesh_stream.cli.signals import terminate_as_interrupt


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler ends this at once


def _sigterm_reported_as(error: Exception) -> None:
    """SIGTERM to this process, its KeyboardInterrupt replaced by ``error`` as
    confluent-kafka's C code replaces one that lands while it converts settings."""
    try:
        _sigterm()
    except KeyboardInterrupt:
        raise error from None


def test_sigterm_raises_keyboard_interrupt_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), terminate_as_interrupt():
        _sigterm()
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupt_reported_by_c_code_as_its_own_error_is_the_interrupt() -> None:
    refused = TypeError("expected configuration property value as type unicode string")
    with pytest.raises(KeyboardInterrupt, match="SIGTERM") as ended, terminate_as_interrupt():
        _sigterm_reported_as(refused)
    assert ended.value.__cause__ is refused


def test_an_error_without_a_signal_is_left_as_it_is() -> None:
    with pytest.raises(TypeError, match="unicode string"), terminate_as_interrupt():
        raise TypeError("expected configuration property value as type unicode string")


def _sigterm_twice(unwound: list[str]) -> None:
    """SIGTERM, and SIGTERM again while the first one's interrupt unwinds."""
    try:
        _sigterm()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        unwound.append("finally ran to its end")


def test_with_once_a_second_sigterm_while_unwinding_is_ignored() -> None:
    unwound: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), terminate_as_interrupt(once=True):
        _sigterm_twice(unwound)
    assert unwound == ["finally ran to its end"]
