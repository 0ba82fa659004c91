"""Every `mesh` command explains itself: help text, a whole-sentence summary, documented options."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from mesh_stream.cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


COMMANDS = list(_commands(cli))


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_runs_and_every_option_is_explained(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command = _command(path)
    assert command.help, f"mesh {' '.join(path)} has no help text"
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert undocumented == [], f"mesh {' '.join(path)}: options without help: {undocumented}"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_the_summary_in_the_command_list_is_not_cut_mid_sentence(path: tuple[str, ...]) -> None:
    summary = _command(path).get_short_help_str(limit=80)
    assert not summary.endswith(("e.g.", "(e.g.", "i.e.")), f"mesh {' '.join(path)}: {summary!r}"
