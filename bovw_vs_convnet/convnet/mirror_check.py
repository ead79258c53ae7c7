"""Whether a folder's classes survive a mirror, decided from its images.

A manifest says whether a mirror image keeps its class (``mirror_ok``); a folder of
class subfolders says nothing, and flipping letters turns b into d. For a folder
(``imagefolder:...``) under the auto recipe with ``mirror=auto``,
:func:`check_mirroring` trains a fast model (a ridge classifier on 16x16 grey pixels)
on the unflipped training images, scores the validation images as they are and
mirrored, and compares the two on the same images:

- the model at chance on the validation images (the one-sided binomial test of
  :func:`~bovw_vs_convnet.significance.chance_test`): the test says nothing, flips stay on;
- the mirrored images significantly worse (one-sided exact McNemar, p < 0.01) and by
  at least :data:`MIN_RISE` of error: flips are off (and so is the test-time flip);
- otherwise flips stay on.

The record (``extra["mirror_check"]``) keeps the errors, the test and the reason.
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

SIDE = 16  # px: the fast model's grey thumbnails
LIMIT = 3000  # images of each part read (evenly spaced): a lazy folder is read from its files
MIN_RISE = 0.02  # error the mirror must add, beside significance, to switch flips off
RIDGE = 0.01  # the ridge penalty per training image (standardised pixels)


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 images as (N, SIDE*SIDE) grey float32 pixels, area-averaged."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().mean(dim=3, keepdim=True)
    x = F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), SIDE)  # (N, 1, SIDE, SIDE)
    return x.reshape(len(images), -1).numpy()


def _sample(images: ImageSet) -> ImageSet:
    step = max(1, len(images) // LIMIT)
    return images if step == 1 else images.subset(np.arange(0, len(images), step))


def check_mirroring(train: ImageSet, val: ImageSet) -> dict[str, Any]:
    """The data's verdict on mirroring: ``flips`` ("on"/"off"), ``why`` and the tests.

    Both parts are sampled to at most :data:`LIMIT` images each.
    """
    tr, va = _sample(train), _sample(val)
    x_tr, x_val = tr.array(), va.array()
    raw = [thumbnails(a) for a in (x_tr, x_val, x_val[:, :, ::-1])]  # (N, SIDE*SIDE) each
    mean_img, std = raw[0].mean(0), raw[0].std() + 1e-6
    feats = [(f - mean_img) / std for f in raw]
    targets = np.eye(train.n_classes, dtype=np.float32)[tr.labels] - 1.0 / train.n_classes
    gram = feats[0].T @ feats[0] + RIDGE * len(feats[0]) * np.eye(SIDE * SIDE)
    weights = np.linalg.solve(gram, feats[0].T @ targets)  # (SIDE*SIDE, K)
    plain = (feats[1] @ weights).argmax(1) == va.labels
    mirror = (feats[2] @ weights).argmax(1) == va.labels
    chance = chance_test_labels(float(1 - plain.mean()), va.labels)
    test = mirror_test(plain, mirror)
    out: dict[str, Any] = {"model": f"ridge on {SIDE}x{SIDE} grey pixels", "n_val": len(va)}
    out.update(chance=chance.record(), mirror=test.record())
    errors = f"{test.plain_err:.1%} as they are, {test.mirror_err:.1%} mirrored"
    if not chance.significant:
        flips, why = "on", f"a fast model is at chance on them (p = {chance.p_value:.2g}): "
        why += "the data says nothing, flips stay on"
    elif test.worse and test.mirror_err - test.plain_err >= MIN_RISE:
        flips, why = "off", f"mirrored ones score worse (McNemar p = {test.p_value:.2g}): "
        why += "a mirror changes the class, flips off"
    else:
        flips, why = "on", f"mirroring does not hurt (McNemar p = {test.p_value:.2g}): flips on"
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
