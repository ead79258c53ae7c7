"""CIFAR-100 on a tiny pickle in the official format (cifar-100-python/{train,test,meta})."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data import load_dataset
from bovw_vs_convnet.data.cifar import coarse_labels
from bovw_vs_convnet.data.manifest import get_manifest
from bovw_vs_convnet.errors import DataError

FINE = ["apple", "bear", "whale"]
COARSE = ["fruit_and_vegetables", "large_carnivores", "aquatic_mammals"]
COARSE_OF = {"apple": 0, "bear": 1, "whale": 2}


def _batch(n_per_class: int, seed: int, coarse_of: dict[str, int] = COARSE_OF) -> bytes:
    """A pickled file as CIFAR-100's: bytes keys decoded as latin1, data (N, 3072) uint8."""
    rng = np.random.default_rng(seed)
    fine = np.repeat(np.arange(len(FINE)), n_per_class)
    entry = {
        "filenames": [f"img_{i}.png".encode() for i in range(len(fine))],
        "batch_label": b"training batch 1 of 1",
        "fine_labels": fine.tolist(),
        "coarse_labels": [coarse_of[FINE[y]] for y in fine],
        "data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8),
    }
    return pickle.dumps(entry, protocol=2)


def _write(folder: Path, files: dict[str, bytes]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: hashlib.md5(content).hexdigest() for name, content in files.items()}


def _fixture(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    files: dict[str, bytes] | None = None,
    md5: dict[str, str] | None = None,
) -> Path:
    """The three files under <data>/cifar-100-python and a manifest of the real one's shape."""
    meta = pickle.dumps({"fine_label_names": FINE, "coarse_label_names": COARSE}, protocol=2)
    files = files or {"train": _batch(4, 0), "test": _batch(2, 1), "meta": meta}
    sums = _write(tmp_path / "data" / "cifar-100-python", files)
    sums.update(md5 or {})
    coarse = COARSE
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cifar100.toml").write_text(
        f'name = "cifar100"\ndescription = "fixture"\nformat = "cifar100"\n'
        f"classes = {json.dumps(FINE)}\nimage_size = [32, 32]\nchannels = 3\nmirror_ok = true\n"
        f'licence = "test"\n[source]\nhow = "a fixture"\nsubdir = "cifar-100-python"\n'
        f"[split]\nofficial = true\ntrain = 12\ntest = 6\n"
        + "".join(
            f'[[files]]\npath = "{n}"\npart = "{n}"\nmd5 = "{sums[n]}"\n'
            for n in ("train", "test", "meta")
        )
        + f"[params]\ncoarse_classes = {json.dumps(coarse)}\n[params.coarse_of]\n"
        + "".join(f'{f} = "{coarse[COARSE_OF[f]]}"\n' for f in FINE)
    )
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(manifests))
    monkeypatch.setenv("BVC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "cifar-100-python"


def test_fine_labels_are_the_classes_and_coarse_labels_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixture(tmp_path, monkeypatch)
    ds = load_dataset("cifar100")
    assert ds.train.class_names == ("apple", "bear", "whale")
    assert ds.train.images.shape == (12, 32, 32, 3) and ds.test is not None
    assert ds.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.test.ids.tolist()[:2] == ["test/00000", "test/00001"]
    assert coarse_labels(ds.test, ds.manifest).tolist() == [0, 0, 1, 1, 2, 2]


def test_a_wrong_checksum_is_exit_2_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _fixture(tmp_path, monkeypatch, md5={"train": "0" * 32})
    result = CliRunner().invoke(main, ["data", "verify", "cifar100"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: checksum mismatch: {folder / 'train'} md5 ")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar100")


def test_a_pickle_that_calls_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("true",))

    meta = pickle.dumps({"fine_label_names": FINE, "coarse_label_names": COARSE}, protocol=2)
    evil = pickle.dumps({"data": Evil()}, protocol=2)
    _fixture(tmp_path, monkeypatch, files={"train": evil, "test": _batch(2, 1), "meta": meta})
    with pytest.raises(DataError, match=r"calls posix\.system, which a CIFAR batch never holds"):
        load_dataset("cifar100")


def test_coarse_labels_that_contradict_the_manifest_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = _batch(2, 1, {"apple": 0, "bear": 2, "whale": 2})
    meta = pickle.dumps({"fine_label_names": FINE, "coarse_label_names": COARSE}, protocol=2)
    _fixture(tmp_path, monkeypatch, files={"train": _batch(4, 0), "test": wrong, "meta": meta})
    with pytest.raises(DataError) as err:
        load_dataset("cifar100")
    assert str(err.value) == (
        "dataset 'cifar100': test image 2 ('bear') has coarse label 2, "
        "the manifest says 'large_carnivores'"
    )


def test_the_real_manifest_lists_100_classes_in_20_superclasses() -> None:
    m = get_manifest("cifar100")
    assert m.n_classes == 100 and len(m.params["coarse_classes"]) == 20
    per_coarse = np.bincount([m.params["coarse_classes"].index(m.params["coarse_of"][c])
                              for c in m.classes])  # fmt: skip
    assert per_coarse.tolist() == [5] * 20
    assert [e.md5 for e in m.files] == [
        "16019d7e3df5f24257cddd939b257f8d",
        "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "7973b15100ade9c7d40fb424638fde48",
    ]
