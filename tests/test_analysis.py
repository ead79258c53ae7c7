"""Analysis and leaderboard name one record's runs the same way."""

from pathlib import Path

import numpy as np
import pytest
from report_records import fake_record

from bovw_vs_convnet.harness.analysis import family_answer, family_answers, training_size_curves
from bovw_vs_convnet.harness.leaderboard import build_tables


@pytest.mark.parametrize(
    ("pipeline", "model", "name"),
    [
        ("bovw", "bovw", "bovw"),
        ("convnet", "lenet5", "convnet/lenet5"),
        ("baseline", None, "baseline"),
        ("baseline", "", "baseline"),
    ],
)
def test_table_row_and_curve_have_the_same_name(
    pipeline: str, model: str | None, name: str
) -> None:
    record = fake_record(pipeline, "m", n_train=100, seed=0, top1=0.2)
    record["model"] = model
    ((row,),) = [t.rows for t in build_tables([record])]
    (curves,) = training_size_curves([record]).values()
    assert (row.name, list(curves)) == (name, [name])


def _with_scores(record: dict, folder: Path, correct: list[bool]) -> dict:
    """``record`` with stored two-class test scores, right where ``correct`` says."""
    folder.mkdir()
    right = np.array(correct)
    np.save(folder / "scores.npy", np.where(right[:, None], [[1.0, 0.0]], [[0.0, 1.0]]))
    np.save(folder / "labels.npy", np.zeros(len(correct), dtype=np.int64))
    np.save(folder / "ids.npy", np.array([f"img{i}" for i in range(len(correct))]))
    return {**record, "run_dir": str(folder), "top1_err": float(1 - right.mean()), "top5_k": 2}


def test_family_answer_names_the_winner_and_its_mcnemar_test(tmp_path: Path) -> None:
    bovw = fake_record("bovw", "tiny", n_train=100, seed=0, top1=0)
    conv = fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0)
    runs = [
        _with_scores(bovw, tmp_path / "b", [True] * 30 + [False] * 2),  # b = 12, c = 0
        _with_scores(conv, tmp_path / "c", [True] * 18 + [False] * 14),
    ]
    (answer,) = family_answers(build_tables(runs))
    assert answer == (
        "BoVW against ConvNets on digits (100 training images, split fp-100-0): top-1: "
        "bovw/tiny (6.25 %) is better than convnet/lenet5 (43.75 %) at α = 0.05 "
        "(exact McNemar test on 32 test images, b = 12, c = 0, p = 0.0004883)."
    )


def test_family_answer_over_seeds_says_when_the_difference_is_not_significant() -> None:
    runs = [
        fake_record("bovw", "tiny", n_train=100, seed=0, top1=0.20),
        fake_record("bovw", "tiny", n_train=100, seed=1, top1=0.30),
        fake_record("convnet", "lenet5", n_train=100, seed=0, top1=0.25),
        fake_record("convnet", "lenet5", n_train=100, seed=1, top1=0.20),
    ]
    for r in runs:
        r["split_fingerprint"] = f"fp{r['seed']}"
    (table,) = build_tables(runs)
    # BoVW - ConvNet: -0.05, +0.10: mean 0.025, standard error 0.075, t = 0.333 on 1 df
    assert family_answer(table) == (
        "BoVW against ConvNets on digits (100 training images, split fp0,fp1): top-1: no "
        "significant difference between bovw/tiny (25.00 %) and convnet/lenet5 (22.50 %) at "
        "α = 0.05 (paired t-test over 2 matched seeds, t = 0.333, p = 0.7952)."
    )


def test_family_answer_needs_both_families() -> None:
    (table,) = build_tables([fake_record("bovw", "tiny", n_train=100, seed=0, top1=0.2)])
    assert family_answer(table) is None
