"""`mesh export asyncapi` (being built)."""

from __future__ import annotations

import click


@click.command()
def asyncapi() -> None:
    """Not built yet."""
    raise click.ClickException("mesh export asyncapi is not built yet")
