"""A glyph manifest's ``params``, checked into frozen :class:`GlyphSettings`.

A manifest variant (``glyphs-wild``, ``glyphs-64``) names ``params.base = "glyphs"``
and inherits its fonts and split: it may change only how images are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bovw_vs_convnet.data.fonts import check_package_names
from bovw_vs_convnet.data.manifest import Manifest, get_manifest
from bovw_vs_convnet.errors import DataError

CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BOXES = ("glyph", "em")
STYLES = ("clean", "wild")
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
    """What a glyph manifest's ``params`` say, checked (see :mod:`bovw_vs_convnet.data.glyphs`).

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


def _with_base(manifest: Manifest, params: dict[str, Any], where: str) -> dict[str, Any]:
    """``params`` with the font and split keys of the base a variant names (if it names one)."""
    if "base" not in params:
        return params
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
    return {**{k: v for k, v in base.params.items() if k in _FONT_KEYS}, **params}


def _check_classes_and_size(manifest: Manifest, where: str) -> int:
    """The side of the manifest's square images, once its classes are the 62 characters."""
    if "".join(manifest.classes) != CHARACTERS or any(len(c) != 1 for c in manifest.classes):
        raise DataError(f"{where}: a glyph manifest's classes are the 62 characters 0-9, A-Z, a-z")
    h, w = manifest.image_size
    if h != w or not 8 <= h <= 512:
        raise DataError(f"{where}: glyph images are square, 8 to 512 pixels, got {h}x{w}")
    return int(h)


def _same_design(where: str, value: Any) -> tuple[tuple[str, ...], ...]:
    """``params.same_design``: lists of 2+ families, no family in two of them."""
    if not isinstance(value, list) or not all(
        isinstance(g, list) and len(g) >= 2 and all(isinstance(f, str) and f for f in g)
        for g in value
    ):
        raise DataError(f"{where}: 'params.same_design' must be a list of lists of 2+ families")
    listed = [f for g in value for f in g]
    if len(set(listed)) != len(listed):
        raise DataError(f"{where}: a family is listed twice in 'params.same_design'")
    return tuple(tuple(g) for g in value)


def _box_and_style(manifest: Manifest, params: dict[str, Any], where: str) -> tuple[str, str]:
    """``params.box`` and ``params.style``, the style's channel count checked on the manifest."""
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
    return box, style


def _fingerprint(where: str, value: Any) -> str:
    """``params.font_set_sha256``: "" or a sha256 hex digest."""
    if not isinstance(value, str) or (
        value and (len(value) != 64 or set(value) - set("0123456789abcdef"))
    ):
        raise DataError(f"{where}: 'params.font_set_sha256' must be a sha256 hex digest")
    return value


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
    params = _with_base(manifest, params, where)
    size = _check_classes_and_size(manifest, where)
    packages = _str_list(where, "packages", params.get("packages", []))
    check_package_names(packages, where)
    font_dirs = _str_list(where, "font_dirs", params.get("font_dirs", []))
    if not packages and not font_dirs:
        raise DataError(f"{where}: 'params.packages' (or 'params.font_dirs') names no fonts")
    same_design = _same_design(where, params.get("same_design", []))
    box, style = _box_and_style(manifest, params, where)
    fingerprint = _fingerprint(where, params.get("font_set_sha256", ""))
    return GlyphSettings(
        packages=packages,
        font_dirs=font_dirs,
        exclude_families=_str_list(where, "exclude_families", params.get("exclude_families", [])),
        same_design=same_design,
        box=box,
        style=style,
        size=size,
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
