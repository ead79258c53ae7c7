"""CIFAR-10 in torchvision's python-pickle layout (``cifar-10-batches-py/``).

Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images".
Each batch is a pickled dict with ``data`` (N, 3072) uint8 in channel-first
order and ``labels``; read exactly as torchvision's ``CIFAR10`` reads it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import locate_or_raise
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file as (images uint8 (N, 32, 32, 3), labels int64 (N,))."""
    try:
        with path.open("rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot read CIFAR batch {path}: {exc}") from None
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, H, W, C)
    return np.ascontiguousarray(images), labels


def _part(manifest: Manifest, found: dict[str, Path], part: str) -> ImageSet:
    batches = [read_batch(found[e.path]) for e in manifest.files if e.part == part]
    if not batches:
        raise DataError(f"manifest {manifest.name!r}: no {part} batches listed")
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    ids = np.char.add(f"{part}/", np.char.zfill(np.arange(len(labels)).astype(str), 5))
    return ImageSet(images, labels, ids, manifest.classes, manifest.name)


def load_cifar10(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """The official train (50 000) and test (10 000) parts of CIFAR-10."""
    found = locate_or_raise(manifest, data_dir)
    return _part(manifest, found, "train"), _part(manifest, found, "test")
