"""The common split: train / validation / test, the same for every pipeline.

Deterministic from (dataset, seed, train_size, val_fraction[, test_fraction])
on any machine: every random draw comes from ``numpy.random.default_rng``
seeded with integers, applied to ids sorted as strings (never Python's hash).

- **Test.** The official test part, untouched. A dataset without one (digits,
  a flat ImageFolder) holds out ``test_fraction`` of each class (at least one
  image), chosen by a seeded permutation of the class's sorted ids.
- **Train and validation** come from the rest (the *pool*). Each class's pool
  ids get one fixed seeded permutation. Train takes images from its front,
  validation from its back, so neither can overlap.
- **train_size=N** is the number of images the pipeline trains on. It is split
  evenly over the classes; the ``N mod C`` extra images go to the first classes
  of a seeded class order. Because the per-class permutation does not depend on
  N, the N-image train set lies inside every larger one for the same seed
  (nested). Validation then has ``round(t * f / (1 - f))`` images of a class with
  ``t`` train images (f = val_fraction, at least one when f > 0), so it is
  ``val_fraction`` of train + val, and it is nested too.
- **train_size=None** trains on the whole pool less validation, which takes
  ``round(f * n)`` (at least one) of each class's ``n`` pool images.
- ``val_fraction=0`` gives no validation set (``val`` is None).
- **Groups.** When the ImageSet has ``groups`` (the font designs of ``glyphs``),
  images of one group stay on one side: validation takes a seeded
  ``round(val_fraction * G)`` of the pool's G groups (at least one, never all;
  drawn from the sorted group names), and train the other groups. With
  ``train_size=None`` validation is all of its groups' images; with
  ``train_size=N`` train takes its class-balanced, nested subset from its groups
  (as above) and validation ``round(t * f / (1 - f))`` images of each class from
  its own. A held-out test part (no official one) takes a seeded
  ``test_fraction`` of the groups the same way. Datasets without groups take the
  steps above unchanged, so their fingerprints do not change.

The fingerprint is the sha256 of the sorted ids of train, val and test, each
part preceded by its name and size, so it identifies the split and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bovw_vs_convnet.data.datasets import Dataset
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import DataError, TrainSizeTooLarge

# Separate random streams, so that one part's draws never shift another's.
_STREAM_TEST, _STREAM_POOL, _STREAM_CLASS_ORDER = 1, 2, 3
_STREAM_TEST_GROUPS, _STREAM_VAL_GROUPS, _STREAM_VAL_POOL = 4, 5, 6


@dataclass(frozen=True)
class Split:
    """The common split of a dataset.

    Attributes:
        train: the images the pipeline trains on.
        val: the validation images (from the train side), None when val_fraction is 0.
        test: the test images (the official test part, or a held-out fraction).
        fingerprint: sha256 hex of the ids of train, val and test (see :func:`split_fingerprint`).
        params: what made it: dataset, seed, train_size, val_fraction, test_fraction
            (None when the official test part was used).
    """

    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    fingerprint: str
    params: dict[str, Any]


def split_fingerprint(
    train_ids: Iterable[str], val_ids: Iterable[str] | None, test_ids: Iterable[str]
) -> str:
    """sha256 hex over the sorted ids of each part, each part headed by its name and size."""
    h = hashlib.sha256()
    for part, ids in (
        ("train", train_ids),
        ("val", () if val_ids is None else val_ids),
        ("test", test_ids),
    ):
        sorted_ids = sorted(str(i) for i in ids)
        h.update(f"{part}:{len(sorted_ids)}\n".encode())
        for sid in sorted_ids:
            h.update(sid.encode("utf-8") + b"\n")
    return h.hexdigest()


def _class_positions(ids: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """Positions of class ``c``, ordered by id (so the order does not depend on file order)."""
    pos = np.flatnonzero(labels == c)
    return pos[np.argsort(ids[pos].astype(str), kind="stable")]


def _rng(seed: int, stream: int, c: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, c])


def _hold_out_test(
    part: ImageSet, test_fraction: float, seed: int, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """(pool positions, test positions): a stratified, seeded ``test_fraction`` of ``part``."""
    pool, test = [], []
    for c in range(len(classes)):
        pos = _class_positions(part.ids, part.labels, c)
        n = len(pos)
        if n == 0:
            continue
        k = max(1, round(test_fraction * n))
        if n - k < 1:
            raise DataError(
                f"class {classes[c]!r} has {n} image(s): too few to hold out a test "
                f"fraction of {test_fraction} and still train"
            )
        perm = pos[_rng(seed, _STREAM_TEST, c).permutation(n)]
        test.append(perm[:k])
        pool.append(perm[k:])
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))


def _group_mask(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """True for the images of a seeded ``fraction`` of the groups (at least one, never all)."""
    names = sorted({str(g) for g in groups})
    if len(names) < 2:
        raise DataError(f"a split by groups needs at least 2 groups, got {len(names)}")
    k = min(len(names) - 1, max(1, round(fraction * len(names))))
    chosen = {names[i] for i in rng.permutation(len(names))[:k]}
    return np.array([str(g) in chosen for g in groups], dtype=bool)


def _train_counts(n_train: int, present: list[int], seed: int) -> dict[int, int]:
    """Per-class train counts for ``n_train`` images: even, remainder to a seeded class order."""
    base, extra = divmod(n_train, len(present))
    order = [present[i] for i in _rng(seed, _STREAM_CLASS_ORDER).permutation(len(present))]
    return {c: base + (1 if rank < extra else 0) for rank, c in enumerate(order)}


def _group_val(
    source: ImageSet,
    val_pos: np.ndarray,
    c: int,
    t: int,
    train_size: int | None,
    val_fraction: float,
    seed: int,
) -> np.ndarray:
    """Class ``c``'s validation positions among validation's groups (``val_pos``).

    All of them for the whole pool; else ``round(t * f / (1 - f))`` (at least one)
    from the front of a fixed seeded permutation, so that they are nested too.
    """
    if val_fraction == 0 or len(val_pos) == 0:
        return np.empty(0, dtype=np.int64)
    pos = val_pos[_class_positions(source.ids[val_pos], source.labels[val_pos], c)]
    if train_size is None:
        return pos
    v = max(1, round(t * val_fraction / (1.0 - val_fraction)))
    if v > len(pos):
        raise DataError(
            f"class {source.class_names[c]!r} has {len(pos)} image(s) in validation's "
            f"groups; {t} training images need {v}"
        )
    return pos[_rng(seed, _STREAM_VAL_POOL, c).permutation(len(pos))][:v]


def make_split(
    ds: Dataset,
    *,
    seed: int = 0,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Split:
    """The common train / val / test split of ``ds`` (see the module docstring).

    Raises:
        TrainSizeTooLarge: a train size larger than the training images (a DataError).
        DataError: fewer than 2 classes, a class with fewer images than the split
            needs, fractions out of range.
    """
    classes = ds.manifest.classes
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if ds.test is None and not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if train_size is not None and (isinstance(train_size, bool) or train_size < 1):
        raise DataError(f"train size must be a positive integer, got {train_size!r}")

    source = ds.train
    if ds.test is None and source.groups is not None:
        in_test = _group_mask(source.groups, test_fraction, _rng(seed, _STREAM_TEST_GROUPS))
        pool_pos, test = np.flatnonzero(~in_test), source.subset(np.flatnonzero(in_test))
    elif ds.test is None:
        pool_pos, test_pos = _hold_out_test(source, test_fraction, seed, classes)
        test = source.subset(test_pos)
    else:
        pool_pos, test = np.arange(len(source)), ds.test
    val_pos = np.empty(0, dtype=np.int64)
    if source.groups is not None and val_fraction > 0:  # validation's groups leave the pool
        rng = _rng(seed, _STREAM_VAL_GROUPS)
        in_val = _group_mask(source.groups[pool_pos], val_fraction, rng)
        pool_pos, val_pos = pool_pos[~in_val], pool_pos[in_val]
    pool_labels = source.labels[pool_pos]
    present = [c for c in range(len(classes)) if np.any(pool_labels == c)]
    if len(present) < 2:
        raise DataError(
            f"dataset {ds.name!r} has {len(present)} class(es) with training images; "
            "a split needs at least 2"
        )

    n_val_total = 0
    if train_size is not None:
        usable = len(pool_pos)
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
        counts = _train_counts(train_size, present, seed)

    train_parts, val_parts = [], []
    for c in present:
        pos = pool_pos[_class_positions(source.ids[pool_pos], pool_labels, c)]
        n = len(pos)
        perm = pos[_rng(seed, _STREAM_POOL, c).permutation(n)]
        if source.groups is not None:
            t = n if train_size is None else counts[c]
            picked = _group_val(source, val_pos, c, t, train_size, val_fraction, seed)
            if t > n or (val_fraction > 0 and len(picked) == 0):
                raise DataError(
                    f"class {classes[c]!r} has {n} training image(s) outside validation's "
                    f"groups and {len(picked)} in them; the split needs {t} and at least 1"
                )
            train_parts.append(perm[:t])
            if len(picked):
                val_parts.append(picked)
                n_val_total += len(picked)
            continue
        if train_size is None:
            v = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
            t = n - v
        else:
            t = counts[c]
            v = (
                max(1, round(t * val_fraction / (1.0 - val_fraction)))
                if val_fraction > 0 and t > 0
                else 0
            )
        if t < 1 or t + v > n:
            raise DataError(
                f"class {classes[c]!r} has {n} training image(s); the split needs "
                f"{max(t, 1)} for training and {v} for validation"
            )
        train_parts.append(perm[:t])
        if v:
            val_parts.append(perm[n - v :])
            n_val_total += v

    train = source.subset(np.sort(np.concatenate(train_parts)))
    val = source.subset(np.sort(np.concatenate(val_parts))) if n_val_total else None
    fingerprint = split_fingerprint(train.ids, val.ids if val is not None else None, test.ids)
    params: dict[str, Any] = {
        "dataset": ds.name,
        "seed": int(seed),
        "train_size": train_size,
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction) if ds.test is None else None,
    }
    return Split(train=train, val=val, test=test, fingerprint=fingerprint, params=params)
