"""Tiny TrueType fonts made with fontTools' FontBuilder, for the glyph dataset tests.

Each character is a pattern of square cells on a 5×7 grid, seeded by the font's
``variant`` and the character, so that two variants are two designs and every
character of a font has its own shape. No system font is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

from bovw_vs_convnet.data.glyphs import CHARACTERS

CELL, GAP = 100, 12


def _cells(variant: int, k: int) -> list[tuple[int, int]]:
    """The filled (column, row) cells of character ``k`` in design ``variant`` (at least 4)."""
    rng = np.random.default_rng([variant, k])
    grid = rng.random((7, 5)) < 0.45
    grid[0, 0] = grid[6, 4] = grid[3, 2] = grid[6, 0] = True  # a fixed box: 5 x 7 cells
    return [(int(c), int(r)) for r, c in zip(*np.nonzero(grid), strict=True)]


def _rect(pen: TTGlyphPen, x0: int, y0: int, x1: int, y1: int) -> None:
    pen.moveTo((x0, y0))
    pen.lineTo((x0, y1))
    pen.lineTo((x1, y1))
    pen.lineTo((x1, y0))
    pen.closePath()


def write_font(
    path: Path,
    family: str,
    style: str = "Regular",
    *,
    variant: int = 0,
    skip: Iterable[str] = (),
    empty: Iterable[str] = (),
    small_lower: Iterable[str] = (),
) -> Path:
    """Write a TrueType font of the 62 characters and return its path.

    Args:
        path: the .ttf file to write.
        family, style: the name table's family (nameID 1) and style (nameID 2).
        variant: the design: its cell patterns.
        skip: characters left out of the character map.
        empty: characters mapped to a glyph without outline.
        small_lower: lower-case letters drawn, with their capitals, as an L shape,
            the lower case at half the capital's size on the baseline (as c / C,
            o / O): the same shape, smaller.
    """
    skip, empty, small = set(skip), set(empty), set(small_lower)
    names = [f"g{ord(ch):03d}" for ch in CHARACTERS if ch not in skip]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", *names])
    fb.setupCharacterMap({ord(ch): f"g{ord(ch):03d}" for ch in CHARACTERS if ch not in skip})
    glyphs = {".notdef": TTGlyphPen(None).glyph()}
    for k, ch in enumerate(CHARACTERS):
        if ch in skip:
            continue
        pen = TTGlyphPen(None)
        if ch in small or ch.lower() in small:  # an L: the capital, or it at half size
            h = 350 if ch in small else 700
            _rect(pen, 50, 0, 50 + h // 4, h)
            _rect(pen, 50 + h // 4, 0, 50 + 5 * h // 7, h // 4)
        elif ch not in empty:
            for c, r in _cells(variant, k):
                _rect(
                    pen, 50 + c * CELL, r * CELL, 50 + c * CELL + CELL - GAP, r * CELL + CELL - GAP
                )
        glyphs[f"g{ord(ch):03d}"] = pen.glyph()
    fb.setupGlyf(glyphs)
    table = fb.font["glyf"]
    fb.setupHorizontalMetrics({g: (600, getattr(table[g], "xMin", 0)) for g in glyphs})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": style})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    path.parent.mkdir(parents=True, exist_ok=True)
    fb.save(str(path))
    return path


def write_manifest(
    folder: Path, name: str, font_dirs: Iterable[Path], *, extra: str = "", params: str = ""
) -> Path:
    """A glyph manifest ``<folder>/<name>.toml`` over fonts in ``font_dirs`` (no packages)."""
    classes = ", ".join(f'"{c}"' for c in CHARACTERS)
    dirs = ", ".join(f'"{d}"' for d in font_dirs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndescription = "test glyphs"\nformat = "glyphs"\n'
        f"classes = [{classes}]\nimage_size = [32, 32]\nchannels = 1\n"
        f'licence = "test"\n{extra}\n[source]\nhow = "bvc data fetch {name}"\n'
        f"[split]\nofficial = true\n[params]\nfont_dirs = [{dirs}]\n{params}\n",
        encoding="utf-8",
    )
    return path
