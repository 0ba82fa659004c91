"""`mesh export odcs` (being built)."""

from __future__ import annotations

import click


@click.command()
def odcs() -> None:
    """Not built yet."""
    raise click.ClickException("mesh export odcs is not built yet")
