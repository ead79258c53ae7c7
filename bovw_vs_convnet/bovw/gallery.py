"""A visual-word gallery: for some words, the image patches whose descriptors lie nearest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.vocabulary import nearest_word, sq_distances


def word_gallery(
    images: np.ndarray | Sequence[np.ndarray],
    descriptors: DescriptorSet,
    values: np.ndarray,
    vocabulary: np.ndarray,
    n_words: int = 16,
    n_patches: int = 8,
    upscale: float = 1.0,
    tile: int = 32,
    gap: int = 2,
) -> np.ndarray:
    """A uint8 gray grid: one row per word, its ``n_patches`` nearest patches, white gaps.

    Args:
        images: the images that ``descriptors`` describe, as they were described
            (after any shrinking): a uint8 (N, H, W[, C]) array, or a sequence of
            (H, W[, C]) arrays of any shapes, gray levels in 0–255.
        descriptors: their descriptors (positions and scales locate the patches).
        values: the descriptor values in the vocabulary's space (after PCA, if any).
        vocabulary: (k, D) visual words; the ``n_words`` most populated are shown,
            except words of flat patches (centres near the origin).
        upscale: the factor the descriptor scales are measured in.
        tile: side of each patch in the grid, in pixels; ``gap``: white pixels between.
    """
    import cv2

    def gray_of(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img, np.float32)
        return img if img.ndim == 2 else img[..., :3].mean(axis=-1)

    words = nearest_word(values, vocabulary)
    counts = np.bincount(words, minlength=len(vocabulary))
    # skip the word(s) of flat patches (zeroed descriptors cluster near the origin)
    norms = np.linalg.norm(vocabulary, axis=1)
    counts[norms < 0.25 * norms.max()] = -1
    populated = np.argsort(-counts, kind="stable")[: min(n_words, int((counts > 0).sum()))]
    d = sq_distances(values, vocabulary[populated])  # (M, words shown): not (M, k)
    img_of = descriptors.image_index()
    step = tile + gap
    grid = np.full((len(populated) * step, n_patches * step), 255, np.uint8)
    for r in range(len(populated)):
        order = np.argsort(d[:, r])[:n_patches]
        for c, m in enumerate(order):
            gray = gray_of(images[img_of[m]])
            h, w = gray.shape
            side = max(2.0, float(descriptors.scales[m]) / upscale)
            cx, cy = descriptors.positions[m, 0] * w, descriptors.positions[m, 1] * h
            x0, y0 = round(cx - side / 2), round(cy - side / 2)
            x1, y1 = x0 + round(side), y0 + round(side)
            pad = round(side)
            src = np.pad(gray, pad)[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
            if src.size == 0:
                continue
            patch = cv2.resize(src, (tile, tile), interpolation=cv2.INTER_NEAREST)
            grid[r * step : r * step + tile, c * step : c * step + tile] = np.clip(patch, 0, 255)
    return grid


GALLERY_TITLE = "Visual words: one row per word, its nearest patches"


def titled(grid: np.ndarray, title: str, *, scale: float = 0.4, margin: int = 4) -> np.ndarray:
    """``grid`` under a white band holding ``title`` in black, wrapped to the grid's width.

    The PNG a run leaves is read on its own (a file browser, the report), so it says
    what it shows.
    """
    import cv2

    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    width = grid.shape[1] - 2 * margin
    lines: list[str] = []
    for word in title.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        fits = cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= width
        if lines and fits:
            lines[-1] = candidate
        else:
            lines.append(word)
    height = cv2.getTextSize("Ag", font, scale, thickness)[0][1] + 2 * margin
    band = np.full((height * len(lines) + margin, grid.shape[1]), 255, np.uint8)
    for i, line in enumerate(lines):
        baseline = (i + 1) * height - margin
        cv2.putText(band, line, (margin, baseline), font, scale, 0, thickness, cv2.LINE_AA)
    return np.concatenate([band, grid])


def save_gallery(grid: np.ndarray, path: Path, *, title: str = GALLERY_TITLE) -> Path:
    """Write the gallery grid as a PNG, ``title`` above it (:func:`titled`); returns the path."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), titled(grid, title) if title else grid):
        raise OSError(f"could not write {path}")
    return path
