"""Attacks on model bundles, image folders, settings and printed output: one line, never a crash.

Each test replays one attack of the third trust audit (issue 25) on a copy of a stored
run or a small synthetic folder. "Re-signed" means the attacker also rewrote the
record's ``bundle_files`` and ``bundle_sha256`` (in ``record.json`` and in the SQLite
row), so only the bundle's own checks stand. Every attack must end in exit code 2 and
one line, or in a warning with the rest of the work done; none in a traceback, a
crash, a hang, or a large allocation (``tracemalloc`` counts numpy's and zlib's
buffers). The seeded fuzz loop at the end mutates bundle.json, model.json and
model.npz of the stored runs: every mutation loads, or is refused with a DataError.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
import signal
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_runs import invoke, one_line, resign, stored_runs
from PIL import Image

from bovw_vs_convnet.data.folder_tree import open_image_file, scan_tree
from bovw_vs_convnet.errors import BvcError
from bovw_vs_convnet.harness import bundle as bundle_mod
from bovw_vs_convnet.harness.bundle import BUNDLE_DIR, load_bundle
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

MIB = 1024**2


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of each pipeline on digits (tests/bundle_runs.py), shared with test_predict."""
    return stored_runs(tmp_path_factory)


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail the test, instead of hanging it, when the block takes longer than ``seconds``."""

    def stop(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- re-signing


def copy_run(stored: dict[str, Any], pipeline: str, runs: Path) -> tuple[RunRecord, Path]:
    """A runs folder of its own holding a copy of the stored run; (record, its bundle folder)."""
    record = stored["records"][pipeline]
    shutil.copytree(Path(record["run_dir"]), runs / record["run_id"])
    ResultStore(runs).recover()
    return record, runs / record["run_id"] / BUNDLE_DIR


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_arrays(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path, **arrays)


def array_name(model_json: Path, *attrs: str) -> str:
    """The npz name of the array at attribute path ``attrs`` of a state tree."""
    node: Any = json.loads(model_json.read_text())["state"]
    for attr in attrs:
        if node.get("$") == "dict":
            node = dict((k, v) for k, v in node["items"])[attr]
        elif node.get("$") == "object":
            node = node["state"][attr]
        elif isinstance(attr, str) and attr.isdigit():
            node = node[int(attr)]
    while isinstance(node, list):
        node = node[0]
    return str(node["name"])


def predict_error(runs: Path, run_id: str, stored: dict[str, Any]) -> str:
    """``bvc predict`` of the first test image: exit code 2 asserted, the error's one line."""
    image = sorted(stored["images"].iterdir())[0]
    result = invoke("predict", run_id, str(image), "--runs-dir", str(runs))
    assert result.exit_code == 2, result.output
    return one_line(result.output)


