"""`bvc bench` (placeholder until its issue lands)."""

import click


@click.command("bench")
def bench() -> None:
    """Not implemented yet."""
    raise click.UsageError("bvc bench is not implemented yet")
