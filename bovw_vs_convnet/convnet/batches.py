"""Batch sources for the trainer: the whole set resident on the device, or a DataLoader.

The fast path (airbench-style) keeps the whole set on the training device as uint8
(N, C, H, W) and draws each batch by slicing a shuffled index: no per-image Python,
no host-to-device copy per step. Lazy (ImageFolder) sets, too large to hold, are
read from files by a DataLoader with workers instead. Both give (uint8 images,
labels) batches on the device; :func:`make_batches` picks one.

Images of mixed sizes (an ImageFolder whose ``ImageSet.native`` is set) follow
torchvision's convention for such folders: scored on their common frame, each
image's shorter side resized to it and the middle kept (``Resize`` +
``CenterCrop``, done by the data layer); trained on a fresh random-resized crop of
the whole image each time it is drawn (``RandomResizedCrop``: 8–100 % of its area,
aspect 3/4–4/3, resized to the frame), read from its file by the DataLoader. Flips,
where the set's ``mirror_ok`` allows them, are the batch augmentation's. Example::

    source = make_batches(train, torch.device("cpu"), workers=2)
    for xb, yb in source.batches(128, torch.Generator().manual_seed(0)):
        ...  # xb: (B, C, H, W) uint8, yb: (B,) int64
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from bovw_vs_convnet.convnet.input_size import CROP_RATIO
from bovw_vs_convnet.data.imageset import ImageSet

# torchvision's RandomResizedCrop defaults (Szegedy et al. 2015, "Inception" crops): this
# area and the aspect CROP_RATIO, which the crops of larger images share
CROP_SCALE = (0.08, 1.0)


def to_nchw_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy → uint8 (N, C, H, W) tensor (contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


class ResidentBatches:
    """The whole set on ``device`` as uint8 (N, C, H, W); batches are slices of a shuffled index."""

    def __init__(self, images: ImageSet, device: torch.device) -> None:
        self.x = to_nchw_uint8(images.array()).to(device)  # (N, C, H, W) uint8
        self.y = torch.from_numpy(images.labels.astype(np.int64)).to(device)  # (N,)
        self.device = device

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels) batches, shuffled when ``generator`` is given."""
        n = len(self.y)
        if generator is not None:
            order = torch.randperm(n, generator=generator).to(self.device)
        else:
            order = None
        stop = n - n % batch_size if drop_last else n
        for i in range(0, stop, batch_size):
            if order is None:
                yield self.x[i : i + batch_size], self.y[i : i + batch_size]
            else:
                idx = order[i : i + batch_size]
                yield self.x[idx], self.y[idx]

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of batches per pass."""
        n = len(self.y)
        return n // batch_size if drop_last else -(-n // batch_size)


def crop_box(h: int, w: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random-resized crop of an ``h`` × ``w`` image.

    torchvision's ``RandomResizedCrop.get_params``: up to ten draws of an area share
    in :data:`CROP_SCALE` and a log-uniform aspect in :data:`CROP_RATIO` until the box
    fits, else the centre crop of the nearest allowed aspect. Draws come from
    ``generator`` (None: torch's global generator; a DataLoader seeds each worker's).
    """
    area = h * w
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        u = torch.rand(4, generator=generator).tolist()
        target = area * (CROP_SCALE[0] + u[0] * (CROP_SCALE[1] - CROP_SCALE[0]))
        aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1)), ch, cw
    ratio = w / h
    if ratio < CROP_RATIO[0]:
        cw, ch = w, round(w / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        ch, cw = h, round(h * CROP_RATIO[1])
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(
    img: np.ndarray, size: tuple[int, int], generator: torch.Generator | None = None
) -> np.ndarray:
    """A random-resized crop (:func:`crop_box`) of uint8 (H, W, C) ``img``, resized to ``size``."""
    import cv2

    top, left, ch, cw = crop_box(img.shape[0], img.shape[1], generator)
    patch = img[top : top + ch, left : left + cw]
    shrink = ch * cw > size[0] * size[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(patch, (size[1], size[0]), interpolation=interp)
    return out.reshape(size[0], size[1], img.shape[2])


class _LazyDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, images: ImageSet, random_crop: bool = False) -> None:
        self.images = images
        self.random_crop = random_crop and images.native is not None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.random_crop:
            native = self.images.native
            assert native is not None
            h, w, _ = self.images.image_shape
            img = random_resized_crop(native.read_native(i), (h, w))
        else:
            img = np.asarray(self.images.images[i])  # (H, W, C) uint8, read from file
        return torch.from_numpy(img.transpose(2, 0, 1).copy()), int(self.images.labels[i])


class LoaderBatches:
    """Batches read from files by a DataLoader with workers (sets too large to hold in memory)."""

    def __init__(
        self, images: ImageSet, device: torch.device, workers: int, random_crop: bool = False
    ) -> None:
        self.dataset = _LazyDataset(images, random_crop)
        self.device, self.workers = device, workers

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(
        self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels) batches moved to the device."""
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=generator is not None,
            generator=generator,
            num_workers=self.workers,
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
        )
        for xb, yb in loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of batches per pass."""
        n = len(self.dataset)
        return n // batch_size if drop_last else -(-n // batch_size)


BatchSource = ResidentBatches | LoaderBatches


def make_batches(
    images: ImageSet,
    device: torch.device,
    workers: int,
    train: bool = False,
    native_crops: bool = True,
) -> BatchSource:
    """The resident fast path for in-memory sets, a DataLoader for lazy ones.

    ``train``: batches to train on; for images of mixed sizes they are random-resized
    crops of each whole image, read from the files (a DataLoader, resident or not),
    unless ``native_crops`` is false: then the frames are drawn as they are (the batch
    augmentation crops them: images larger than the model's input, :mod:`.input_size`).
    """
    if train and images.aspect_kept and native_crops:
        return LoaderBatches(images, device, workers, random_crop=True)
    if images.is_lazy:
        return LoaderBatches(images, device, workers)
    return ResidentBatches(images, device)


def aspect_record(images: ImageSet, train: str | None = None) -> dict[str, Any]:
    """What is done to training and scored images of mixed sizes, for the run record
    (``extra.aspect``); empty for images of one size. ``train``: what training does
    instead of the native crops (``make_batches(native_crops=False)``).
    """
    if not images.aspect_kept:
        return {}
    h, w, _ = images.image_shape
    return {
        "aspect": {
            "aspect": "kept",
            "frame": [h, w],
            "train": train
            or f"random-resized crop (area {CROP_SCALE[0]:g}-{CROP_SCALE[1]:g}, "
            f"aspect 3/4-4/3) of the whole image, resized to {h}x{w}",
            "test": f"resized to cover the frame at its aspect, centre crop {h}x{w}",
        }
    }
