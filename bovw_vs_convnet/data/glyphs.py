"""The ``glyphs`` datasets: 62 characters rendered from computer fonts, split by font family.

After Chars74K's font subset (T. E. de Campos, B. R. Babu, M. Varma, "Character
recognition in natural images", VISAPP 2009): 62 classes (0-9, A-Z, a-z), each
image one character of one font. The fonts are those of the Debian packages the
manifest names (:mod:`bovw_vs_convnet.data.fonts` says which faces count), so
every machine with the same packages renders the same set with the same ids.

**Rendering** (``params.box``):

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

**Split** (the official train/test division): font families are put into design
groups (a family alone, or the families ``params.same_design`` lists together:
the same design sold under two names, as Nimbus Roman and TeX Gyre Termes), and a
seeded ``test_fraction`` of the groups is the test part. The ImageSet carries the
group of each image (``groups``), so the validation part, carved from the train
part by :func:`bovw_vs_convnet.data.split.make_split`, also takes whole groups: a
model is scored on fonts whose design it has never seen.

**Files.** ``bvc data fetch glyphs`` renders the set into ``<data-dir>/glyphs/``:
``images.npy`` (uint8 N×H×W×C, face by face in key order, each face's 62
characters in class order; read without pickle) and ``index.json`` (the settings,
the font set's fingerprint, the faces with family, group and part, the sha256 of
``images.npy``). A manifest variant (``glyphs-wild``, ``glyphs-64``) names
``params.base = "glyphs"`` and inherits its fonts and split, changing only how
images are drawn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.data.fonts import (
    DPKG_INFO_DIR,
    FontFace,
    FontScan,
    check_package_names,
    folder_font_files,
    font_set_fingerprint,
    package_font_files,
    scan_fonts,
)
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import resolve_data_dir
from bovw_vs_convnet.data.manifest import Manifest, get_manifest
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.progress import ProgressMode, track

log = logging.getLogger(__name__)

CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
INDEX_FORMAT = "bvc-glyphs/1"
INDEX_FILE = "index.json"
IMAGES_FILE = "images.npy"
BOXES = ("glyph", "em")
STYLES = ("clean", "wild")
# em box: 1.2 em tall, baseline 0.25 em above the bottom (Latin descenders reach ~0.22 em)
_EM_BOX, _EM_BASELINE = 1.2, 0.25
# keys a variant (params.base) may set; the fonts and the split come from its base
_RENDER_KEYS = {"box", "style", "margin", "supersample", "wild_seed"}
_FONT_KEYS = {
    "packages",
    "font_dirs",
    "exclude_families",
    "same_design",
    "test_fraction",
    "split_seed",
    "font_set_sha256",
    "fonts",
}
_PARAM_KEYS = _RENDER_KEYS | _FONT_KEYS | {"base"}


@dataclass(frozen=True)
class GlyphSettings:
    """What a glyph manifest's ``params`` say, checked (see the module docstring).

    Attributes:
        packages: the Debian font packages to read.
        font_dirs: folders to read fonts from as well (for machines without dpkg, tests).
        exclude_families: families left out on purpose (symbol fonts mapping letters).
        same_design: lists of families that are one design (kept on one side of the split).
        box: ``glyph`` (ink box padded to a square) or ``em`` (fixed em box).
        style: ``clean`` (grayscale glyphs) or ``wild`` (RGB, colour, clutter, warps).
        size: output side in pixels (the manifest's square ``image_size``).
        channels: 1 (clean) or 3 (wild), as the manifest says.
        margin: blank border on each side of a glyph box, as a fraction of the side.
        supersample: glyphs are drawn at this many times the output size, then reduced.
        test_fraction: share of the design groups that form the test part.
        split_seed: seed of the test groups' draw (fixed: it defines the official split).
        wild_seed: seed of the ``wild`` style's draws.
        font_set_sha256: the expected font set's fingerprint ("" when not recorded).
        fonts: the expected faces, ``"<face id> <package>:<file name>"`` each.
    """

    packages: tuple[str, ...] = ()
    font_dirs: tuple[str, ...] = ()
    exclude_families: tuple[str, ...] = ()
    same_design: tuple[tuple[str, ...], ...] = ()
    box: str = "glyph"
    style: str = "clean"
    size: int = 32
    channels: int = 1
    margin: float = 0.0625
    supersample: int = 4
    test_fraction: float = 0.2
    split_seed: int = 0
    wild_seed: int = 0
    font_set_sha256: str = ""
    fonts: tuple[str, ...] = ()

    def render_key(self) -> dict[str, Any]:
        """The settings the pixels depend on (beside the fonts), as JSON-ready values."""
        keys = ("box", "style", "size", "channels", "margin", "supersample", "wild_seed")
        return {k: getattr(self, k) for k in keys}

    def split_key(self) -> dict[str, Any]:
        """The settings the test part depends on (beside the fonts)."""
        return {
            "same_design": [list(g) for g in self.same_design],
            "test_fraction": self.test_fraction,
            "split_seed": self.split_seed,
            "exclude_families": list(self.exclude_families),
        }


def _str_list(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DataError(f"{where}: 'params.{key}' must be a list of non-empty strings")
    return tuple(value)


def _number(where: str, key: str, value: Any, tp: type, low: float, high: float) -> Any:
    ok = isinstance(value, (int, float) if tp is float else int) and not isinstance(value, bool)
    if not ok or not low <= value <= high:
        raise DataError(f"{where}: 'params.{key}' must be a {tp.__name__} in [{low}, {high}]")
    return tp(value)


def glyph_settings(manifest: Manifest) -> GlyphSettings:
    """Check a glyph manifest's ``params`` (and its base's) into :class:`GlyphSettings`.

    Raises DataError naming the manifest and the key for an unknown key, a wrong
    type, a value out of range, a non-square size or a channel count that does
    not fit the style.
    """
    where = f"manifest {manifest.name!r}"
    params = dict(manifest.params)
    unknown = sorted(set(params) - _PARAM_KEYS)
    if unknown:
        raise DataError(
            f"{where}: unknown key 'params.{unknown[0]}'; known: {', '.join(sorted(_PARAM_KEYS))}"
        )
    if "base" in params:
        base_name = params.pop("base")
        if not isinstance(base_name, str) or base_name == manifest.name:
            raise DataError(f"{where}: 'params.base' must name another glyph manifest")
        base = get_manifest(base_name)
        if base.format != "glyphs" or "base" in base.params:
            raise DataError(f"{where}: base {base_name!r} is not a glyph manifest without a base")
        own_fonts = sorted(set(params) & _FONT_KEYS)
        if own_fonts:
            raise DataError(
                f"{where}: 'params.{own_fonts[0]}' comes from the base {base_name!r} "
                "(a variant changes only how images are drawn)"
            )
        if base.classes != manifest.classes:
            raise DataError(f"{where}: classes differ from the base {base_name!r}'s")
        params = {**{k: v for k, v in base.params.items() if k in _FONT_KEYS}, **params}
    if "".join(manifest.classes) != CHARACTERS or any(len(c) != 1 for c in manifest.classes):
        raise DataError(f"{where}: a glyph manifest's classes are the 62 characters 0-9, A-Z, a-z")
    h, w = manifest.image_size
    if h != w or not 8 <= h <= 512:
        raise DataError(f"{where}: glyph images are square, 8 to 512 pixels, got {h}x{w}")
    packages = _str_list(where, "packages", params.get("packages", []))
    check_package_names(packages, where)
    font_dirs = _str_list(where, "font_dirs", params.get("font_dirs", []))
    if not packages and not font_dirs:
        raise DataError(f"{where}: 'params.packages' (or 'params.font_dirs') names no fonts")
    same = params.get("same_design", [])
    if not isinstance(same, list) or not all(
        isinstance(g, list) and len(g) >= 2 and all(isinstance(f, str) and f for f in g)
        for g in same
    ):
        raise DataError(f"{where}: 'params.same_design' must be a list of lists of 2+ families")
    listed = [f for g in same for f in g]
    if len(set(listed)) != len(listed):
        raise DataError(f"{where}: a family is listed twice in 'params.same_design'")
    box = params.get("box", "glyph")
    if box not in BOXES:
        raise DataError(f"{where}: 'params.box' must be one of {', '.join(BOXES)}, got {box!r}")
    style = params.get("style", "clean")
    if style not in STYLES:
        raise DataError(f"{where}: 'params.style' must be one of {', '.join(STYLES)}")
    if manifest.channels != (3 if style == "wild" else 1):
        raise DataError(
            f"{where}: style {style!r} renders {3 if style == 'wild' else 1} channel(s), "
            f"manifest says {manifest.channels}"
        )
    fingerprint = params.get("font_set_sha256", "")
    if not isinstance(fingerprint, str) or (
        fingerprint and (len(fingerprint) != 64 or set(fingerprint) - set("0123456789abcdef"))
    ):
        raise DataError(f"{where}: 'params.font_set_sha256' must be a sha256 hex digest")
    return GlyphSettings(
        packages=packages,
        font_dirs=font_dirs,
        exclude_families=_str_list(where, "exclude_families", params.get("exclude_families", [])),
        same_design=tuple(tuple(g) for g in same),
        box=box,
        style=style,
        size=h,
        channels=manifest.channels,
        margin=_number(where, "margin", params.get("margin", 0.0625), float, 0.0, 0.3),
        supersample=_number(where, "supersample", params.get("supersample", 4), int, 1, 16),
        test_fraction=_number(
            where, "test_fraction", params.get("test_fraction", 0.2), float, 0.01, 0.9
        ),
        split_seed=_number(where, "split_seed", params.get("split_seed", 0), int, 0, 2**32 - 1),
        wild_seed=_number(where, "wild_seed", params.get("wild_seed", 0), int, 0, 2**32 - 1),
        font_set_sha256=fingerprint,
        fonts=_str_list(where, "fonts", params.get("fonts", [])),
    )


# ---------------------------------------------------------------- fonts and the split


def scan_glyph_fonts(settings: GlyphSettings, *, dpkg_dir: Path = DPKG_INFO_DIR) -> FontScan:
    """The faces that count for ``settings`` (missing packages: DataError with the apt line)."""
    files = package_font_files(settings.packages, dpkg_dir) if settings.packages else []
    files += folder_font_files(settings.font_dirs)
    scan = scan_fonts(files, CHARACTERS, exclude_families=settings.exclude_families)
    if not scan.faces:
        raise DataError(f"no font covers the 62 characters among {scan.n_files} font files")
    return scan


def design_groups(families: Sequence[str], same_design: Sequence[Sequence[str]]) -> dict[str, str]:
    """Each family's design group: the first family of its ``same_design`` list, else itself."""
    group = {f: f for f in families}
    for names in same_design:
        for f in names:
            group[f] = names[0]
    return {f: group[f] for f in families}


