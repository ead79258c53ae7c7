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

**Per-class protocol** (``train_per_class=N``, ``test_per_class=M``; the protocol of
Fei-Fei et al. 2004 on Caltech-101, VLFeat's ``phow_caltech101``: 15 or 30 training
images a class, mean per-class accuracy; Chatfield et al. 2011: 30 / 30, 3 splits).
Each class's sorted ids get one fixed seeded permutation (a stream of its own, so the
fraction protocol's splits do not move). Without an official test part, the test
takes the last ``M`` images of it and the labelled images are its first ``N``: the
N-image set lies inside every larger one (nested), and while a class has ``N + M``
images its test images do not depend on N. ``M`` absent: the test takes everything
after the first N; ``N`` absent: training takes everything before the last M. With
an official test part, the N come from the training part and the at most M from a
seeded permutation of the test part. A class with fewer images than that is refused
(a DataError naming it) unless ``short_classes="take-rest"``: then its test takes
what is left after the N (at least one image). Validation is carved from the N as
it is from the whole pool: the last ``max(1, round(f * N))`` of them (none when
f = 0), so train + val is N exactly, and the train part is nested too. With groups,
the test groups and validation's groups are the fraction protocol's (seeded shares
of whole groups); each class takes its counts from the front of a seeded
permutation of its images in each.

**Splits.** ``split_index=k`` (``--splits K`` runs k = 0 .. K-1) joins the seed of
every draw (``[seed, stream, class, k]``; numpy ignores a trailing 0): split 0 is
the split above, unchanged, and each k > 0 is
another seeded resampling of the same protocol, with its own fingerprint.
``params`` holds ``split_index`` (always for the per-class protocol, for k > 0 in
the fraction protocol, whose stored params stay as they were).

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
_STREAM_PC_POOL, _STREAM_PC_TEST = 7, 8  # the per-class protocol's own orders

SHORT_CLASSES = ("refuse", "take-rest")


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


def _rng(seed: int, stream: int, c: int = 0, index: int = 0) -> np.random.Generator:
    # numpy's SeedSequence ignores trailing zeros: split 0 draws what every split drew
    # before --splits existed, so stored fingerprints stay; split k > 0 draws anew.
    return np.random.default_rng([seed, stream, c, index])


