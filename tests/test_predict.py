"""`bvc predict`: a stored run's model bundle scores image files as the run scored its test set.

Each pipeline is run once on scikit-learn's digits (fixed seed, small settings); its
test images are written as PNG files and predicted from the bundle alone, which must
give the stored test scores. A bundle that was changed after the run, or whose files
are not what they should be (a marker-writing pickle in place of the safetensors or
the npz), is refused in one line with exit code 2, and nothing of it runs.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_runs import RUNS, Plant, assert_predicts_stored_scores, invoke, one_line, stored_runs

from bovw_vs_convnet.estimators.estimator_state import StateError, decode, encode, state_files
from bovw_vs_convnet.estimators.state_checks import kernel_svm
from bovw_vs_convnet.harness.bundle import BUNDLE_DIR, files_digest, sha256_bytes
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.harness.store import ResultStore


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of each pipeline on digits in one runs folder, and the test images as PNGs."""
    return stored_runs(tmp_path_factory)


@pytest.mark.parametrize("pipeline", list(RUNS))
def test_predictions_on_the_runs_own_test_images_are_its_stored_scores(
    stored: dict[str, Any], pipeline: str
) -> None:
    record: RunRecord = stored["records"][pipeline]
    n_classes = record["n_classes"]
    result = invoke(
        "predict", record["run_id"], str(stored["images"]), "--top", str(n_classes),
        "--json", "--runs-dir", str(stored["runs"]),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    scores, labels, ids = ResultStore(stored["runs"]).load_scores(record["run_id"])
    assert len(out["predictions"]) == len(ids) == record["n_test"]
    got = np.full(scores.shape, np.nan)
    for p in out["predictions"]:
        row = list(ids).index(Path(p["image"]).stem)
        assert len(p["top"]) == n_classes
        for entry in p["top"]:
            got[row, entry["label"]] = entry["score"]
    np.testing.assert_allclose(got, scores, rtol=1e-5, atol=1e-5)
    top1 = np.array([p["top"][0]["label"] for p in out["predictions"]])
    order = [list(ids).index(Path(p["image"]).stem) for p in out["predictions"]]
    np.testing.assert_array_equal(top1, scores[order].argmax(axis=1))
    assert np.mean(top1 != labels[order]) == pytest.approx(record["top1_err"])


def test_the_text_output_gives_each_image_its_top_k(stored: dict[str, Any]) -> None:
    record = stored["records"]["baseline"]
    first = sorted(stored["images"].iterdir())[0]
    result = invoke("predict", record["run_id"], str(first), "--top", "3",
                     "--runs-dir", str(stored["runs"]))  # fmt: skip
    assert result.exit_code == 0, result.output
    header, row_line = result.output.strip().splitlines()
    assert header.split() == ["image", "class", "1", "score", "1", "class", "2", "score", "2",
                              "class", "3", "score", "3"]  # fmt: skip
    line = row_line.split()
    assert line[0] == str(first) and len(line) == 1 + 2 * 3
    scores, _, ids = ResultStore(stored["runs"]).load_scores(record["run_id"])
    row = scores[list(ids).index(first.stem)]
    assert line[1::2] == [record["class_names"][c] for c in np.argsort(-row)[:3]]


def _copy_run(stored: dict[str, Any], pipeline: str, runs: Path) -> RunRecord:
    """A runs folder of its own holding a copy of the stored ``pipeline`` run."""
    import shutil

    record = stored["records"][pipeline]
    shutil.copytree(Path(record["run_dir"]), runs / record["run_id"])
    ResultStore(runs).recover()
    return record


def _rehash(runs: Path, record: RunRecord, name: str) -> None:
    """Put the sha256 of the bundle file ``name`` as it is now into the stored record."""
    store = ResultStore(runs)
    stored = dict(store.get_run(record["run_id"]))
    folder = store.run_dir(record["run_id"]) / BUNDLE_DIR
    files = dict(stored["bundle_files"])
    files[name] = sha256_bytes((folder / name).read_bytes())
    stored["bundle_files"], stored["bundle_sha256"] = files, files_digest(files)
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "UPDATE runs SET record = ? WHERE run_id = ?", [json.dumps(stored), record["run_id"]]
        )


