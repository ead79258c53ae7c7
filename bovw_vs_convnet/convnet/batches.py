"""Batch sources for the trainer: the whole set resident on the device, or a DataLoader.

The fast path (airbench-style) keeps the whole set on the training device as uint8
(N, C, H, W) and draws each batch by slicing a shuffled index: no per-image Python,
no host-to-device copy per step. Lazy (ImageFolder) sets, too large to hold, are
read from files by a DataLoader with workers instead. Both give (uint8 images,
labels) batches on the device; :func:`make_batches` picks one. Example::

    source = make_batches(train, torch.device("cpu"), workers=2)
    for xb, yb in source.batches(128, torch.Generator().manual_seed(0)):
        ...  # xb: (B, C, H, W) uint8, yb: (B,) int64
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from bovw_vs_convnet.data.imageset import ImageSet


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


class _LazyDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.asarray(self.images.images[i])  # (H, W, C) uint8, read from file
        return torch.from_numpy(img.transpose(2, 0, 1).copy()), int(self.images.labels[i])


class LoaderBatches:
    """Batches read from files by a DataLoader with workers (sets too large to hold in memory)."""

    def __init__(self, images: ImageSet, device: torch.device, workers: int) -> None:
        self.dataset = _LazyDataset(images)
        self.device, self.workers = device, workers

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(
        self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels) batches moved to the device."""
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=generator is not None,
            generator=generator, num_workers=self.workers, drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        for xb, yb in loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of batches per pass."""
        n = len(self.dataset)
        return n // batch_size if drop_last else -(-n // batch_size)


BatchSource = ResidentBatches | LoaderBatches


def make_batches(images: ImageSet, device: torch.device, workers: int) -> BatchSource:
    """The resident fast path for in-memory sets, a DataLoader for lazy ones."""
    if images.is_lazy:
        return LoaderBatches(images, device, workers)
    return ResidentBatches(images, device)