def _hold_out_test(
    part: ImageSet, test_fraction: float, seed: int, classes: tuple[str, ...], index: int = 0
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
        perm = pos[_rng(seed, _STREAM_TEST, c, index).permutation(n)]
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


def _train_counts(n_train: int, present: list[int], seed: int, index: int = 0) -> dict[int, int]:
    """Per-class train counts for ``n_train`` images: even, remainder to a seeded class order."""
    base, extra = divmod(n_train, len(present))
    rng = _rng(seed, _STREAM_CLASS_ORDER, 0, index)
    order = [present[i] for i in rng.permutation(len(present))]
    return {c: base + (1 if rank < extra else 0) for rank, c in enumerate(order)}


def _group_val(
    source: ImageSet,
    val_pos: np.ndarray,
    c: int,
    t: int,
    train_size: int | None,
    val_fraction: float,
    seed: int,
    index: int = 0,
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
    return pos[_rng(seed, _STREAM_VAL_POOL, c, index).permutation(len(pos))][:v]


def make_split(
    ds: Dataset,
    *,
    seed: int = 0,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    short_classes: str = "refuse",
    split_index: int = 0,
) -> Split:
    """The common train / val / test split of ``ds`` (see the module docstring).

    ``train_per_class`` / ``test_per_class`` switch to the per-class protocol
    (Caltech-101's: N training and at most M test images of every class);
    ``short_classes`` says what a class with too few images gets (``refuse``: a
    DataError naming it; ``take-rest``: its test takes what is left); ``split_index``
    k > 0 is the k-th seeded resampling of the partition (0: the split of ``seed``).

    Raises:
        TrainSizeTooLarge: a train size larger than the training images (a DataError).
        DataError: fewer than 2 classes, a class with fewer images than the split
            needs, fractions out of range.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if ds.test is None and not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if train_size is not None and (isinstance(train_size, bool) or train_size < 1):
        raise DataError(f"train size must be a positive integer, got {train_size!r}")

    if split_index is None or isinstance(split_index, bool) or split_index < 0:
        raise DataError(f"split index must be a non-negative integer, got {split_index!r}")
    if short_classes not in SHORT_CLASSES:
        raise DataError(
            f"short_classes must be one of {', '.join(SHORT_CLASSES)}, got {short_classes!r}"
        )
    for what, n in (("train", train_per_class), ("test", test_per_class)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise DataError(f"--{what}-per-class must be a positive integer, got {n!r}")
    per_class = train_per_class is not None or test_per_class is not None
    if per_class and train_size is not None:
        raise DataError("give a train size or a number of training images per class, not both")
    index = int(split_index)
    if per_class:
        train_pos, val_pos, test = _per_class_parts(
            ds, int(seed), index, train_per_class, test_per_class, short_classes,
            val_fraction, test_fraction,
        )  # fmt: skip
    else:
        if index and ds.test is not None and train_size is None and val_fraction == 0:
            raise DataError(
                f"split {index} of {ds.name!r} would repeat split 0: the official test part "
                "and the whole training part, with no validation, leave nothing to resample "
                "(give --train-per-class, --train-size or a validation fraction)"
            )
        train_pos, val_pos, test = _fraction_parts(
            ds, int(seed), index, train_size, val_fraction, test_fraction
        )
    train = ds.train.subset(train_pos)
    val = ds.train.subset(val_pos) if len(val_pos) else None
    fingerprint = split_fingerprint(train.ids, val.ids if val is not None else None, test.ids)
    held_out = ds.test is None and (not per_class or ds.train.groups is not None)
    params: dict[str, Any] = {
        "dataset": ds.name,
        "seed": int(seed),
        "train_size": train_size,
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction) if held_out else None,
    }
    if per_class:  # only then: the fraction protocol's params stay what stored runs hold
        params.update(
            {
                "train_per_class": train_per_class,
                "test_per_class": test_per_class,
                "short_classes": short_classes,
            }
        )
    if per_class or index:  # split 0 of the fraction protocol is the split stored runs hold
        params["split_index"] = index
    return Split(train=train, val=val, test=test, fingerprint=fingerprint, params=params)


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


_TAKE_REST_HINT = " (--short-classes take-rest gives its test what is left)"


def _per_class_parts(
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

    See the module docstring ("Per-class protocol"). Every class of the manifest must
    meet the counts; the first that does not is named in the DataError.
    """
    classes = ds.manifest.classes
    source = ds.train
    take_rest = short_classes == "take-rest"
    hint = "" if take_rest else _TAKE_REST_HINT
    train_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []

    if source.groups is not None:
        return _per_class_groups(
            ds, seed, index, n_train, n_test, take_rest, val_fraction, test_fraction
        )

    for c, name in enumerate(classes):
        pos = _class_positions(source.ids, source.labels, c)
        n = len(pos)
        perm = pos[_rng(seed, _STREAM_PC_POOL, c, index).permutation(n)]
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
        test_source = ds.test
        for c, name in enumerate(classes):
            pos = _class_positions(test_source.ids, test_source.labels, c)
            n = len(pos)
            if n_test is None:
                test_parts.append(pos)
                continue
            if (n < n_test and not take_rest) or n == 0:
                raise _short(name, n, n_test, " in the test part", hint if n else "")
            perm = pos[_rng(seed, _STREAM_PC_TEST, c, index).permutation(n)]
            test_parts.append(perm[:n_test])
        test = test_source.subset(np.sort(np.concatenate(test_parts)))
    else:
        test = source.subset(np.sort(np.concatenate(test_parts)))
    return (
        np.sort(np.concatenate(train_parts)),
        np.sort(np.concatenate(val_parts)),
        test,
    )


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
    classes = ds.manifest.classes
    source = ds.train
    assert source.groups is not None
    hint = "" if take_rest else _TAKE_REST_HINT
    all_pos = np.arange(len(source))
    if ds.test is None:
        in_test = _group_mask(
            source.groups, test_fraction, _rng(seed, _STREAM_TEST_GROUPS, 0, index)
        )
        pool, test_pool = all_pos[~in_test], all_pos[in_test]
        test_set, test_in = source, test_pool
    else:
        pool = all_pos
        test_set, test_in = ds.test, np.arange(len(ds.test))
    val_pool = np.empty(0, dtype=np.int64)
    if val_fraction > 0:
        in_val = _group_mask(
            source.groups[pool], val_fraction, _rng(seed, _STREAM_VAL_GROUPS, 0, index)
        )
        pool, val_pool = pool[~in_val], pool[in_val]

    def ordered(where: np.ndarray, part: ImageSet, c: int, stream: int) -> np.ndarray:
        pos = where[_class_positions(part.ids[where], part.labels[where], c)]
        return pos[_rng(seed, stream, c, index).permutation(len(pos))]

    train_parts, val_parts, test_parts = [], [], []
    for c, name in enumerate(classes):
        test_c = ordered(test_in, test_set, c, _STREAM_PC_TEST)
        if n_test is None:
            test_parts.append(test_c)
        elif len(test_c) >= n_test or (take_rest and len(test_c) > 0):
            test_parts.append(test_c[:n_test])
        else:
            raise _short(
                name, len(test_c), n_test, " in the test part's groups", hint if len(test_c) else ""
            )
        train_c = ordered(pool, source, c, _STREAM_PC_POOL)
        val_c = ordered(val_pool, source, c, _STREAM_VAL_POOL)
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


def _fraction_parts(
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
    if ds.test is None and source.groups is not None:
        in_test = _group_mask(
            source.groups, test_fraction, _rng(seed, _STREAM_TEST_GROUPS, 0, index)
        )
        pool_pos, test = np.flatnonzero(~in_test), source.subset(np.flatnonzero(in_test))
    elif ds.test is None:
        pool_pos, test_pos = _hold_out_test(source, test_fraction, seed, classes, index)
        test = source.subset(test_pos)
    else:
        pool_pos, test = np.arange(len(source)), ds.test
    val_pos = np.empty(0, dtype=np.int64)
    if source.groups is not None and val_fraction > 0:  # validation's groups leave the pool
        rng = _rng(seed, _STREAM_VAL_GROUPS, 0, index)
        in_val = _group_mask(source.groups[pool_pos], val_fraction, rng)
        pool_pos, val_pos = pool_pos[~in_val], pool_pos[in_val]
    pool_labels = source.labels[pool_pos]
    present = [c for c in range(len(classes)) if np.any(pool_labels == c)]
    if len(present) < 2:
        raise DataError(
            f"dataset {ds.name!r} has {len(present)} class(es) with training images; "
            "a split needs at least 2"
        )

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
        counts = _train_counts(train_size, present, seed, index)

    train_parts, val_parts = [], []
    for c in present:
        pos = pool_pos[_class_positions(source.ids[pool_pos], pool_labels, c)]
        n = len(pos)
        perm = pos[_rng(seed, _STREAM_POOL, c, index).permutation(n)]
        if source.groups is not None:
            t = n if train_size is None else counts[c]
            picked = _group_val(source, val_pos, c, t, train_size, val_fraction, seed, index)
            if t > n or (val_fraction > 0 and len(picked) == 0):
                raise DataError(
                    f"class {classes[c]!r} has {n} training image(s) outside validation's "
                    f"groups and {len(picked)} in them; the split needs {t} and at least 1"
                )
            train_parts.append(perm[:t])
            if len(picked):
                val_parts.append(picked)
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

    train_pos = np.sort(np.concatenate(train_parts))
    val_all = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    return train_pos, val_all, test
