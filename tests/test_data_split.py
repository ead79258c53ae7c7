"""The common split: deterministic, stratified, nested across train sizes, refusing bad requests."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from bovw_vs_convnet.data import Dataset, ImageSet, load_dataset, make_split, split_fingerprint
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError, TrainSizeTooLarge


def _imageset(counts: list[int], part: str) -> ImageSet:
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    n = len(labels)
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)  # pixel = position, to trace
    ids = np.array([f"{part}/{i:05d}" for i in range(n)])
    return ImageSet(images, labels, ids, tuple(f"c{i}" for i in range(len(counts))), "toy")


def _dataset(counts: list[int], test_counts: list[int] | None = None) -> Dataset:
    classes = tuple(f"c{i}" for i in range(len(counts)))
    manifest = Manifest(
        name="toy",
        description="",
        format="synthetic",
        classes=classes,
        image_size=(1, 1),
        channels=1,
        licence="",
        official_split=test_counts is not None,
    )
    test = _imageset(test_counts, "test") if test_counts is not None else None
    return Dataset("toy", _imageset(counts, "train"), test, manifest)


def _per_class(s: ImageSet) -> list[int]:
    c = Counter(s.labels.tolist())
    return [c[k] for k in range(s.n_classes)]


def test_same_arguments_give_the_same_fingerprint() -> None:
    ds = _dataset([50, 50, 50], [10, 10, 10])
    a = make_split(ds, seed=3, train_size=30)
    b = make_split(_dataset([50, 50, 50], [10, 10, 10]), seed=3, train_size=30)
    assert a.fingerprint == b.fingerprint
    assert a.train.ids.tolist() == b.train.ids.tolist()


def test_fingerprint_is_fixed_across_machines() -> None:
    # numpy's default_rng (PCG64) is stable across platforms and versions: pin the value.
    s = make_split(_dataset([20, 20], [5, 5]), seed=0, train_size=10, val_fraction=0.2)
    assert s.train.ids.tolist() == [
        "train/00000",
        "train/00008",
        "train/00010",
        "train/00015",
        "train/00018",
        "train/00022",
        "train/00027",
        "train/00028",
        "train/00031",
        "train/00037",
    ]
    assert s.val is not None and s.val.ids.tolist() == ["train/00011", "train/00026"]
    assert s.fingerprint == "db224a9a4482e930de4f2a562b13ffc57dfbb2d21a2b282bbfe0b23daf80b60d"


def test_different_seeds_give_different_splits() -> None:
    ds = _dataset([50, 50], [10, 10])
    assert make_split(ds, seed=0).fingerprint != make_split(ds, seed=1).fingerprint


def test_official_test_part_is_untouched() -> None:
    ds = _dataset([30, 30], [7, 9])
    s = make_split(ds, seed=5, train_size=20)
    assert s.test.ids.tolist() == ds.test.ids.tolist()  # type: ignore[union-attr]
    assert s.params == {
        "dataset": "toy",
        "seed": 5,
        "train_size": 20,
        "val_fraction": 0.1,
        "test_fraction": None,
    }


def test_parts_are_disjoint_and_cover_the_pool() -> None:
    s = make_split(_dataset([40, 40, 40]), seed=2, val_fraction=0.25, test_fraction=0.25)
    train, val, test = set(s.train.ids), set(s.val.ids), set(s.test.ids)  # type: ignore[union-attr]
    assert train.isdisjoint(val) and train.isdisjoint(test) and val.isdisjoint(test)
    assert len(train | val | test) == 120


def test_held_out_test_and_val_are_stratified() -> None:
    s = make_split(_dataset([40, 20, 10]), seed=0, val_fraction=0.25, test_fraction=0.2)
    assert _per_class(s.test) == [8, 4, 2]
    assert _per_class(s.val) == [8, 4, 2]  # type: ignore[arg-type]  # 25% of 32, 16, 8
    assert _per_class(s.train) == [24, 12, 6]
    assert s.params["test_fraction"] == 0.2


def test_train_size_is_class_balanced() -> None:
    s = make_split(_dataset([50, 50, 50, 50], [5] * 4), seed=1, train_size=40)
    assert _per_class(s.train) == [10, 10, 10, 10]
    assert len(s.train) == 40


def test_train_size_remainder_goes_to_distinct_classes() -> None:
    s = make_split(_dataset([50, 50, 50, 50], [5] * 4), seed=1, train_size=42)
    assert sorted(_per_class(s.train)) == [10, 10, 11, 11]


@pytest.mark.parametrize("seed", [0, 7])
def test_train_subsets_are_nested(seed: int) -> None:
    ds = _dataset([100, 100, 100], [5, 5, 5])
    sizes = [10, 31, 60, 150]
    trains = [set(make_split(ds, seed=seed, train_size=n).train.ids) for n in sizes]
    assert [len(t) for t in trains] == sizes
    for small, large in itertools.pairwise(trains):
        assert small < large


def test_validation_is_proportional_nested_and_apart_from_train() -> None:
    ds = _dataset([100, 100], [5, 5])
    small = make_split(ds, seed=0, train_size=40, val_fraction=0.2)
    large = make_split(ds, seed=0, train_size=80, val_fraction=0.2)
    assert _per_class(small.val) == [5, 5]  # type: ignore[arg-type]  # 20 * 0.2 / 0.8
    assert set(small.val.ids) < set(large.val.ids)  # type: ignore[union-attr]
    assert set(large.train.ids).isdisjoint(set(small.val.ids))  # type: ignore[union-attr]


def test_zero_val_fraction_gives_no_validation() -> None:
    s = make_split(_dataset([10, 10], [2, 2]), val_fraction=0.0)
    assert s.val is None
    assert len(s.train) == 20


def test_split_subsets_keep_images_with_their_ids() -> None:
    s = make_split(_dataset([10, 10], [2, 2]), seed=4, train_size=6)
    positions = [int(i.split("/")[1]) for i in s.train.ids]
    assert s.train.array()[:, 0, 0, 0].tolist() == positions


def test_fingerprint_depends_on_which_part_holds_an_id() -> None:
    a = split_fingerprint(["x", "y"], ["z"], ["w"])
    assert a == split_fingerprint(["y", "x"], ["z"], ["w"])
    assert a != split_fingerprint(["x"], ["y", "z"], ["w"])
    assert a != split_fingerprint(["x", "y", "z"], None, ["w"])


def test_refuses_train_size_larger_than_the_data() -> None:
    with pytest.raises(DataError, match="train size 101 is larger than the 100 training images"):
        make_split(_dataset([50, 50], [5, 5]), train_size=101)


def test_train_size_too_large_carries_the_sizes() -> None:
    with pytest.raises(TrainSizeTooLarge) as info:
        make_split(_dataset([50, 50], [5, 5]), train_size=101)
    assert (info.value.train_size, info.value.available, info.value.dataset) == (101, 100, "toy")
    assert isinstance(info.value, DataError)


def test_refuses_a_class_too_small_for_the_subset() -> None:
    with pytest.raises(DataError, match="class 'c1' has 5 training image"):
        make_split(_dataset([50, 5], [5, 5]), train_size=20)


def test_refuses_fewer_than_two_classes() -> None:
    ds = _dataset([30, 30], [5, 5])
    one_class = replace(ds, train=ds.train.subset(np.flatnonzero(ds.train.labels == 0)))
    with pytest.raises(DataError, match="1 class\\(es\\) with training images; a split needs"):
        make_split(one_class)


def test_refuses_train_size_below_the_class_count() -> None:
    with pytest.raises(DataError, match="smaller than the 3 classes"):
        make_split(_dataset([5, 5, 5], [1, 1, 1]), train_size=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 1.0}, "val_fraction must be in"),
        ({"test_fraction": 0.0}, "test_fraction must be in"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_refuses_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        make_split(_dataset([10, 10]), **kwargs)  # type: ignore[arg-type]


def test_digits_split_is_stratified_and_repeatable() -> None:
    ds = load_dataset("digits")
    a, b = make_split(ds, seed=0), make_split(ds, seed=0)
    assert a.fingerprint == b.fingerprint
    assert (len(a.train), len(a.val), len(a.test)) == (1295, 143, 359)  # type: ignore[arg-type]
