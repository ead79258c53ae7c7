"""The fraction protocol of the common split: a train size (or the whole pool) and fractions.

See :mod:`bovw_vs_convnet.data.split` for the protocol; this module draws its parts.
"""

from __future__ import annotations

import numpy as np

from bovw_vs_convnet.data import split_draws as draws
from bovw_vs_convnet.data.datasets import Dataset
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import DataError, TrainSizeTooLarge

_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY.flags.writeable = False  # shared: no positions


def _hold_out_test(
    part: ImageSet, test_fraction: float, seed: int, classes: tuple[str, ...], index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(pool positions, test positions): a stratified, seeded ``test_fraction`` of ``part``."""
    pool, test = [], []
    for c in range(len(classes)):
        pos = draws.class_positions(part.ids, part.labels, c)
        n = len(pos)
        if n == 0:
            continue
        k = max(1, round(test_fraction * n))
        if n - k < 1:
            raise DataError(
                f"class {classes[c]!r} has {n} image(s): too few to hold out a test "
                f"fraction of {test_fraction} and still train"
            )
        perm = pos[draws.stream_rng(seed, draws.STREAM_TEST, c, index).permutation(n)]
        test.append(perm[:k])
        pool.append(perm[k:])
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))


def _pool_and_test(
    ds: Dataset, seed: int, index: int, test_fraction: float
) -> tuple[np.ndarray, ImageSet]:
    """(the pool's positions in ``ds.train``, the test set): the official test part, else a
    held-out share of the groups (with groups) or of each class."""
    source = ds.train
    if ds.test is None and source.groups is not None:
        in_test = draws.group_mask(
            source.groups, test_fraction, draws.stream_rng(seed, draws.STREAM_TEST_GROUPS, 0, index)
        )
        return np.flatnonzero(~in_test), source.subset(np.flatnonzero(in_test))
    if ds.test is None:
        pool_pos, test_pos = _hold_out_test(source, test_fraction, seed, ds.manifest.classes, index)
        return pool_pos, source.subset(test_pos)
    return np.arange(len(source)), ds.test


def _train_counts(n_train: int, present: list[int], seed: int, index: int = 0) -> dict[int, int]:
    """Per-class train counts for ``n_train`` images: even, remainder to a seeded class order."""
    base, extra = divmod(n_train, len(present))
    rng = draws.stream_rng(seed, draws.STREAM_CLASS_ORDER, 0, index)
    order = [present[i] for i in rng.permutation(len(present))]
    return {c: base + (1 if rank < extra else 0) for rank, c in enumerate(order)}


def _checked_counts(
    ds: Dataset, usable: int, present: list[int], train_size: int, seed: int, index: int
) -> dict[int, int]:
    """:func:`_train_counts`, once ``train_size`` fits the ``usable`` pool and the classes."""
    if train_size > usable:
        held = " (after holding out the test part)" if ds.test is None else ""
        raise TrainSizeTooLarge(
            f"train size {train_size} is larger than the {usable} training images "
            f"of {ds.name!r}{held}",
            train_size=train_size,
            available=usable,
            dataset=ds.name,
        )
    if train_size < len(present):
        raise DataError(
            f"train size {train_size} is smaller than the {len(present)} classes of "
            f"{ds.name!r}: a class-balanced subset needs at least one image per class"
        )
    return _train_counts(train_size, present, seed, index)


def _group_val(
    source: ImageSet,
    val_pos: np.ndarray,
    c: int,
    t: int,
    wanted: int | None,
    val_fraction: float,
    seed: int,
    index: int = 0,
) -> np.ndarray:
    """Class ``c``'s validation positions among validation's groups (``val_pos``).

    All of them for the whole pool (``wanted`` None); else ``round(t * f / (1 - f))``
    (at least one) from the front of a fixed seeded permutation, so that they are
    nested too.
    """
    if val_fraction == 0 or len(val_pos) == 0:
        return _EMPTY
    pos = val_pos[draws.class_positions(source.ids[val_pos], source.labels[val_pos], c)]
    if wanted is None:
        return pos
    v = max(1, round(t * val_fraction / (1.0 - val_fraction)))
    if v > len(pos):
        raise DataError(
            f"class {source.class_names[c]!r} has {len(pos)} image(s) in validation's "
            f"groups; {t} training images need {v}"
        )
    return pos[draws.stream_rng(seed, draws.STREAM_VAL_POOL, c, index).permutation(len(pos))][:v]


def _grouped_class(
    source: ImageSet,
    name: str,
    perm: np.ndarray,
    val_pos: np.ndarray,
    c: int,
    wanted: int | None,
    val_fraction: float,
    seed: int,
    index: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Class ``c``'s (train, val) with groups: train from the front of ``perm`` (its pool
    outside validation's groups), validation from validation's groups."""
    n = len(perm)
    t = n if wanted is None else wanted
    picked = _group_val(source, val_pos, c, t, wanted, val_fraction, seed, index)
    if t > n or (val_fraction > 0 and len(picked) == 0):
        raise DataError(
            f"class {name!r} has {n} training image(s) outside validation's "
            f"groups and {len(picked)} in them; the split needs {t} and at least 1"
        )
    return perm[:t], picked


def _plain_class(
    name: str, perm: np.ndarray, wanted: int | None, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """One class's (train, val) from its pool's permutation: train from the front,
    validation from the back (``round(f * n)``, or ``round(t * f / (1 - f))`` for ``t``
    wanted; at least one when f > 0)."""
    n = len(perm)
    if wanted is None:
        v = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
        t = n - v
    else:
        t = wanted
        v = (
            max(1, round(t * val_fraction / (1.0 - val_fraction)))
            if val_fraction > 0 and t > 0
            else 0
        )
    if t < 1 or t + v > n:
        raise DataError(
            f"class {name!r} has {n} training image(s); the split needs "
            f"{max(t, 1)} for training and {v} for validation"
        )
    return perm[:t], perm[n - v :] if v else _EMPTY


def fraction_parts(
    ds: Dataset,
    seed: int,
    index: int,
    train_size: int | None,
    val_fraction: float,
    test_fraction: float,
) -> tuple[np.ndarray, np.ndarray, ImageSet]:
    """(train positions, val positions) in ``ds.train`` and the test set: the fraction protocol."""
    classes = ds.manifest.classes
    source = ds.train
    pool_pos, test = _pool_and_test(ds, seed, index, test_fraction)
    val_pos = _EMPTY
    if source.groups is not None and val_fraction > 0:  # validation's groups leave the pool
        rng = draws.stream_rng(seed, draws.STREAM_VAL_GROUPS, 0, index)
        in_val = draws.group_mask(source.groups[pool_pos], val_fraction, rng)
        pool_pos, val_pos = pool_pos[~in_val], pool_pos[in_val]
    pool_labels = source.labels[pool_pos]
    present = [c for c in range(len(classes)) if np.any(pool_labels == c)]
    if len(present) < 2:
        raise DataError(
            f"dataset {ds.name!r} has {len(present)} class(es) with training images; "
            "a split needs at least 2"
        )
    counts: dict[int, int] = {}
    if train_size is not None:
        counts = _checked_counts(ds, len(pool_pos), present, train_size, seed, index)
    train_parts, val_parts = [], []
    for c in present:
        pos = pool_pos[draws.class_positions(source.ids[pool_pos], pool_labels, c)]
        perm = pos[draws.stream_rng(seed, draws.STREAM_POOL, c, index).permutation(len(pos))]
        wanted = counts[c] if train_size is not None else None
        if source.groups is not None:
            train, val = _grouped_class(
                source, classes[c], perm, val_pos, c, wanted, val_fraction, seed, index
            )
        else:
            train, val = _plain_class(classes[c], perm, wanted, val_fraction)
        train_parts.append(train)
        if len(val):
            val_parts.append(val)
    train_pos = np.sort(np.concatenate(train_parts))
    val_all = np.sort(np.concatenate(val_parts)) if val_parts else _EMPTY
    return train_pos, val_all, test