def test_a_bundle_changed_after_the_run_is_refused(stored: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    record = _copy_run(stored, "baseline", runs)
    npz = runs / record["run_id"] / BUNDLE_DIR / "model.npz"
    data = bytearray(npz.read_bytes())
    data[-30] ^= 0xFF
    npz.write_bytes(bytes(data))
    result = invoke("predict", record["run_id"], str(stored["images"]), "--runs-dir", str(runs))
    assert result.exit_code == 2
    assert "does not match the sha256 in the run's record" in one_line(result.output)


@pytest.mark.parametrize(
    ("pipeline", "name", "kind"),
    [
        ("convnet", "weights.safetensors", "pickle"),
        ("convnet", "weights.safetensors", "torch.save"),
        ("baseline", "model.npz", "pickle"),
        ("bovw", "model.npz", "object array"),
    ],
)
def test_a_planted_pickle_in_a_bundle_never_runs(
    stored: dict[str, Any], tmp_path: Path, pipeline: str, name: str, kind: str
) -> None:
    runs = tmp_path / "runs"
    record = _copy_run(stored, pipeline, runs)
    marker = tmp_path / "marker"
    target = runs / record["run_id"] / BUNDLE_DIR / name
    if kind == "pickle":
        target.write_bytes(pickle.dumps({"weights": Plant(marker)}))
    elif kind == "torch.save":  # a zip holding a pickle: what torch.load would run
        import torch

        torch.save({"weights": Plant(marker)}, target)
    else:  # a real npz whose one array holds objects (numpy pickles them)
        np.savez(target, a0=np.array([Plant(marker)], dtype=object))
    _rehash(runs, record, name)  # the hash agrees: only the format check stands
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Plant(control)))
    assert control.exists()  # the plant works when unpickled
    result = invoke("predict", record["run_id"], str(stored["images"]), "--runs-dir", str(runs))
    assert result.exit_code == 2
    line = one_line(result.output)
    assert name in line and ("not a safetensors file" in line or "npz" in line), line
    assert not marker.exists()


def test_a_state_naming_a_class_it_may_not_hold_is_refused() -> None:
    tree, arrays = encode({"C_": 1.0}, [])
    tree["state"] = {"$": "object", "class": "subprocess:Popen", "state": {"args": "true"}}
    with pytest.raises(StateError, match=r"class 'subprocess:Popen' is not one this bundle"):
        decode(tree, arrays, [])


def test_a_state_naming_the_svm_where_bovw_kept_it_reads_as_the_shared_kernel_svm() -> None:
    """Bundles written before KernelSvm moved below the pipelines name its old module."""
    from bovw_vs_convnet.estimators.estimator_state import read_state
    from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
    from bovw_vs_convnet.estimators.kernels import KernelFeatureMap
    from bovw_vs_convnet.hog.bundle import CLASSES

    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    x = rng.random((30, 8)) + np.eye(3, 8)[y]
    svm = KernelSvm(solver="map", linear_solver="lbfgs", C=1.0).fit(x, y)
    files = state_files({"classifier_": svm}, CLASSES)
    text = files["model.json"].decode()
    assert '"bovw_vs_convnet.estimators.kernel_svm:KernelSvm"' in text
    assert '"bovw_vs_convnet.estimators.kernels:KernelFeatureMap"' in text
    assert '"primal_"' not in text  # SKIP names the class where it is now
    old = text.replace(
        "bovw_vs_convnet.estimators.kernel_svm:", "bovw_vs_convnet.bovw.classifier:"
    ).replace("bovw_vs_convnet.estimators.kernels:", "bovw_vs_convnet.bovw.kernels:")
    back = read_state({**files, "model.json": old.encode()}, CLASSES)["classifier_"]
    assert type(back) is KernelSvm and type(back.map_) is KernelFeatureMap
    np.testing.assert_array_equal(back.decision_function(x), svm.decision_function(x))


def test_every_class_skip_and_renamed_name_is_one_a_bundle_admits() -> None:
    from bovw_vs_convnet.baseline import bundle as baseline_bundle
    from bovw_vs_convnet.bovw import bundle as bovw_bundle
    from bovw_vs_convnet.estimators.estimator_state import RENAMED, SKIP, class_path
    from bovw_vs_convnet.hog import bundle as hog_bundle

    admitted = {
        class_path(c) for m in (baseline_bundle, bovw_bundle, hog_bundle) for c in m.CLASSES
    }
    assert set(SKIP) | set(RENAMED.values()) <= admitted


def test_a_state_round_trips_arrays_sparse_scalars_and_non_finite_numbers() -> None:
    import scipy.sparse as sp

    from bovw_vs_convnet.estimators.estimator_state import read_state

    value = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "codes": sp.csr_matrix(np.eye(3)),
        "n": np.int64(7),
        "ratio": np.float64(0.25),
        "grid": (0.1, 1.0),
        "errors": {0.1: 0.5, 1.0: float("inf")},
        "name": "rbf",
    }
    back = read_state(state_files(value, []), [])
    np.testing.assert_array_equal(back["w"], value["w"])
    assert back["w"].dtype == np.float32
    assert (back["codes"] != value["codes"]).nnz == 0 and sp.issparse(back["codes"])
    assert type(back["n"]) is np.int64 and back["n"] == 7
    assert type(back["ratio"]) is np.float64
    assert back["grid"] == (0.1, 1.0) and back["errors"] == {0.1: 0.5, 1.0: float("inf")}
    assert back["name"] == "rbf"


