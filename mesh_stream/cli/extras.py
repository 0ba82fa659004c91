"""Optional extras: which command needs which, and the one line a missing one becomes.

``pip install mesh-stream`` is the SDK and the CLI; the registry server, the faust processors
and the secured local cluster come with extras (pyproject.toml). A command that needs a
missing extra exits with ``mesh registry serve needs the registry extra: pip install
'mesh-stream[registry]'`` instead of an ImportError traceback. Both ways to get there (a
command checking up front, and an import failing inside a command) word it here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.util import find_spec

import click

from mesh_stream.errors import ConfigurationError

#: Each extra and the top-level modules it installs (the first missing one names the extra).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "registry": ("fastapi", "uvicorn", "starlette", "jinja2"),
    "processing": ("faust", "mode", "aiokafka", "rocksdict"),
    "broker": ("cryptography",),
    "bench": ("authlib", "cachetools", "fastapi", "uvicorn"),
    "lineage": ("openlineage",),
}


def missing_extra(command: str, extra: str) -> ConfigurationError:
    """The error of ``command`` run without ``extra``."""
    return ConfigurationError(
        f"{command} needs the {extra} extra: pip install 'mesh-stream[{extra}]'"
    )


def require_extras(*extras: str) -> None:
    """Refuse the running command, naming the first of ``extras`` not installed; for commands
    whose extra would otherwise fail later, in a child process (``mesh up``)."""
    context = click.get_current_context(silent=True)
    # The root's name is the program's (`mesh`), also when a test invokes the group itself.
    words = context.command_path.split()[1:] if context is not None else ["this", "command"]
    command = " ".join(["mesh", *words])
    for extra in extras:
        if not all(_installed(module) for module in EXTRA_MODULES[extra]):
            raise missing_extra(command, extra)


def _installed(module: str) -> bool:
    if sys.modules.get(module) is not None:
        return True  # imported already (faust swaps in a module object without __spec__)
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked by None in sys.modules
        return False


def extra_of(exc: ModuleNotFoundError) -> str | None:
    """The extra that installs the module ``exc`` could not import, or None (not ours)."""
    top = (exc.name or "").partition(".")[0]
    return next((extra for extra, mods in EXTRA_MODULES.items() if top in mods), None)


def command_path(group: click.Group, args: Sequence[str]) -> str:
    """``mesh registry serve`` from the arguments: the subcommand names ``args`` start with
    (options skipped), for a message about a command that has already stopped."""
    words = ["mesh"]
    command: click.Command = group
    for arg in args:
        if arg.startswith("-"):
            continue
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        command = command.commands[arg]
        words.append(arg)
    return " ".join(words)


def explain_missing_module(
    exc: BaseException, group: click.Group, args: Sequence[str]
) -> str | None:
    """The one line for an import of an extra's module that failed inside a command."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    extra = extra_of(exc)
    return None if extra is None else str(missing_extra(command_path(group, args), extra))
