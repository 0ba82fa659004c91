"""`mesh export datahub` (being built)."""

from __future__ import annotations

import click


@click.command()
def datahub() -> None:
    """Not built yet."""
    raise click.ClickException("mesh export datahub is not built yet")
