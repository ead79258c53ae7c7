"""`bvc bench` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import suite_pipelines
from click.testing import CliRunner

from bovw_vs_convnet.cli import main


@pytest.fixture(autouse=True)
def _probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from bovw_vs_convnet.harness import registry

    monkeypatch.setitem(registry.PIPELINES, "probe", suite_pipelines.SPEC)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('datasets = ["digits"]\nseeds = [0, 1]\n' + body)
    return path


def test_list_shows_the_built_in_suites() -> None:
    result = CliRunner().invoke(main, ["bench", "--list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == [
        "alexnet-ablation-glyphs",
        "alexnet-ablation",
        "crossover-auto",
        "crossover-glyphs",
        "crossover",
        "encodings",
        "fashion-mnist",
        "glyphs",
        "ilsvrc-glyphs",
        "quick",
        "transfer",
    ]


def test_unknown_suite_is_a_one_line_usage_error() -> None:
    result = CliRunner().invoke(main, ["bench", "nope"])
    assert result.exit_code == 2
    assert result.output.startswith("error: unknown suite 'nope'")
    assert len(result.output.splitlines()) == 1


def test_bad_suite_file_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[run]]\npipeline = "probe"\nsed = 3\n')
    result = CliRunner().invoke(main, ["bench", str(path)])
    assert result.exit_code == 2
    offered = "(did you mean 'seeds' or 'set'?)"
    assert result.output == f"error: {path}:5: unknown key 'sed' in [[run]] {offered}; known: " + (
        "pipeline, label, set, models, grid, datasets, seeds, train_sizes, "
        "train_per_class, test_per_class, short_classes, splits\n"
    )


def test_bench_prints_progress_and_the_leaderboard_with_mean_and_std(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[run]]\npipeline = "probe"\n')
    result = CliRunner().invoke(main, ["bench", str(path), "--runs-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "[2/2] probe on digits (full, seed 1) ..." in result.output
    assert "suite s: 2 ran, 0 already stored, 0 failed" in result.output
    (row,) = [line for line in result.output.splitlines() if line.startswith("| 1 | probe")]
    assert " ± " in row.split("|")[4]
    assert row.split("|")[12].strip() == "2"  # seeds, after top-1, top-5 and the two mpc columns


def test_bench_json_lists_every_run_and_the_leaderboard(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[run]]\npipeline = "probe"\n')
    runs = str(tmp_path / "r")
    CliRunner().invoke(main, ["bench", str(path), "--runs-dir", runs])
    result = CliRunner().invoke(main, ["bench", str(path), "--runs-dir", runs, "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert [r["status"] for r in out["runs"]] == ["skipped", "skipped"]
    assert out["leaderboard"][0]["rows"][0]["n_runs"] == 2


def test_a_failed_run_gives_exit_code_1_after_the_table(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.write_text("")
    path = _write(
        tmp_path,
        f'[[run]]\npipeline = "probe"\nseeds = [0]\nset = {{ fail_flag = "{flag}" }}\n'
        '[[run]]\npipeline = "probe"\nseeds = [0]\n',
    )
    result = CliRunner().invoke(main, ["bench", str(path), "--runs-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "    FAILED: ValueError: probe failed on purpose" in result.output
    assert "| 1 | probe |" in result.output
    assert result.output.rstrip().endswith("1 run(s) failed; their errors are stored with them")


def test_seed_option_gives_several_seeds_to_every_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[run]]\npipeline = "probe"\n')
    args = ["bench", str(path), "--runs-dir", str(tmp_path / "r"), "--json"]
    result = CliRunner().invoke(main, [*args, "--seed", "3", "--seed", "4", "--train-size", "50"])
    assert result.exit_code == 0
    runs = json.loads(result.stdout)["runs"]
    assert [(r["seed"], r["train_size"]) for r in runs] == [(3, 50), (4, 50)]


def test_ilsvrc_style_prints_rank_name_error_rate_description(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[run]]\npipeline = "probe"\nseeds = [0]\n')
    args = ["bench", str(path), "--runs-dir", str(tmp_path / "r"), "--style", "ilsvrc"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert "| Rank | Name | top-5 err (%) | Description |" in result.output