# --------------------------------------------------------------------------- row 4: npz bombs


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def test_an_npz_member_that_inflates_is_refused_before_it_is_read(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    record, folder = copy_run(stored, "baseline", runs)
    npz = folder / "model.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    n = 64 * MIB // 8  # a 64 MiB array deflated to 64 kilobytes
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as out:
        for name, a in arrays.items():
            with out.open(f"{name}.npy", "w", force_zip64=True) as fh:
                if name == "a0":
                    fh.write(_npy_header((n,)))
                    for _ in range(16):
                        fh.write(bytes(4 * MIB))
                else:
                    np.lib.format.write_array(fh, a, allow_pickle=False)
    assert npz.stat().st_size < MIB
    resign(runs, record["run_id"])
    tracemalloc.start()
    try:
        line = predict_error(runs, record["run_id"], stored)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert line.endswith(
        "model.npz: array 'a0.npy' is compressed (bundle arrays are stored plainly)"
    )
    assert peak < 16 * MIB  # the member was never inflated


def test_an_npz_member_declaring_more_than_it_holds_is_refused(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    record, folder = copy_run(stored, "baseline", runs)
    npz = folder / "model.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    with zipfile.ZipFile(npz, "w") as out:  # stored, as numpy.savez writes
        for name, a in arrays.items():
            body = io.BytesIO()
            np.lib.format.write_array(body, a, allow_pickle=False)
            data = body.getvalue()
            if name == "a0":  # a header of 10**12 floats over the array's own bytes
                data = _npy_header((10**12,)) + data[len(_npy_header(a.shape, a.dtype.str)) :]
            out.writestr(f"{name}.npy", data)
    resign(runs, record["run_id"])
    line = predict_error(runs, record["run_id"], stored)
    assert "model.npz: array 'a0.npy' declares 8000000000000 bytes in a member of" in line


# --------------------------------------------------------------------------- rows 5, 6: folders


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _two_classes(root: Path) -> Path:
    for label, cls in enumerate(("a", "b")):
        for i in range(4):
            _png(root / cls / f"{i}.png", 40 + 150 * label + i)
    return root


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _two_classes(tmp_path / "folder")
    _png(Path(os.fsdecode(bytes(root / "a") + b"/bad\xff.png")))
    with caplog.at_level(logging.WARNING):
        tree = scan_tree(root)
    assert [p.name for p, _ in tree.parts["all"]] == ["0.png", "1.png", "2.png", "3.png"] * 2
    assert caplog.messages == [
        f"image folder {root}: 1 file or folder whose name is not UTF-8 skipped "
        f"(first: {root}/a/bad\\xff.png)"
    ]


def test_a_run_and_a_prediction_go_past_a_file_name_that_is_not_utf8(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _two_classes(tmp_path / "folder")
    bad = Path(os.fsdecode(bytes(root / "b") + b"/bad\xff.png"))
    _png(bad, 200)
    runs = tmp_path / "runs"
    record = run_pipeline("baseline", str(root), seed=0, runs_dir=runs, progress=False)
    assert record["n_train"] + record["n_test"] + record.get("n_val", 0) <= 8
    # named on the command line, the file is read through its bytes; its name printed escaped
    result = invoke("predict", record["run_id"], str(bad), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[1]
    assert row.startswith(f"{root}/b/bad\\xff.png  b ")
    # in a folder, it is skipped with a warning and the rest is predicted
    with caplog.at_level(logging.WARNING):
        result = invoke("predict", record["run_id"], str(root), "--json", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output.splitlines()[-1])["predictions"]) == 8
    assert any("1 file or folder whose name is not UTF-8 skipped" in m for m in caplog.messages)


def test_a_fifo_named_like_an_image_is_skipped_never_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _two_classes(tmp_path / "folder")
    fifo = root / "a" / "x.png"
    os.mkfifo(fifo)
    with deadline(20), caplog.at_level(logging.WARNING):
        tree = scan_tree(root)
        with pytest.raises(BvcError, match=rf"^image {fifo} is not a regular file$"):
            open_image_file(fifo)  # no writer: a blocking open would wait for ever
        result = invoke("predict", "any-run", str(fifo))
    assert len(tree.parts["all"]) == 8
    assert caplog.messages[0].startswith(
        f"image folder {root}: 1 file that is not a regular file (a FIFO, socket or device)"
    )
    assert result.exit_code == 2
    assert one_line(result.output) == f"error: no image file {fifo} (or not a regular file)"


def test_a_caltech_tree_that_links_to_the_root_is_refused_before_it_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from bovw_vs_convnet.data.datasets import load_dataset

    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "manifests"))
    monkeypatch.setenv("BVC_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "caltech101.toml").write_text(
        'name = "caltech101"\ndescription = "fixture"\nformat = "caltech"\n'
        'classes = ["Faces", "accordion"]\nimage_size = [300, 300]\nchannels = 3\n'
        'mirror_ok = true\nlicence = "test"\n[source]\nhow = "a fixture"\nsubdir = "caltech101"\n'
        '[split]\nofficial = false\n[params]\ntree = "101_ObjectCategories"\nexclude = []\n'
        f'archive = "101.tar.gz"\narchive_sha256 = "{"0" * 64}"\n'
    )
    (tmp_path / "data" / "caltech101").mkdir(parents=True)
    (tmp_path / "data" / "caltech101" / "101_ObjectCategories").symlink_to("/")
    start = time.perf_counter()
    with pytest.raises(BvcError) as info:
        load_dataset("caltech101")
    assert time.perf_counter() - start < 2
    assert str(info.value) == (
        f"dataset 'caltech101': its tree {tmp_path}/data/caltech101/101_ObjectCategories "
        f"resolves to /, outside {tmp_path}/data/caltech101; refusing to read it (put the "
        "tree itself there)"
    )


# --------------------------------------------------------------------------- rows 8, 10: settings


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("epochs=1e300", "setting 'epochs' must be in [1, 10000], got 1e+300"),
        ("label_smoothing=2", "setting 'label_smoothing' must be in [0, 1), got 2.0"),
        ("weight_decay=-1e10", "setting 'weight_decay' must be >= 0, got -10000000000.0"),
        ("max_shift=-1", "setting 'max_shift' must be in [0, 1024], got -1"),
    ],
)
def test_a_setting_out_of_range_is_one_line_before_anything_is_read(
    tmp_path: Path, setting: str, line: str
) -> None:
    result = invoke(
        "run", "convnet", "--dataset", "no-such-dataset", "--set", setting,
        "--runs-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert one_line(result.output) == f"error: {line}"  # the setting, not the missing dataset
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("2*"))


