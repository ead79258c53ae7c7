"""Caltech-101 and Caltech-256 on tiny fabricated fixtures in the official archives' layouts."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data import load_dataset
from bovw_vs_convnet.errors import DataError

# a few classes of each, in the official folder names; sizes vary as the real images do
C101 = {"BACKGROUND_Google": 3, "Faces": 4, "accordion": 5, "airplanes": 6}
C256 = {"001.ak47": 4, "002.american-flag": 5, "257.clutter": 3}


def _jpegs(folder: Path, counts: dict[str, int], pattern: str) -> None:
    rng = np.random.default_rng(0)
    for k, (cls, n) in enumerate(counts.items()):
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            h, w = 16 + 4 * ((i + k) % 3), 24 - 4 * (i % 2)
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            name = pattern.format(num=cls.split(".")[0], i=i + 1)
            Image.fromarray(pixels).save(folder / cls / name, quality=90)


def _tree101(root: Path) -> Path:
    _jpegs(root / "101_ObjectCategories", C101, "image_{i:04d}.jpg")
    return root / "101_ObjectCategories"


def _tree256(root: Path) -> Path:
    _jpegs(root / "256_ObjectCategories", C256, "{num}_{i:04d}.jpg")
    # the real archive holds a stray RENAME2 file (torchvision filters it): not an image
    (root / "256_ObjectCategories" / "001.ak47" / "RENAME2").write_text("not an image")
    return root / "256_ObjectCategories"


def _archive(tree: Path, dest: Path, name: str) -> Path:
    with tarfile.open(dest / name, "w:gz" if name.endswith(".gz") else "w") as tar:
        tar.add(tree, arcname=tree.name)
    return dest / name


def _digest(path: Path, algo: str) -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def _manifest(
    folder: Path,
    name: str,
    classes: list[str],
    *,
    tree: str,
    archive: str,
    exclude: list[str],
    sha256: str = "0" * 64,
    extra: str = "",
) -> None:
    """A fixture manifest of the real one's shape (format caltech) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\ndescription = "fixture"\nformat = "caltech"\n'
        f"classes = {json.dumps(classes)}\nimage_size = [300, 300]\nchannels = 3\n"
        f'mirror_ok = true\nlicence = "test"\n[source]\nhow = "a fixture"\nsubdir = "{name}"\n'
        f"[split]\nofficial = false\n[params]\n"
        f'tree = "{tree}"\nexclude = {json.dumps(exclude)}\narchive = "{archive}"\n'
        f'archive_sha256 = "{sha256}"\n{extra}'
    )


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "manifests"))
    monkeypatch.setenv("BVC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BVC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "manifests", tmp_path / "data"


def test_caltech101_tree_leaves_background_out(dirs: tuple[Path, Path]) -> None:
    manifests, data = dirs
    _tree101(data / "caltech101")
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"])  # fmt: skip
    ds = load_dataset("caltech101")
    assert ds.test is None
    assert ds.train.class_names == ("Faces", "accordion", "airplanes")
    assert np.bincount(ds.train.labels).tolist() == [4, 5, 6]
    assert ds.train.ids[0] == "Faces/image_0001.jpg"
    assert not any(i.startswith("BACKGROUND_Google/") for i in ds.train.ids)


def test_a_setting_keeps_the_background_class(dirs: tuple[Path, Path]) -> None:
    manifests, data = dirs
    _tree101(data / "caltech101-background")
    _manifest(manifests, "caltech101-background", sorted(C101),
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=[])  # fmt: skip
    ds = load_dataset("caltech101-background")
    assert ds.train.class_names[0] == "BACKGROUND_Google"
    assert np.bincount(ds.train.labels).tolist() == [3, 4, 5, 6]


def test_the_archive_is_verified_then_unpacked(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    manifests, data = dirs
    (data / "caltech101").mkdir(parents=True)
    tree = _tree101(tmp_path / "src")
    archive = _archive(tree, data / "caltech101", "101_ObjectCategories.tar.gz")
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"], sha256=_digest(archive, "sha256"),
              extra=f'archive_md5 = "{_digest(archive, "md5")}"\n')  # fmt: skip
    result = CliRunner().invoke(main, ["data", "verify", "caltech101"])
    assert result.exit_code == 0, result.output
    assert f"ok  {archive}  (sha256, md5)" in result.output
    assert len(load_dataset("caltech101").train) == 15
    assert (data / "caltech101" / "101_ObjectCategories" / "airplanes").is_dir()


def test_a_wrong_archive_checksum_is_exit_2_and_nothing_unpacked(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    manifests, data = dirs
    (data / "caltech101").mkdir(parents=True)
    archive = _archive(
        _tree101(tmp_path / "src"), data / "caltech101", "101_ObjectCategories.tar.gz"
    )
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"])  # sha256 of zeros  # fmt: skip
    runs = ["--runs-dir", str(tmp_path / "runs")]
    for args in (
        ["data", "verify", "caltech101"],
        ["run", "baseline", "--dataset", "caltech101", *runs],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"error: checksum mismatch: {archive} sha256 ")
        assert "Traceback" not in result.output
    assert not (data / "caltech101" / "101_ObjectCategories").exists()


def test_caltech256_folders_leave_clutter_and_stray_files_out(dirs: tuple[Path, Path]) -> None:
    manifests, data = dirs
    _tree256(data / "caltech256")
    _manifest(manifests, "caltech256", ["001.ak47", "002.american-flag"],
              tree="256_ObjectCategories", archive="256_ObjectCategories.tar",
              exclude=["257.clutter"])  # fmt: skip
    ds = load_dataset("caltech256")
    assert ds.train.class_names == ("001.ak47", "002.american-flag")
    assert np.bincount(ds.train.labels).tolist() == [4, 5]
    assert ds.train.ids[0] == "001.ak47/001_0001.jpg"


def test_a_tree_of_other_classes_is_refused(dirs: tuple[Path, Path]) -> None:
    manifests, data = dirs
    _tree101(data / "caltech101")
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes", "anchor"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"])  # fmt: skip
    with pytest.raises(DataError, match="lacks class 'anchor' of the manifest's 4"):
        load_dataset("caltech101")


