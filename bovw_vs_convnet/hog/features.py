"""HOG descriptors of image batches, by scikit-image's ``hog``.

Dalal and Triggs (CVPR 2005): gradients by the centred [-1, 0, 1] filter; at each
pixel of a colour image, the gradient of the channel with the largest magnitude;
per cell, a histogram of unsigned orientations weighted by gradient magnitude;
cells grouped into overlapping blocks, each block normalised (L2-Hys: L2, values
clipped at 0.2, L2 again). scikit-image's ``hog`` does this, without the paper's
Gaussian block window and trilinear vote interpolation; OpenCV's
``HOGDescriptor`` has both, and was 25x faster per image on one grid, but it is
gone from OpenCV 5, which this project installs (``benchmarks/bench_hog.py``,
``benchmarks/RESULTS-baselines.md``). scikit-image's block loop holds the GIL,
so a batch is split into chunks described in parallel processes.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

from bovw_vs_convnet.errors import DataError

BlockNorm = Literal["L2-Hys", "L1", "L1-sqrt", "L2"]


def hog_length(shape: tuple[int, int], cell: int, block: int, orientations: int) -> int:
    """Length of the HOG vector of an (H, W) image; DataError if no block fits in it."""
    cells_y, cells_x = shape[0] // cell, shape[1] // cell
    blocks_y, blocks_x = cells_y - block + 1, cells_x - block + 1
    if blocks_y < 1 or blocks_x < 1:
        raise DataError(
            f"images of {shape[0]}×{shape[1]} px are smaller than one HOG block "
            f"({block}×{block} cells of {cell} px); set a smaller cell or block"
        )
    return blocks_y * blocks_x * block * block * orientations


def _describe(
    images: np.ndarray,
    cell: int,
    block: int,
    orientations: int,
    block_norm: BlockNorm,
    transform_sqrt: bool,
) -> np.ndarray:
    """(N, D) float32 HOG vectors of uint8 (N, H, W, C) images, one ``hog`` call each."""
    from skimage.feature import hog  # lazy: importing skimage takes a second

    colour = images.shape[3] > 1
    out = np.empty(
        (len(images), hog_length(images.shape[1:3], cell, block, orientations)), np.float32
    )
    for i, image in enumerate(images):
        out[i] = hog(
            image if colour else image[..., 0],
            orientations=orientations,
            pixels_per_cell=(cell, cell),
            cells_per_block=(block, block),
            block_norm=block_norm,
            transform_sqrt=transform_sqrt,
            feature_vector=True,
            # colour: each pixel's gradient from its channel of largest magnitude
            channel_axis=-1 if colour else None,
        )
    return out


def hog_features(
    images: np.ndarray,
    cell: int = 4,
    block: int = 2,
    orientations: int = 9,
    block_norm: BlockNorm = "L2-Hys",
    transform_sqrt: bool = False,
    n_jobs: int = 1,
    chunk: int = 2048,
) -> np.ndarray:
    """HOG vectors (N, D) float32 of uint8 images (N, H, W, C), C = 1 or 3.

    ``cell``: cell side in px; ``block``: block side in cells (blocks step one cell);
    ``orientations``: unsigned orientation bins over 0–180°; ``block_norm``,
    ``transform_sqrt``: as scikit-image's ``hog``. Chunks of ``chunk`` images
    are described in ``n_jobs`` processes (-1: every core).
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(f"HOG needs uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
    hog_length(images.shape[1:3], cell, block, orientations)  # refuse images too small
    args = (cell, block, orientations, block_norm, transform_sqrt)
    chunks = [images[s : s + chunk] for s in range(0, len(images), chunk)]
    workers = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
    if len(chunks) <= 1 or workers == 1:
        parts = [_describe(c, *args) for c in chunks]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=min(workers, len(chunks)))(
            delayed(_describe)(c, *args) for c in chunks
        )
    if not parts:
        return np.empty((0, hog_length(images.shape[1:3], *args[:3])), np.float32)
    return np.concatenate(parts)
