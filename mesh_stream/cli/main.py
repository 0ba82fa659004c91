"""Entry point of the `mesh` console script.

Configuration comes from flags, then ``MESH_*`` environment variables, then defaults that
work on a fresh machine. The settings are read once here and handed to each command.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import faulthandler
import json
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import IO, Any

import click
import httpx
import yaml
from avro.errors import IgnoredLogicalType
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from mesh_stream.cli.acl import acl
from mesh_stream.cli.bench import bench
from mesh_stream.cli.broker import broker
from mesh_stream.cli.export import export
from mesh_stream.cli.extras import explain_missing_module
from mesh_stream.cli.init import init
from mesh_stream.cli.lint import lint
from mesh_stream.cli.monitor import monitor
from mesh_stream.cli.products import products
from mesh_stream.cli.publish import publish
from mesh_stream.cli.registry import registry
from mesh_stream.cli.tail import tail
from mesh_stream.cli.up import up
from mesh_stream.cli.verify import verify
from mesh_stream.errors import MeshError, SettingsError, validation_problem
from mesh_stream.http_failures import failure_words
from mesh_stream.settings import MeshSettings, unsaid_misspelled_settings

HELP_OPTIONS = ("-h", "--help")


class _MeshGroup(click.Group):
    """The `mesh` group, keeping its arguments so that a subcommand's ``--help`` is shown
    even when the ``MESH_*`` settings are invalid (help needs none of them)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["mesh.args"] = list(args)
        return super().parse_args(ctx, args)


class EnvironmentSettingError(click.ClickException):
    """Bad ``MESH_*`` variables: a usage error (exit status 2) shown as the CLI's other
    errors are, ``error: ...`` with one line per variable, without click's usage lines (the
    command line itself was fine)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=file is None, file=file)


class _UnusableSettings:
    """Stands in for settings that did not validate while a subcommand shows its help; any
    use raises the settings' problem, as the group would have."""

    def __init__(self, problem: str) -> None:
        self._problem = problem

    def __getattr__(self, name: str) -> object:
        raise EnvironmentSettingError(self._problem)


def _asks_for_help(ctx: click.Context) -> bool:
    args: list[str] = ctx.meta.get("mesh.args", [])
    before_end = args[: args.index("--")] if "--" in args else args
    return any(arg in HELP_OPTIONS for arg in before_end)


@click.group(
    cls=_MeshGroup,
    context_settings={"help_option_names": list(HELP_OPTIONS), "max_content_width": 100},
)
@click.version_option(package_name="mesh-stream", prog_name="mesh")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """mesh-stream: Avro data products on real Kafka, with a registry, governance and
    stream processors.

    Every setting can also be given as a MESH_* environment variable (for example
    MESH_BOOTSTRAP_SERVERS, MESH_REGISTRY_URL, MESH_DATA_DIR); flags win over the
    environment, and the defaults run everything locally.
    """
    for warning in unsaid_misspelled_settings(again=True):
        click.echo(f"warning: {warning}", err=True)
    try:
        ctx.obj = MeshSettings()
    except SettingsError as exc:
        problem = str(exc)
        if not _asks_for_help(ctx):
            raise EnvironmentSettingError(problem) from exc
        ctx.obj = _UnusableSettings(problem)  # the subcommand prints its help and exits


cli.add_command(acl)
cli.add_command(broker)
cli.add_command(export)
cli.add_command(init)
cli.add_command(lint)
cli.add_command(monitor)
cli.add_command(products)
cli.add_command(registry)
cli.add_command(publish)
cli.add_command(tail)
cli.add_command(bench)
cli.add_command(up)
cli.add_command(verify)


#: Set to 1 to see the traceback behind an error (printed after the one-line message).
DEBUG_VARIABLE = "MESH_DEBUG"
#: Exit status of an exception nothing translated: a bug (EX_SOFTWARE), never a user error.
INTERNAL_ERROR = 70


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _kafka_error(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    text = error.str() if isinstance(error, KafkaError) else str(exc)
    return (
        f"Kafka: {text}; check MESH_BOOTSTRAP_SERVERS (or --bootstrap-servers) and that the "
        f"broker runs (`mesh broker status`)"
    )


def _http_error(exc: httpx.HTTPError) -> str:
    try:
        where = f" {exc.request.method} {exc.request.url}"
    except RuntimeError:  # no request attached
        where = ""
    return (
        f"registry request{where} failed ({failure_words(exc)}); check "
        f"MESH_REGISTRY_URL (or --registry-url) and that the registry runs"
    )


def _validation_error(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in problem['loc']) or exc.title}: "
        f"{validation_problem(problem)}"
        for problem in exc.errors(include_url=False)
    ]
    return f"invalid {exc.title}: " + "; ".join(problems)


#: What an OS error without a file name means when a command writes: its output is full.
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename is not None else ""
    reason = exc.strerror or _first_line(exc) or type(exc).__name__
    if exc.filename is None and exc.errno in _OUTPUT_FULL:
        # h51: `mesh export ... > /dev/full` said only "No space left on device (OSError)"
        return f"cannot write the output: {reason} (standard output, or a file being written)"
    return f"{where}{reason} ({type(exc).__name__})"


