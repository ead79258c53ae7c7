"""A ragged set of local descriptors: every image's descriptors, positions and counts, packed.

Dense extractors give the same number of descriptors per image, keypoint
detectors a varying one (zero included); both are held as one (M, D) array with
per-image offsets, like a CSR matrix, so that encoders handle both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DescriptorSet:
    """Local descriptors of ``n_images`` images.

    Attributes:
        values: float32 (M, D) descriptors of all images, image after image.
        positions: float32 (M, 2) descriptor centres as (x, y) fractions of the
            image width and height, in [0, 1); spatial pyramids bin on these.
        offsets: int64 (n_images + 1,); image ``i`` owns rows ``offsets[i]:offsets[i+1]``.
        scales: float32 (M,) patch side in pixels of the (possibly upscaled) image.
    """

    values: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    scales: np.ndarray

    @property
    def n_images(self) -> int:
        """Number of images described."""
        return len(self.offsets) - 1

    @property
    def dim(self) -> int:
        """Length of one descriptor."""
        return int(self.values.shape[1])

    def counts(self) -> np.ndarray:
        """Number of descriptors of each image, int64 (n_images,)."""
        return np.diff(self.offsets)

    def image_index(self) -> np.ndarray:
        """For each descriptor row, the index of its image (int64 (M,))."""
        return np.repeat(np.arange(self.n_images), self.counts())

    def with_values(self, values: np.ndarray) -> DescriptorSet:
        """The same layout with other descriptor values (e.g. after PCA)."""
        return DescriptorSet(values, self.positions, self.offsets, self.scales)

    def select_images(self, index: np.ndarray | Sequence[int]) -> DescriptorSet:
        """The descriptors of the images at ``index``, in that order (a copy)."""
        idx = np.asarray(index, dtype=np.int64)
        counts = self.counts()[idx]
        starts = self.offsets[:-1][idx]
        # row r of image j: starts[j] + (r - first row of j in the result)
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return DescriptorSet(self.values[rows], self.positions[rows], offsets, self.scales[rows])

    def sample(self, per_image: int, keys: np.ndarray | Sequence[int], seed: int) -> DescriptorSet:
        """At most ``per_image`` descriptors of each image, drawn without replacement, in order.

        Image ``i``'s draw is seeded by ``(seed, keys[i])`` (``keys``: e.g. the images'
        positions in their set), so the sample does not depend on which images were
        described together: chunking a pass leaves it unchanged.
        """
        counts = self.counts()
        rows = []
        for start, count, key in zip(self.offsets[:-1], counts, keys, strict=True):
            if count <= per_image:
                rows.append(np.arange(start, start + count))
                continue
            rng = np.random.default_rng((int(seed) % 2**63, int(key)))
            rows.append(start + np.sort(rng.choice(int(count), size=per_image, replace=False)))
        kept = np.minimum(counts, per_image)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(kept, out=offsets[1:])
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return DescriptorSet(self.values[r], self.positions[r], offsets, self.scales[r])

    @staticmethod
    def concatenate(parts: Sequence[DescriptorSet]) -> DescriptorSet:
        """Stack the images of several sets, in order."""
        if not parts:
            raise ValueError("nothing to concatenate")
        counts = np.concatenate([p.counts() for p in parts])
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return DescriptorSet(
            values=np.concatenate([p.values for p in parts]),
            positions=np.concatenate([p.positions for p in parts]),
            offsets=offsets,
            scales=np.concatenate([p.scales for p in parts]),
        )

    @staticmethod
    def from_lists(
        values: Sequence[np.ndarray],
        positions: Sequence[np.ndarray],
        scales: Sequence[np.ndarray],
        dim: int,
    ) -> DescriptorSet:
        """Pack per-image arrays (some may be empty) into one set."""
        counts = np.array([len(v) for v in values], dtype=np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if counts.sum() == 0:
            return DescriptorSet(
                np.zeros((0, dim), np.float32),
                np.zeros((0, 2), np.float32),
                offsets,
                np.zeros(0, np.float32),
            )
        return DescriptorSet(
            values=np.concatenate([np.asarray(v, np.float32).reshape(-1, dim) for v in values]),
            positions=np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in positions]),
            offsets=offsets,
            scales=np.concatenate([np.asarray(s, np.float32).reshape(-1) for s in scales]),
        )
