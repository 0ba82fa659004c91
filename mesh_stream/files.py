"""Reading the files a user names (descriptors, schemas, policies, credentials): regular
files only, so a stray FIFO or device named like one is an error instead of a hang."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = ["NotRegularFileError", "open_regular", "read_regular_bytes", "read_regular_text"]


class NotRegularFileError(OSError):
    """A path to read is a FIFO, a device, a socket or a folder. An ``OSError`` (not a
    :class:`MeshError`) on purpose: every reader already reports ``OSError`` with its
    ``strerror`` and the file it was reading."""


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(path: Path, mode: int) -> NotRegularFileError:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "another kind of file")
    return NotRegularFileError(errno.EINVAL, f"not a regular file but {kind}", str(path))


def _open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``, refused (:class:`NotRegularFileError`) before it
    is opened unless it is a regular file: reading a FIFO waits for a writer for ever and a
    device may never end, so a stray ``x.yaml`` pipe would hang `mesh lint`."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    # O_NONBLOCK: a file swapped for a FIFO after the check still does not block the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return fd


def read_regular_text(path: Path) -> str:
    """``path.read_text(encoding="utf-8")`` for regular files (or links to one) only."""
    with open(_open_regular(path), encoding="utf-8") as handle:
        return handle.read()


def open_regular(path: Path) -> BinaryIO:
    """``path.open("rb")`` for regular files (or links to one) only."""
    return open(_open_regular(path), "rb")


def read_regular_bytes(path: Path) -> bytes:
    """``path.read_bytes()`` for regular files (or links to one) only."""
    with open_regular(path) as handle:
        return handle.read()
