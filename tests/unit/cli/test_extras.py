"""A command that needs an extra that is not installed says which one, in one line.

The extras' modules are hidden from a fresh interpreter (``None`` in ``sys.modules``, which
is how Python marks a module that must not be imported), then the CLI runs there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mesh_stream.cli.extras import EXTRA_MODULES

INSTALL = "pip install 'mesh-stream[{extra}]'"


def _mesh_without(extras: tuple[str, ...], args: list[str]) -> subprocess.CompletedProcess[str]:
    hidden = [module for extra in extras for module in EXTRA_MODULES[extra]]
    code = (
        "import sys\n"
        f"for name in {hidden!r}:\n"
        "    sys.modules[name] = None\n"
        "from mesh_stream.cli.main import run\n"
        f"sys.exit(run({args!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )


def test_the_cli_starts_without_any_extra() -> None:
    done = _mesh_without(tuple(EXTRA_MODULES), ["--help"])
    assert done.returncode == 0, done.stderr
    assert "registry" in done.stdout
    assert "up" in done.stdout


@pytest.mark.parametrize(
    ("hidden", "args", "line"),
    [
        (
            ("registry",),
            ["registry", "serve", "--port", "0"],
            "mesh registry serve needs the registry extra",
        ),
        (("registry",), ["up", "--no-view"], "mesh up needs the registry extra"),
        (("processing",), ["up", "--no-view"], "mesh up needs the processing extra"),
        (("broker",), ["up", "--secure"], "mesh up needs the broker extra"),
        (("bench",), ["bench", "--sdk-only"], "mesh bench needs the bench extra"),
    ],
)
def test_a_command_without_its_extra_names_the_extra_in_one_line(
    hidden: tuple[str, ...], args: list[str], line: str
) -> None:
    done = _mesh_without(hidden, args)
    extra = line.rsplit(" ", 2)[-2]
    assert done.returncode == 1
    assert done.stderr == f"error: {line}: {INSTALL.format(extra=extra)}\n"
    assert done.stdout == ""


def test_an_extra_import_failing_inside_a_command_is_translated_too() -> None:
    # mesh broker start --secure imports cryptography only when it makes certificates:
    # the translation at the CLI boundary names the command from the arguments.
    from mesh_stream.cli.extras import explain_missing_module
    from mesh_stream.cli.main import cli

    exc = ModuleNotFoundError("No module named 'cryptography'", name="cryptography")
    message = explain_missing_module(exc, cli, ["broker", "start", "--secure"])
    assert message == f"mesh broker start needs the broker extra: {INSTALL.format(extra='broker')}"
    other = ModuleNotFoundError("No module named 'numpy'", name="numpy")
    assert explain_missing_module(other, cli, ["broker", "start"]) is None


def test_an_imported_extra_counts_as_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """faust replaces its module in sys.modules by one without ``__spec__``, on which
    importlib's find_spec raises: once imported, an extra is there."""
    import types

    import click

    from mesh_stream.cli.extras import require_extras

    for name in EXTRA_MODULES["processing"]:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))  # __spec__ is None
    with click.Context(click.Command("up"), info_name="cli"):
        require_extras("processing")  # does not raise
    monkeypatch.setitem(sys.modules, "rocksdict", None)
    with (
        click.Context(click.Command("up"), info_name="cli"),
        pytest.raises(Exception, match=r"^mesh needs the processing extra"),
    ):
        require_extras("processing")
