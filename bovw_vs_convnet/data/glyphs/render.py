"""Drawing glyph images: one face's 62 characters, clean or ``wild``.

After Chars74K's font subset (T. E. de Campos, B. R. Babu, M. Varma, "Character
recognition in natural images", VISAPP 2009). **Boxes** (``params.box``):

- ``glyph`` (Chars74K's, the default): the glyph's ink box, padded to a square
  (centred, aspect kept, a ``margin`` on each side) and resized. Size and
  position carry no information, so the case pairs c/C, o/O, s/S, v/V, w/W, x/X,
  z/Z and 0/O, 1/l/I differ only in shape.
- ``em``: a fixed box of 1.2 em, the baseline 0.25 em above its bottom, the ink
  centred across: the glyph keeps its size and height above the baseline (x-height
  against cap height, descenders), so c and C differ in size too.

Glyphs are drawn by FreeType through Pillow (``ImageFont.truetype``, its basic
layout) at ``supersample`` times the output size, white ink on black, then
area-averaged down to ``image_size`` (32×32 by default; any square size is a
variant, ``glyphs-64``).

**glyphs-wild** (``params.style = "wild"``): the same faces, characters and split,
RGB, each image with a seeded random colour gradient behind, clutter (lines,
rectangles, ellipses, arcs) under the glyph, a random glyph colour kept apart from
the background's, rotation, shear, scale and offset, Gaussian blur and noise. The
draws of an image come from ``numpy``'s ``default_rng`` seeded with
(``wild_seed``, the face's sha256, its collection index, the class), so the set is
the same on every machine and in any order of rendering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from bovw_vs_convnet.data.fonts import FontFace
from bovw_vs_convnet.data.glyphs.settings import CHARACTERS, GlyphSettings
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.progress import ProgressMode, track

# em box: 1.2 em tall, baseline 0.25 em above the bottom (Latin descenders reach ~0.22 em)
_EM_BOX, _EM_BASELINE = 1.2, 0.25


def _load_font(face: FontFace, px: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(
        str(face.path), size=px, index=face.font_number, layout_engine=ImageFont.Layout.BASIC
    )


def _ink(font: Any, ch: str) -> tuple[np.ndarray, tuple[int, int]]:
    """The character's ink as a float mask in [0, 1], cropped, and its top-left offset.

    The offset is relative to the pen's origin on the baseline (Pillow's ``ls`` anchor).
    """
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(ch, anchor="ls")
    w, h = max(1, right - left), max(1, bottom - top)
    canvas = Image.new("L", (w + 2, h + 2), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), ch, fill=255, font=font, anchor="ls")
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise DataError(f"character {ch!r} renders blank")
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return crop, (int(left - 1 + cols[0]), int(top - 1 + rows[0]))


def _reduce(mask: np.ndarray, side: int) -> np.ndarray:
    """Area-average a square float mask down (or up) to ``side`` × ``side``."""
    import cv2

    if mask.shape[0] == side:
        return mask
    interp = cv2.INTER_AREA if mask.shape[0] > side else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(mask, (side, side), interpolation=interp))


def _glyph_box(font: Any, ch: str, side: int, margin: float) -> np.ndarray:
    """Chars74K's rendering: the ink box padded to a centred square with a margin."""
    ink, _ = _ink(font, ch)
    h, w = ink.shape
    inner = max(h, w)
    full = max(inner + 2, int(np.ceil(inner / (1.0 - 2.0 * margin))))
    square = np.zeros((full, full), dtype=np.float32)
    y, x = (full - h) // 2, (full - w) // 2
    square[y : y + h, x : x + w] = ink
    return _reduce(square, side)


