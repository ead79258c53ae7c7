"""Dataset sources: IDX, CIFAR-10 batches, digits, synthetic shapes and ImageFolder trees."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from bovw_vs_convnet.data import LazyImages, load_dataset
from bovw_vs_convnet.data.datasets import load_imagefolder
from bovw_vs_convnet.data.idx import parse_idx, write_idx
from bovw_vs_convnet.data.synthetic import make_shapes
from bovw_vs_convnet.errors import DataError

IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def write_tiny_idx(
    folder: Path, manifests: Path, *, gz: bool = True, name: str = "tiny-idx"
) -> dict[str, np.ndarray]:
    """Four small IDX files in ``folder`` and their manifest (with checksums) in ``manifests``."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images": rng.integers(0, 256, (6, 5, 4), dtype=np.uint8),
        "train-labels": np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8),
        "test-images": rng.integers(0, 256, (3, 5, 4), dtype=np.uint8),
        "test-labels": np.array([2, 1, 0], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    manifests.mkdir(parents=True, exist_ok=True)
    entries = []
    for (part, role), fname in IDX_FILES.items():
        path = write_idx(folder / (fname + (".gz" if gz else "")), arrays[f"{part}-{role}"])
        full = path.read_bytes()
        full = gzip.decompress(full) if gz else full
        entries.append(
            f'[[files]]\npath = "{fname}"\npart = "{part}"\nrole = "{role}"\n'
            f'size = {len(full)}\nsha256 = "{hashlib.sha256(full).hexdigest()}"\n'
        )
    (manifests / f"{name}.toml").write_text(
        f'name = "{name}"\ndescription = "tiny"\nformat = "idx"\nclasses = ["a", "b", "c"]\n'
        'image_size = [5, 4]\nchannels = 1\nlicence = "CC0"\n'
        f'[source]\nhow = "written by a test"\nsubdir = "{name}"\ntorchvision = "TinyIdx"\n'
        "[split]\nofficial = true\ntrain = 6\ntest = 3\n\n" + "\n".join(entries)
    )
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dataset_loads_gz_and_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    arrays = write_tiny_idx(tmp_path / "data" / "tiny-idx", tmp_path / "m", gz=gz)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    ds = load_dataset("tiny-idx", data_dir=tmp_path / "data")
    assert ds.train.array()[..., 0].tolist() == arrays["train-images"].tolist()
    assert ds.train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert ds.test is not None and ds.test.labels.tolist() == [2, 1, 0]
    assert ds.train.ids[:2].tolist() == ["train/00000", "train/00001"]
    assert ds.test.ids[-1] == "test/00002"
    assert (ds.train.images.shape, ds.train.class_names) == ((6, 5, 4, 1), ("a", "b", "c"))


def test_idx_dataset_found_in_torchvision_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_idx(tmp_path / "data" / "TinyIdx" / "raw", tmp_path / "m")
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    assert len(load_dataset("tiny-idx", data_dir=tmp_path / "data").train) == 6


def test_idx_dataset_found_through_env_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tiny_idx(tmp_path / "data" / "tiny-idx", tmp_path / "m")
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("BVC_DATA_DIR", str(tmp_path / "data"))
    assert len(load_dataset("tiny-idx").test) == 3  # type: ignore[arg-type]


def test_missing_mnist_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset 'mnist' not found .*bvc data fetch mnist"):
        load_dataset("mnist", data_dir=tmp_path)


def test_truncated_idx_is_refused() -> None:
    data = bytes([0, 0, 8, 1]) + np.array([5], dtype=">i4").tobytes() + b"abc"
    with pytest.raises(DataError, match="IDX data has 3 bytes, header says 5"):
        parse_idx(data, "x.idx")


def test_non_idx_bytes_are_refused() -> None:
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\x89PNG....", "x.png")


def test_cifar_batches_load_in_hwc_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    chw = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        with (folder / name).open("wb") as fh:
            pickle.dump({"data": chw.reshape(4, -1), "labels": [0, 1, 2, 9]}, fh)
    entries = "".join(
        f'[[files]]\npath = "{n}"\npart = "{"test" if n == "test_batch" else "train"}"\n'
        f'md5 = "{hashlib.md5((folder / n).read_bytes()).hexdigest()}"\n'
        for n in names
    )
    m = tmp_path / "m"
    m.mkdir()
    manifest = Path("data_manifests/cifar10.toml").read_text()
    head = manifest[: manifest.index("[split]")]
    (m / "cifar10.toml").write_text(head + "[split]\nofficial = true\n" + entries)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(m))
    ds = load_dataset("cifar10", data_dir=tmp_path / "data")
    assert ds.train.images.shape == (20, 32, 32, 3)
    assert ds.test is not None and ds.test.labels.tolist() == [0, 1, 2, 9]
    assert ds.train.array()[1, 5, 7].tolist() == chw[1, :, 5, 7].tolist()  # (H, W, C)