def test_fetch_takes_the_archive_out_of_the_official_zip(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    manifests, data = dirs
    archive = _archive(_tree101(tmp_path / "src"), tmp_path, "101_ObjectCategories.tar.gz")
    zipped = tmp_path / "caltech-101.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(archive, "caltech-101/101_ObjectCategories.tar.gz")
    extra = (
        f'url = "{zipped.as_uri()}"\nurl_md5 = "{_digest(zipped, "md5")}"\n'
        'url_member = "caltech-101/101_ObjectCategories.tar.gz"\n'
    )
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"], sha256=_digest(archive, "sha256"),
              extra=extra)  # fmt: skip
    result = CliRunner().invoke(main, ["data", "fetch", "caltech101"])
    assert result.exit_code == 0, result.output
    tree = data / "caltech101" / "101_ObjectCategories"
    assert result.output == f"caltech101: 1 files verified in {tree}\n"
    assert not (data / "caltech101" / "caltech-101.zip").exists()  # the zip is not kept
    assert len(load_dataset("caltech101").train) == 15


def test_per_class_protocol_runs_on_caltech(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    manifests, data = dirs
    _tree101(data / "caltech101")
    _manifest(manifests, "caltech101", ["Faces", "accordion", "airplanes"],
              tree="101_ObjectCategories", archive="101_ObjectCategories.tar.gz",
              exclude=["BACKGROUND_Google"])  # fmt: skip
    args = ["run", "baseline", "--dataset", "caltech101", "--train-per-class", "3"]
    args += ["--test-per-class", "2", "--short-classes", "take-rest", "--val-fraction", "0"]
    args += ["--set", "method=nearest-mean"]  # the protocol is tested, not the SVM
    result = CliRunner().invoke(main, [*args, "--json", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["n_train"], record["n_val"], record["n_test"]) == (9, 0, 5)  # Faces: 4 - 3


def test_data_list_shows_the_real_manifests() -> None:
    result = CliRunner().invoke(main, ["data", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert (rows["caltech101"]["classes"], rows["caltech101"]["n_train"]) == (101, 8677)
    assert rows["caltech101-background"]["classes"] == 102
    assert rows["caltech256"]["classes"] == 256 and rows["caltech256-clutter"]["classes"] == 257
    assert rows["cifar100"]["classes"] == 100
