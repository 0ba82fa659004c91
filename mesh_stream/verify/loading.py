"""Loading the processor `mesh verify` checks: its module's ``PROCESSOR``, first in a child
Python.

Importing a module runs its code, and that code can end the process (``os._exit(0)``, a
crash in native code) before any ``except`` sees it: `mesh verify` would then stop with the
module's status, 0 reading as a pass. So the module's first import runs in a child process
of the same interpreter (:func:`import_apart`), which reports what :func:`load_processor`
said there; a child that ends without reporting is the refusal, naming the module and how the
child ended. Only a module that loads there is imported into the verify process.

This module stays light (no harness, no sandbox): the CLI imports it before the rest of the
harness, which it imports while the child runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from mesh_stream.errors import ConfigurationError, MeshError
from mesh_stream.processing.spec import Processor

__all__ = ["ImportProbe", "check_module_name", "import_apart", "load_processor"]


def check_module_name(module: str) -> None:
    """A :class:`ConfigurationError` unless ``module`` is a dotted Python module name."""
    if not all(part.isidentifier() for part in module.split(".")):
        dotted = module.removeprefix("./").removesuffix(".py").strip("/").replace("/", ".")
        example = (
            dotted
            if dotted and all(part.isidentifier() for part in dotted.split("."))
            else "domains.<domain>.processors.<module>"
        )
        raise ConfigurationError(
            f"{module!r} is not a Python module name; give a dotted module such as {example}"
        )


def load_processor(module: str) -> Processor:
    """The ``PROCESSOR`` of ``module`` (importable from ``sys.path``), imported in this
    process: anything the import raises, :class:`SystemExit` included, is a
    :class:`ConfigurationError` naming it (see :class:`ImportProbe` for what no ``except``
    catches)."""
    check_module_name(module)
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        parts = module.split(".")
        if exc.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise ConfigurationError(
                f"{module}: importing it failed: {exc} (a module it imports is missing)"
            ) from exc
        raise ConfigurationError(
            f"no module {module!r}: give a processor module importable from the current folder "
            f"or the project root, e.g. domains.<domain>.processors.<module>"
        ) from exc
    except MeshError as exc:  # e.g. a window declared with size_ms=0: where it is declared
        raise ConfigurationError(f"{_where(module, exc)}{exc}") from exc
    except SystemExit as exc:  # sys.exit() at import time: a refusal to load, not our exit
        status = exc.code if exc.code is None or isinstance(exc.code, int) else repr(exc.code)
        raise ConfigurationError(
            f"{module}: importing it exited with status {0 if status is None else status} "
            f"(sys.exit at module level); move that call under `if __name__ == '__main__':`"
        ) from exc
    except KeyboardInterrupt:
        raise
    except SyntaxError as exc:  # its text, not its code: the file and line are the error's
        at = (
            f"{exc.filename}:{exc.lineno}: " if exc.filename and exc.lineno else _where(module, exc)
        )
        raise ConfigurationError(f"{at}{module}: not valid Python: {exc.msg}") from exc
    except BaseException as exc:  # any other BaseException its code raises is its failure
        raise ConfigurationError(
            f"{_where(module, exc)}{module}: importing it raised {type(exc).__name__}: {exc}"
        ) from exc
    processor = getattr(imported, "PROCESSOR", None)
    if processor is not None and not isinstance(processor, Processor):
        raise ConfigurationError(
            f"{module}.PROCESSOR is {type(processor).__name__}, not a Processor(...) "
            f"(mesh_stream.processing.spec); `mesh verify` checks processors declared on the spec"
        )
    if processor is None:
        raise ConfigurationError(
            f"{module} has no PROCESSOR = Processor(...) (mesh_stream.processing.spec); "
            f"`mesh verify` checks processors declared on the spec"
        )
    return processor


def _where(module: str, exc: BaseException) -> str:
    """``file:line: `` of the last line of ``module``'s own file that the exception passed
    through (the declaration that raised), or "" when it passed through none."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    origin = found.origin if found is not None else None
    if not origin:
        return ""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == origin]
    return f"{origin}:{lines[-1]}: " if lines else ""


