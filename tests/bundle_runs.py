"""One stored run of each pipeline on digits, shared by tests/test_predict.py and test_export.py.

Also their CLI helpers: :func:`invoke` (``bvc ARGS``) and :func:`one_line` (an error's line).

Made once per test session (the ConvNet's training is the cost), in a folder of
pytest's temporary tree; the test images are written beside the runs as PNG files
(lossless), named by their sample id.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.harness.bundle import BUNDLE_DIR, files_digest, sha256_bytes
from bovw_vs_convnet.harness.run import load_split, run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

# each run takes a few seconds on 400 training digits (359 test digits)
RUNS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "bovw": {"preset": "tiny"},
    "hog": {"n_components": "200"},
    "convnet": {"model": "lenet5", "epochs": "2", "recipe": "fixed"},
}
TRAIN_SIZE = 400

_made: dict[str, Any] = {}


def invoke(*args: str) -> Result:
    """``bvc ARGS`` run in this process (click's runner: output and exit code kept)."""
    return CliRunner().invoke(main, list(args))


def one_line(text: str) -> str:
    """The text, asserted to be one line."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def assert_predicts_stored_scores(runs: Path, run_id: str, folder: Path, top: int) -> None:
    """``bvc predict RUN_ID FOLDER --top TOP`` gives the run's stored test scores.

    Each image's scores go to its row of the stored scores (its id is
    ``test/CLASS/FILE``); ``top`` must be the number of classes, so every score is compared.
    """
    result = invoke("predict", run_id, str(folder), "--top", str(top), "--json",
                    "--runs-dir", str(runs))  # fmt: skip
    assert result.exit_code == 0, result.output
    scores, _, ids = ResultStore(runs).load_scores(run_id)
    got = np.full(scores.shape, np.nan)
    for p in json.loads(result.output)["predictions"]:
        row = list(ids).index("test/" + "/".join(Path(p["image"]).parts[-2:]))
        got[row, [e["label"] for e in p["top"]]] = [e["score"] for e in p["top"]]
    np.testing.assert_allclose(got, scores, rtol=1e-5, atol=1e-5)


class Plant:
    """Unpickled, it opens (creates) the marker file: what a hostile pickle can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def stored_runs(factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``{"runs": folder, "records": {pipeline: record}, "images": folder of test PNGs}``."""
    if _made:
        return _made
    import cv2

    root = factory.mktemp("bundle_runs")
    runs = root / "runs"
    records = {
        name: run_pipeline(
            name,
            "digits",
            overrides=over,
            seed=0,
            train_size=TRAIN_SIZE,
            runs_dir=runs,
            n_jobs=1,
            progress=False,
        )
        for name, over in RUNS.items()
    }
    _, split = load_split("digits", seed=0, train_size=TRAIN_SIZE)
    images = root / "test_images"
    images.mkdir()
    for image, sample_id in zip(split.test.images, split.test.ids, strict=True):
        cv2.imwrite(str(images / f"{sample_id}.png"), image[..., 0])
    _made.update({"runs": runs, "records": records, "images": images, "split": split})
    return _made


def resign(runs: Path, run_id: str, **changes: Any) -> None:
    """Rewrite the run's bundle hashes (and ``changes``) in record.json and its SQLite row."""
    store = ResultStore(runs)
    folder = store.run_dir(run_id) / BUNDLE_DIR
    files = {p.name: sha256_bytes(p.read_bytes()) for p in sorted(folder.iterdir())}
    record = dict(store.get_run(run_id))
    record.update(changes, bundle_files=files, bundle_sha256=files_digest(files))
    record.pop("run_dir", None)
    text = json.dumps(record)
    (store.run_dir(run_id) / "record.json").write_text(text)
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE runs SET record = ? WHERE run_id = ?", [text, run_id])
