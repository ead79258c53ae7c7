"""The bundle of a colour BoVW run with PCA (opponent SIFT, 384 values, under ``fisher``).

Its PCA takes 128 values per channel of the run's colour space; a bundle is read back
with that input length, and a re-signed one whose PCA takes another length is refused
with one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_runs import assert_predicts_stored_scores, invoke, one_line, resign

from bovw_vs_convnet.harness.bundle import BUNDLE_DIR
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

# fisher's settings, shrunk to seconds: 32-px images at ×1, 8 Gaussians, PCA to 8
OVERRIDES = {
    "preset": "fisher",
    "colour": "opponent",
    "k": "8",
    "pca_dim": "8",
    "upscale": "1",
    "step": "4",
    "gallery_words": "0",
}


def _rgb_folder(root: Path) -> Path:
    """train/ and test/ of two classes told apart by colour alone: a red or a blue disc."""
    import cv2

    rng = np.random.default_rng(0)
    for part, n in (("train", 12), ("test", 4)):
        for name, bgr in (("red", (40, 40, 220)), ("blue", (220, 40, 40))):
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                cv2.circle(img, (16, 16), 9, bgr, -1)
                cv2.imwrite(str(folder / f"{i}.png"), img)
    return root


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("colour_bundle")
    data = _rgb_folder(root / "data")
    record = run_pipeline(
        "bovw", str(data), overrides=OVERRIDES, runs_dir=root / "runs", n_jobs=1, progress=False
    )
    return {"record": record, "data": data, "runs": root / "runs"}


def _pca_arrays(model_json: Path) -> tuple[str, str]:
    """The npz names of the encoder's PCA ``components_`` and ``mean_``."""
    tree = json.loads(model_json.read_text())["state"]
    encoder = dict((k, v) for k, v in tree["items"])["encoder_"]
    pca = encoder["state"]["pca_"]["state"]
    return pca["components_"]["name"], pca["mean_"]["name"]


def test_a_colour_fisher_bundle_predicts_its_stored_scores(colour_run: dict[str, Any]) -> None:
    record, data, runs = colour_run["record"], colour_run["data"], colour_run["runs"]
    npz = np.load(Path(record["run_dir"]) / BUNDLE_DIR / "model.npz")
    components, _ = _pca_arrays(Path(record["run_dir"]) / BUNDLE_DIR / "model.json")
    assert npz[components].shape == (8, 384)  # opponent SIFT: 3 × 128 values
    assert_predicts_stored_scores(runs, record["run_id"], data / "test", top=2)


def test_a_resigned_colour_bundle_with_a_gray_sized_pca_is_refused(
    colour_run: dict[str, Any], tmp_path: Path
) -> None:
    record, data = colour_run["record"], colour_run["data"]
    runs = tmp_path / "runs"
    shutil.copytree(Path(record["run_dir"]), runs / record["run_id"])
    ResultStore(runs).recover()
    folder = runs / record["run_id"] / BUNDLE_DIR
    components, mean = _pca_arrays(folder / "model.json")
    with np.load(folder / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays[components], arrays[mean] = arrays[components][:, :128], arrays[mean][:128]
    np.savez(folder / "model.npz", **arrays)
    resign(runs, record["run_id"])
    image = sorted((data / "test" / "red").iterdir())[0]
    result = invoke("predict", record["run_id"], str(image), "--runs-dir", str(runs))
    assert result.exit_code == 2, result.output
    assert one_line(result.output) == (
        f"error: run {record['run_id']}: its bundle is refused: "
        "encoder_.pca_.components_ has shape (8, 128), not 8x384"
    )
