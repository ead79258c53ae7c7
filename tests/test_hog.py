"""HOG + SVM: scikit-image's descriptor batched, the colour rule, cell sizes, the pipeline
through the harness on synthetic data, KernelSvm's L-BFGS solver, bad settings."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from skimage.feature import hog

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.hog.config import HogConfig, auto_cell
from bovw_vs_convnet.hog.features import hog_features, hog_length


def _edge_image() -> np.ndarray:
    """16×16: dark left half, bright right half (a vertical edge at column 8)."""
    image = np.zeros((16, 16), np.uint8)
    image[:, 8:] = 200
    return image


def test_output_equals_the_librarys_on_a_hand_made_image() -> None:
    image = _edge_image()
    ours = hog_features(image[None, :, :, None], cell=4, block=2, orientations=9)
    theirs = hog(image, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2))
    np.testing.assert_array_equal(ours[0], theirs.astype(np.float32))
    # a vertical edge has horizontal gradients only: orientation bin 0 (0°), nothing else
    blocks = ours[0].reshape(3, 3, 2, 2, 9)
    assert blocks[..., 1:].max() == 0.0 and blocks[..., 0].max() > 0.0


def test_chunks_in_processes_equal_one_image_at_a_time() -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 12, 12, 1), dtype=np.uint8)
    batched = hog_features(images, cell=4, block=2, orientations=6, n_jobs=2, chunk=3)
    single = np.stack([hog_features(im[None], cell=4, block=2, orientations=6)[0] for im in images])
    np.testing.assert_array_equal(batched, single)
    assert batched.shape == (7, hog_length((12, 12), 4, 2, 6)) == (7, 4 * 4 * 6)


def test_colour_images_take_the_channel_of_largest_gradient() -> None:
    """Dalal and Triggs: at each pixel, the gradient of the channel where it is largest."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((16, 16))
    ramp = 8 * (rows + cols)  # |gradient| 16·√2 inside, 16 on the border rows and columns
    noise = rng.integers(0, 11, (16, 16))  # |gradient| ≤ 10·√2 inside, ≤ 10 on the border
    for strong in range(3):
        channels = [noise, noise[::-1], noise.T]
        channels[strong] = ramp
        image = np.stack(channels, axis=-1).astype(np.uint8)
        colour = hog_features(image[None], cell=4, block=2, orientations=9)[0]
        alone = hog_features(image[None, :, :, strong : strong + 1], cell=4, block=2)[0]
        mean = image.mean(axis=-1).round().astype(np.uint8)
        averaged = hog_features(mean[None, :, :, None], cell=4, block=2)[0]
        np.testing.assert_array_equal(colour, alone)
        assert np.abs(colour - averaged).max() > 0.05  # not the channels' mean


@pytest.mark.parametrize(("side", "cell"), [(8, 2), (16, 2), (28, 4), (32, 4), (64, 8), (227, 8)])
def test_auto_cell_suits_the_image_size(side: int, cell: int) -> None:
    assert auto_cell(side) == cell
    assert HogConfig().cell_for((side, side + 5)) == cell
    assert build_config(HogConfig, {"cell": "6"}).cell_for((side, side)) == 6


def test_images_smaller_than_a_block_are_refused() -> None:
    with pytest.raises(DataError, match=r"images of 8×8 px are smaller than one HOG block"):
        hog_features(np.zeros((2, 8, 8, 1), np.uint8), cell=8, block=2)


def test_kernel_svm_lbfgs_chooses_c_on_validation_like_liblinear() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    x = (rng.normal(size=(400, 20)) + 2.0 * np.eye(4, 20)[y]).astype(np.float32)
    fits = {}
    for solver in ("lbfgs", "liblinear"):
        svm = KernelSvm(
            kernel="linear", solver="map", C_grid=(0.01, 0.1, 1.0), linear_solver=solver
        )
        fits[solver] = svm.fit(x[:300], y[:300], x[300:], y[300:])
    lbfgs, liblinear = fits["lbfgs"], fits["liblinear"]
    assert len(lbfgs.models_) == 1 and set(lbfgs.val_errors_) == {0.01, 0.1, 1.0}
    assert lbfgs.decision_function(x[300:]).shape == (100, 4)
    agree = (lbfgs.predict(x[300:]) == liblinear.predict(x[300:])).mean()
    assert agree >= 0.97  # the same objective up to the intercept's penalty


def test_hog_through_the_harness_on_synthetic_shapes(tmp_path: Path) -> None:
    record = run_pipeline(
        "hog",
        "synthetic",
        train_size=300,
        overrides={"preset": "linear"},
        runs_dir=tmp_path / "runs",
        progress=False,
    )
    assert (record["pipeline"], record["model"], record["n_train"]) == ("hog", "hog-linear", 300)
    assert set(record["stage_seconds"]) == {"descriptors", "classifier", "scoring"}
    extra = record["extra"]
    assert (extra["cell"], extra["feature_dim"]) == (4, 7 * 7 * 2 * 2 * 9)  # 32×32 images
    assert extra["classifier"] == "map-linear-lbfgs"
    assert extra["C"] in HogConfig.PRESETS["linear"]["C_grid"]
    assert record["n_params"] == 6 * (1764 + 1)
    assert record["top1_err"] < 0.6  # six shapes at random places and sizes: chance is 0.83


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("cell=0", "error: cell must be ≥ 1 (or auto), got 0"),
        ("block=0", "error: block must be ≥ 1, got 0"),
        ("orientations=0", "error: orientations must be ≥ 1, got 0"),
        ("kernel=poly", "error: setting 'kernel' must be one of"),
        ("C_grid=0", "error: C_grid must hold costs > 0, got (0.0,)"),
        ("svm_max_iter=0", "error: svm_max_iter must be ≥ 1, got 0"),
        ("preset=huge", "error: unknown preset 'huge'"),
        ("cell=9", "error: images of 8×8 px are smaller than one HOG block"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path, setting: str, message: str) -> None:
    args = ["run", "hog", "--dataset", "digits", "--set", setting, "--no-progress"]
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
