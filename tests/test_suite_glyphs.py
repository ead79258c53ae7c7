"""The built-in `glyphs` suite: it parses, lists, and names the runs the README reports."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.harness.suite import builtin_suites, load_suite


def test_glyphs_suite_is_listed_by_bench_list() -> None:
    result = CliRunner().invoke(main, ["bench", "--list", "--json"])
    assert result.exit_code == 0, result.output
    suites = json.loads(result.output)
    assert suites["glyphs"] == builtin_suites()["glyphs"]
    assert suites["glyphs"].startswith("glyphs (62 classes, unseen fonts)")


def test_glyphs_suite_expands_to_its_rows_in_run_order() -> None:
    specs = load_suite("glyphs").specs()
    assert {s.dataset for s in specs} == {"glyphs"} and {s.seed for s in specs} == {0}
    rows = [(s.label, s.train_size) for s in specs]
    assert rows == [
        ("baseline", 3100),
        ("alexnet-2012 (amp=bf16, epochs=8)", 3100),
        ("alexnet-auto-alexnet-2012 (amp=bf16, epochs=8)", 3100),
        ("baseline", None),
        ("hog", None),
        ("bovw-tiny", None),
        ("bovw-small", None),
        ("lenet5", None),
        ("lenet5-1998", None),
        ("alexnet-small", None),
        ("bovw-phow", None),
    ]


def test_glyphs_suite_alexnet_2012_row_trains_from_kaiming_with_its_recipe() -> None:
    (spec,) = [s for s in load_suite("glyphs").specs() if s.settings.get("model") == "alexnet-2012"]
    cfg = build_config(ConvNetConfig, spec.settings)
    assert cfg.init == "kaiming"
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.clip_grad) == ("adamw", 4e-4, 64, 5.0)
    assert (cfg.epochs, cfg.schedule, cfg.amp) == (8, "auto", "bf16")


def test_glyphs_crossover_pits_bovw_against_both_convnets_at_five_nested_sizes() -> None:
    specs = load_suite("crossover-glyphs").specs()
    sizes = [310, 1240, 3100, 9300, None]  # 5, 20, 50 and 150 a class, then all
    assert sorted({(s.label, s.train_size or 10**9) for s in specs}) == sorted(
        (label, n or 10**9) for label in ("bovw-small", "lenet5", "alexnet-small") for n in sizes
    )
    convnets = [s for s in specs if s.pipeline == "convnet"]
    assert {tuple(sorted(s.settings)) for s in convnets} == {("model",)}  # default recipes


def test_glyphs_ablation_runs_four_depths_of_alexnet_small_over_three_seeds() -> None:
    specs = load_suite("alexnet-ablation-glyphs").specs()
    assert {s.seed for s in specs} == {0, 1, 2} and {s.dataset for s in specs} == {"glyphs"}
    assert sorted({str(s.settings["ablate"]) for s in specs}) == [
        "conv3-conv4-fc6-fc7",
        "fc6-fc7",
        "fc7",
        "none",
    ]
    assert len(specs) == 12 and {s.settings["epochs"] for s in specs} == {8}
