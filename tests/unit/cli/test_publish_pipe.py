"""`mesh publish -f -`: a pipe is read once, as it comes, keeping only the lines Kafka has not
acknowledged (bounded by count and bytes), which the failure path reads again."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from mesh_stream.cli import publish
from mesh_stream.cli.main import run


@pytest.fixture
def pipe() -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reader, os.fdopen(write_end, "wb") as writer:
        yield reader, writer


def test_a_pipe_keeps_only_its_unsettled_lines_and_reads_them_again(
    pipe: tuple[IO[bytes], IO[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "SETTLE_EVERY", 3)
    reader, writer = pipe
    writer.write(b"\n" + b"".join(b'{"n": %d}\n' % n for n in range(5)))
    writer.close()
    source = publish._PipedRecords(reader)
    assert publish._read_once(reader)
    assert source.has_records()  # read up to the first record, which is kept
    lines = source.lines()
    taken = [next(lines) for _ in range(3)]  # the blank line and two records
    assert [number for number, _ in taken] == [1, 2, 3]
    assert source.needs_settling()
    source.settled()
    assert not source.needs_settling()
    rest = list(lines)
    assert rest == [(4, b'{"n": 2}\n'), (5, b'{"n": 3}\n'), (6, b'{"n": 4}\n')]
    assert list(source.lines()) == rest  # the failure path: only what Kafka may not have


def test_the_lines_kept_are_bounded_by_their_bytes_too(
    pipe: tuple[IO[bytes], IO[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "SETTLE_BYTES", 100)
    reader, writer = pipe
    writer.write(b'{"pad": "' + b"x" * 120 + b'"}\n{"n": 1}\n')
    writer.close()
    source = publish._PipedRecords(reader)
    lines = source.lines()
    next(lines)
    assert source.needs_settling()  # one line over the bytes bound, far under the count


def test_a_fifo_no_one_writes_to_yet_is_said_to_be_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a FIFO blocks until a writer comes: the command hung without a word (h50)."""
    fifo = tmp_path / "records.fifo"
    os.mkfifo(fifo)

    def write_later() -> None:
        time.sleep(0.5)
        with fifo.open("w") as writer:
            writer.write('{"order_id": "o-1"}\n')

    writer = threading.Thread(target=write_later)
    writer.start()
    monkeypatch.setenv("MESH_REGISTRY_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.chdir(tmp_path)
    status = run(["publish", "orders.order-placed", "-f", str(fifo)])
    writer.join()
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"{fifo} is a FIFO: waiting for a writer to open it\n")
    assert "is unreachable" in err  # it went on once the writer came


def _free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])
