"""`bvc data list | fetch | verify` through click's CliRunner."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_data_sources import write_tiny_idx

from bovw_vs_convnet.cli import main


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir holding the gzipped 'tiny-idx' dataset, whose manifest is on BVC_MANIFESTS_DIR."""
    write_tiny_idx(tmp_path / "data" / "tiny-idx", tmp_path / "m")
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    monkeypatch.delenv("BVC_DATA_DIR", raising=False)
    return tmp_path / "data"


def test_list_shows_where_each_dataset_is(tiny: Path) -> None:
    result = CliRunner().invoke(main, ["data", "list", "--data-dir", str(tiny)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert rows["tiny-idx"].endswith(str(tiny / "tiny-idx"))
    assert rows["mnist"].endswith("not found")
    assert rows["digits"].endswith("built in")


def test_list_json_has_one_object_per_dataset(tiny: Path) -> None:
    import json

    result = CliRunner().invoke(main, ["data", "list", "--json", "--data-dir", str(tiny)])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["tiny-idx"]["found"] == str(tiny / "tiny-idx")
    assert (rows["tiny-idx"]["n_train"], rows["tiny-idx"]["classes"]) == (6, 3)


def test_verify_passes_on_good_files(tiny: Path) -> None:
    result = CliRunner().invoke(main, ["data", "verify", "tiny-idx", "--data-dir", str(tiny)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "tiny-idx: 4 files verified"
    assert "(size, sha256)" in result.output


def test_verify_reports_a_changed_byte_by_file_name(tiny: Path) -> None:
    path = tiny / "tiny-idx" / "train-images-idx3-ubyte"
    gz = path.with_name(path.name + ".gz")
    data = bytearray(gzip.decompress(gz.read_bytes()))
    data[20] ^= 0xFF  # one pixel, same length: only the checksum can tell
    gz.unlink()
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["data", "verify", "tiny-idx", "--data-dir", str(tiny)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"error: checksum mismatch: {path} sha256 ")


@pytest.mark.parametrize("offset", [12, -6])  # inside the deflate stream; in the CRC trailer
def test_verify_reports_a_changed_byte_of_a_gzip_file(tiny: Path, offset: int) -> None:
    gz = tiny / "tiny-idx" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(gz.read_bytes())
    data[offset] ^= 0x01
    gz.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["data", "verify", "tiny-idx", "--data-dir", str(tiny)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert str(gz) in result.output


def test_verify_image_folder_reads_every_image(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "0.png"), np.zeros((4, 4), np.uint8))
    ok = CliRunner().invoke(main, ["data", "verify", str(tmp_path)])
    assert (
        ok.output == f"imagefolder:{tmp_path.resolve()}: 2 images read, 2 classes (no checksums)\n"
    )
    (tmp_path / "b" / "1.png").write_bytes(b"not a png")
    bad = CliRunner().invoke(main, ["data", "verify", str(tmp_path)])
    assert bad.exit_code == 2
    assert "b/1.png" in bad.output


def test_verify_built_in_dataset_has_nothing_to_check() -> None:
    result = CliRunner().invoke(main, ["data", "verify", "digits"])
    assert (result.exit_code, result.output) == (0, "digits: built in, no files to verify\n")


def test_verify_unknown_dataset_exits_2() -> None:
    result = CliRunner().invoke(main, ["data", "verify", "no-such-set"])
    assert result.exit_code == 2
    assert "unknown dataset 'no-such-set'" in result.output


def test_fetch_finds_and_verifies_present_files(tiny: Path) -> None:
    result = CliRunner().invoke(main, ["data", "fetch", "tiny-idx", "--data-dir", str(tiny)])
    assert result.exit_code == 0, result.output
    assert result.output == f"tiny-idx: 4 files verified in {tiny / 'tiny-idx'}\n"


def test_fetch_without_download_source_explains(tiny: Path, tmp_path: Path) -> None:
    manifest = Path(tmp_path / "m" / "tiny-idx.toml")
    manifest.write_text(manifest.read_text().replace('torchvision = "TinyIdx"\n', ""))
    result = CliRunner().invoke(main, ["data", "fetch", "tiny-idx", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not found and cannot be downloaded: written by a test" in result.output


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_verify_fashion_mnist_copy_with_one_changed_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BVC_MANIFESTS_DIR", raising=False)
    copy = tmp_path / "fashion-mnist"
    shutil.copytree(FASHION, copy)
    runner = CliRunner()
    ok = runner.invoke(main, ["data", "verify", "fashion-mnist", "--data-dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert str(copy) in ok.output
    target = copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(target.read_bytes()))
    data[100] = (data[100] + 1) % 10
    target.write_bytes(gzip.compress(bytes(data)))
    bad = runner.invoke(main, ["data", "verify", "fashion-mnist", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2
    assert bad.output.startswith(f"error: checksum mismatch: {target} sha256 ")
    assert len(bad.output.strip().splitlines()) == 1


def test_split_json_reports_sizes_and_fingerprint() -> None:
    import json

    result = CliRunner().invoke(main, ["data", "split", "digits", "--train-size", "500", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["n_train"], record["n_val"], record["n_test"]) == (500, 60, 359)
    assert record["test_fraction"] == 0.2 and len(record["split_fingerprint"]) == 64


def test_split_too_large_exits_2() -> None:
    result = CliRunner().invoke(main, ["data", "split", "digits", "--train-size", "5000"])
    assert result.exit_code == 2
    assert "train size 5000 is larger than the 1438 training images" in result.output


def test_raw_file_with_only_an_upstream_md5_is_checked_on_its_gzip_copy(tmp_path: Path) -> None:
    import hashlib

    from bovw_vs_convnet.data.locate import verify_file
    from bovw_vs_convnet.data.manifest import FileEntry
    from bovw_vs_convnet.errors import DataError

    raw = tmp_path / "labels-idx1-ubyte"
    raw.write_bytes(b"abc")
    gz = tmp_path / "labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"abc", mtime=0))
    entry = FileEntry(
        "labels-idx1-ubyte", "train", size=3, download_md5=hashlib.md5(gz.read_bytes()).hexdigest()
    )
    assert verify_file(entry, raw).checks == ("size", "download_md5")
    gz.write_bytes(gzip.compress(b"abd", mtime=0))
    with pytest.raises(DataError, match=r"checksum mismatch: .*labels-idx1-ubyte\.gz md5"):
        verify_file(entry, raw)
