"""scikit-learn's bundled 8×8 handwritten digits (UCI "Optical Recognition of Handwritten Digits").

1 797 images, values 0..16 rescaled to uint8 0..255. No official split: the
common split holds out a stratified, seeded test fraction.
"""

from __future__ import annotations

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError


def load_digits_set(manifest: Manifest) -> ImageSet:
    """All 1 797 digits as one ImageSet of uint8 (N, 8, 8, 1) images, ids ``00000``…"""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    if images.shape[1:3] != manifest.image_size:
        raise DataError(f"digits are {images.shape[1:3]}, manifest says {manifest.image_size}")
    ids = np.char.zfill(np.arange(len(labels)).astype(str), 5)
    return ImageSet(images, labels, ids, manifest.classes, manifest.name)