def _em_box(font: Any, ch: str, side: int, px: int) -> np.ndarray:
    """The fixed em box: size and baseline kept, the ink centred across, clipped at the box."""
    ink, (_, dy) = _ink(font, ch)
    full = round(_EM_BOX * px)
    baseline = full - round(_EM_BASELINE * px)
    square = np.zeros((full, full), dtype=np.float32)
    h, w = ink.shape
    y0, x0 = baseline + dy, (full - w) // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(full, y0 + h), min(full, x0 + w)
    if ye > ys and xe > xs:
        square[ys:ye, xs:xe] = ink[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return _reduce(square, side)


def render_masks(face: FontFace, settings: GlyphSettings, side: int | None = None) -> np.ndarray:
    """The 62 characters of one face as float masks (62, side, side) in [0, 1], ink = 1."""
    side = side or settings.size
    hi = side * settings.supersample
    if settings.box == "glyph":
        # the ink box of the largest glyphs is about 0.7 em: draw them a little over `hi`
        font = _load_font(face, round(hi * 1.2))
        masks = [_glyph_box(font, ch, side, settings.margin) for ch in CHARACTERS]
    else:
        px = round(hi / _EM_BOX)
        font = _load_font(face, px)
        masks = [_em_box(font, ch, side, px) for ch in CHARACTERS]
    return np.clip(np.stack(masks), 0.0, 1.0)


def _face_seed(face: FontFace, seed: int, label: int) -> np.random.Generator:
    sha = face.sha256
    return np.random.default_rng(
        [seed, int(sha[:16], 16), int(sha[16:32], 16), face.font_number, label]
    )


def _contrasting_colour(rng: np.random.Generator, against: np.ndarray) -> np.ndarray:
    """A random RGB colour whose luma differs from ``against``'s by at least 70 levels.

    ``against`` is the background's mean under the glyph (weighted by its coverage).
    """
    weights = np.array([0.299, 0.587, 0.114])
    luma = float(against @ weights)
    for _ in range(64):
        colour = rng.uniform(0, 255, 3)
        if abs(float(colour @ weights) - luma) >= 70:
            return colour
    return np.full(3, 0.0 if luma > 127 else 255.0)


def _warp(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The glyph mask under a random affine warp: rotation ±20°, shear ±0.3, scale 0.7-1.0,
    offset ±8 % of the side."""
    import cv2

    hi = mask.shape[0]
    c = hi / 2.0
    angle = np.deg2rad(rng.uniform(-20, 20))
    shear = rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.7, 1.0)
    shift = rng.uniform(-0.08, 0.08, 2) * hi
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    offset = np.array([c, c]) + shift - lin @ np.array([c, c])
    warp = np.hstack([lin, offset[:, None]]).astype(np.float64)
    return np.asarray(
        cv2.warpAffine(mask.astype(np.float32), warp, (hi, hi), flags=cv2.INTER_LINEAR)
    )


def _gradient(hi: int, rng: np.random.Generator) -> np.ndarray:
    """A (hi, hi, 3) float32 background: two random colours in a linear gradient."""
    top = rng.uniform(0, 255, 3).astype(np.float32)
    bottom = rng.uniform(0, 255, 3).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, hi, dtype=np.float32)
    t = (
        0.5
        + ramp[None, :] * np.float32(np.cos(direction))
        + ramp[:, None] * np.float32(np.sin(direction))
    )
    t = np.clip(t, 0, 1)[..., None]
    return np.ascontiguousarray(top + (bottom - top) * t)


def _draw_clutter(bg: np.ndarray, rng: np.random.Generator) -> None:
    """2-6 strokes in random colours on ``bg`` (in place): lines, rectangles, ellipses, arcs."""
    import cv2

    hi = bg.shape[0]
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        thick = int(rng.integers(1, max(2, hi // 16)))
        p = rng.integers(0, hi, 4)
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.line(bg, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, thick, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(bg, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, thick)
        else:
            axes = (int(rng.integers(2, hi // 2)), int(rng.integers(2, hi // 2)))
            start = float(rng.uniform(0, 360))
            span = 360.0 if kind == 2 else float(rng.uniform(60, 300))
            angle = float(rng.uniform(0, 180))
            centre = (int(p[0]), int(p[1]))
            cv2.ellipse(bg, centre, axes, angle, start, start + span, colour, thick, cv2.LINE_AA)


def wild_image(mask: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """One ``glyphs-wild`` image (side, side, 3) uint8 from a glyph-box mask at 2× side.

    In order: a random affine warp of the glyph (rotation ±20°, shear ±0.3, scale
    0.7-1.0, offset ±8 %); a background of two random colours in a linear gradient
    with 2-6 clutter strokes in random colours (lines, rectangles, ellipses, arcs);
    the glyph composited in a colour kept apart from the background's; Gaussian
    blur (sigma 0-1.2 output pixels); area reduction to ``side``; Gaussian noise
    (sigma 0-12 levels).
    """
    import cv2

    hi = mask.shape[0]
    alpha = _warp(mask, rng)
    bg = _gradient(hi, rng)
    _draw_clutter(bg, rng)
    weight = alpha.sum()
    mean_bg = (
        (bg * alpha[..., None]).sum(axis=(0, 1)) / weight if weight > 0 else bg.mean(axis=(0, 1))
    )
    fg = _contrasting_colour(rng, mean_bg.astype(np.float64)).astype(np.float32)
    a = alpha[..., None]
    img = bg + (fg - bg) * a
    sigma = rng.uniform(0, 1.2) * hi / side
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 12))
    return np.asarray(np.clip(np.rint(img + noise), 0, 255), dtype=np.uint8)


def render_face(face: FontFace, settings: GlyphSettings) -> np.ndarray:
    """The 62 images of one face, uint8 (62, size, size, channels), in class order."""
    if settings.style == "clean":
        masks = render_masks(face, settings)
        return np.rint(masks * 255.0).astype(np.uint8)[..., None]
    masks = render_masks(face, settings, side=2 * settings.size)
    out = np.empty((len(CHARACTERS), settings.size, settings.size, 3), dtype=np.uint8)
    for label, mask in enumerate(masks):
        out[label] = wild_image(mask, settings.size, _face_seed(face, settings.wild_seed, label))
    return out


def render_faces(
    faces: Sequence[FontFace],
    settings: GlyphSettings,
    *,
    n_jobs: int = 1,
    progress: ProgressMode | bool = "none",
) -> np.ndarray:
    """Every face's 62 images, face by face: uint8 (62 × len(faces), size, size, channels).

    ``n_jobs`` worker processes (joblib) share the faces; each image depends only on
    its face, character and the settings, so the bytes do not depend on ``n_jobs``.
    Fewer than 16 faces are drawn here: starting workers would cost more.
    """
    made: Iterable[np.ndarray]
    if n_jobs == 1 or len(faces) < 16:
        made = (render_face(f, settings) for f in faces)
    else:
        from joblib import Parallel, delayed

        made = Parallel(n_jobs=n_jobs, batch_size=4, return_as="generator")(
            delayed(render_face)(f, settings) for f in faces
        )
    desc = f"{settings.style} glyphs, {settings.size}x{settings.size}"
    parts = list(track(made, total=len(faces), desc=desc, mode=progress, unit="faces"))
    c = settings.channels
    if not parts:
        return np.empty((0, settings.size, settings.size, c), dtype=np.uint8)
    return np.concatenate(parts, axis=0)
