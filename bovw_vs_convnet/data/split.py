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

This module checks the arguments and records the split; the protocols draw their
parts in :mod:`.split_fraction` and :mod:`.split_per_class`, from the seeded streams
of :mod:`.split_draws`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bovw_vs_convnet.data.datasets import Dataset
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.split_fraction import fraction_parts
from bovw_vs_convnet.data.split_per_class import per_class_parts
from bovw_vs_convnet.errors import DataError

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


def _check_numbers(
    ds: Dataset,
    seed: int,
    train_size: int | None,
    val_fraction: float,
    test_fraction: float,
    split_index: int,
) -> None:
    """Refuse a seed, train size, fraction or split index out of range."""
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


def _check_protocol(
    ds: Dataset,
    protocol: dict[str, Any],
    train_size: int | None,
    val_fraction: float,
    split_index: int,
) -> bool:
    """Refuse per-class settings that do not fit; True for the per-class protocol.

    ``protocol``: ``train_per_class``, ``test_per_class`` and ``short_classes``.
    """
    short_classes = protocol["short_classes"]
    if short_classes not in SHORT_CLASSES:
        raise DataError(
            f"short_classes must be one of {', '.join(SHORT_CLASSES)}, got {short_classes!r}"
        )
    for what in ("train", "test"):
        n = protocol[f"{what}_per_class"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise DataError(f"--{what}-per-class must be a positive integer, got {n!r}")
    per_class = protocol["train_per_class"] is not None or protocol["test_per_class"] is not None
    if per_class and train_size is not None:
        raise DataError("give a train size or a number of training images per class, not both")
    whole_train = ds.test is not None and train_size is None and val_fraction == 0
    if not per_class and split_index and whole_train:
        raise DataError(
            f"split {split_index} of {ds.name!r} would repeat split 0: the official test "
            "part and the whole training part, with no validation, leave nothing to "
            "resample (give --train-per-class, --train-size or a validation fraction)"
        )
    return per_class


def _split_params(
    ds: Dataset,
    seed: int,
    train_size: int | None,
    val_fraction: float,
    test_fraction: float,
    per_class: dict[str, Any] | None,
    index: int,
) -> dict[str, Any]:
    """What made the split, as runs store it (``per_class``: that protocol's settings)."""
    held_out = ds.test is None and (per_class is None or ds.train.groups is not None)
    params: dict[str, Any] = {
        "dataset": ds.name,
        "seed": int(seed),
        "train_size": train_size,
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction) if held_out else None,
    }
    if per_class is not None:  # only then: the fraction protocol's params stay what runs hold
        params.update(per_class)
    if per_class is not None or index:  # split 0 of the fraction protocol: what runs hold
        params["split_index"] = index
    return params


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
    protocol = dict(
        train_per_class=train_per_class, test_per_class=test_per_class, short_classes=short_classes
    )
    _check_numbers(ds, seed, train_size, val_fraction, test_fraction, split_index)
    per_class = _check_protocol(ds, protocol, train_size, val_fraction, split_index)
    index = int(split_index)
    if per_class:
        train_pos, val_pos, test = per_class_parts(
            ds,
            int(seed),
            index,
            train_per_class,
            test_per_class,
            short_classes,
            val_fraction,
            test_fraction,
        )
    else:
        train_pos, val_pos, test = fraction_parts(
            ds, int(seed), index, train_size, val_fraction, test_fraction
        )
    train = ds.train.subset(train_pos)
    val = ds.train.subset(val_pos) if len(val_pos) else None
    fingerprint = split_fingerprint(train.ids, val.ids if val is not None else None, test.ids)
    params = _split_params(
        ds, seed, train_size, val_fraction, test_fraction, protocol if per_class else None, index
    )
    return Split(train=train, val=val, test=test, fingerprint=fingerprint, params=params)
