"""`bvc models` (placeholder until its issue lands)."""

import click


@click.command("models")
def models() -> None:
    """Not implemented yet."""
    raise click.UsageError("bvc models is not implemented yet")
