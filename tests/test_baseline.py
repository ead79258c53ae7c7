"""The raw-pixel baseline: standardisation from the training images only, the C path,
the old LinearSVC path kept as a setting, through the harness on synthetic data."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.svm import LinearSVC

from bovw_vs_convnet.baseline.pipeline import BaselineConfig, BaselinePipeline
from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.harness.run import run_pipeline


def _images(n: int, offset: int, brightness: int) -> ImageSet:
    """Three classes of 6×6 noise images, each a little brighter than the last."""
    rng = np.random.default_rng(offset)
    labels = np.arange(n) % 3
    pixels = rng.integers(0, 60, (n, 6, 6, 1)) + 40 * labels[:, None, None, None] + brightness
    ids = np.array([f"i{offset + i:04d}" for i in range(n)])
    return ImageSet(pixels.astype(np.uint8), labels.astype(np.int64), ids, ("a", "b", "c"))


def test_standardisation_is_fitted_on_the_training_images_only() -> None:
    train, val = _images(60, 0, brightness=0), _images(30, 100, brightness=60)
    pixels = train.array().reshape(60, -1).astype(np.float64) / 255.0
    pipe = BaselinePipeline(BaselineConfig()).fit(train, val)  # standardize=global
    assert pipe.scaler_ is not None
    np.testing.assert_allclose(pipe.scaler_.mean_, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pipe.scaler_.scale_, (pixels - pixels.mean(axis=0)).std(), rtol=1e-5)
    per_pixel = build_config(BaselineConfig, {"standardize": "pixel"})
    pipe = BaselinePipeline(per_pixel).fit(train, val)
    assert pipe.scaler_ is not None
    np.testing.assert_allclose(pipe.scaler_.scale_, pixels.std(axis=0), rtol=1e-5)
    # the brighter validation images moved nothing: with them the mean would be higher
    both = np.concatenate([pixels, val.array().reshape(30, -1) / 255.0])
    assert (pipe.scaler_.mean_ < both.mean(axis=0) - 0.05).all()


def test_the_cost_path_stops_past_the_best_validation_error() -> None:
    train, val = _images(90, 0, brightness=0), _images(45, 100, brightness=0)
    cfg = build_config(BaselineConfig, {"C_grid": "0.0001,0.001,0.01,0.1,1,10"})
    pipe = BaselinePipeline(cfg).fit(train, val)
    tried = list(pipe.val_errors_)
    errors = list(pipe.val_errors_.values())
    assert tried == sorted(cfg.C_grid)[: len(tried)]  # smallest cost first
    assert pipe.val_errors_[pipe.C_] == min(errors)
    # each cost before the last matched or beat the best so far; the last did worse
    # than the best, or was the grid's end
    assert all(errors[i] <= min(errors[: i + 1]) for i in range(len(errors) - 1))
    assert errors[-1] > min(errors) or len(tried) == len(cfg.C_grid)


def test_solver_liblinear_is_the_old_linearsvc_baseline() -> None:
    train, test = _images(60, 0, brightness=0), _images(30, 200, brightness=0)
    cfg = build_config(
        BaselineConfig, {"solver": "liblinear", "standardize": "none", "C": 0.1, "max_iter": 5000}
    )
    scores = BaselinePipeline(cfg).fit(train, None).decision_scores(test)
    x = train.array().reshape(60, -1).astype(np.float32) / 255.0
    ref = LinearSVC(C=0.1, max_iter=5000, random_state=0).fit(x, train.labels)
    expected = ref.decision_function(test.array().reshape(30, -1).astype(np.float32) / 255.0)
    np.testing.assert_allclose(scores, expected)


def test_baseline_through_the_harness_on_synthetic_shapes(tmp_path: Path) -> None:
    record = run_pipeline(
        "baseline", "synthetic", train_size=300, runs_dir=tmp_path / "runs", progress=False
    )
    assert (record["pipeline"], record["model"], record["n_train"]) == (
        "baseline",
        "linear-svm",
        300,
    )
    assert record["extra"]["solver"] == "lbfgs"
    assert record["extra"]["C"] in BaselineConfig().C_grid
    assert set(record["stage_seconds"]) == {"features", "classifier", "scoring"}
    assert record["n_params"] == 6 * (32 * 32 + 1)
    assert record["top1_err"] < 0.6  # six shapes of random place and size: chance is 0.83


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("C=-1", "error: C must be > 0, got -1.0"),
        ("C_grid=0,1", "error: C_grid must hold costs > 0, got (0.0, 1.0)"),
        ("max_iter=0", "error: max_iter must be ≥ 1, got 0"),
        ("solver=sgd", "error: setting 'solver' must be one of ['lbfgs', 'liblinear']"),
        (
            "standardize=yes",
            "error: setting 'standardize' must be one of ['global', 'pixel', 'none']",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path, setting: str, message: str) -> None:
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(
            main, ["run", "baseline", "--dataset", "digits", "--set", setting]
        )
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_a_fixed_cost_is_still_scored_on_the_validation_images() -> None:
    train, val = _images(60, 0, brightness=0), _images(30, 100, brightness=0)
    pipe = BaselinePipeline(build_config(BaselineConfig, {"C": 0.1})).fit(train, val)
    err = float((pipe.decision_scores(val).argmax(axis=1) != val.labels).mean())
    assert (pipe.C_, pipe.val_errors_) == (0.1, {0.1: err})  # one look, for ``learned``
    assert (
        BaselinePipeline(build_config(BaselineConfig, {"C": 0.1})).fit(train, None).val_errors_
        == {}
    )