def test_an_unknown_run_a_missing_image_and_a_corrupt_one_are_one_line(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    runs = str(stored["runs"])
    run_id = stored["records"]["baseline"]["run_id"]
    image = str(sorted(stored["images"].iterdir())[0])
    unknown = invoke("predict", "nosuch-run", image, "--runs-dir", runs)
    assert unknown.exit_code == 2
    assert "no run 'nosuch-run'" in one_line(unknown.output)
    missing = invoke("predict", run_id, str(tmp_path / "nothing.png"), "--runs-dir", runs)
    assert missing.exit_code == 2
    assert "no image file" in one_line(missing.output)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    bad = invoke("predict", run_id, str(corrupt), "--runs-dir", runs)
    assert bad.exit_code == 2
    assert f"cannot read image {corrupt}" in one_line(bad.output)


def test_a_run_stored_without_a_bundle_says_so(stored: dict[str, Any], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    record = _copy_run(stored, "baseline", runs)
    store = ResultStore(runs)
    older = {k: v for k, v in store.get_run(record["run_id"]).items() if not k.startswith("bundle")}
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "UPDATE runs SET record = ? WHERE run_id = ?", [json.dumps(older), record["run_id"]]
        )
    result = invoke("predict", record["run_id"], str(stored["images"]), "--runs-dir", str(runs))
    assert result.exit_code == 2
    assert "has no model bundle" in one_line(result.output)


def test_every_run_records_its_bundle_files_and_their_hash(stored: dict[str, Any]) -> None:
    expected = {
        "baseline": {"bundle.json", "model.json", "model.npz"},
        "bovw": {"bundle.json", "model.json", "model.npz"},
        "hog": {"bundle.json", "model.json", "model.npz"},
        "convnet": {"bundle.json", "weights.safetensors"},
    }
    for name, record in stored["records"].items():
        files = record["bundle_files"]
        assert set(files) == expected[name]
        folder = Path(record["run_dir"]) / BUNDLE_DIR
        for file, digest in files.items():
            assert sha256_bytes((folder / file).read_bytes()) == digest
        assert record["bundle_sha256"] == files_digest(files)
        manifest = json.loads((folder / "bundle.json").read_text())
        assert manifest["class_names"] == record["class_names"]
        assert manifest["input"]["size"] == [8, 8] and manifest["input"]["channels"] == 1


def _mixed_folder(root: Path) -> Path:
    """train/ and test/ of circles, squares and stripes, each image of its own size (24-48 px)."""
    import cv2

    rng = np.random.default_rng(0)
    for part, n in (("train", 16), ("test", 6)):
        for kind in ("circle", "square", "stripes"):
            folder = root / part / kind
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(24, 49, size=2))
                img = rng.integers(0, 40, size=(h, w), dtype=np.uint8)
                c, r = (w // 2, h // 2), min(h, w) // 3
                if kind == "circle":
                    cv2.circle(img, c, r, 220, -1)
                elif kind == "square":
                    cv2.rectangle(img, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), 220, -1)
                else:
                    img[:, ::4] = 220
                cv2.imwrite(str(folder / f"{i}.png"), img)
    return root


@pytest.mark.parametrize(
    ("pipeline", "over"), [("bovw", {"preset": "tiny"}), ("baseline", {"method": "nearest-mean"})]
)
def test_a_run_on_images_of_mixed_sizes_predicts_its_stored_scores(
    tmp_path: Path, pipeline: str, over: dict[str, str]
) -> None:
    """BoVW describes each image at its own aspect, the baseline its centre-cropped frame."""
    data = _mixed_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    record = run_pipeline(pipeline, str(data), overrides=over, runs_dir=runs, n_jobs=1,
                          progress=False)  # fmt: skip
    manifest = json.loads((Path(record["run_dir"]) / BUNDLE_DIR / "bundle.json").read_text())
    assert manifest["input"]["aspect"] == "kept"
    assert_predicts_stored_scores(runs, record["run_id"], data / "test", top=3)


@pytest.mark.parametrize(
    "params",
    [
        {"kernel": "chi2", "solver": "exact"},
        {"kernel": "chi2", "solver": "map"},
        {"kernel": "intersection", "solver": "map", "n_components": 30},
        {"kernel": "rbf", "solver": "map", "n_components": 30, "linear_solver": "lbfgs"},
        {"kernel": "hellinger", "solver": "map", "linear_solver": "lbfgs"},
    ],
)
def test_every_kernel_svm_variant_scores_the_same_after_its_bundle_state(
    params: dict[str, Any],
) -> None:
    from bovw_vs_convnet.bovw.bundle import CLASSES
    from bovw_vs_convnet.estimators.estimator_state import read_state
    from bovw_vs_convnet.estimators.kernel_svm import KernelSvm

    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.random((90, 12)) + np.eye(3, 12)[y]  # non-negative histograms
    svm = KernelSvm(C_grid=(0.1, 1.0), **params).fit(x[:60], y[:60], x[60:75], y[60:75])
    back = read_state(state_files({"classifier_": svm}, CLASSES), CLASSES)["classifier_"]
    assert type(back) is KernelSvm and back.solver_ == params["solver"]
    kernel_svm(back, "classifier_", n_features=12, n_classes=3)  # its checks pass it
    np.testing.assert_array_equal(back.decision_function(x[75:]), svm.decision_function(x[75:]))
    with pytest.raises(StateError, match=r"^classifier_.n_features_in_ is 12, outside \[13, 13\]$"):
        kernel_svm(back, "classifier_", n_features=13, n_classes=3)
