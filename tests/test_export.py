"""`bvc export RUN_ID --format onnx`: a stored ConvNet run as ONNX, its scores kept.

The slow test exports the LeNet-5 run of ``bundle_runs`` (digits, fixed seed) and
shows that onnxruntime, fed the test images' pixels, gives the run's stored top-1
on every image. A BoVW run asked for ONNX, and a missing ``[onnx]`` extra, end in
one line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_runs import invoke, one_line, stored_runs

from bovw_vs_convnet.harness.store import ResultStore


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stored runs of tests/bundle_runs.py (one per pipeline, on digits)."""
    return stored_runs(tmp_path_factory)


def test_a_bovw_run_asked_for_onnx_is_one_line(stored: dict[str, Any], tmp_path: Path) -> None:
    run_id = stored["records"]["bovw"]["run_id"]
    out = tmp_path / "model.onnx"
    result = invoke("export", run_id, "--format", "onnx", "-o", str(out),
                     "--runs-dir", str(stored["runs"]))  # fmt: skip
    assert result.exit_code == 2
    assert one_line(result.output) == (
        f"error: run {run_id} is a bovw run: it cannot be exported as onnx (ConvNet runs can)"
    )
    assert not out.exists()


def test_without_the_onnx_extra_export_says_how_to_install_it(
    stored: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    out = tmp_path / "model.onnx"
    run_id = stored["records"]["convnet"]["run_id"]
    result = invoke("export", run_id, "-o", str(out), "--runs-dir", str(stored["runs"]))
    assert result.exit_code == 2
    assert "pip install -e '.[onnx]'" in one_line(result.output)
    assert not out.exists()


@pytest.mark.slow
def test_onnxruntime_gives_the_stored_top1_on_the_test_images(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    record = stored["records"]["convnet"]
    out = tmp_path / "lenet5.onnx"
    result = invoke("export", record["run_id"], "-o", str(out), "--json",
                     "--runs-dir", str(stored["runs"]))  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["input"]["shape"] == ["batch", 1, 8, 8]
    assert info["onnxruntime_max_abs_diff"] < 1e-4
    test = stored["split"].test
    pixels = test.array().transpose(0, 3, 1, 2).astype(np.float32)  # (N, 1, 8, 8), 0-255
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"pixels": pixels})
    scores, labels, ids = ResultStore(stored["runs"]).load_scores(record["run_id"])
    np.testing.assert_array_equal(ids, test.ids)
    np.testing.assert_array_equal(logits.argmax(axis=1), scores.argmax(axis=1))
    np.testing.assert_allclose(logits, scores, rtol=1e-4, atol=1e-4)
    assert np.mean(logits.argmax(axis=1) != labels) == pytest.approx(record["top1_err"])


@pytest.mark.slow
def test_export_goes_into_the_runs_folder_by_default(
    stored: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    monkeypatch.chdir(tmp_path)
    run_id = stored["records"]["convnet"]["run_id"]
    result = invoke("export", run_id, "--json", "--runs-dir", str(stored["runs"]))
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.output)["path"])
    assert path == stored["runs"] / "exports" / f"{run_id}.onnx"
    assert path.is_file()
    assert list(tmp_path.iterdir()) == []  # nothing in the current folder
