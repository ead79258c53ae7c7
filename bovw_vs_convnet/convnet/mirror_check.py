"""Whether a folder's classes survive a mirror, decided from its images.

A manifest says whether a mirror image keeps its class (``mirror_ok``); a folder of
class subfolders says nothing, and flipping letters turns b into d. For a folder
(``imagefolder:...``) under the auto recipe with ``mirror=auto``,
:func:`check_mirroring` asks a fast model (1-nearest-neighbour on a small histogram of
oriented gradients, 4x4 cells of 9 unsigned orientations on a 32x32 grey thumbnail:
unsigned, so a light glyph on dark and a dark one on light look alike) two questions
on the validation images:

1. Are the mirrored validation images scored worse than the same images as they are
   (one-sided exact McNemar, p < 0.01, and by at least :data:`MIN_RISE`)? Then a
   mirror changes what the images look like to a model trained on the plain ones.
2. Does adding the mirrored training images (with their own labels) fail to help? A
   mirror that keeps the class gives more of the same class (Fashion-MNIST's shoes all
   face left: question 1 says yes, but the mirrored shoes are still shoes and 1-NN
   does no worse with them); a mirror that changes the class puts a "d" labelled b
   among the d's, and the error rises.

Flips are off when both say so. The model at chance on the validation images (the
one-sided binomial test of :func:`~bovw_vs_convnet.significance.chance_test`): the
test says nothing, and flips stay on. The record (``extra["mirror_check"]``) keeps the
errors, the tests and the reason.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bovw_vs_convnet.convnet.config import AUTO, ConvNetConfig
from bovw_vs_convnet.data.datasets import IMAGEFOLDER_PREFIX
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.significance import chance_test_labels, mirror_test

log = logging.getLogger(__name__)

SIDE, CELL, BINS = 32, 8, 9  # px thumbnail, px a cell, unsigned orientation bins
LIMIT = 3000  # images of each part read (evenly spaced): a lazy folder is read from its files
MIN_RISE = 0.02  # error the mirror must add, beside significance, to switch flips off


def gradient_histograms(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 images as (N, 16*BINS) L2-normalised orientation histograms."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().mean(dim=3, keepdim=True)
    g = F.interpolate(x.permute(0, 3, 1, 2), size=(SIDE, SIDE), mode="area")[:, 0].numpy()
    gy, gx = np.gradient(g, axis=(1, 2))  # (N, SIDE, SIDE) each
    magnitude = np.hypot(gx, gy)
    bins = np.minimum((np.arctan2(gy, gx) % np.pi / np.pi * BINS).astype(int), BINS - 1)
    n, cells = len(images), SIDE // CELL
    hist = np.stack(
        [
            (magnitude * (bins == k)).reshape(n, cells, CELL, cells, CELL).sum(axis=(2, 4))
            for k in range(BINS)
        ],
        axis=-1,
    ).reshape(n, -1)
    return hist / (np.linalg.norm(hist, axis=1, keepdims=True) + 1e-6)


def _nearest(train: np.ndarray, labels: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The label of each query's nearest training vector (cosine: the vectors are unit)."""
    return labels[np.argmax(query @ train.T, axis=1)]


def _sample(images: ImageSet) -> ImageSet:
    step = max(1, len(images) // LIMIT)
    return images if step == 1 else images.subset(np.arange(0, len(images), step))


def check_mirroring(train: ImageSet, val: ImageSet) -> dict[str, Any]:
    """The data's verdict on mirroring: ``flips`` ("on"/"off"), ``why`` and the tests.

    Both parts are sampled to at most :data:`LIMIT` images each.
    """
    tr, va = _sample(train), _sample(val)
    x_tr, x_val = tr.array(), va.array()
    f_tr, f_val = gradient_histograms(x_tr), gradient_histograms(x_val)
    f_tr_mirror = gradient_histograms(x_tr[:, :, ::-1])
    plain = _nearest(f_tr, tr.labels, f_val) == va.labels
    mirror = _nearest(f_tr, tr.labels, gradient_histograms(x_val[:, :, ::-1])) == va.labels
    both = np.concatenate([tr.labels, tr.labels])
    augmented = _nearest(np.vstack([f_tr, f_tr_mirror]), both, f_val) == va.labels
    chance = chance_test_labels(float(1 - plain.mean()), va.labels)
    test = mirror_test(plain, mirror)
    aug_err = float(1 - augmented.mean())
    out: dict[str, Any] = {"model": "1-NN on 4x4x9 gradient histograms", "n_val": len(va)}
    out.update(chance=chance.record(), mirror=test.record(), augmented_err=aug_err)
    errors = (
        f"{test.plain_err:.1%} as they are, {test.mirror_err:.1%} mirrored, "
        f"{aug_err:.1%} with mirrored training images"
    )
    if not chance.significant:
        flips, why = "on", f"a fast model is at chance (p = {chance.p_value:.2g}): "
        why += "the data says nothing, flips stay on"
    elif not (test.worse and test.mirror_err - test.plain_err >= MIN_RISE):
        flips, why = "on", f"mirroring does not hurt (McNemar p = {test.p_value:.2g}): flips on"
    elif aug_err < test.plain_err:
        flips, why = "on", "mirrored images look different but training on them helps: flips on"
    else:
        flips, why = "off", f"mirrored images score worse (McNemar p = {test.p_value:.2g}) "
        why += "and training on them does not help: a mirror changes the class, flips off"
    out["flips"] = flips
    out["why"] = f"a fast model's validation error {errors}; {why}"
    return out


def decide_mirroring(
    cfg: ConvNetConfig, train: ImageSet, val: ImageSet | None
) -> tuple[ImageSet, dict[str, Any] | None]:
    """``train`` with ``mirror_ok`` decided from the data, and the check's record (or None).

    Only a folder (whose ``mirror_ok`` is a default, not a manifest's word) under the
    auto recipe with ``mirror=auto`` and a validation part is checked; every other set
    comes back unchanged with None.
    """
    if not (
        train.name.startswith(IMAGEFOLDER_PREFIX)
        and cfg.recipe == AUTO
        and cfg.mirror == AUTO
        and train.mirror_ok
        and val is not None
        and len(val)
    ):
        return train, None
    found = check_mirroring(train, val)
    log.info("mirroring: %s", found["why"])
    return dataclasses.replace(train, mirror_ok=found["flips"] == "on"), found
