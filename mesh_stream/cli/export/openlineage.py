"""`mesh export openlineage` (being built)."""

from __future__ import annotations

import click


@click.command()
def openlineage() -> None:
    """Not built yet."""
    raise click.ClickException("mesh export openlineage is not built yet")
