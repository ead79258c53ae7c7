"""A glyph folder harder than glyphs-wild, for testing the ConvNet defaults on a new set.

The clean ``glyphs`` set's masks (its font-design split kept) are warped harder than
``glyphs-wild`` (rotation ±35°, shear ±0.4, scale 0.55–1.0, offset ±12 %), laid on a colour
gradient with 4–10 clutter strokes in a contrasting glyph colour, blurred and noised, and
written as an ImageFolder with ``train/`` and ``test/`` (one PNG per image, 32×32 RGB).
The same arguments write the same folder. benchmarks/RESULTS-convnet.md's hard glyph
folder is::

    PYTHONPATH=. python3 benchmarks/make_hard_glyph_folder.py OUT 14 10 31337

(OUT, training and test images a class, seed); ``bvc run convnet --dataset OUT`` reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from bovw_vs_convnet.data import load_dataset
from bovw_vs_convnet.data.imageset import ImageSet


def _clutter(bg: np.ndarray, rng: np.random.Generator, hi: int) -> None:
    """Draw 4–10 random lines, rectangles and elliptic arcs on ``bg`` in place."""
    for _ in range(int(rng.integers(4, 11))):
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        th = int(rng.integers(1, 5))
        p = rng.integers(0, hi, 4)
        k = int(rng.integers(0, 3))
        if k == 0:
            cv2.line(bg, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, th, cv2.LINE_AA)
        elif k == 1:
            cv2.rectangle(bg, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, th)
        else:
            axes = (int(rng.integers(2, hi // 2)), int(rng.integers(2, hi // 2)))
            angle = float(rng.uniform(0, 180))
            end = float(rng.uniform(60, 360))
            cv2.ellipse(bg, (int(p[0]), int(p[1])), axes, angle, 0, end, col, th, cv2.LINE_AA)


def hard(mask: np.ndarray, rng: np.random.Generator, side: int = 32) -> np.ndarray:
    """One hard image (side × side × 3 uint8, RGB) from a glyph mask (H × W uint8)."""
    hi = 2 * side
    m = cv2.resize(mask.astype(np.float32) / 255.0, (hi, hi), interpolation=cv2.INTER_LINEAR)
    c = hi / 2.0
    ang = np.deg2rad(rng.uniform(-35, 35))
    shear, scale = rng.uniform(-0.4, 0.4), rng.uniform(0.55, 1.0)
    shift = rng.uniform(-0.12, 0.12, 2) * hi
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    lin = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    off = np.array([c, c]) + shift - lin @ np.array([c, c])
    alpha = cv2.warpAffine(m, np.hstack([lin, off[:, None]]), (hi, hi), flags=cv2.INTER_LINEAR)
    top, bot = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    d = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, hi)
    t = np.clip(0.5 + ramp[None, :] * np.cos(d) + ramp[:, None] * np.sin(d), 0, 1)[..., None]
    bg = np.ascontiguousarray((top + (bot - top) * t).astype(np.float32))
    _clutter(bg, rng, hi)
    w = alpha.sum()
    mean_bg = (bg * alpha[..., None]).sum((0, 1)) / w if w > 0 else bg.mean((0, 1))
    fg = np.where(mean_bg.mean() > 127, rng.uniform(0, 90, 3), rng.uniform(165, 255, 3))
    img = bg + (fg.astype(np.float32) - bg) * alpha[..., None]
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.05, 1.5) * 2)
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    img = img + rng.standard_normal(img.shape) * rng.uniform(0, 20)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def class_folder(k: int, name: str) -> str:
    """``c07_7``, ``c10_uA``, ``c36_la``: class order kept, case told apart on any disk."""
    if name.isdigit():
        return f"c{k:02d}_{name}"
    return f"c{k:02d}_{'u' if name.isupper() else 'l'}{name}"


def write_part(images: ImageSet, folder: Path, per_class: int, rng: np.random.Generator) -> None:
    """Write at most ``per_class`` hard images of each class of ``images`` under ``folder``."""
    arr, labels = images.array(), images.labels
    for k, name in enumerate(images.class_names):
        target = folder / class_folder(k, name)
        target.mkdir(parents=True, exist_ok=True)
        idx = rng.permutation(np.flatnonzero(labels == k))[:per_class]
        for j, i in enumerate(idx):
            cv2.imwrite(str(target / f"{j:04d}.png"), hard(arr[i][..., 0], rng)[..., ::-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A glyph folder harder than glyphs-wild.")
    parser.add_argument("out", type=Path, help="the folder to write (train/ and test/)")
    parser.add_argument("per_class_train", type=int, help="training images a class")
    parser.add_argument("per_class_test", type=int, help="test images a class")
    parser.add_argument("seed", type=int, help="the seed of every draw")
    args = parser.parse_args(argv)
    ds = load_dataset("glyphs")
    if ds.test is None:
        raise SystemExit("the glyphs set has no official test part here")
    rng = np.random.default_rng(args.seed)
    write_part(ds.train, args.out / "train", args.per_class_train, rng)
    write_part(ds.test, args.out / "test", args.per_class_test, rng)
    print("done", args.out)


if __name__ == "__main__":
    main()
