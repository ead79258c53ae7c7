"""Leaderboard grouping (fingerprints, mean ± std over seeds) and every format and style."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.formatting import latex_escape
from bovw_vs_convnet.harness.leaderboard import build_tables
from bovw_vs_convnet.harness.leaderboard_formats import CSV_COLUMNS, render


def _run(run_id, pipeline, model, top1, top5, *, seed=0, fp=None, config=None, **extra):
    return {
        "run_id": run_id,
        "status": "ok",
        "pipeline": pipeline,
        "model": model,
        "dataset": "digits",
        "split": {"seed": seed, "train_size": None, "val_fraction": 0.1},
        "split_fingerprint": fp or f"fp{seed}",
        "seed": seed,
        "config": config or {},
        "top1_err": top1,
        "top5_err": top5,
        "n_params": 650,
        "n_train": 1293,
        "n_test": 360,
        "train_seconds": 1.0 + seed,
        "infer_images_per_s": 1000.0,
        **extra,
    }


RUNS = [
    _run("b0", "bovw", "bovw", 0.10, 0.02, seed=0),
    _run("b1", "bovw", "bovw", 0.20, 0.04, seed=1),
    _run("c0", "convnet", "lenet5", 0.05, 0.01, seed=0),
    _run("c1", "convnet", "lenet5", 0.07, 0.03, seed=1),
    _run("s0", "baseline", "linear-svm", 0.30, 0.01, seed=0),
]


def test_only_identical_fingerprint_sets_share_a_table():
    tables = build_tables(RUNS)
    assert [t.fingerprints for t in tables] == [["fp0"], ["fp0", "fp1"]]
    assert [r.name for r in tables[1].rows] == ["convnet/lenet5", "bovw"]
    assert [r.name for r in tables[0].rows] == ["baseline/linear-svm"]


def test_seeds_aggregate_into_mean_and_sample_std():
    row = build_tables(RUNS)[1].rows[1]
    assert (row.n_runs, row.seeds) == (2, [0, 1])
    assert row.top1_err == pytest.approx(0.15)
    assert row.top1_err_std == pytest.approx(0.0707106781)
    assert row.train_seconds == pytest.approx(1.5)


def test_a_repeated_run_counts_once_the_latest_standing():
    runs = [
        _run("a", "bovw", "bovw", 0.10, 0.0, config_key="k0"),
        _run("b", "bovw", "bovw", 0.30, 0.0, config_key="k0"),
    ]
    (row,) = build_tables(runs)[0].rows
    assert (row.n_runs, row.top1_err, row.run_ids) == (1, 0.30, ["b"])


def test_single_run_has_no_std():
    assert build_tables(RUNS)[0].rows[0].top1_err_std is None


def test_failed_runs_and_different_configs_stay_apart():
    runs = [
        _run("a", "bovw", "bovw", 0.1, 0.0, config={"k": 100}),
        _run("b", "bovw", "bovw", 0.2, 0.0, config={"k": 200}),
        {**_run("c", "bovw", "bovw", 0.0, 0.0), "status": "failed"},
    ]
    (table,) = build_tables(runs)
    assert [(r.config, r.rank) for r in table.rows] == [({"k": 100}, 1), ({"k": 200}, 2)]


def test_markdown_shows_percent_with_std():
    text = render(build_tables(RUNS), "md")
    # no mean per-class error in these records: a dash where it goes, next to top-5
    assert "| 1 | convnet | lenet5 | 6.00 ± 1.41 | 2.00 ± 1.41 | – | – | 650 | 1,293 |" in text
    assert text.count("### digits") == 2


def test_csv_has_timm_like_fixed_columns_and_fractions():
    rows = list(csv.DictReader(io.StringIO(render(build_tables(RUNS), "csv"))))
    assert list(rows[0])[:9] == [
        "rank",
        "pipeline",
        "model",
        "top1_err",
        "top5_err",
        "n_params",
        "n_train",
        "train_seconds",
        "infer_images_per_s",
    ]
    assert [(r["model"], r["top1_err"], r["top1_err_std"]) for r in rows] == [
        ("linear-svm", "0.3", ""),
        ("lenet5", "0.06", "0.014142"),
        ("bovw", "0.15", "0.070711"),
    ]


def test_json_lists_tables_with_fingerprints_and_rows():
    data = json.loads(render(build_tables(RUNS), "json"))
    assert [t["split_fingerprints"] for t in data] == [["fp0"], ["fp0", "fp1"]]
    assert data[1]["rows"][0]["run_ids"] == ["c0", "c1"]


def test_html_escapes_and_has_one_table_per_group():
    runs = [_run("x", "baseline", "<svm>", 0.1, 0.0)]
    text = render(build_tables(runs), "html")
    assert text.count("<table") == 1
    assert "&lt;svm&gt;" in text


def test_latex_is_a_booktabs_tabular_with_escapes():
    text = render(build_tables(RUNS), "latex")
    assert text.count(r"\begin{tabular}") == 2
    assert r"10.00 $\pm$ 7.07" not in text  # bovw mean is 15.00
    assert r"15.00 $\pm$ 7.07" in text
    assert latex_escape("a_b 50%") == r"a\_b 50\%"


def test_ilsvrc_style_ranks_by_top5_error_rate():
    runs = [
        _run("a", "bovw", "bovw", 0.10, 0.05),
        _run("b", "convnet", "alexnet", 0.20, 0.01),
    ]
    text = render(build_tables(runs), "md", "ilsvrc")
    assert "| Rank | Name | top-5 err (%) | Description |" in text
    assert "| 1 | convnet/alexnet | 1.00 | 1,293 training images, 1 seed |" in text
    assert "| 2 | bovw | 5.00 | 1,293 training images, 1 seed |" in text


def test_ilsvrc_csv_columns():
    text = render(build_tables(RUNS[:1]), "csv", "ilsvrc")
    assert text.splitlines()[0] == "rank,name,error_rate,description,dataset,table"


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        render([], "xml")


def test_a_setting_added_later_at_its_old_value_keeps_old_runs_in_the_row():
    # a run stored before convnet's `mirror` setting existed, and one after, at its default
    runs = [
        _run("old", "convnet", "lenet5", 0.10, 0.0, config={"model": "lenet5", "epochs": 10}),
        _run(
            "new",
            "convnet",
            "lenet5",
            0.20,
            0.0,
            seed=1,
            fp="fp0",
            config={"model": "lenet5", "epochs": 10, "mirror": "auto"},
        ),
        _run(
            "no",
            "convnet",
            "lenet5",
            0.30,
            0.0,
            seed=2,
            fp="fp0",
            config={"model": "lenet5", "epochs": 10, "mirror": "no"},
        ),
    ]
    (table,) = build_tables(runs)
    assert [(r.run_ids, r.config) for r in table.rows] == [
        (["old", "new"], {"model": "lenet5", "epochs": 10}),
        (["no"], {"model": "lenet5", "epochs": 10, "mirror": "no"}),
    ]


# -- mean per-class error, intervals, and the test of each row against the best


def test_rows_carry_the_mean_per_class_error_and_the_runs_own_intervals():
    intervals = {
        "top1_ci": [0.2, 0.4],
        "top5_ci": [0, 0.05],
        "mpc_ci": [0.1, 0.4],
        "mpc_top5_ci": [0, 0.1],
    }
    run = _run("a", "bovw", "bovw", 0.30, 0.01, mpc_err=0.25, mpc_top5_err=0.02, **intervals)
    (row,) = build_tables([run])[0].rows
    assert (row.mpc_err, row.mpc_top5_err, row.ci_method) == (0.25, 0.02, "run")
    assert (row.top1_ci, row.mpc_ci) == ([0.2, 0.4], [0.1, 0.4])


def test_a_record_without_intervals_gets_wilson_and_mpc_from_its_per_class_errors():
    run = _run("a", "bovw", "bovw", 0.30, 0.01, per_class_err={"x": 0.2, "y": 0.5, "z": None})
    (row,) = build_tables([run])[0].rows
    assert row.mpc_err == pytest.approx(0.35)  # classes without a test image left out
    assert row.top1_ci == pytest.approx([0.254977, 0.349246], abs=1e-6)  # Wilson, 108 of 360


def test_several_seeds_give_a_t_interval_clipped_to_zero():
    row = build_tables(RUNS)[1].rows[0]  # lenet5: 0.05 and 0.07
    # 0.06 ± t(0.975, 1) · 0.01414 / √2 = 0.06 ± 0.12706, clipped at 0
    assert row.ci_method == "t"
    assert row.top1_ci == pytest.approx([0.0, 0.18706], abs=1e-5)


def test_ci_puts_the_interval_in_md_cells_and_says_how_it_was_made():
    plain = render(build_tables(RUNS[4:]), "md")
    with_ci = render(build_tables(RUNS[4:]), "md", ci=True)
    assert "| 30.00 | 1.00 |" in plain
    assert "| 30.00 [25.50, 34.92] | 1.00 [0.43, 2.82] |" in with_ci
    assert "[low, high]: 95 % interval; one run: Wilson for top-1/top-5" in with_ci
    assert "[low, high]" not in plain


def test_csv_keeps_its_columns_and_appends_intervals_and_the_test():
    assert CSV_COLUMNS[:16] == (
        "rank",
        "pipeline",
        "model",
        "top1_err",
        "top5_err",
        "n_params",
        "n_train",
        "train_seconds",
        "infer_images_per_s",
        "top1_err_std",
        "top5_err_std",
        "n_runs",
        "seeds",
        "dataset",
        "table",
        "variant",
    )
    (row,) = list(csv.DictReader(io.StringIO(render(build_tables(RUNS[4:]), "csv"))))
    assert (row["top1_ci_low"], row["top1_ci_high"], row["vs_best"]) == (
        "0.254977",
        "0.349246",
        "best",
    )


def _stored(tmp_path: Path, run_id: str, correct: list[bool], pipeline: str = "bovw") -> dict:
    """A single run on fingerprint fp0 with stored two-class scores: right where ``correct``."""
    folder = tmp_path / run_id
    folder.mkdir()
    right = np.array(correct)
    scores = np.where(right[:, None], [[1.0, 0.0]], [[0.0, 1.0]])  # label 0 everywhere
    np.save(folder / "scores.npy", scores)
    np.save(folder / "labels.npy", np.zeros(len(correct), dtype=np.int64))
    np.save(folder / "ids.npy", np.array([f"img{i}" for i in range(len(correct))]))
    err = 1 - right.mean()
    return _run(run_id, pipeline, run_id, err, 0.0, fp="fp0", run_dir=str(folder), top5_k=2)


def test_rows_not_significantly_worse_than_the_best_by_mcnemar_and_holm(tmp_path):
    best = [True] * 38 + [False] * 2
    worse = [True] * 20 + [False] * 20  # b = 18, c = 0: p = 2 / 2**18
    close = [False] * 3 + [True] * 37  # b = 3, c = 2: p = 1
    runs = [
        _stored(tmp_path, "best", best),
        _stored(tmp_path, "worse", worse),
        _stored(tmp_path, "close", close),
    ]
    (table,) = build_tables(runs)
    marks = [(r.model, r.vs_best, r.test_vs_best) for r in table.rows]
    assert marks == [
        ("best", "best", None),
        ("close", "not worse", "exact McNemar test"),
        ("worse", "worse", "exact McNemar test"),
    ]
    # Holm over 2 rows: 2 · 2 / 2**18, and max(that, 1 · 1.0)
    assert [r.p_vs_best for r in table.rows[1:]] == pytest.approx([1.0, 4 / 2**18])
    text = render([table], "md")
    assert "| ≈ best (p = 1) |" in text and "| worse (p < 0.0001) |" in text
    assert "vs best: each row against rank 1 by the exact McNemar test on top-1" in text
    assert "Holm-corrected over 2 rows at α = 0.05" in text


def test_rows_with_several_seeds_are_tested_by_a_paired_t_test():
    row = build_tables(RUNS)[1].rows[1]  # bovw (0.10, 0.20) against lenet5 (0.05, 0.07)
    # differences 0.05, 0.13: t = 2.25 on 1 degree of freedom
    assert (row.vs_best, row.test_vs_best) == ("not worse", "paired t-test")
    assert row.p_vs_best == pytest.approx(0.26624, abs=1e-5)


def test_rows_without_stored_scores_stay_untested_and_the_note_says_so():
    runs = [_run("a", "bovw", "bovw", 0.1, 0.0), _run("b", "baseline", "svm", 0.2, 0.0)]
    (table,) = build_tables(runs)
    assert [r.vs_best for r in table.rows] == ["best", None]
    text = render([table], "md")
    assert text.splitlines()[5].endswith("| 1 | – |")
    assert "vs best –: no test (no stored test scores, or fewer than 2 matched seeds)." in text


def test_html_and_latex_carry_the_notes():
    tables = build_tables(RUNS)
    assert '<p class="note">vs best: each row against rank 1' in render(tables, "html")
    latex = render(tables, "latex", ci=True)
    assert r"\par\footnotesize vs best: each row against rank 1" in latex
    assert r"$\approx$ best (p = 0.2662)" in latex


def test_json_rows_always_have_the_intervals_and_the_test():
    data = json.loads(render(build_tables(RUNS), "json"))
    row = data[1]["rows"][1]
    assert (row["name"], row["vs_best"], row["test_vs_best"]) == (
        "bovw",
        "not worse",
        "paired t-test",
    )
    assert row["top1_ci"] == pytest.approx([0.0, 0.78531], abs=1e-5)  # 0.15 ± 12.706 · 0.05
    assert data[1]["notes"][-1].startswith("[low, high]: 95 % interval")


def test_ilsvrc_csv_keeps_the_error_rate_as_a_fraction():
    runs = [_run("a", "bovw", "bovw", 0.10, 0.05)]
    row = render(build_tables(runs), "csv", "ilsvrc").splitlines()[1]
    assert row.startswith('1,bovw,0.05000,"1,293 training images, 1 seed",')
