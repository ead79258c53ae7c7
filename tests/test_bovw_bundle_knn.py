"""A BoVW bundle with fewer words than ``knn`` (k=4, knn=5) loads and predicts its scores.

The soft assignment shares a descriptor among min(knn, k) words, so such a run is
valid; its bundle holds the settings' knn, and a re-signed one with another knn is
refused with one line.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_runs import assert_predicts_stored_scores, invoke, one_line, resign

from bovw_vs_convnet.harness.bundle import BUNDLE_DIR
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

OVERRIDES = {"preset": "tiny", "encoding": "soft", "k": "4", "knn": "5", "gallery_words": "0"}


def _folder(root: Path) -> Path:
    """train/ and test/ of 24-px gray discs and squares on noise."""
    import cv2

    rng = np.random.default_rng(0)
    for part, n in (("train", 10), ("test", 4)):
        for kind in ("disc", "square"):
            folder = root / part / kind
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 40, (24, 24), dtype=np.uint8)
                if kind == "disc":
                    cv2.circle(img, (12, 12), 7, 220, -1)
                else:
                    cv2.rectangle(img, (5, 5), (18, 18), 220, -1)
                cv2.imwrite(str(folder / f"{i}.png"), img)
    return root


@pytest.fixture(scope="module")
def few_words(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bovw_knn")
    data = _folder(root / "data")
    record = run_pipeline(
        "bovw", str(data), overrides=OVERRIDES, runs_dir=root / "runs", n_jobs=1, progress=False
    )
    return {"record": record, "data": data, "runs": root / "runs"}


def test_a_run_with_fewer_words_than_knn_predicts_its_stored_scores(
    few_words: dict[str, Any],
) -> None:
    record, data, runs = few_words["record"], few_words["data"], few_words["runs"]
    assert_predicts_stored_scores(runs, record["run_id"], data / "test", top=2)


def test_a_resigned_bundle_with_another_knn_is_refused(
    few_words: dict[str, Any], tmp_path: Path
) -> None:
    record, data = few_words["record"], few_words["data"]
    runs = tmp_path / "runs"
    shutil.copytree(Path(record["run_dir"]), runs / record["run_id"])
    ResultStore(runs).recover()
    model = runs / record["run_id"] / BUNDLE_DIR / "model.json"
    text = model.read_text()
    assert text.count('"knn": 5') == 1
    model.write_text(text.replace('"knn": 5', '"knn": 3'))
    resign(runs, record["run_id"])
    image = sorted((data / "test" / "disc").iterdir())[0]
    result = invoke("predict", record["run_id"], str(image), "--runs-dir", str(runs))
    assert result.exit_code == 2, result.output
    assert one_line(result.output) == (
        f"error: run {record['run_id']}: its bundle is refused: "
        "encoder_.knn is 3, the settings give 5"
    )
