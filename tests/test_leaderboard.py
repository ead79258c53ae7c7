"""Leaderboard grouping (fingerprints, mean ± std over seeds) and every format and style."""

import csv
import io
import json

import pytest

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.leaderboard import build_tables, latex_escape, render


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
    assert "| 1 | convnet | lenet5 | 6.00 ± 1.41 | 2.00 ± 1.41 | 650 | 1,293 |" in text
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
    assert "| Rank | Name | Error rate | Description |" in text
    assert "| 1 | convnet/alexnet | 0.01000 |" in text
    assert "| 2 | bovw | 0.05000 |" in text


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
        _run("new", "convnet", "lenet5", 0.20, 0.0, seed=1, fp="fp0",
             config={"model": "lenet5", "epochs": 10, "mirror": "auto"}),
        _run("no", "convnet", "lenet5", 0.30, 0.0, seed=2, fp="fp0",
             config={"model": "lenet5", "epochs": 10, "mirror": "no"}),
    ]  # fmt: skip
    (table,) = build_tables(runs)
    assert [(r.run_ids, r.config) for r in table.rows] == [
        (["old", "new"], {"model": "lenet5", "epochs": 10}),
        (["no"], {"model": "lenet5", "epochs": 10, "mirror": "no"}),
    ]