def test_digits_are_uint8_8x8_and_unsplit() -> None:
    ds = load_dataset("digits")
    assert ds.train.images.shape == (1797, 8, 8, 1)
    assert ds.test is None
    arr = ds.train.array()
    assert (arr.dtype, int(arr.min()), int(arr.max())) == (np.uint8, 0, 255)
    assert ds.train.ids[42] == "00042"


def test_synthetic_is_deterministic_and_seed_dependent() -> None:
    a, la = make_shapes(3, seed=5)
    b, lb = make_shapes(3, seed=5)
    c, _ = make_shapes(3, seed=6)
    assert (
        a.shape == (18, 32, 32, 1)
        and la.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3 + [5] * 3
    )
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_synthetic_dataset_follows_its_manifest() -> None:
    ds = load_dataset("synthetic")
    assert (len(ds.train), len(ds.test)) == (1200, 600)  # type: ignore[arg-type]
    assert ds.train.class_names[0] == "circle"
    assert not np.array_equal(ds.train.array()[:600], ds.test.array())  # type: ignore[union-attr]


def _write_tree(root: Path, layout: dict[str, list[tuple[int, int]]], color: bool = True) -> None:
    rng = np.random.default_rng(2)
    for cls, sizes in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            shape = (h, w, 3) if color else (h, w)
            cv2.imwrite(str(root / cls / f"{i:03d}.png"), rng.integers(0, 256, shape, np.uint8))


def test_imagefolder_keeps_train_test_division(tmp_path: Path) -> None:
    _write_tree(tmp_path / "train", {"cat": [(10, 12)] * 3, "dog": [(10, 12)] * 2})
    _write_tree(tmp_path / "test", {"cat": [(10, 12)], "dog": [(10, 12)]})
    ds = load_dataset(str(tmp_path))
    assert ds.name == f"imagefolder:{tmp_path.resolve()}"
    assert ds.train.ids.tolist()[:2] == ["train/cat/000.png", "train/cat/001.png"]
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert ds.test is not None and ds.test.ids.tolist() == ["test/cat/000.png", "test/dog/000.png"]
    assert (ds.manifest.official_split, ds.manifest.classes) == (True, ("cat", "dog"))
    assert ds.train.images.shape == (5, 10, 12, 3)


def test_flat_imagefolder_of_mixed_sizes_keeps_their_aspect_in_grayscale(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": [(8, 8), (10, 6)], "b": [(12, 10)]}, color=False)
    ds = load_imagefolder(tmp_path)
    assert ds.test is None
    assert ds.train.images.shape == (3, 8, 8, 1)  # frame: the median shorter side, 8
    assert ds.manifest.image_size == (8, 8)
    assert ds.train.native is not None
    assert ds.train.native.native_sizes.tolist() == [[8, 8], [10, 6], [12, 10]]


def test_flat_imagefolder_squashed_to_median_size_with_aspect_squash(tmp_path: Path) -> None:
    from bovw_vs_convnet.data.folder_tree import scan_tree
    from bovw_vs_convnet.data.imagefolder import load_tree

    _write_tree(tmp_path, {"a": [(8, 8), (10, 6)], "b": [(12, 10)]}, color=False)
    parts, size, channels = load_tree(scan_tree(tmp_path), aspect="squash")
    assert parts["all"].images.shape == (3, 10, 8, 1)  # median height 10, median width 8
    assert (size, channels, parts["all"].native) == ((10, 8), 1, None)


def test_imagefolder_image_size_overrides_the_median(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": [(8, 8)], "b": [(12, 10)]})
    ds = load_dataset(str(tmp_path), image_size=(4, 5))
    assert ds.train.images.shape == (2, 4, 5, 3)


def test_image_size_is_refused_for_manifest_datasets() -> None:
    with pytest.raises(DataError, match="image_size applies to image folders only"):
        load_dataset("digits", image_size=(4, 4))


def test_imagefolder_manifest_reads_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tree(tmp_path / "data" / "pets", {"cat": [(8, 8)] * 2, "dog": [(9, 9)] * 2})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pets.toml").write_text(
        'name = "pets"\ndescription = "d"\nformat = "imagefolder"\nclasses = ["cat", "dog"]\n'
        'image_size = [6, 6]\nchannels = 3\nlicence = "CC0"\n[source]\nhow = "by hand"\n'
        "[split]\nofficial = false\ntrain = 4\n"
    )
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    ds = load_dataset("pets", data_dir=tmp_path / "data")
    assert (ds.name, ds.train.name, ds.train.images.shape, ds.test) == (
        "pets",
        "pets",
        (4, 6, 6, 3),
        None,
    )


def test_imagefolder_reads_lazily_when_asked(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": [(6, 6)] * 2, "b": [(6, 6)] * 2})
    ds = load_imagefolder(tmp_path, lazy=True)
    assert isinstance(ds.train.images, LazyImages)
    assert ds.train.subset([3]).array().shape == (1, 6, 6, 3)


def test_large_trees_are_read_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_tree(tmp_path, {"a": [(6, 6)] * 2, "b": [(6, 6)] * 2})  # 4 x 6x6x3 = 432 bytes
    monkeypatch.setenv("BVC_RESIDENT_MB", str(431 / 1024**2))
    assert load_imagefolder(tmp_path).train.is_lazy
    monkeypatch.setenv("BVC_RESIDENT_MB", str(432 / 1024**2))
    assert not load_imagefolder(tmp_path).train.is_lazy


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": [(6, 6)] * 2, "b": [(6, 6)]})
    (tmp_path / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"cannot read image .*b/bad\.png"):
        load_imagefolder(tmp_path)


def test_truncated_image_is_named(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"a": [(16, 16)] * 2, "b": [(16, 16)]})
    good = (tmp_path / "b" / "000.png").read_bytes()
    (tmp_path / "b" / "001.png").write_bytes(good[:60])  # header intact, pixels cut off
    with pytest.raises(DataError, match=r"cannot read image .*b/001\.png"):
        load_imagefolder(tmp_path)


def test_imagefolder_needs_two_classes(tmp_path: Path) -> None:
    _write_tree(tmp_path, {"only": [(6, 6)] * 2})
    with pytest.raises(DataError, match="needs at least 2 class subfolders, found 1"):
        load_dataset(str(tmp_path))


def test_manifest_name_wins_over_a_folder_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tree(tmp_path / "digits", {"a": [(6, 6)], "b": [(6, 6)]})
    monkeypatch.chdir(tmp_path)
    assert load_dataset("digits").name == "digits"
    assert load_dataset("./digits").name == f"imagefolder:{(tmp_path / 'digits').resolve()}"


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere"))


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_loads_fast() -> None:
    import time

    start = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    seconds = time.perf_counter() - start
    assert ds.train.images.shape == (60000, 28, 28, 1)
    assert ds.test is not None and ds.test.images.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.train.labels).tolist() == [6000] * 10
    assert seconds < 5.0


