"""`bvc leaderboard` (placeholder until its issue lands)."""

import click


@click.command("leaderboard")
def leaderboard() -> None:
    """Not implemented yet."""
    raise click.UsageError("bvc leaderboard is not implemented yet")
