"""The split by groups (font designs): whole groups on each side, nested, seeded, checked."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bovw_vs_convnet.data import Dataset, ImageSet, make_split
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError

CLASSES = ("a", "b", "c")


def _grouped(n_groups: int, per_class: int, part: str) -> ImageSet:
    """``n_groups`` groups, each with ``per_class`` images of every class."""
    groups, labels = [], []
    for g in range(n_groups):
        for c in range(len(CLASSES)):
            groups += [f"{part}-g{g:02d}"] * per_class
            labels += [c] * per_class
    n = len(labels)
    ids = np.array([f"{groups[i]}/{i:04d}" for i in range(n)])
    images = np.zeros((n, 1, 1, 1), dtype=np.uint8)
    return ImageSet(images, np.array(labels), ids, CLASSES, "grouped", groups=np.array(groups))


def _dataset(official_test: bool) -> Dataset:
    manifest = Manifest(
        name="grouped", description="", format="synthetic", classes=CLASSES,
        image_size=(1, 1), channels=1, licence="", official_split=official_test,
    )  # fmt: skip
    test = _grouped(3, 2, "test") if official_test else None
    return Dataset("grouped", _grouped(10, 4, "train"), test, manifest)


def _groups(s: ImageSet | None) -> set[str]:
    assert s is not None and s.groups is not None
    return {str(g) for g in s.groups}


def test_validation_takes_whole_groups_and_all_their_images() -> None:
    s = make_split(_dataset(True), seed=0, val_fraction=0.2)
    assert len(_groups(s.val)) == 2  # round(0.2 * 10)
    assert _groups(s.train).isdisjoint(_groups(s.val))
    assert (len(s.train), len(s.val)) == (8 * 12, 2 * 12)  # type: ignore[arg-type]
    assert _groups(s.test) == {"test-g00", "test-g01", "test-g02"}


def test_grouped_subsets_are_class_balanced_and_nested() -> None:
    ds = _dataset(True)
    small, large = (make_split(ds, seed=5, train_size=n, val_fraction=0.2) for n in (6, 30))
    assert Counter(small.train.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert set(small.train.ids) <= set(large.train.ids)
    assert small.val is not None and large.val is not None
    assert set(small.val.ids) <= set(large.val.ids)
    assert Counter(large.val.labels.tolist()) == {0: 2, 1: 2, 2: 2}  # round(10 * 0.2 / 0.8)
    assert _groups(large.train).isdisjoint(_groups(large.val))


def test_a_held_out_test_part_takes_whole_groups_too() -> None:
    s = make_split(_dataset(False), seed=1, val_fraction=0.1, test_fraction=0.2)
    parts = [_groups(s.train), _groups(s.val), _groups(s.test)]
    assert [len(p) for p in parts] == [7, 1, 2]  # 2 of 10 for test, then 1 of 8 for val
    assert set.union(*parts) == {f"train-g{g:02d}" for g in range(10)}
    assert parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])


def test_the_grouped_split_is_seeded() -> None:
    ds = _dataset(True)
    a, b, c = (make_split(ds, seed=s, val_fraction=0.2) for s in (3, 3, 4))
    assert a.fingerprint == b.fingerprint
    assert _groups(a.val) == _groups(b.val)
    assert a.fingerprint != c.fingerprint


def test_too_few_validation_images_for_a_subset_is_refused() -> None:
    # one group (4 images a class) for validation; 36 a class to train need round(36 * .14 / .86)
    with pytest.raises(DataError, match=r"in validation's groups; 36 training images need 6"):
        make_split(_dataset(True), seed=0, train_size=108, val_fraction=0.14)
