"""`bvc run` (placeholder until its issue lands)."""

import click


@click.command("run")
def run() -> None:
    """Not implemented yet."""
    raise click.UsageError("bvc run is not implemented yet")