def test_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """A seeded ``round(fraction * G)`` of the G distinct groups (at least one, never all).

    The groups are ranked by the sha256 of (seed, name) and the first ones taken, so
    a group's rank does not depend on which other groups are there (nor on a random
    generator's version): a machine that lacks one family moves at most a group or
    two across, instead of drawing another test part.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise DataError(f"a font-family split needs at least 2 families, got {len(names)}")
    k = min(len(names) - 1, max(1, round(fraction * len(names))))
    ranked = sorted(names, key=lambda g: hashlib.sha256(f"{seed}\n{g}".encode()).hexdigest())
    return set(ranked[:k])


def font_line(face_id: str, package: str, file: str | Path) -> str:
    """One entry of the manifest's ``params.fonts``: ``"<face id> <package>:<file name>"``."""
    return f"{face_id} {package or 'folder'}:{Path(file).name}"


def font_lines(scan: FontScan) -> list[str]:
    """The manifest's ``params.fonts`` entries for a scan, in key order."""
    return [font_line(f.face_id, f.package, f.path) for f in scan.faces]


# ---------------------------------------------------------------- rendering


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
    c = hi / 2.0
    angle = np.deg2rad(rng.uniform(-20, 20))
    shear = rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.7, 1.0)
    shift = rng.uniform(-0.08, 0.08, 2) * hi
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    offset = np.array([c, c]) + shift - lin @ np.array([c, c])
    warp = np.hstack([lin, offset[:, None]]).astype(np.float64)
    alpha = cv2.warpAffine(mask.astype(np.float32), warp, (hi, hi), flags=cv2.INTER_LINEAR)

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
    bg = np.ascontiguousarray(top + (bottom - top) * t)
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
            cv2.ellipse(
                bg, (int(p[0]), int(p[1])), axes, float(rng.uniform(0, 180)), start,
                start + span, colour, thick, cv2.LINE_AA,
            )  # fmt: skip
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


