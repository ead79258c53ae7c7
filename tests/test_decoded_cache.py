"""ImageFolder trees: resident or lazy by decoded bytes, and the decoded-array cache."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from bovw_vs_convnet.data import imagefolder
from bovw_vs_convnet.data.folder_tree import scan_tree
from bovw_vs_convnet.data.imagefolder import (
    decoded_bytes,
    fits_in_memory,
    load_tree,
    resident_budget,
)
from bovw_vs_convnet.errors import DataError


def write_tree(root: Path, per_class: int = 3, side: int = 6) -> None:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (side, side, 3), np.uint8)
            cv2.imwrite(str(root / cls / f"{i}.png"), img)


def test_the_decision_is_by_decoded_bytes_against_the_budget() -> None:
    # 23 000 glyphs of 32x32 RGB: 70.7 MB, resident under the 2 GiB default
    assert decoded_bytes(23_000, (32, 32), 3) == 70_656_000
    assert fits_in_memory(23_000, (32, 32), 3)
    assert not fits_in_memory(23_000, (32, 32), 3, budget=70_655_999)
    assert fits_in_memory(23_000, (32, 32), 3, budget=70_656_000)
    # a million files, were they 8x8 grayscale, would still fit: the count does not decide
    assert fits_in_memory(1_000_000, (8, 8), 1)
    assert not fits_in_memory(100_000, (256, 256), 3)  # 19.7 GB


def test_the_budget_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BVC_RESIDENT_MB", "1.5")
    assert resident_budget() == 1_572_864
    assert resident_budget(10) == 10  # an explicit value wins
    monkeypatch.setenv("BVC_RESIDENT_MB", "lots")
    with pytest.raises(DataError, match=r"\$BVC_RESIDENT_MB must be a number"):
        resident_budget()


def test_a_tree_over_the_budget_is_lazy_and_under_it_resident(tmp_path: Path) -> None:
    write_tree(tmp_path)  # 6 images of 6x6x3: 648 bytes
    tree = scan_tree(tmp_path)
    lazy, _, _ = load_tree(tree, resident_bytes=647, cache_dir=False)
    resident, _, _ = load_tree(tree, resident_bytes=648, cache_dir=False)
    assert lazy["all"].is_lazy and not resident["all"].is_lazy


def test_the_decoded_cache_is_reused_and_invalidated_by_a_changed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "tree", tmp_path / "cache"
    write_tree(root)
    decodes: list[int] = []
    real_read_all = imagefolder.read_all

    def counting_read_all(images: imagefolder.LazyImages, **kw: object) -> np.ndarray:
        decodes.append(len(images))
        return real_read_all(images, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(imagefolder, "read_all", counting_read_all)
    first, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    files = sorted(cache.glob("*.npy"))
    assert decodes == [6] and len(files) == 1
    # a plain .npy: it loads without pickle
    assert np.array_equal(np.load(files[0], allow_pickle=False), first["all"].array())

    second, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    assert decodes == [6]  # from the cache: nothing decoded
    assert np.array_equal(second["all"].array(), first["all"].array())

    changed = root / "b" / "2.png"
    cv2.imwrite(str(changed), np.full((6, 6, 3), 255, np.uint8))
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    assert decodes == [6, 6]  # the changed file changed the key: decoded again
    assert (third["all"].array()[5] == 255).all()
    assert len(list(cache.glob("*.npy"))) == 2


def test_a_cache_file_of_the_wrong_shape_is_not_used(tmp_path: Path) -> None:
    root, cache = tmp_path / "tree", tmp_path / "cache"
    write_tree(root)
    first, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    (path,) = cache.glob("*.npy")
    np.save(path, np.zeros((2, 2), np.uint8))  # a planted or truncated array
    again, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    assert np.array_equal(again["all"].array(), first["all"].array())
    assert np.load(path, allow_pickle=False).shape == (6, 6, 6, 3)  # rewritten
