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
