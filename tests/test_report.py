"""The HTML report, built from hand-made records and from a store."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_records import crossover_records, fake_record

from bovw_vs_convnet.baseline.pipeline import BaselineConfig
from bovw_vs_convnet.config import config_to_dict
from bovw_vs_convnet.harness.analysis import (
    ablation_rows,
    ablation_table,
    crossover_of,
    learning_history,
    recipe_command,
    training_size_curves,
)
from bovw_vs_convnet.harness.report import build_report, write_report
from bovw_vs_convnet.harness.report_figures import FILTERS_ARTIFACT
from bovw_vs_convnet.harness.store import ResultStore

LEGACY_RUNS = Path(__file__).parent / "fixtures" / "runs-b9fbd1e"


def test_curves_group_seeds_by_size() -> None:
    (curves,) = training_size_curves(crossover_records()).values()
    assert curves["bovw/tiny"] == {100: [0.2, 0.2], 10000: [0.1, 0.1]}
    assert sorted(curves) == ["bovw/tiny", "convnet/lenet5"]


def test_crossover_of_best_rows() -> None:
    (curves,) = training_size_curves(crossover_records()).values()
    cross = crossover_of(curves)
    assert cross is not None
    assert round(cross.size or 0) == 1000
    assert cross.statement.startswith("convnet/lenet5 overtakes bovw/tiny at about 1 000")


def test_learning_history_reads_the_convnet_learning_curve() -> None:
    curve = {"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_error": []}  # no validation set
    assert learning_history({"extra": {"learning_curve": curve}}) == {"train_loss": [2.0, 1.0]}


def test_report_is_one_self_contained_page(tmp_path: Path) -> None:
    records = [
        *crossover_records(),
        fake_record("bovw", "tiny", n_train=100, seed=5, top1=0.5, status="failed"),
    ]
    page = write_report(records, tmp_path / "out")
    text = page.read_text()
    assert page.name == "index.html"
    # 2 sizes → 2 tables, each in the default and the ILSVRC style
    assert text.count('<table class="leaderboard">') == 4
    assert "20.00 ± 0.00" in text
    assert "convnet/lenet5 overtakes bovw/tiny at about 1 000 training images" in text
    # size curve, time/Pareto, 2 confusion matrices, 1 learning-curve figure
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', text)) == 5
    assert "ValueError: boom" in text
    assert text.count('<tr class="detail">') == 9
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert len(list((tmp_path / "out" / "figures").glob("*.png"))) == 5


def test_report_embeds_pipeline_pngs_and_filters_from_run_folders(tmp_path: Path) -> None:
    bovw = fake_record("bovw", "tiny", n_train=100, seed=0, top1=0.2)
    conv = fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0.3)
    for rec in (bovw, conv):
        (tmp_path / rec["run_id"]).mkdir()
        rec["run_dir"] = str(tmp_path / rec["run_id"])
    (tmp_path / bovw["run_id"] / "vocabulary_gallery.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    filters = np.random.default_rng(0).normal(size=(6, 1, 5, 5)).astype(np.float32)
    np.save(tmp_path / conv["run_id"] / FILTERS_ARTIFACT, filters)
    text = write_report([bovw, conv], tmp_path / "out").read_text()
    assert text.count('<img src="data:image/png;base64,') == 1
    assert "bovw/tiny: vocabulary gallery" in text
    assert f"6 filters of 5×5 saved by run {conv['run_id']}" in text


def test_a_filters_file_that_does_not_read_costs_its_figure_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    curve = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_error": [0.4, 0.3]}
    conv = fake_record(
        "convnet", "lenet5", n_train=100, seed=0, top1=0.3, extra={"learning_curve": curve}
    )
    (tmp_path / conv["run_id"]).mkdir()
    conv["run_dir"] = str(tmp_path / conv["run_id"])
    (tmp_path / conv["run_id"] / FILTERS_ARTIFACT).write_bytes(b"half an array")
    text = write_report([conv], tmp_path / "out").read_text()
    assert "Learning curves of convnet/lenet5" in text
    assert "First-layer filters" not in text
    assert f"no filters from {tmp_path / conv['run_id'] / FILTERS_ARTIFACT}" in caplog.text


def test_runs_stored_before_the_filters_artefact_report_without_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(LEGACY_RUNS, runs)
    text = build_report(runs, tmp_path / "out").read_text()
    assert "Learning curves of convnet/lenet5" in text
    assert "First-layer filters" not in text
    assert "bovw" in text and "visual words" in text


def test_build_report_reads_the_store(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    store = ResultStore(tmp_path / "runs")
    for rec in crossover_records()[:2]:
        store.commit(rec, tmp_path / "staging" / rec["run_id"])
    text = build_report(tmp_path / "runs", tmp_path / "out").read_text()
    assert "2 finished and 0 failed runs" in text
    assert text.count('<tr class="detail">') == 2


def test_empty_store_gives_a_page_that_says_so(tmp_path: Path) -> None:
    text = build_report(tmp_path / "runs", tmp_path / "out").read_text()
    assert "No run is stored." in text


def test_ablation_rows_give_changes_against_the_full_network() -> None:
    records = [
        fake_record("convnet", "alexnet-small", n_train=1000, seed=0, top1=0.10),
        fake_record("convnet", "alexnet-small-no-fc6-fc7", n_train=1000, seed=0, top1=0.125),
        fake_record("convnet", "alexnet-small-no-fc7", n_train=1000, seed=0, top1=0.11),
        fake_record("convnet", "lenet5", n_train=1000, seed=0, top1=0.2),
    ]
    for r in records:  # one split for all
        r["split_fingerprint"] = "fp"
    rows = ablation_rows(records)
    assert [(r["model"], r["removed"]) for r in rows] == [
        ("alexnet-small", []),
        ("alexnet-small-no-fc7", ["fc7"]),
        ("alexnet-small-no-fc6-fc7", ["fc6", "fc7"]),
    ]
    assert [round(r["d_top1"], 6) for r in rows] == [0.0, 0.01, 0.025]
    assert "| alexnet-small-no-fc7 | fc7 | 11.00 | +1.00 |" in ablation_table(records)


def test_recipe_command_spells_out_what_differs_from_the_defaults() -> None:
    record = fake_record("baseline", "linear-svm", n_train=100, seed=2, top1=0.1)
    defaults = config_to_dict(BaselineConfig())
    record["config"] = {**defaults, "method": "nearest-mean"}
    assert recipe_command(record) == (
        "bvc run baseline --dataset digits --train-size 100 --seed 2 --set method=nearest-mean"
    )


def test_curves_keep_the_newest_recipe_when_one_size_has_several() -> None:
    old = fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0.9)
    new = fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0.3)
    new.update(config={"model": "lenet5", "epochs": 80}, created_at="2026-11-26T18:00:00+00:00")
    (curves,) = training_size_curves([new, old]).values()
    assert curves == {"convnet/lenet5": {100: [0.3]}}


def test_size_figure_leaves_out_rows_measured_at_one_size(tmp_path: Path) -> None:
    records = [
        *crossover_records(),
        fake_record("baseline", "svm", n_train=10000, seed=0, top1=0.2),
    ]
    text = write_report(records, tmp_path / "out").read_text()
    svg = next((tmp_path / "out" / "figures").glob("*error-vs-size.svg")).read_text()
    assert "convnet/lenet5" in svg
    assert "baseline/svm" not in svg
    assert "baseline/svm" in text  # still a row of the tables


def test_report_answers_bovw_against_convnets_with_its_test(tmp_path: Path) -> None:
    records = [
        fake_record("bovw", "tiny", n_train=100, seed=0, top1=0.20),
        fake_record("bovw", "tiny", n_train=100, seed=1, top1=0.22),
        fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0.30),
        fake_record("convnet", "lenet5", n_train=100, seed=1, top1=0.35),
    ]
    for r in records:
        r["split_fingerprint"] = f"fp{r['seed']}"
    text = write_report(records, tmp_path / "out").read_text()
    # differences -0.10, -0.13: t = -7.667 on 1 degree of freedom
    assert (
        '<p class="statement answer">BoVW against ConvNets on digits (100 training images, '
        "split fp0,fp1): top-1: no significant difference between bovw/tiny (21.00 %) and "
        "convnet/lenet5 (32.50 %) at α = 0.05 (paired t-test over 2 matched seeds, t = -7.67, "
        "p = 0.08257).</p>"
    ) in text
    assert '<p class="note">vs best: each row against rank 1 by a two-sided paired t-test' in text
    assert "<td>21.00 ± 1.41 [8.29, 33.71]</td>" in text  # intervals in the report's tables