# ---------------------------------------------------------------- build, load, verify


@dataclass(frozen=True)
class GlyphBuild:
    """What ``bvc data fetch`` made: where, from how many faces, parts, time, fingerprints."""

    path: Path
    n_faces: int
    n_families: int
    n_groups: int
    n_train: int
    n_test: int
    seconds: float
    font_set_sha256: str
    expected_sha256: str

    @property
    def matches_manifest(self) -> bool:
        """True when the font set is the manifest's (or the manifest records none)."""
        return not self.expected_sha256 or self.expected_sha256 == self.font_set_sha256


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_glyphs(
    manifest: Manifest,
    data_dir: str | Path | None = None,
    *,
    n_jobs: int | None = None,
    dpkg_dir: Path = DPKG_INFO_DIR,
    progress: ProgressMode | bool = "none",
) -> GlyphBuild:
    """Render a glyph manifest's set into ``<data-dir>/<subdir>/`` (replacing an older one).

    The folder is written beside its final place and renamed into it, so a reader
    never sees half a set. Raises DataError when fonts are missing (with the
    ``apt-get install`` line) or the manifest is wrong.
    """
    start = time.perf_counter()
    settings = glyph_settings(manifest)
    scan = scan_glyph_fonts(settings, dpkg_dir=dpkg_dir)
    families = [f.family for f in scan.faces]
    group_of = design_groups(sorted(set(families)), settings.same_design)
    tests = test_groups(list(group_of.values()), settings.test_fraction, settings.split_seed)
    jobs = n_jobs if n_jobs is not None else min(os.cpu_count() or 1, 8)
    images = render_faces(scan.faces, settings, n_jobs=jobs, progress=progress)
    faces = [
        {
            "id": f.face_id,
            "key": f.key,
            "family": f.family,
            "style": f.style,
            "group": group_of[f.family],
            "part": "test" if group_of[f.family] in tests else "train",
            "package": f.package,
            "file": str(f.path),
            "font_number": f.font_number,
        }
        for f in scan.faces
    ]
    n_test = len(CHARACTERS) * sum(f["part"] == "test" for f in faces)
    final = resolve_data_dir(data_dir) / manifest.subdir
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}-{time.time_ns()}")
    staging.mkdir()  # beside its final place (one rename), with the umask's permissions
    try:
        np.save(staging / IMAGES_FILE, images, allow_pickle=False)
        index = {
            "format": INDEX_FORMAT,
            "dataset": manifest.name,
            "characters": CHARACTERS,
            "render": settings.render_key(),
            "split": settings.split_key(),
            "font_set_sha256": scan.fingerprint,
            "images_sha256": _sha256_file(staging / IMAGES_FILE),
            "shape": list(images.shape),
            "n_train": len(images) - n_test,
            "n_test": n_test,
            "faces": faces,
        }
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        if final.exists():
            old = final.with_name(f".{final.name}-old-{os.getpid()}")
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GlyphBuild(
        path=final,
        n_faces=len(scan.faces),
        n_families=len(scan.families),
        n_groups=len(set(group_of.values())),
        n_train=len(images) - n_test,
        n_test=n_test,
        seconds=time.perf_counter() - start,
        font_set_sha256=scan.fingerprint,
        expected_sha256=settings.font_set_sha256,
    )


