"""A seeded generator of simple shape images, for tests and quick runs.

Each image is one shape (circle, square, triangle, cross, horizontal or
vertical stripes) of random position, size and brightness on a darker random
background, plus Gaussian noise. The same (seed, counts, size, noise) gives the
same bytes on any machine: every random number comes from ``numpy``'s
``default_rng`` and drawing uses OpenCV's integer rasteriser.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import DataError

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "horizontal-stripes",
    "vertical-stripes",
)


def _circle(
    img: np.ndarray, cx: int, cy: int, r: int, value: int, rng: np.random.Generator
) -> None:
    import cv2

    cv2.circle(img, (cx, cy), r, value, thickness=-1, lineType=cv2.LINE_8)


def _square(
    img: np.ndarray, cx: int, cy: int, r: int, value: int, rng: np.random.Generator
) -> None:
    import cv2

    cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), value, thickness=-1)


def _triangle(
    img: np.ndarray, cx: int, cy: int, r: int, value: int, rng: np.random.Generator
) -> None:
    import cv2

    angle = rng.uniform(0, 2 * np.pi)
    pts = [
        (
            round(cx + r * np.cos(angle + k * 2 * np.pi / 3)),
            round(cy + r * np.sin(angle + k * 2 * np.pi / 3)),
        )
        for k in range(3)
    ]
    cv2.fillPoly(img, [np.array(pts, dtype=np.int32)], value)


def _cross(img: np.ndarray, cx: int, cy: int, r: int, value: int, rng: np.random.Generator) -> None:
    import cv2

    t = max(1, r // 3)
    cv2.rectangle(img, (cx - r, cy - t), (cx + r, cy + t), value, thickness=-1)
    cv2.rectangle(img, (cx - t, cy - r), (cx + t, cy + r), value, thickness=-1)


def _stripes(axis: int) -> Callable[..., None]:
    def draw(
        img: np.ndarray, cx: int, cy: int, r: int, value: int, rng: np.random.Generator
    ) -> None:
        period = int(rng.integers(3, 6))
        y0, y1 = max(0, cy - r), min(img.shape[0], cy + r + 1)
        x0, x1 = max(0, cx - r), min(img.shape[1], cx + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        on = ((yy if axis == 0 else xx) // max(1, period // 2)) % 2 == 0
        img[y0:y1, x0:x1][on] = value

    return draw


_DRAW = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "cross": _cross,
    "horizontal-stripes": _stripes(0),
    "vertical-stripes": _stripes(1),
}


def make_shapes(
    n_per_class: int,
    *,
    seed: int = 0,
    size: int = 32,
    noise: float = 10.0,
    classes: tuple[str, ...] = SHAPES,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_per_class`` images of each shape: uint8 (N, size, size, 1) and int64 labels.

    Images are in class-major order (all of class 0, then class 1, ...).
    """
    unknown = [c for c in classes if c not in _DRAW]
    if unknown:
        raise DataError(f"unknown synthetic shape {unknown[0]!r}; known: {', '.join(SHAPES)}")
    if n_per_class < 0 or size < 8:
        raise DataError(
            f"synthetic: need n_per_class >= 0 and size >= 8, got {n_per_class}, {size}"
        )
    rng = np.random.default_rng(seed)
    n = n_per_class * len(classes)
    images = np.empty((n, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class)
    r_lo, r_hi = max(3, size // 6), max(4, size // 3)
    for i, label in enumerate(labels):
        bg = int(rng.integers(0, 80))
        img = np.full((size, size), bg, dtype=np.uint8)
        r = int(rng.integers(r_lo, r_hi + 1))
        cx = int(rng.integers(r, size - r))
        cy = int(rng.integers(r, size - r))
        value = int(rng.integers(150, 256))
        _DRAW[classes[label]](img, cx, cy, r, value, rng)
        if noise > 0:
            noisy = img.astype(np.float32) + rng.normal(0.0, noise, img.shape).astype(np.float32)
            img = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        images[i] = img
    return images[..., None], labels


def synthetic_imageset(
    n_per_class: int,
    *,
    part: str = "train",
    seed: int = 0,
    size: int = 32,
    noise: float = 10.0,
    classes: tuple[str, ...] = SHAPES,
    name: str = "synthetic",
) -> ImageSet:
    """A shape ImageSet with ids ``<part>/00000``…, handy for tests of any pipeline."""
    images, labels = make_shapes(n_per_class, seed=seed, size=size, noise=noise, classes=classes)
    ids = np.char.add(f"{part}/", np.char.zfill(np.arange(len(labels)).astype(str), 5))
    return ImageSet(images, labels, ids, tuple(classes), name)
