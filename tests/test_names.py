"""A misspelt name gets "did you mean" in its one line, from one helper (errors.unknown_name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.convnet.registry import BUILTIN_MODELS
from bovw_vs_convnet.errors import unknown_name


def test_the_closest_names_come_first_then_every_known_one() -> None:
    assert unknown_name("model", "lenet", ["alexnet-2012", "lenet5", "lenet5-1998"]) == (
        "unknown model 'lenet' (did you mean 'lenet5' or 'lenet5-1998'?); "
        "known: alexnet-2012, lenet5, lenet5-1998"
    )


def test_case_is_ignored_and_the_known_spelling_offered() -> None:
    assert unknown_name("dataset", "Digits", ["digits", "mnist"]).startswith(
        "unknown dataset 'Digits' (did you mean 'digits'?)"
    )


def test_nothing_close_offers_nothing() -> None:
    assert unknown_name("suite", "zzz", ["quick"], hint="(or a file)") == (
        "unknown suite 'zzz'; known: quick (or a file)"
    )


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            ["run", "bovw", "--dataset", "digts"],
            "error: unknown dataset 'digts' (did you mean 'digits'?)",
        ),
        (
            ["run", "convnet", "--dataset", "digits", "--model", "lenet"],
            "error: unknown model 'lenet' (did you mean 'lenet5'",
        ),
        (
            ["run", "bovww", "--dataset", "digits"],
            "error: unknown pipeline 'bovww' (did you mean 'bovw'?)",
        ),
        (["bench", "quik"], "error: unknown suite 'quik' (did you mean 'quick'?)"),
        (
            ["run", "bovw", "--dataset", "digits", "--set", "preset=tinny"],
            "error: unknown preset 'tinny' (did you mean 'tiny'?)",
        ),
        (
            ["run", "hog", "--dataset", "digits", "--set", "preset=defualt"],
            "error: unknown preset 'defualt' (did you mean 'default'?)",
        ),
        (
            ["run", "bovw", "--dataset", "digits", "--set", "kmeans_iters=3"],
            "error: unknown setting 'kmeans_iters' (did you mean 'kmeans_iter'",
        ),
        (
            [
                "run",
                "convnet",
                "--dataset",
                "digits",
                "--set",
                "ablate=fc8",
                "--model",
                "alexnet-small",
            ],
            "error: unknown ablation 'fc8' of model 'alexnet-small' (did you mean 'fc7'?)",
        ),
    ],
)
def test_each_misspelt_name_gets_a_suggestion(tmp_path: Path, args: list[str], start: str) -> None:
    result = CliRunner().invoke(main, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith(start)


def test_a_misspelt_suite_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('datasets = ["digits"]\n[[run]]\npipeline = "baseline"\nseeed = 1\n')
    result = CliRunner().invoke(main, ["bench", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"error: {path}:4: unknown key 'seeed' in [[run]] (did you mean 'seeds'"
    )


def test_an_unknown_model_is_refused_before_torch_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bovw_vs_convnet.cli import main\n"
        "args = ['run', 'convnet', '--dataset', 'digits', '--model', 'lenet']\n"
        f"args += ['--runs-dir', {str(tmp_path)!r}]\n"
        "result = CliRunner().invoke(main, args)\n"
        "print(result.exit_code, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]


def test_the_static_model_names_are_the_registry_s() -> None:
    from bovw_vs_convnet.convnet.models import list_models

    assert sorted(BUILTIN_MODELS) == list_models()
