"""`mesh publish -f -`: a pipe is read once, as it comes, keeping only the lines Kafka has not
acknowledged (bounded by count and bytes), which the failure path reads again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

import pytest

from mesh_stream.cli import publish


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
