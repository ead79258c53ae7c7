"""Seeded ImageFolder trees that vary one factor at a time, for the robustness bench.

Issue 23 asks whether each pipeline's defaults hold on folders nobody tuned them on.
This module writes such folders: ``OUT/train/CLASS/*.png|jpg`` and ``OUT/test/CLASS/*``
(the official split that ``--dataset OUT`` keeps), from a plain base and one named
change of it (:data:`FOLDERS`). Every image is drawn from its own generator, seeded with
(folder seed, part, class, index), so the same name and seed write the same bytes in
any order, and two seeds share no draw.

Sources (the objects): ``digits`` (10 classes, scikit-learn's handwritten 8×8 digits
upsampled; the first 60 % of each class for training, the rest for testing),
``glyphs`` (62 classes, 0-9 A-Z a-z, drawn from the Debian fonts the ``glyphs``
manifest names by the project's renderer; test fonts of design groups never used for
training) and ``digits2`` (100 classes, 00-99: two handwritten digits side by side).

Factors (:class:`Factors`): image side (the longer side, a range) and aspect, the
object's share of the frame (the area of its box over the frame's area), polarity
(``light`` objects on dark, ``dark`` on light, or ``mixed`` per image), colour, the
background (flat, gradient, or a coloured noisy texture), clutter strokes, blur,
pixel noise, rotation, training and test images a class, PNG or JPEG. The ``style``
``hard`` draws each image with ``make_hard_glyph_folder.hard`` instead (32×32 RGB,
harder than ``glyphs-wild``).

Usage::

    python benchmarks/robustness_folders.py OUT --folder photo --seed 4242
    python benchmarks/robustness_folders.py --list
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SOURCES = {"digits": 10, "glyphs": 62, "digits2": 100}
PARTS = ("train", "test")


@dataclass(frozen=True)
class Factors:
    """What a folder's images look like (ranges are drawn uniformly per image).

    Attributes:
        source: ``digits`` (10 classes), ``glyphs`` (62) or ``digits2`` (100).
        side: the frame's longer side in pixels, (low, high).
        aspect: the frame's width over its height, (low, high); 1 is square.
        share: the object's box area over the frame's area, (low, high).
        polarity: ``light`` (light object, dark ground), ``dark``, or ``mixed``.
        colour: RGB colours for ground and object; False writes grayscale.
        background: ``flat``, ``gradient`` or ``texture`` (gradient + coloured blobs).
        clutter: at most this many strokes (lines, boxes, arcs) under the object.
        blur: Gaussian blur sigma, at most this (pixels at the frame's size).
        noise: pixel noise sigma (grey levels), drawn in [noise / 2, noise].
        rotate: the object is rotated by at most this many degrees either way.
        train: training images a class.
        test: test images a class.
        fmt: ``png`` or ``jpg`` (quality 90).
        style: ``compose`` (these factors) or ``hard`` (``make_hard_glyph_folder.hard``).
    """

    source: str = "digits"
    side: tuple[int, int] = (64, 64)
    aspect: tuple[float, float] = (1.0, 1.0)
    share: tuple[float, float] = (0.5, 0.5)
    polarity: str = "light"
    colour: bool = False
    background: str = "flat"
    clutter: int = 0
    blur: float = 0.0
    noise: float = 6.0
    rotate: float = 10.0
    train: int = 30
    test: int = 30
    fmt: str = "png"
    style: str = "compose"


BASE = Factors()
# issue 23's photo row: one digit in colour on a coloured noisy ground, JPEG
PHOTO = replace(
    BASE,
    side=(90, 300),
    aspect=(0.6, 1.6),
    share=(0.1, 0.3),
    polarity="mixed",
    colour=True,
    background="texture",
    clutter=4,
    noise=12.0,
    blur=1.0,
    rotate=15.0,
    train=80,
    test=30,
    fmt="jpg",
)
# one change of the base each (counts aside: 62 and 100 classes at 15 a class keep runs short)
FOLDERS: dict[str, Factors] = {
    "base": BASE,
    "classes-62": replace(BASE, source="glyphs", train=15, test=15),
    "classes-100": replace(BASE, source="digits2", train=15, test=15),
    "side-28": replace(BASE, side=(28, 28)),
    "side-160": replace(BASE, side=(160, 160)),
    "share-10": replace(BASE, share=(0.1, 0.1)),
    "share-80": replace(BASE, share=(0.8, 0.8)),
    "polarity-mixed": replace(BASE, polarity="mixed"),
    "colour": replace(BASE, colour=True, background="gradient"),
    "clutter": replace(BASE, clutter=10),
    "noise": replace(BASE, noise=40.0, blur=1.5),
    "train-15": replace(BASE, train=15),
    "train-300": replace(BASE, train=300),
    "photo": PHOTO,
    # the photo row without the clutter strokes: issue 23's target folder as it describes it
    "photo-plain": replace(PHOTO, clutter=0),
    # a 62-class glyph folder harder than glyphs-wild (make_hard_glyph_folder's draws)
    "glyphs-hard": replace(BASE, source="glyphs", side=(32, 32), style="hard", train=30, test=15),
}


@dataclass
class Pool:
    """The object masks of one part: ``masks[k]`` lists class k's float masks in [0, 1]."""

    classes: list[str]
    masks: list[list[np.ndarray]] = field(default_factory=list)


def _digit_masks() -> tuple[list[np.ndarray], np.ndarray]:
    """scikit-learn's digits as 32×32 float masks (ink = 1) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    masks = []
    for img in d.images:
        m = cv2.resize(
            np.pad(img / 16.0, 1).astype(np.float32), (40, 40), interpolation=cv2.INTER_CUBIC
        )
        masks.append(np.clip(m, 0.0, 1.0))
    return masks, np.asarray(d.target)


def digit_pools() -> dict[str, Pool]:
    """Train and test pools of the 10 digits: the first 60 % of each class trains."""
    masks, labels = _digit_masks()
    pools = {p: Pool([str(k) for k in range(10)]) for p in PARTS}
    for k in range(10):
        idx = np.flatnonzero(labels == k)
        cut = int(0.6 * len(idx))
        pools["train"].masks.append([masks[i] for i in idx[:cut]])
        pools["test"].masks.append([masks[i] for i in idx[cut:]])
    return pools


def pair_pools(per_class: int, seed: int) -> dict[str, Pool]:
    """100 classes 00-99: two digits of one part side by side, ``per_class`` of each."""
    digits = digit_pools()
    pools = {}
    for p in PARTS:
        rng = np.random.default_rng([seed, 7, PARTS.index(p)])
        src = digits[p].masks
        pool = Pool([f"{a}{b}" for a in range(10) for b in range(10)])
        for a in range(10):
            for b in range(10):
                pairs = []
                for _ in range(per_class):
                    left = src[a][int(rng.integers(len(src[a])))]
                    right = src[b][int(rng.integers(len(src[b])))]
                    pairs.append(np.hstack([left[:, 4:-2], right[:, 2:-4]]))
                pool.masks.append(pairs)
        pools[p] = pool
    return pools


def glyph_pools(
    per_class: dict[str, int], seed: int, font_dirs: Sequence[str] = (), side: int = 64
) -> dict[str, Pool]:
    """62 classes from fonts: test faces from design groups held out of training.

    The glyphs manifest's packages are read (or only ``font_dirs`` when given, for
    tests); a seeded 20 % of the design groups tests. Each part renders at most
    ``per_class[part]`` faces, so class k's images come from distinct faces.
    """
    from bovw_vs_convnet.data.glyphs.groups import (
        design_groups,
        held_out_groups,
        scan_glyph_fonts,
    )
    from bovw_vs_convnet.data.glyphs.render import render_masks
    from bovw_vs_convnet.data.glyphs.settings import CHARACTERS, glyph_settings
    from bovw_vs_convnet.data.manifest import get_manifest

    settings = glyph_settings(get_manifest("glyphs"))
    if font_dirs:
        settings = replace(settings, packages=(), font_dirs=tuple(font_dirs))
    scan = scan_glyph_fonts(settings)
    group = design_groups(scan.families, settings.same_design)
    test_groups = held_out_groups([group[f.family] for f in scan.faces], 0.2, seed)
    names = [_glyph_folder(k, ch) for k, ch in enumerate(CHARACTERS)]
    pools = {}
    for p in PARTS:
        faces = [f for f in scan.faces if (group[f.family] in test_groups) == (p == "test")]
        rng = np.random.default_rng([seed, 11, PARTS.index(p)])
        chosen = [faces[int(i)] for i in rng.permutation(len(faces))[: per_class[p]]]
        rendered = [render_masks(face, settings, side=side) for face in chosen]
        pools[p] = Pool(names, [[r[k] for r in rendered] for k in range(len(CHARACTERS))])
    return pools


def _glyph_folder(k: int, name: str) -> str:
    """``c07_7``, ``c10_uA``, ``c36_la``: class order kept, case told apart on any disk."""
    if name.isdigit():
        return f"c{k:02d}_{name}"
    return f"c{k:02d}_{'u' if name.isupper() else 'l'}{name}"


def _frame(f: Factors, rng: np.random.Generator) -> tuple[int, int]:
    """The frame's (height, width): the longer side and the aspect drawn from ``f``."""
    longer = int(rng.integers(f.side[0], f.side[1] + 1))
    aspect = float(rng.uniform(*f.aspect)) if f.aspect[0] != f.aspect[1] else f.aspect[0]
    if aspect >= 1.0:
        return max(8, round(longer / aspect)), longer
    return longer, max(8, round(longer * aspect))