def explain(exc: BaseException) -> str | None:
    """The one-line message for an error a command can meet, or None for anything else (a bug).

    mesh-stream's own errors carry their message (coordinates and the fix); the library
    errors below are translated here, the one boundary of the CLI, with the setting to check.
    """
    if isinstance(exc, MeshError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to process (RecursionError); flatten it"
    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large to process (MemoryError)"
    if isinstance(exc, httpx.InvalidURL):
        return f"registry URL is not usable ({exc}); fix MESH_REGISTRY_URL or --registry-url"
    if isinstance(exc, httpx.HTTPError):
        return _http_error(exc)
    if isinstance(exc, KafkaException):
        return _kafka_error(exc)
    if isinstance(exc, ValidationError):
        return _validation_error(exc)
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}: " if mark is not None else ""
        return f"{where}not valid YAML: {getattr(exc, 'problem', None) or _first_line(exc)}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeError):
        return f"text that is not valid Unicode/UTF-8: {_first_line(exc)} ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def run(args: Sequence[str] | None = None, *, debug: bool = False) -> int:
    """Run the CLI and return its exit status; every exception becomes one `error:` line.

    Exit status: 0 success, 1 an error (its message says what and where), 2 a usage error
    (click) or settings that cannot work (:class:`SettingsError`), 3 `broker status` not
    running, 4 `monitor --once` found a breached product, 130 interrupted, 141 the reader
    of stdout went away (`| head`), 70 an exception nothing
    translated (a bug: the message says so, and ``MESH_DEBUG=1`` shows the traceback).
    """
    try:
        status = cli.main(args=args, standalone_mode=False, prog_name="mesh")
        return status if isinstance(status, int) else 0
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)  # click's own word is "Aborted!"
        return 130
    except click.exceptions.NoSuchOption as exc:
        exc.possibilities = visible_options_like(exc)
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    except SystemExit as exc:
        # click turns a broken pipe into exit 1, which reads as a failure to `set -o pipefail`
        if isinstance(exc.__context__, BrokenPipeError):
            return _reader_gone()
        raise
    except SystemError as exc:
        return 130 if _interrupted_inside_c(exc) else _unexpected(exc, args, debug)
    except Exception as exc:
        return _unexpected(exc, args, debug)


def visible_options_like(error: click.exceptions.NoSuchOption) -> list[str]:
    """The command's options a mistyped one may have meant: those it begins (``--from`` for
    ``--from-beginning``), else those close to it; never a hidden option (click's own
    suggestions offer any option spelled alike, hidden ones included)."""
    command = error.ctx.command if error.ctx is not None else None
    if command is None:
        return list(error.possibilities or ())
    names = [
        name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for name in (*param.opts, *param.secondary_opts)
        if name.startswith("--")
    ]
    typed = error.option_name
    started = [name for name in names if name.startswith(typed)]
    return started or difflib.get_close_matches(typed, names)


def _reader_gone() -> int:
    """The reader of stdout went away (`mesh tail | head`): nothing to say, nowhere to say
    it; 141 is what a shell gives a command SIGPIPE ended (128 + 13)."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


def _interrupted_inside_c(exc: SystemError) -> bool:
    """Ctrl-C landing while a C extension (librdkafka's consume) returned: Python reports
    "returned a result with an exception set", a SystemError caused by the interrupt."""
    return isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)


def _unexpected(exc: Exception, args: Sequence[str] | None, debug: bool) -> int:
    """One `error:` line for an exception no command handled (exit 1, or 70 for a bug)."""
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, SettingsError):  # settings that cannot work: a usage error
        _say(f"error: {exc}")
        return 2
    message = explain_missing_module(exc, cli, sys.argv[1:] if args is None else args)
    message = message or explain(exc)
    if message is None:
        _say(
            f"error: unexpected {type(exc).__name__}: {_first_line(exc)} (a bug in mesh; "
            f"rerun with {DEBUG_VARIABLE}=1 for the traceback and report it)"
        )
        return INTERNAL_ERROR
    _say(f"error: {message}")
    return 1


def _say(message: str) -> None:
    """Print an error on stderr, escaping what its encoding cannot show (e.g. bytes of a
    non-UTF-8 argument, which Python keeps as lone surrogates)."""
    try:
        click.secho(message, fg="red", err=True)
    except UnicodeEncodeError:
        click.secho(message.encode("ascii", "backslashreplace").decode(), fg="red", err=True)


def main() -> None:
    """The `mesh` console script: :func:`run` with ``MESH_DEBUG`` read here, at the edge.

    A crash inside a C extension (librdkafka, RocksDB) prints the Python stack of every
    thread to stderr before the process dies, instead of a bare exit by signal.
    """
    closed = open_standard_streams()
    if closed is not None:
        _say(f"error: {closed}")
        sys.exit(1)
    faulthandler.enable()
    # The avro package warns, once per process and with no file, about a logicalType it
    # ignores; the `logical-types` policy reports each with file:line and what is supported.
    warnings.filterwarnings("ignore", category=IgnoredLogicalType)
    debug = os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")
    sys.exit(run(debug=debug))


def open_standard_streams() -> str | None:
    """Stand the null device in for a closed stdin or stderr (Python leaves them None, which
    crashed `-f -` and click's error output); a closed stdout is refused with this message,
    since every command's output would be lost."""
    if sys.stdin is None:
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - for the process's life
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stdout is None:
        return (
            "standard output is closed, so what the command prints would be lost; run it "
            "with standard output open (`> /dev/null` discards it)"
        )
    return None


if __name__ == "__main__":
    main()
