"""`bvc run --help` lists the BoVW presets of the table in bovw/config.py, whatever it holds."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bovw_vs_convnet.bovw.config import BovwConfig
from bovw_vs_convnet.cli import main


def _listed_presets() -> list[str]:
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the help, unwrapped
    listed = text.split("BoVW presets (--set preset=NAME): ")[1].split(" (docs/recipes.md)")[0]
    return listed.split(", ")


def test_run_help_lists_every_preset_of_the_table() -> None:
    assert _listed_presets() == list(BovwConfig.PRESETS)
    assert {"small", "photo", "phow", "fisher", "vlad", "tiny"} <= set(_listed_presets())


def test_a_preset_added_to_the_table_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BovwConfig.PRESETS, "future", {"k": 64})
    assert _listed_presets()[-1] == "future"
