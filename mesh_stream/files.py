"""Reading the files a user names (descriptors, schemas, policies, credentials): regular
files only, so a stray FIFO or device named like one is an error instead of a hang. And
writing the documents mesh makes (:func:`write_replacing`): whole or not at all.

Their text is UTF-8: a leading byte-order mark (which editors on Windows write) is dropped,
since no format mesh-stream reads gives it a meaning (YAML skips it, JSON refuses it), and
bytes that are not UTF-8 are :class:`NotUTF8Error`, naming the byte and its offset.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "UTF8_BOM",
    "NotRegularFileError",
    "NotUTF8Error",
    "decode_utf8",
    "file_kind",
    "not_utf8",
    "open_regular",
    "read_regular_bytes",
    "read_regular_text",
    "write_replacing",
]

#: The UTF-8 byte-order mark, dropped from the start of the text files a user names.
UTF8_BOM = b"\xef\xbb\xbf"


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


class NotUTF8Error(UnicodeDecodeError):
    """A file's bytes are not UTF-8 text. A ``UnicodeDecodeError`` whose ``object`` is the
    whole file and ``start`` the offset of the first bad byte in it (a dropped byte-order
    mark counted); ``str()`` names both and the fix, without the file (each reader names it
    its own way, as for ``OSError``)."""

    def __str__(self) -> str:
        return f"{not_utf8(self)}; save it as UTF-8"


#: Byte-order marks of the encodings an editor may have saved a file in instead of UTF-8,
#: longest first (UTF-32's little-endian mark begins with UTF-16's).
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def not_utf8(error: UnicodeDecodeError) -> str:
    """What bytes that failed to decode as UTF-8 are, for a message: ``UTF-16 text, not
    UTF-8`` when they begin with that encoding's byte-order mark, else the first bad byte
    and its offset."""
    data = bytes(error.object)
    for mark, encoding in _OTHER_BOMS:
        if data.startswith(mark):
            return f"{encoding} text (it begins with a {encoding} byte-order mark), not UTF-8"
    return f"not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})"


def damage_said(exc: Exception) -> str:
    """What is wrong with a JSON state file a command wrote (``cluster.json``,
    ``credentials.json``) that no longer reads, in words: a missing key by its name, bad
    JSON by its line, a wrong shape by what it tripped over (never a value: such files hold
    secrets)."""
    if isinstance(exc, KeyError):
        return f"it has no {exc.args[0]!r} key" if exc.args else "a key is missing"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, (TypeError, AttributeError)):
        return f"an entry is not what mesh wrote there: {exc}"
    return str(exc)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` that is not a regular file's is, for a message: ``a folder``,
    ``a named pipe (FIFO)``, ..."""
    return next((name for test, name in _FILE_KINDS if test(mode)), "another kind of file")


def _not_regular(path: Path, mode: int) -> NotRegularFileError:
    return NotRegularFileError(errno.EINVAL, f"not a regular file but {file_kind(mode)}", str(path))


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
    """``path.read_text(encoding="utf-8")`` for regular files (or links to one) only, without
    a leading byte-order mark; bytes that are not UTF-8 are :class:`NotUTF8Error`."""
    return decode_utf8(read_regular_bytes(path))


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text, as text mode reads it (CR LF and CR line ends become LF),
    without a leading byte-order mark; :class:`NotUTF8Error`, at its offset in ``data``, when
    it is not UTF-8."""
    skip = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUTF8Error("utf-8", data, exc.start + skip, exc.end + skip, exc.reason) from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def open_regular(path: Path) -> BinaryIO:
    """``path.open("rb")`` for regular files (or links to one) only."""
    return open(_open_regular(path), "rb")


def read_regular_bytes(path: Path) -> bytes:
    """``path.read_bytes()`` for regular files (or links to one) only."""
    with open_regular(path) as handle:
        return handle.read()


def write_replacing(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all: into a new file beside it,
    then renamed over it. A write cut short (a full disk, a file size limit) leaves no
    truncated file that still reads as a document, and a symlink at ``path`` is replaced
    rather than written through. An OSError leaves ``path`` as it was."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        # mkstemp makes it private; give it the mode the file had, or a document's 0644
        try:
            before = os.lstat(path).st_mode
        except FileNotFoundError:
            before = 0
        os.chmod(temporary, stat.S_IMODE(before) if stat.S_ISREG(before) else 0o644)
        try:
            os.replace(temporary, path)
        except OSError as exc:  # named by the file it was to replace, not the one beside it
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