# --------------------------------------------------------------------------- row 9: bundle fields


def _deep(path: Path) -> None:
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)


def _set_pre(key: str, value: Any) -> Callable[[Any], None]:
    def change(m: Any) -> None:
        m["convnet"]["preprocessing"][key] = value

    return change


def _no_mean_std(m: Any) -> None:
    m["convnet"]["preprocessing"].update(mean=[], std=[])


def _input_size(m: Any) -> None:
    m["input"]["size"] = [200_000, 200_000]
    m["convnet"]["preprocessing"]["image_size"] = [200_000, 200_000]


def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load, save

    tensors = load((folder / "weights.safetensors").read_bytes())
    tensors = {k: v.clone().fill_(float("nan")) for k, v in tensors.items()}
    (folder / "weights.safetensors").write_bytes(
        save(tensors, metadata={"format": "bvc-convnet-1"})
    )


def _method_shadowed(folder: Path) -> None:
    def change(tree: Any) -> None:
        svm = dict((k, v) for k, v in tree["state"]["items"])["svm_"]
        svm["state"]["decision_function"] = 5

    edit_json(folder / "model.json", change)


def _shape(*attrs: str, cut: int = 1) -> Callable[[Path], None]:
    def attack(folder: Path) -> None:
        name = array_name(folder / "model.json", *attrs)
        edit_arrays(folder / "model.npz", lambda a: a.update({name: a[name][..., :-cut]}))

    return attack