def test_a_manifest_dataset_carries_its_mirror_ok_into_every_part() -> None:
    from bovw_vs_convnet.data import make_split

    ds = load_dataset("digits")  # its manifest: mirror_ok = false
    split = make_split(ds, seed=0, train_size=100)
    assert split.val is not None
    parts = (ds.train, split.train, split.val, split.test)
    assert [p.mirror_ok for p in parts] == [False, False, False, False]


def _two_part_tree(root: Path) -> None:
    _write_tree(root / "train", {"a": [(6, 6)] * 2, "b": [(6, 6)] * 2})
    _write_tree(root / "test", {"a": [(6, 6)], "b": [(6, 6)]})


def test_an_imagefolder_may_be_mirrored_by_default(tmp_path: Path) -> None:
    _two_part_tree(tmp_path)
    ds = load_imagefolder(tmp_path)
    assert ds.test is not None
    assert (ds.train.mirror_ok, ds.test.mirror_ok, ds.manifest.mirror_ok) == (True, True, True)


def test_an_imagefolder_told_not_to_be_mirrored_says_so_in_every_part(tmp_path: Path) -> None:
    _two_part_tree(tmp_path)
    ds = load_imagefolder(tmp_path, mirror_ok=False)
    assert ds.test is not None
    assert (ds.train.mirror_ok, ds.test.mirror_ok, ds.manifest.mirror_ok) == (False, False, False)


def test_reading_a_tree_off_a_terminal_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bovw_vs_convnet.data import imagefolder

    _write_tree(tmp_path, {"a": [(6, 6)] * 2, "b": [(6, 6)] * 2})
    images = LazyImages(sorted(tmp_path.glob("*/*.png")), (6, 6), 3)
    monkeypatch.setattr(imagefolder, "PROGRESS_THRESHOLD", 3)
    imagefolder.read_all(images, workers=1)  # stderr is captured: not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.startswith("reading images: 4/4 img in ") and err.count("\n") == 1


def test_reading_a_small_tree_shows_no_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bovw_vs_convnet.data import imagefolder

    _write_tree(tmp_path, {"a": [(6, 6)] * 2, "b": [(6, 6)] * 2})
    images = LazyImages(sorted(tmp_path.glob("*/*.png")), (6, 6), 3)
    assert imagefolder.read_all(images, workers=1, progress="lines").shape == (4, 6, 6, 3)
    assert capsys.readouterr().err == ""
