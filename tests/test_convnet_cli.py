"""`bvc models`: every registered model with its trainable parameter count."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.convnet.models import list_models


def test_models_json_lists_every_model_with_its_parameter_count() -> None:
    result = CliRunner().invoke(
        main, ["models", "--num-classes", "10", "--channels", "1", "--json"]
    )
    rows = {r["model"]: r for r in json.loads(result.output)}
    assert result.exit_code == 0
    assert sorted(rows) == sorted([*list_models(), "dbn"])  # the dbn pipeline's net too
    assert rows["dbn"]["param_count"] == 1_665_010
    assert rows["lenet5-1998"]["param_count"] == 60_000
    assert rows["lenet5"]["param_count"] == 61_706


def test_models_counts_follow_classes_and_channels() -> None:
    result = CliRunner().invoke(
        main, ["models", "--num-classes", "1000", "--channels", "3", "--json"]
    )
    rows = {r["model"]: r["param_count"] for r in json.loads(result.output)}
    assert rows["alexnet-2012"] == 60_965_224
    assert rows["alexnet"] == 61_100_840


def test_models_table_shows_ablations() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "alexnet-2012-no-conv3-conv4-fc6-fc7" in result.output
    assert "60,000" in result.output


def test_models_rejects_zero_classes() -> None:
    result = CliRunner().invoke(main, ["models", "--num-classes", "0"])
    assert result.exit_code == 2


def _train_digits(tmp_path, *flags: str) -> list[str]:
    """stderr lines of a two-epoch lenet5 run on 200 digits with the given progress flags."""
    args = ["run", "convnet", "--dataset", "digits", "--model", "lenet5", "--epochs", "2"]
    args += ["--train-size", "200", "--runs-dir", str(tmp_path), "--device", "cpu", *flags]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.stderr.splitlines()


def test_progress_lines_prints_one_line_per_epoch(tmp_path) -> None:
    lines = _train_digits(tmp_path, "--progress", "lines")
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("\r" not in line for line in lines)


def test_no_progress_is_progress_none(tmp_path) -> None:
    assert _train_digits(tmp_path / "a", "--no-progress") == []
    assert _train_digits(tmp_path / "b", "--progress", "none") == []
