"""`bvc compare` through click's CliRunner on tiny stored runs (no dataset is read)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.split import Split
from bovw_vs_convnet.harness import run as run_mod
from bovw_vs_convnet.harness.formatting import p_value
from bovw_vs_convnet.harness.store import ResultStore


def _images(n: int, offset: int, seed: int) -> ImageSet:
    """Three overlapping classes of noisy 4×4 images, so that two classifiers disagree."""
    rng = np.random.default_rng(1000 * seed + offset)
    labels = np.arange(n) % 3
    noise = rng.integers(0, 120, (n, 4, 4, 1))
    images = (noise + 35 * labels[:, None, None, None]).astype(np.uint8)
    ids = np.array([f"s{offset + i:03d}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), ids, ("a", "b", "c"), name="toy")


@pytest.fixture
def toy_split(monkeypatch):
    """A tiny 3-class split per seed; ``test_offset`` moves the test ids (other images)."""

    def fake_load_split(dataset, *, seed=0, **kwargs):
        test_offset = 500 if dataset == "other" else 200
        train, test = _images(60, 0, seed), _images(90, test_offset, seed)
        params = {"dataset": dataset, "seed": seed}
        return dataset, Split(train, None, test, f"{dataset}{seed}".ljust(64, "0"), params)

    monkeypatch.setattr(run_mod, "load_split", fake_load_split)


def _store(tmp_path: Path, *, seeds=(0,), dataset="toy") -> dict[tuple[str, int], str]:
    """Run both baseline classifiers per seed; their run ids by (method, seed)."""
    out = {}
    for seed in seeds:
        for method in ("linear-svm", "nearest-mean"):
            record = run_mod.run_pipeline(
                "baseline",
                dataset,
                overrides={"method": method},
                seed=seed,
                runs_dir=tmp_path,
                progress=False,
            )
            out[(method, seed)] = str(record["run_id"])
    return out


def _invoke(tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["compare", *args, "--runs-dir", str(tmp_path)])


def _correct(tmp_path: Path, run_id: str) -> np.ndarray:
    scores, labels, _ = ResultStore(tmp_path).load_scores(run_id)
    return scores.argmax(axis=1) == labels


def test_stored_records_carry_the_mean_per_class_error_and_intervals(toy_split, tmp_path):
    ids = _store(tmp_path)
    record = ResultStore(tmp_path).get_run(ids[("linear-svm", 0)])
    per_class = list(record["per_class_err"].values())
    assert record["mpc_err"] == pytest.approx(sum(per_class) / 3)
    low, high = record["top1_ci"]
    assert low < record["top1_err"] < high
    assert len(record["mpc_ci"]) == len(record["top5_ci"]) == len(record["mpc_top5_ci"]) == 2


def test_two_run_ids_give_mcnemars_table_p_value_and_verdict(toy_split, tmp_path):
    ids = _store(tmp_path)
    svm, mean = ids[("linear-svm", 0)], ids[("nearest-mean", 0)]
    result = _invoke(tmp_path, svm, mean)
    assert result.exit_code == 0, result.output
    a, b = _correct(tmp_path, svm), _correct(tmp_path, mean)
    both, only_a, only_b = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    lines = result.output.splitlines()
    assert lines[2] == "exact McNemar test on 90 test images (the same ids in both runs), two-sided"
    assert lines[4].split() == ["top-1", "B", "right", "B", "wrong"]
    assert lines[5].split() == ["A", "right", str(both), str(only_a)]
    assert lines[6].split() == ["A", "wrong", str(only_b), str(90 - both - only_a - only_b)]
    assert f"b = {only_a}, c = {only_b}, {p_value(p)}" in lines[7]
    assert lines[7].startswith("top-1: ")
    assert any(line.startswith("top-5: ") for line in lines)


def test_row_names_on_one_table_give_the_same_test_as_json(toy_split, tmp_path):
    ids = _store(tmp_path)
    result = _invoke(tmp_path, "baseline/linear-svm", "nearest-mean", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["a"], out["b"], out["kind"]) == (
        "baseline/linear-svm",
        "baseline/nearest-mean",
        "mcnemar",
    )
    assert out["pairs"] == [[ids[("linear-svm", 0)], ids[("nearest-mean", 0)]]]
    top1 = out["tests"][0]
    a, b = _correct(tmp_path, ids[("linear-svm", 0)]), _correct(tmp_path, ids[("nearest-mean", 0)])
    assert top1["table"] == [
        [int(np.sum(a & b)), int(np.sum(a & ~b))],
        [int(np.sum(~a & b)), int(np.sum(~a & ~b))],
    ]
    assert top1["a_err"] == pytest.approx(1 - a.mean())
    assert [t["metric"] for t in out["tests"]] == ["top1", "top5"]


def test_rows_over_matched_seeds_get_a_paired_t_test(toy_split, tmp_path):
    ids = _store(tmp_path, seeds=(0, 1, 2))
    store = ResultStore(tmp_path)
    errs = {
        m: [store.get_run(ids[(m, s)])["top1_err"] for s in (0, 1, 2)]
        for m in ("linear-svm", "nearest-mean")
    }
    expected = stats.ttest_rel(errs["linear-svm"], errs["nearest-mean"]).pvalue
    result = _invoke(tmp_path, "linear-svm", "nearest-mean", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    top1 = out["tests"][0]
    assert (out["kind"], top1["test"], top1["n"]) == ("paired", "paired t-test", 3)
    assert top1["p_value"] == pytest.approx(expected)
    text = _invoke(tmp_path, "linear-svm", "nearest-mean", "--test", "wilcoxon").output
    assert "Wilcoxon signed-rank test over 3 matched seeds (same split and seed), two-sided" in text


def test_runs_on_different_test_images_are_refused_in_one_line(toy_split, tmp_path):
    ids = _store(tmp_path)
    other = _store(tmp_path, dataset="other")
    result = _invoke(tmp_path, ids[("linear-svm", 0)], other[("nearest-mean", 0)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: runs {ids[('linear-svm', 0)]} and {other[('nearest-mean', 0)]} were scored on "
        "different test images (90 and 90 ids, 0 in common); McNemar's test needs the same ones\n"
    )


def test_an_unknown_name_is_refused(toy_split, tmp_path):
    _store(tmp_path)
    result = _invoke(tmp_path, "linear-svm", "bovw/nothing")
    assert result.exit_code == 2
    assert result.output == (
        "error: 'bovw/nothing' is neither a stored run id nor a leaderboard row name\n"
    )