def _colours(f: Factors, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two ground colours (a gradient's ends) and the object's, apart by polarity."""
    light = f.polarity == "light" or (f.polarity == "mixed" and rng.random() < 0.5)
    n = 3 if f.colour else 1
    dark_a, dark_b = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    bright = rng.uniform(155, 255, n)
    if light:
        ground_a, ground_b, ink = dark_a, dark_b, bright
    else:
        ground_a, ground_b, ink = 255 - dark_a, 255 - dark_b, 255 - bright
    if f.background == "flat":
        ground_b = ground_a
    return ground_a, ground_b, ink


def _ground(f: Factors, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The background (H × W × channels float32): flat, a gradient, or textured."""
    h, w = shape
    a, b, ink = _colours(f, rng)
    d = rng.uniform(0, 2 * math.pi)
    ys, xs = np.linspace(-0.5, 0.5, h)[:, None], np.linspace(-0.5, 0.5, w)[None, :]
    t = np.clip(0.5 + xs * math.cos(d) + ys * math.sin(d), 0, 1)[..., None]
    img = (a + (b - a) * t).astype(np.float32)
    if f.background == "texture":
        blobs = rng.uniform(-45, 45, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), len(a)))
        smooth = cv2.resize(blobs.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        img = img + smooth.reshape(h, w, len(a))
    _strokes(img, f.clutter, rng)
    return np.concatenate([img, np.broadcast_to(ink, (h, w, len(a)))], axis=2)


def _strokes(img: np.ndarray, at_most: int, rng: np.random.Generator) -> None:
    """Draw at_most / 2 to at_most lines, boxes and arcs in random colours, in place."""
    if at_most <= 0:
        return
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(at_most // 2, at_most + 1))):
        col = tuple(float(v) for v in np.atleast_1d(rng.uniform(0, 255, img.shape[2])))
        th = max(1, round(min(h, w) * float(rng.uniform(0.01, 0.05))))
        x = rng.integers(0, w, 2)
        y = rng.integers(0, h, 2)
        p, q = (int(x[0]), int(y[0])), (int(x[1]), int(y[1]))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.line(img, p, q, col, th, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, p, q, col, th)
        else:
            axes = (int(rng.integers(2, max(3, w // 3))), int(rng.integers(2, max(3, h // 3))))
            end = float(rng.uniform(60, 360))
            cv2.ellipse(img, p, axes, float(rng.uniform(0, 180)), 0, end, col, th, cv2.LINE_AA)


def _place(
    mask: np.ndarray, f: Factors, shape: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """The object's alpha over the frame: rotated, sized to its share, placed anywhere."""
    h, w = shape
    mh, mw = mask.shape
    c = (mw / 2.0, mh / 2.0)
    rot = cv2.getRotationMatrix2D(c, float(rng.uniform(-f.rotate, f.rotate)), 1.0)
    m = cv2.warpAffine(mask.astype(np.float32), rot, (mw, mh), flags=cv2.INTER_LINEAR)
    area = float(rng.uniform(*f.share)) * h * w
    bw = min(w, max(4, round(math.sqrt(area * mw / mh))))
    bh = min(h, max(4, round(math.sqrt(area * mh / mw))))
    m = cv2.resize(m, (bw, bh), interpolation=cv2.INTER_AREA if bw < mw else cv2.INTER_LINEAR)
    alpha = np.zeros((h, w), np.float32)
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    alpha[y0 : y0 + bh, x0 : x0 + bw] = np.clip(m, 0, 1)
    return alpha


def compose(mask: np.ndarray, f: Factors, rng: np.random.Generator) -> np.ndarray:
    """One image (H × W uint8, or H × W × 3 RGB when ``f.colour``) of ``mask``'s object."""
    shape = _frame(f, rng)
    layers = _ground(f, shape, rng)
    n = layers.shape[2] // 2
    ground, ink = layers[..., :n], layers[..., n:]
    alpha = _place(mask, f, shape, rng)[..., None]
    img = ground + (ink - ground) * alpha
    if f.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.05, f.blur)))
        img = img.reshape(shape[0], shape[1], n)
    img = img + rng.standard_normal(img.shape) * float(rng.uniform(f.noise / 2, f.noise))
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out if f.colour else out[..., 0]


def _hard_drawer() -> Callable[..., np.ndarray]:
    """``make_hard_glyph_folder.hard``, loaded from beside this file (no package needed)."""
    spec = importlib.util.spec_from_file_location(
        "make_hard_glyph_folder", HERE / "make_hard_glyph_folder.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError("benchmarks/make_hard_glyph_folder.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hard: Callable[..., np.ndarray] = module.hard
    return hard


def pools_for(f: Factors, seed: int, font_dirs: Sequence[str] = ()) -> dict[str, Pool]:
    """The train and test pools of ``f.source`` (glyph faces drawn with ``seed``)."""
    if f.source == "digits":
        return digit_pools()
    if f.source == "digits2":
        return pair_pools(max(f.train, f.test), seed)
    if f.source == "glyphs":
        side = 64 if f.style == "compose" else 32
        return glyph_pools({"train": f.train, "test": f.test}, seed, font_dirs, side)
    raise ValueError(f"unknown source {f.source!r}; one of {sorted(SOURCES)}")


def write_folder(
    out: Path, f: Factors, seed: int, *, font_dirs: Sequence[str] = ()
) -> dict[str, int]:
    """Write the ImageFolder of ``f`` drawn with ``seed`` under ``out``; images a part.

    Class k's j-th image of a part is drawn by ``default_rng([seed, part, k, j])`` from
    the pool's masks taken in a seeded order (cycled when a class has fewer masks).
    ``out/generator.json`` records the factors and the seed.
    """
    pools = pools_for(f, seed, font_dirs)
    hard = _hard_drawer() if f.style == "hard" else None
    counts = {}
    for pi, part in enumerate(PARTS):
        pool, n = pools[part], f.train if part == "train" else f.test
        for k, name in enumerate(pool.classes):
            folder = out / part / name
            folder.mkdir(parents=True, exist_ok=True)
            order = np.random.default_rng([seed, 3, pi, k]).permutation(len(pool.masks[k]))
            for j in range(n):
                rng = np.random.default_rng([seed, pi, k, j])
                mask = pool.masks[k][int(order[j % len(order)])]
                if hard is not None:
                    img = hard((mask * 255).astype(np.uint8), rng, f.side[0])
                else:
                    img = compose(mask, f, rng)
                bgr = img[..., ::-1] if img.ndim == 3 else img
                params = [cv2.IMWRITE_JPEG_QUALITY, 90] if f.fmt == "jpg" else []
                cv2.imwrite(str(folder / f"{j:04d}.{f.fmt}"), np.ascontiguousarray(bgr), params)
        counts[part] = n * len(pool.classes)
    info = {"factors": dataclasses.asdict(f), "seed": seed, "images": counts}
    (out / "generator.json").write_text(json.dumps(info, indent=1) + "\n")
    return counts


def factors_for(name: str, *, train: int | None = None, test: int | None = None) -> Factors:
    """The named folder's factors, with its counts a class replaced where given."""
    if name not in FOLDERS:
        raise SystemExit(f"unknown folder {name!r}; one of {', '.join(FOLDERS)}")
    f = FOLDERS[name]
    return replace(f, train=train or f.train, test=test or f.test)


def main(argv: list[str] | None = None) -> None:
    """Command line: write one named folder (``--list`` names them with their factors)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="the folder to write")
    parser.add_argument("--folder", default="base", help="a name of FOLDERS (see --list)")
    parser.add_argument("--seed", type=int, default=None, help="the generator's seed (required)")
    parser.add_argument("--train", type=int, help="training images a class (default: the folder's)")
    parser.add_argument("--test", type=int, help="test images a class (default: the folder's)")
    parser.add_argument("--list", action="store_true", help="print the named folders and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, f in FOLDERS.items():
            diff = {k: v for k, v in dataclasses.asdict(f).items() if getattr(BASE, k) != v}
            print(f"{name:15s} {diff or 'the plain base: ' + str(dataclasses.asdict(BASE))}")
        return
    if args.out is None or args.seed is None:
        parser.error("OUT and --seed are required")
    f = factors_for(args.folder, train=args.train, test=args.test)
    counts = write_folder(args.out, f, args.seed)
    sizes = f"{counts['train']} train, {counts['test']} test"
    print(f"wrote {args.out}: {sizes} ({args.folder}, seed {args.seed})")


def describe(f: Factors) -> dict[str, Any]:
    """The factors that differ from the plain base (for tables)."""
    return {k: v for k, v in dataclasses.asdict(f).items() if getattr(BASE, k) != v}


if __name__ == "__main__":
    main()