#: The child's program: this process's ``sys.path``, then :func:`_load_and_report`.
_CHILD = (
    "import json, sys\n"
    "sys.path[:] = json.loads(sys.argv[2])\n"
    "from mesh_stream.verify.loading import _load_and_report\n"
    "_load_and_report(sys.argv[3], int(sys.argv[1]))\n"
)
#: The first line the child reports, once its own imports are done (before the module's).
_IMPORTING = "importing"
#: Characters of the child's last stderr line a refusal quotes at most.
_QUOTED = 300


def _load_and_report(module: str, report_fd: int) -> None:
    """In the child: :func:`load_processor`'s refusal (or null) written to ``report_fd`` as
    JSON after an ``importing`` line; then the child ends at once, so the module's exit
    handlers and threads do not run."""
    with os.fdopen(report_fd, "w", encoding="utf-8") as report:
        report.write(f"{_IMPORTING}\n")
        report.flush()
        refusal = None
        try:
            load_processor(module)
        except ConfigurationError as exc:
            refusal = str(exc)
        except BaseException:  # another MeshError, Ctrl-C: the parent's own import says it
            pass
        report.write(json.dumps({"refusal": refusal}) + "\n")
    os._exit(0)


def _how_it_ended(status: int) -> str:
    if status >= 0:
        return f"exit status {status}"
    try:
        return f"killed by signal {signal.Signals(-status).name}"
    except ValueError:
        return f"killed by signal {-status}"


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = [line for line in stream.read().decode("utf-8", "replace").splitlines() if line]
    if not lines:
        return ""
    last = lines[-1].strip()
    return f"; its last line on stderr: {last[:_QUOTED]}{'...' if len(last) > _QUOTED else ''}"


@dataclass(frozen=True)
class ImportProbe:
    """A module's first import running in a child Python (see :func:`import_apart`)."""

    module: str
    child: subprocess.Popen[bytes]
    report: IO[bytes]
    stderr: IO[bytes]

    def wait(self) -> None:
        """Until the child ends. Its refusal, or its ending without reporting, is a
        :class:`ConfigurationError`; anything else its import raised (another mesh error)
        the import in this process raises again."""
        status = self.child.wait()
        self.report.seek(0)
        lines = self.report.read().decode("utf-8", "replace").splitlines()
        if len(lines) == 2 and lines[0] == _IMPORTING:
            outcome = json.loads(lines[1])
            if outcome["refusal"] is not None:
                raise ConfigurationError(str(outcome["refusal"]))
            return
        how = _how_it_ended(status)
        said = _last_line(self.stderr)
        if not lines:  # it never got to the module: the check itself failed
            raise ConfigurationError(
                f"cannot check module {self.module}: the Python that imports it apart "
                f"({sys.executable}) ended with {how} before importing it{said}"
            )
        hint = (
            "; `mesh verify` imports it to read PROCESSOR: move what ends the process "
            "(os._exit, say) under `if __name__ == '__main__':`"
            if status >= 0
            else ""
        )
        raise ConfigurationError(
            f"module {self.module} ended the process while being imported ({how}){said}{hint}"
        )


@contextmanager
def import_apart(module: str) -> Iterator[ImportProbe]:
    """``module``'s first import, started at once in a child Python (``sys.executable``, this
    ``sys.path``, folder and environment); :meth:`ImportProbe.wait` for its verdict. The
    child is stopped if the caller leaves without waiting (Ctrl-C, an error)."""
    check_module_name(module)
    with tempfile.TemporaryFile() as report, tempfile.TemporaryFile() as stderr:
        fd = report.fileno()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(fd), json.dumps(sys.path), module],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # printed again by the import in this process
            stderr=stderr,
            pass_fds=(fd,),
        )
        try:
            yield ImportProbe(module, child, report, stderr)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
