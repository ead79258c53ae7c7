"""`bvc --help` lists each command with its whole first sentence, wrapped, never cut."""

from __future__ import annotations

from click.testing import CliRunner

from bovw_vs_convnet.cli import main


def _commands(args: list[str]) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0
    return " ".join(result.output.split("Commands:")[1].split())  # the list, unwrapped


def test_bvc_help_shows_whole_first_sentences() -> None:
    listed = _commands([])
    assert "..." not in listed
    assert (
        "bench Run SUITE (a built-in name, see --list, or a suite TOML file) and print its "
        "leaderboard." in listed
    )
    assert "results Write results/*.csv from a runs folder; render the docs' tables" in listed


def test_subgroups_show_whole_first_sentences_too() -> None:
    listed = _commands(["data"])
    assert "..." not in listed
    assert "split Show the common split of NAME (a manifest name or an image folder):" in listed
