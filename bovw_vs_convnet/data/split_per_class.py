"""The per-class protocol of the common split: N training and at most M test images a class.

See :mod:`bovw_vs_convnet.data.split` ("Per-class protocol") for the protocol; this
module draws its parts.
"""

from __future__ import annotations

import numpy as np

from bovw_vs_convnet.data import split_draws as draws
from bovw_vs_convnet.data.datasets import Dataset
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import DataError

_TAKE_REST_HINT = " (--short-classes take-rest gives its test what is left)"


def _carve_val(
    labelled: np.ndarray, val_fraction: float, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) of one class's labelled positions: validation is the last
    ``max(1, round(f * n))`` of them (none when f is 0).

    ``n - round(f * n)`` never falls as n grows, so the train part of N images lies
    inside the train part of any larger N for the same seed (nested), as the
    labelled N images do.
    """
    n = len(labelled)
    v = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    if n - v < 1:
        raise DataError(
            f"class {name!r}: {n} training image(s) per class leave none to train on once "
            f"validation takes {v} (val fraction {val_fraction}); give more, or "
            "--val-fraction 0"
        )
    return labelled[: n - v], labelled[n - v :]


def _short(name: str, n: int, need: int, what: str, hint: str = "") -> DataError:
    return DataError(f"class {name!r} has {n} image(s){what}; the split needs {need}{hint}")


def _official_test(
    test_source: ImageSet,
    classes: tuple[str, ...],
    n_test: int | None,
    take_rest: bool,
    seed: int,
    index: int,
) -> ImageSet:
    """The official test part, or at most ``n_test`` images a class drawn from it."""
    hint = "" if take_rest else _TAKE_REST_HINT
    test_parts: list[np.ndarray] = []
    for c, name in enumerate(classes):
        pos = draws.class_positions(test_source.ids, test_source.labels, c)
        n = len(pos)
        if n_test is None:
            test_parts.append(pos)
            continue
        if (n < n_test and not take_rest) or n == 0:
            raise _short(name, n, n_test, " in the test part", hint if n else "")
        perm = pos[draws.stream_rng(seed, draws.STREAM_PC_TEST, c, index).permutation(n)]
        test_parts.append(perm[:n_test])
    return test_source.subset(np.sort(np.concatenate(test_parts)))


def per_class_parts(
    ds: Dataset,
    seed: int,
    index: int,
    n_train: int | None,
    n_test: int | None,
    short_classes: str,
    val_fraction: float,
    test_fraction: float,
) -> tuple[np.ndarray, np.ndarray, ImageSet]:
    """(train positions, val positions) in ``ds.train`` and the test set: per-class counts.

    See the protocol ("Per-class protocol"). Every class of the manifest must
    meet the counts; the first that does not is named in the DataError.
    """
    classes = ds.manifest.classes
    source = ds.train
    take_rest = short_classes == "take-rest"
    if source.groups is not None:
        return _per_class_groups(
            ds, seed, index, n_train, n_test, take_rest, val_fraction, test_fraction
        )
    hint = "" if take_rest else _TAKE_REST_HINT
    train_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    for c, name in enumerate(classes):
        pos = draws.class_positions(source.ids, source.labels, c)
        n = len(pos)
        perm = pos[draws.stream_rng(seed, draws.STREAM_PC_POOL, c, index).permutation(n)]
        if ds.test is not None:  # the official parts: train from one, test from the other
            if n_train is not None and n < n_train:
                raise _short(name, n, n_train, " in the training part")
            labelled = perm[:n_train] if n_train is not None else perm
        else:  # test from the back of the permutation, labelled images from its front
            need_train = n_train if n_train is not None else 1
            want_test = n_test if n_test is not None else n - need_train
            if n < need_train + 1 or (not take_rest and n < need_train + want_test):
                need = need_train + max(1, want_test if not take_rest else 1)
                raise _short(name, n, need, "", hint if n >= need_train + 1 else "")
            k = min(want_test, n - need_train)
            test_parts.append(perm[n - k :])
            labelled = perm[:n_train] if n_train is not None else perm[: n - k]
        tr, va = _carve_val(labelled, val_fraction, name)
        train_parts.append(tr)
        val_parts.append(va)
    if ds.test is not None:
        test = _official_test(ds.test, classes, n_test, take_rest, seed, index)
    else:
        test = source.subset(np.sort(np.concatenate(test_parts)))
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts)), test


def _group_pools(
    ds: Dataset, seed: int, index: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, ImageSet, np.ndarray]:
    """(train pool, validation pool) positions in ``ds.train``, and the test set with the
    positions its images come from: whole groups on each side."""
    source = ds.train
    assert source.groups is not None
    all_pos = np.arange(len(source))
    if ds.test is None:
        in_test = draws.group_mask(
            source.groups, test_fraction, draws.stream_rng(seed, draws.STREAM_TEST_GROUPS, 0, index)
        )
        pool, test_pool = all_pos[~in_test], all_pos[in_test]
        test_set, test_in = source, test_pool
    else:
        pool = all_pos
        test_set, test_in = ds.test, np.arange(len(ds.test))
    val_pool = np.empty(0, dtype=np.int64)
    if val_fraction > 0:
        in_val = draws.group_mask(
            source.groups[pool],
            val_fraction,
            draws.stream_rng(seed, draws.STREAM_VAL_GROUPS, 0, index),
        )
        pool, val_pool = pool[~in_val], pool[in_val]
    return pool, val_pool, test_set, test_in


def _per_class_groups(
    ds: Dataset,
    seed: int,
    index: int,
    n_train: int | None,
    n_test: int | None,
    take_rest: bool,
    val_fraction: float,
    test_fraction: float,
) -> tuple[np.ndarray, np.ndarray, ImageSet]:
    """The per-class protocol on an ImageSet with groups: whole groups on each side.

    The test groups (no official test part) and validation's groups are chosen as in
    the fraction protocol (seeded shares of the sorted group names, independent of the
    counts); each class then takes ``M`` test images from the test groups, ``N - v``
    training images from the other groups and ``v`` validation images from
    validation's groups (``v = max(1, round(f * N))``), each from the front of a fixed
    seeded permutation, so that the counts are exact and nested across N.
    """
    source = ds.train
    hint = "" if take_rest else _TAKE_REST_HINT
    pool, val_pool, test_set, test_in = _group_pools(ds, seed, index, val_fraction, test_fraction)

    def ordered(where: np.ndarray, part: ImageSet, c: int, stream: int) -> np.ndarray:
        pos = where[draws.class_positions(part.ids[where], part.labels[where], c)]
        return pos[draws.stream_rng(seed, stream, c, index).permutation(len(pos))]

    train_parts, val_parts, test_parts = [], [], []
    for c, name in enumerate(ds.manifest.classes):
        test_c = ordered(test_in, test_set, c, draws.STREAM_PC_TEST)
        if n_test is None:
            test_parts.append(test_c)
        elif len(test_c) >= n_test or (take_rest and len(test_c) > 0):
            test_parts.append(test_c[:n_test])
        else:
            raise _short(
                name, len(test_c), n_test, " in the test part's groups", hint if len(test_c) else ""
            )
        train_c = ordered(pool, source, c, draws.STREAM_PC_POOL)
        val_c = ordered(val_pool, source, c, draws.STREAM_VAL_POOL)
        if n_train is None:
            train_parts.append(train_c)
            val_parts.append(val_c)
            continue
        v = max(1, round(val_fraction * n_train)) if val_fraction > 0 else 0
        t = n_train - v
        if t < 1:
            raise DataError(
                f"class {name!r}: {n_train} training image(s) per class leave none to train "
                f"on once validation takes {v}; give more, or --val-fraction 0"
            )
        if len(train_c) < t:
            raise _short(name, len(train_c), t, " in the training groups")
        if len(val_c) < v:
            raise _short(name, len(val_c), v, " in validation's groups")
        train_parts.append(train_c[:t])
        val_parts.append(val_c[:v])
    test = test_set.subset(np.sort(np.concatenate(test_parts)))
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts)), test