ATTACKS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "3 class names": (
        "baseline",
        lambda f: edit_json(f / "bundle.json", lambda m: m.update(class_names=["x", "y", "z"])),
        "its bundle is refused: bundle.json: its 3 class names are not the run's",
    ),
    "a number for decision_function": (
        "baseline",
        _method_shadowed,
        "the state gives bovw_vs_convnet.estimators.linear_svm:PrimalLinearSvm."
        "decision_function, a method of its class, a value",
    ),
    "a coef_ of the wrong shape": (
        "baseline",
        _shape("svm_", "coef_"),
        "svm_.coef_ has shape (10, 63), not 10x64",
    ),
    "a vocabulary of the wrong shape": (
        "bovw",
        _shape("encoder_", "vocabulary_"),
        "encoder_.vocabulary_ has shape (32, 127), not 32x128",
    ),
    "landmarks of the wrong shape": (
        "hog",
        _shape("classifier_", "map_", "map_", "components_"),
        "classifier_.map_.components_ has shape (200, 323), not *x324",
    ),
    "a 100 000-deep bundle.json": (
        "convnet",
        lambda f: _deep(f / "bundle.json"),
        "bundle.json nests 100000 deep (at most 64)",
    ),
    "a 100 000-deep model.json": (
        "bovw",
        lambda f: _deep(f / "model.json"),
        "model.json nests 100000 deep (at most 64)",
    ),
    "mean and std []": (
        "convnet",
        lambda f: edit_json(f / "bundle.json", _no_mean_std),
        "the bundle's mean and std do not give one value per channel",
    ),
    "a std of 0": (
        "convnet",
        lambda f: edit_json(f / "bundle.json", _set_pre("std", [0.0])),
        "the bundle's mean and std are not finite, positive numbers",
    ),
    "out_channels=1000": (
        "convnet",
        lambda f: edit_json(f / "bundle.json", _set_pre("out_channels", 1000)),
        "the bundle's input adaptation does not fit model 'lenet5'",
    ),
    "an input of 200 000 squared": (
        "convnet",
        lambda f: edit_json(f / "bundle.json", _input_size),
        "its bundle is refused: bundle.json gives input 200000x200000, above the pixel limit "
        "of 40 megapixels",
    ),
    "weights that are all NaN": (
        "convnet",
        _nan_weights,
        "weights.safetensors: 'classifier.0.bias' holds values that are not finite",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_resigned_bundle_field_that_disagrees_is_refused_in_one_line(
    stored: dict[str, Any], tmp_path: Path, attack: str
) -> None:
    pipeline, change, why = ATTACKS[attack]
    runs = tmp_path / "runs"
    record, folder = copy_run(stored, pipeline, runs)
    change(folder)
    resign(runs, record["run_id"])
    tracemalloc.start()
    try:
        line = predict_error(runs, record["run_id"], stored)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert line.startswith(f"error: run {record['run_id']}: ")
    assert line.endswith(why)
    assert peak < 256 * MIB


def test_a_record_resigned_for_3_classes_meets_the_fitted_class_count(
    stored: dict[str, Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    record, folder = copy_run(stored, "baseline", runs)
    names = ["x", "y", "z"]
    edit_json(folder / "bundle.json", lambda m: m.update(class_names=names))
    resign(runs, record["run_id"], class_names=names, n_classes=3)
    line = predict_error(runs, record["run_id"], stored)
    assert line == (
        f"error: run {record['run_id']}: its bundle is refused: n_classes_ is 10, outside [3, 3]"
    )


def test_export_refuses_logits_that_are_not_finite() -> None:
    from types import SimpleNamespace

    from bovw_vs_convnet.cli.export import _random_pixels, _torch_logits

    class Overflowing:
        def decision_scores(self, images: Any) -> np.ndarray:
            return np.full((len(images), 2), np.inf)

    bundle = SimpleNamespace(
        run_id="r", image_size=(8, 8), channels=1, class_names=["a", "b"], pipeline=Overflowing()
    )
    with pytest.raises(BvcError, match=r"^run r: its model gives logits that are not finite$"):
        _torch_logits(bundle, _random_pixels(bundle))


# --------------------------------------------------------------------------- row 12: output


def test_newlines_and_escapes_in_class_and_file_names_cannot_forge_a_line(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    evil_class = "cat\n0.png  dog 99"
    osc_class = "dog\x1b]0;owned\x07"
    for label, cls in enumerate((evil_class, osc_class)):
        for i in range(4):
            _png(root / cls / f"{i}.png", 40 + 150 * label + i)
    image = tmp_path / "x\ny 0.99.png"
    _png(image, 40)
    runs = tmp_path / "runs"
    record = run_pipeline("baseline", str(root), seed=0, runs_dir=runs, progress=False)
    result = invoke("predict", record["run_id"], str(image), "--top", "2", "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()  # the header and one image: no forged line
    assert header.startswith("image")
    assert row.startswith(f"{tmp_path}/x\\ny 0.99.png  cat\\n0.png  dog 99  ")
    assert "dog\\x1b]0;owned\\x07" in row and "\x1b" not in result.output
    result = invoke("predict", record["run_id"], str(image), "--json", "--runs-dir", str(runs))
    out = json.loads(result.output)  # JSON: the names exact
    assert out["predictions"][0]["image"] == str(image)
    assert {t["class"] for t in out["predictions"][0]["top"]} == {evil_class, osc_class}


# --------------------------------------------------------------------------- fuzz


def _mutate_json(rng: random.Random, data: bytes) -> bytes:
    """One seeded mutation of a JSON file: a value replaced or removed, or its bytes cut."""
    how = rng.randrange(10)
    if how == 0:
        return data[: rng.randrange(len(data))]
    if how == 1:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
    tree = json.loads(data)
    spots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in list(items):
            spots.append((node, key))
            if isinstance(child, (dict, list)):
                walk(child)

    walk(tree)
    parent, key = rng.choice(spots)
    values = [0, -1, 1, 2**70, 1e308, -0.5, "", "x" * 50, None, True, [], {}, [1, 2, 3],
              ["a", "b", "c"], {"$": "array", "name": "a0"}, {"$": "object", "class": "os:system"},
              {"$": "float", "value": "nan"}, [[[[[[0]]]]]]]  # fmt: skip
    if how == 2 and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = rng.choice(values)
    return json.dumps(tree).encode()


def _mutate_npz(rng: random.Random, data: bytes) -> bytes:
    """One seeded mutation of an npz: an array reshaped, retyped, filled, cut or dropped."""
    how = rng.randrange(9)
    if how == 0:
        return data[: rng.randrange(len(data))]
    with np.load(io.BytesIO(data)) as z:
        arrays = {k: z[k] for k in z.files}
    name = rng.choice(sorted(arrays))
    a = arrays[name]
    if how == 1:
        del arrays[name]
    elif how == 2:
        arrays[name] = a.reshape(-1)
    elif how == 3:
        arrays[name] = a.reshape(-1)[: max(0, a.size - 1)]
    elif how == 4:
        arrays[name] = a.astype(rng.choice(["int8", "bool", "float16", "complex64", "<U3"]))
    elif how == 5:
        arrays[name] = np.full(a.shape, rng.choice([np.nan, np.inf, 1e300, -1, 10**6]))
    elif how == 6:
        arrays[name] = np.zeros((0, *a.shape[1:]), a.dtype)
    elif how == 7:
        arrays[name] = np.concatenate([a.reshape(-1)] * 2) if a.size else a
    else:
        arrays[name] = np.array(rng.randrange(-5, 10**7))
    buf = io.BytesIO()
    (np.savez_compressed if rng.random() < 0.1 else np.savez)(buf, **arrays)
    return buf.getvalue()


def _fuzz(stored: dict[str, Any], cases: int, seed: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Load ``cases`` seeded mutations of the stored bundles; the number refused.

    The bundle's verified files are replaced by the mutated ones (the hash check is what
    a re-signing attacker gets past), then loaded and probed as ``bvc predict`` does.
    """
    rng = random.Random(seed)
    store = ResultStore(stored["runs"])
    originals = {
        p: bundle_mod.verified_files(r, store.run_dir(r["run_id"]) / BUNDLE_DIR)
        for p, r in stored["records"].items()
    }
    files: dict[str, bytes] = {}
    monkeypatch.setattr(bundle_mod, "verified_files", lambda record, folder: dict(files))
    refused = 0
    for case in range(cases):
        pipeline = rng.choice(sorted(originals))
        files = dict(originals[pipeline])
        name = rng.choice(sorted(files))
        mutate = _mutate_npz if name.endswith(".npz") else _mutate_json
        if name.endswith(".safetensors"):
            name = "bundle.json"
        files[name] = mutate(rng, files[name])
        try:
            load_bundle(store, stored["records"][pipeline]["run_id"])
        except BvcError as exc:
            refused += 1
            assert "\n" not in str(exc), (case, pipeline, name)
    return refused


def test_seeded_bundle_mutations_load_or_are_one_line(
    stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _fuzz(stored, cases=100, seed=0, monkeypatch=monkeypatch)
    assert refused >= 60  # most mutations break something, and each said so in one line


@pytest.mark.slow
def test_two_thousand_seeded_bundle_mutations_load_or_are_one_line(
    stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = _fuzz(stored, cases=2000, seed=1, monkeypatch=monkeypatch)
    assert refused >= 1300
