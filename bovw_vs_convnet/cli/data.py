"""`bvc data` (placeholder until its issue lands)."""

import click


@click.command("data")
def data() -> None:
    """Not implemented yet."""
    raise click.UsageError("bvc data is not implemented yet")