def _read_index(manifest: Manifest, folder: Path) -> dict[str, Any]:
    path = folder / INDEX_FILE
    if not path.is_file() or not (folder / IMAGES_FILE).is_file():
        raise DataError(
            f"dataset {manifest.name!r} is not rendered in {folder}; run "
            f"`bvc data fetch {manifest.name}` (it renders the set from Debian's font packages)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a glyph index ({exc}); run `bvc data fetch` again") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise DataError(f"{path}: not a {INDEX_FORMAT} index; run `bvc data fetch` again")
    return index


def load_glyphs(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet, Manifest]:
    """The rendered set as (train, test, the manifest with the rendered part sizes).

    Image ids are ``<face id>/<character>``; each ImageSet's ``groups`` holds the
    design group of every image. A set rendered with other settings than the
    manifest's, or missing, raises DataError saying to render it again; a font
    set other than the manifest's is loaded with a warning (``bvc data verify``
    names the fonts that differ).
    """
    settings = glyph_settings(manifest)
    folder = resolve_data_dir(data_dir) / manifest.subdir
    index = _read_index(manifest, folder)
    if index.get("render") != settings.render_key() or index.get("split") != settings.split_key():
        raise DataError(
            f"dataset {manifest.name!r} in {folder} was rendered with other settings than "
            f"its manifest's; run `bvc data fetch {manifest.name}` again"
        )
    try:
        images = np.load(folder / IMAGES_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {folder / IMAGES_FILE} ({exc}); fetch it again") from None
    faces = index.get("faces", [])
    n_chars = len(CHARACTERS)
    expected = (len(faces) * n_chars, settings.size, settings.size, settings.channels)
    if images.dtype != np.uint8 or images.shape != expected:
        raise DataError(
            f"{folder / IMAGES_FILE}: {images.dtype} {images.shape}, expected uint8 {expected}; "
            f"run `bvc data fetch {manifest.name}` again"
        )
    if settings.font_set_sha256 and index.get("font_set_sha256") != settings.font_set_sha256:
        log.warning(
            "%s: the fonts here differ from the manifest's font set (`bvc data verify %s` "
            "names them); ids and split fingerprints will differ from other machines'",
            manifest.name, manifest.name,
        )  # fmt: skip
    ids = np.array([f"{f['id']}/{ch}" for f in faces for ch in CHARACTERS], dtype=object)
    groups = np.array([f["group"] for f in faces for _ in CHARACTERS], dtype=object)
    labels = np.tile(np.arange(n_chars, dtype=np.int64), len(faces))
    is_test = np.repeat([f["part"] == "test" for f in faces], n_chars)
    parts = {}
    for part, where in (("train", ~is_test), ("test", is_test)):
        pos = np.flatnonzero(where)
        parts[part] = ImageSet(
            images=np.ascontiguousarray(images[pos]),
            labels=labels[pos],
            ids=ids[pos],
            class_names=manifest.classes,
            name=manifest.name,
            mirror_ok=manifest.mirror_ok,
            groups=groups[pos],
        )
    loaded = replace(manifest, n_train=len(parts["train"]), n_test=len(parts["test"]))
    return parts["train"], parts["test"], loaded


@dataclass(frozen=True)
class GlyphCheck:
    """``bvc data verify`` for a glyph set: the fonts here against the manifest's, the files.

    Attributes:
        font_set_sha256: the fingerprint of the fonts found here.
        expected_sha256: the manifest's ("" when it records none).
        missing: manifest entries (``"<face id> <package>:<file>"``) not found here.
        extra: faces found here that the manifest does not list (same form).
        rendered: the rendered folder, None when the set is not rendered.
        rendered_ok: whether that folder holds this font set with the manifest's
            settings and its images file's sha256 matches its index.
    """

    font_set_sha256: str
    expected_sha256: str
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    rendered: Path | None
    rendered_ok: bool

    @property
    def fonts_match(self) -> bool:
        """True when the fonts here are the manifest's font set."""
        if self.expected_sha256:
            return self.font_set_sha256 == self.expected_sha256
        return not self.missing and not self.extra


def verify_glyphs(
    manifest: Manifest, data_dir: str | Path | None = None, *, dpkg_dir: Path = DPKG_INFO_DIR
) -> GlyphCheck:
    """Compare the fonts here with the manifest's font set, and check the rendered files."""
    settings = glyph_settings(manifest)
    scan = scan_glyph_fonts(settings, dpkg_dir=dpkg_dir)
    here = font_lines(scan)
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    if settings.fonts:
        here_ids = {line.split()[0]: line for line in here}
        want_ids = {line.split()[0]: line for line in settings.fonts}
        missing = tuple(want_ids[i] for i in sorted(set(want_ids) - set(here_ids)))
        extra = tuple(here_ids[i] for i in sorted(set(here_ids) - set(want_ids)))
    folder = resolve_data_dir(data_dir) / manifest.subdir
    rendered: Path | None = None
    ok = False
    if (folder / INDEX_FILE).is_file():
        rendered = folder
        index = _read_index(manifest, folder)
        ok = (
            index.get("font_set_sha256") == scan.fingerprint
            and index.get("render") == settings.render_key()
            and index.get("split") == settings.split_key()
            and (folder / IMAGES_FILE).is_file()
            and index.get("images_sha256") == _sha256_file(folder / IMAGES_FILE)
        )
    return GlyphCheck(
        font_set_sha256=scan.fingerprint,
        expected_sha256=settings.font_set_sha256,
        missing=missing,
        extra=extra,
        rendered=rendered,
        rendered_ok=ok,
    )


__all__ = [
    "CHARACTERS",
    "GlyphBuild",
    "GlyphCheck",
    "GlyphSettings",
    "build_glyphs",
    "design_groups",
    "font_line",
    "font_lines",
    "font_set_fingerprint",
    "glyph_settings",
    "load_glyphs",
    "render_faces",
    "render_masks",
    "scan_glyph_fonts",
    "test_groups",
    "verify_glyphs",
    "wild_image",
]
